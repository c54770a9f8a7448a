"""Small helpers shared by the handlers: app keys, route flags, request parsing, JSON replies."""

from __future__ import annotations

import functools
import json
import time
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from . import jsonparse, login_throttle, permissions
from .auth import Authenticator, Principal
from .auth_follow import CredentialFollower
from .config import Config
from .connected_users import ConnectedUsers
from .couch import Couch, Database
from .credentials import CredentialStore
from .ddocs import ViewWarmer
from .errors import BadRequest, JamiiError, PayloadTooLarge
from .settings import SettingsStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorBody = Callable[[web.Request, JamiiError], Any]

CONFIG = web.AppKey("config", Config)
AUTH_FOLLOWER = web.AppKey("auth_follower", CredentialFollower)
COUCH = web.AppKey("couch", Couch)
# The same server for work shared beyond one request, with that work's limit (api.deadline.SHARED_WORK_SECONDS)
BACKGROUND_COUCH = web.AppKey("background_couch", Couch)
AUTH = web.AppKey("authenticator", Authenticator)
SETTINGS = web.AppKey("settings", SettingsStore)
STARTED = web.AppKey("started", float)
CONNECTED = web.AppKey("connected_users", ConnectedUsers)
WARMER = web.AppKey("view_warmer", ViewWarmer)
CREDENTIALS = web.AppKey("credentials", CredentialStore)
USER: web.RequestKey[Principal | None] = web.RequestKey("user", object)  # type: ignore[arg-type]


def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without credentials (everything else needs them)."""
    handler.jamii_public = True  # type: ignore[attr-defined]
    return handler


def logs_in(handler: Handler) -> Handler:
    """Mark a login handler, which checks the credentials it is sent itself: the authentication middleware
    leaves them alone, so a wrong password is checked, and counted, once."""
    handler.jamii_logs_in = True  # type: ignore[attr-defined]
    return handler


def secret_path(handler: Handler) -> Handler:
    """Mark a handler whose URL path holds a secret (a login token): logs show the route pattern instead."""
    handler.jamii_secret_path = True  # type: ignore[attr-defined]
    return handler


def couch_errors(handler: Handler) -> Handler:
    """Mark a handler whose errors use CouchDB's ``{"error", "reason"}`` shape."""
    handler.jamii_couch_errors = True  # type: ignore[attr-defined]
    return handler


def basic_prompt(handler: Handler) -> Handler:
    """Mark a handler whose 401 asks for Basic credentials whatever the client (CHT's ``showPrompt`` routes:
    settings, users-doc-count...)."""
    handler.jamii_basic_prompt = True  # type: ignore[attr-defined]
    return handler


def error_body(formatter: ErrorBody) -> Callable[[Handler], Handler]:
    """Mark a handler whose errors (the authentication middleware's 401 included) get their body from
    ``formatter(request, exc)``: for an API whose spec shows its own error shapes."""

    def mark(handler: Handler) -> Handler:
        handler.jamii_error_body = formatter  # type: ignore[attr-defined]
        return handler

    return mark


def _accept_entries(header: str) -> list[tuple[str, str, float, int]]:
    entries = []
    for index, part in enumerate(header.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        kind, _, sub = media.partition("/")
        if not kind or not sub:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        entries.append((kind.lower(), sub.lower(), q, index))
    return entries


def _accept_rank(entries: list[tuple[str, str, float, int]], kind: str, sub: str) -> tuple[float, int, int] | None:
    """(q, specificity, -position) of the Accept entry that best matches ``kind/sub``, as Express's
    negotiator picks it: the most specific entry, then the highest q, then the later one."""
    best: tuple[int, float, int] | None = None
    for e_kind, e_sub, q, index in entries:
        if e_kind not in ("*", kind) or e_sub not in ("*", sub):
            continue
        specificity = (4 if e_kind == kind else 0) + (2 if e_sub == sub else 0)
        if best is None or (specificity, q, index) > best:
            best = (specificity, q, index)
    if best is None or best[1] <= 0:
        return None
    return best[1], best[0], -best[2]


def wants_json(request: web.Request) -> bool:
    """Whether CHT would answer this client in JSON (``prefers_json`` of its ``Accept`` header)."""
    return prefers_json(request.headers.get("Accept"))


def prefers_json(header: str | None) -> bool:
    """Whether ``application/json`` beats ``text/plain`` in an ``Accept`` header, as Express's
    ``req.accepts(['text', 'json'])`` decides it (ties and no header go to text)."""
    if not header:
        return False
    entries = _accept_entries(header)
    text, json_rank = _accept_rank(entries, "text", "plain"), _accept_rank(entries, "application", "json")
    return json_rank is not None and (text is None or json_rank > text)


def is_client_human(request: web.Request) -> bool:
    """CHT's guess that a browser is calling: any User-Agent except the Android gateway and Collect apps."""
    agent = request.headers.get("User-Agent")
    if not agent:
        return False
    if agent.startswith("Dalvik/"):
        return "medic.gateway" not in agent and ".collect.android" not in agent
    return True


def medic(request: web.Request) -> Database:
    """The medic database (CHT's contacts, reports, settings)."""
    return request.app[COUCH].db(request.app[CONFIG].db_medic)


def sentinel(request: web.Request) -> Database:
    """The sentinel database (info docs, short id reservations)."""
    return request.app[COUCH].db(request.app[CONFIG].db_sentinel)


def user(request: web.Request) -> Principal | None:
    return request.get(USER)


def client_address(request: web.Request) -> str:
    """Where the request comes from, for counting failed logins: the socket's peer, or what
    ``X-Forwarded-For`` says when the peer is one of ``TRUSTED_PROXIES``."""
    return login_throttle.client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                         _networks(request.app[CONFIG].trusted_proxies))


@functools.lru_cache(maxsize=8)
def _networks(values: tuple[str, ...]) -> tuple[login_throttle.Network, ...]:
    return login_throttle.parse_networks(values)


async def settings(request: web.Request) -> dict[str, Any]:
    return await request.app[SETTINGS].get()


async def require(request: web.Request, *perms: str, online: bool = False) -> Principal:
    """The caller, if they hold every permission given (and are online, if asked)."""
    return permissions.require(user(request), await settings(request), *perms, online=online)


async def behind_firewall(request: web.Request) -> Principal:
    """The caller, unless an offline user (cht-core's offline-user firewall, see ``permissions.firewall``)."""
    return permissions.firewall(user(request), await settings(request))


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 that says why not (``api.jsonparse``: UTF-8 only, no NaN, at
    most ``MAX_DEPTH`` levels deep)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than {request.app[CONFIG].max_body_bytes} bytes")
    return parse_json_body(raw)


def parse_json_body(raw: bytes) -> Any:
    """Bytes already read as a JSON body, or the 400 that says why not."""
    if not raw.strip():
        raise BadRequest("Request body is empty; JSON expected", field="body")
    try:
        return jsonparse.loads(raw)
    except jsonparse.InvalidJSON as exc:
        if exc.problem == "syntax":
            raise BadRequest(f"Request body is not valid JSON: {exc}", field="body") from None
        raise BadRequest(f"Request body is {exc}", field="body") from None


async def read_json_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object", field="body")
    return body


def query_bool(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"Query parameter {name} must be true or false", field=name)


def query_int(query: Mapping[str, str], name: str, default: int, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Query parameter {name} must be an integer", field=name) from None
    if minimum is not None and value < minimum:
        raise BadRequest(f"Query parameter {name} must be at least {minimum}", field=name)
    if maximum is not None and value > maximum:
        raise BadRequest(f"Query parameter {name} must be at most {maximum}", field=name)
    return value


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers,
                             dumps=lambda obj: json.dumps(obj, separators=(",", ":")))


def uptime(request: web.Request) -> float:
    return time.monotonic() - request.app[STARTED]
