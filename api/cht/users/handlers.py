"""HTTP handlers of the users area: list, read, create (one, many or from CSV), update and delete users;
users-info and users-doc-count; login by SMS token.

The domain work is in ``users`` (reading, consistency), ``writes`` (creating, updating, deleting),
``csv_upload`` and ``token_login``."""

from __future__ import annotations

import html
import logging
import time
from typing import Any, AsyncIterator

from aiohttp import web

from api import jsonparse, tokens
from api.auth import Principal, parse_basic
from api.cht.replication import limit as replication_limit
from api.cht.replication import scope as replication_scope
from api.cht.replication.handlers import SCOPES
from api.cht.visibility import Scope, offline_scope, scope_for
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, PayloadTooLarge, Unauthorized
from api.handlers.session import home_url, logged_in
from api.permissions import INSUFFICIENT, has_online_role, has_permission, is_offline, require_admin
from api.security_headers import renders
from api.sessions import login_after_change
from api.streaming import json_array, stream
from api.web import (
    AUTH,
    CONFIG,
    COUCH,
    basic_prompt,
    json_response,
    parse_json_body,
    public,
    read_json,
    read_json_object,
    require,
    secret_path,
    settings,
    user,
)

from . import token_login, users
from .create import UserCreator
from .csv_upload import Row, UploadLog, log_entry, parse
from .rules import check_new, inline_error
from .users import synced_settings
from .writes import UserWriter, illegal_for_self

EMPTY_BODY = "Request body is empty or Content-Type header was not set to application/json."

routes = web.RouteTableDef()


# CHT users: list and read (``/api/v1|v2/users``), create one, many or from CSV, update, delete.

def dbs(app: web.Application) -> users.Dbs:
    config, couch = app[CONFIG], app[COUCH]
    return users.Dbs(couch.db(config.db_users), couch.db(config.db_medic), couch.db(config.db_logs),
                      couch.db(config.db_sentinel))


def request_base(request: web.Request) -> str:
    """Where this server is, as the client reached it (the token-login link's fallback)."""
    scheme = "https" if request.headers.get("X-Forwarded-Proto", "") == "https" else request.scheme
    return f"{scheme}://{request.host}"


def _creator(request: web.Request, principal: Principal, current: dict[str, Any]) -> UserCreator:
    return UserCreator(dbs(request.app), current, principal, scope_for(principal, current), request_base(request))


def _writer(request: web.Request, principal: Principal, current: dict[str, Any]) -> UserWriter:
    return UserWriter(dbs(request.app), current, principal, scope_for(principal, current), request_base(request))


# -- reading ---------------------------------------------------------------------------


def _v1(item: dict[str, Any]) -> dict[str, Any]:
    """The deprecated v1 shape: ``type`` (the first role) instead of ``roles``."""
    roles = item.pop("roles", None) or []
    return {**item, "type": roles[0] if roles else "unknown"}


async def _listing(request: web.Request, v1: bool) -> AsyncIterator[dict[str, Any]]:
    """The users, read a page at a time (``facility_id`` and ``contact_id`` filter both versions)."""
    both = dbs(request.app)
    facility_id, contact_id = request.query.get("facility_id"), request.query.get("contact_id")
    if facility_id or contact_id:
        pages: AsyncIterator[list[dict[str, Any]]] = _one_page(await users.filtered(both.users, facility_id,
                                                                                     contact_id))
    else:
        pages = users.iter_user_docs(both.users)
    async for docs in pages:
        for item in await users.shape_page(both, docs):
            yield _v1(item) if v1 else item


async def _one_page(docs: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
    yield docs


@routes.get("/api/v1/users")
async def list_users_v1(request: web.Request) -> web.StreamResponse:
    await require(request, "can_view_users")
    return await stream(request, json_array(_listing(request, v1=True)))


@routes.get("/api/v2/users")
async def list_users(request: web.Request) -> web.StreamResponse:
    await require(request, "can_view_users")
    return await stream(request, json_array(_listing(request, v1=False)))


def _is_self(request: web.Request, principal: Principal, name: str) -> bool:
    """CHT's "referencing self": the caller is that user, and so is the Basic header's user when one is sent."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic ") and parse_basic(header.split(" ", 1)[1].strip())[0] != name:
        return False
    return principal.method in ("basic", "cookie") and principal.name == name


@routes.get("/api/v2/users/{username}")
async def get_user(request: web.Request) -> web.Response:
    """``can_view_users``, or the user themself (refused before anything is looked up)."""
    principal = await require(request)
    name = request.match_info["username"]
    if not has_permission(principal, "can_view_users", await settings(request)) and \
            not _is_self(request, principal, name):
        raise Forbidden(INSUFFICIENT)
    return json_response(await users.get_one(dbs(request.app), name))


# -- creating ----------------------------------------------------------------------------


def _inline(result: dict[str, Any] | JamiiError) -> dict[str, Any]:
    return result if isinstance(result, dict) else {"error": inline_error(result)}


async def _create_one(creator: UserCreator, body: Any, current: dict[str, Any], principal: Principal, *,
                      v3: bool = False) -> dict[str, Any]:
    """One user: CHT's answer, or its error as the HTTP error."""
    problem = check_new(body, current, principal)
    if problem:
        raise problem.error()
    result = (await creator.create_many([body], v3=v3))[0]
    if isinstance(result, JamiiError):
        raise result
    return result


async def _create_each(creator: UserCreator, items: list[Any], current: dict[str, Any], principal: Principal,
                       progress: Any = None) -> list[dict[str, Any]]:
    """Several users, each on its own as CHT creates them: an entry per user, in request order, with the
    created user's answer or ``{"error": ...}``."""
    problems = [check_new(item, current, principal) for item in items]
    created = iter(await creator.create_many([i for i, p in zip(items, problems) if p is None], progress))
    return [{"error": p.inline()} if p else _inline(next(created)) for p in problems]


@routes.post("/api/v1/users")
async def create_users(request: web.Request) -> web.Response:
    """One user (a JSON object) or several (an array: 200 whatever happened, an entry per user)."""
    principal = await require(request, "can_edit", "can_create_users")
    current = await settings(request)
    body = await read_json(request)
    creator = _creator(request, principal, current)
    if isinstance(body, list):
        return json_response(await _create_each(creator, body, current, principal))
    return json_response(await _create_one(creator, body, current, principal))


@routes.post("/api/v3/users")
async def create_user_v3(request: web.Request) -> web.Response:
    """One user with one or several existing places (``place``: an id or a list of ids)."""
    principal = await require(request, "can_edit", "can_create_users")
    current = await settings(request)
    body = await read_json_object(request)
    return json_response(await _create_one(_creator(request, principal, current), body, current, principal, v3=True))


async def _body(request: web.Request) -> tuple[Any, list[Row] | None]:
    """The JSON body, or the rows of a CSV one."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than {request.app[CONFIG].max_body_bytes} bytes")
    if request.content_type == "application/json":
        return parse_json_body(raw), None
    return None, parse(raw)


@routes.post("/api/v2/users")
async def import_users(request: web.Request) -> web.Response:
    """A JSON object (one user), a JSON array or CSV (each user on its own), with a progress log as CHT keeps."""
    principal = await require(request, "can_edit", "can_create_users")
    current = await settings(request)
    upload = await UploadLog.create(dbs(request.app).logs, principal.name)
    creator = _creator(request, principal, current)
    try:
        body, rows = await _body(request)
        if rows is None and not isinstance(body, list):
            result = await _create_one(creator, body, current, principal)
            await upload.update({"status": "finished"})
            return json_response(result)
    except JamiiError as exc:
        await upload.update({"status": "error", "message": exc.message})
        raise
    if rows is None:
        rows = [Row(i, item) for i, item in enumerate(body)]
    failed_rows = sum(1 for r in rows if r.error)
    await upload.update({"status": "parsed", "parsing": {"total": len(rows), "failed": failed_rows,
                                                         "successful": len(rows) - failed_rows}},
                        [log_entry(r.data, "error" if r.error else "parsed", r.error) for r in rows])
    todo = [r for r in rows if not r.skip]  # skipped rows get no answer, as in CHT
    saving = {"total": len(rows), "failed": 0, "successful": 0, "ignored": len(rows) - len(todo)}
    data = [log_entry(r.data, "skipped", r.skip) if r.skip else log_entry(r.data, "parsed") for r in rows]
    answers: dict[int, dict[str, Any]] = {}
    checked: list[Row] = []
    for row in todo:
        problem = None if row.error else check_new(row.data, current, principal)
        if row.error or problem:
            answers[row.index] = {"error": row.error or problem.inline()}
            data[row.index] = log_entry(row.data, "error", row.error or problem.message)
            saving["failed"] += 1
        else:
            checked.append(row)

    async def progress(results: list[dict[str, Any] | JamiiError]) -> None:
        for row, result in zip(checked, results):
            if data[row.index]["import"]["status"] == "parsed":
                failed = isinstance(result, JamiiError)
                data[row.index] = log_entry(row.data, "error" if failed else "imported",
                                            result.message if isinstance(result, JamiiError) else None)
                saving["failed" if failed else "successful"] += 1
        await upload.update({"status": "saving", "saving": saving}, data)

    await upload.update({"status": "saving", "saving": saving}, data)
    results = await creator.create_many([r.data for r in checked], progress)
    answers.update({row.index: _inline(result) for row, result in zip(checked, results)})
    await upload.update({"status": "finished", "saving": saving}, data)
    return json_response([answers[r.index] for r in todo])


# -- updating and deleting -----------------------------------------------------------------


async def _update(request: web.Request) -> web.Response:
    """CHT's order: an empty body, then full permission (``can_edit`` and ``can_update_users``) or the user
    themself (403 otherwise; a password needs Basic credentials; other fields than their own are a 401)."""
    principal = await require(request)
    name = request.match_info["username"]
    current = await settings(request)
    body = await read_json(request) if request.can_read_body else None
    if not isinstance(body, dict) or not body:
        raise BadRequest(EMPTY_BODY, field="body")
    full = all(has_permission(principal, p, current) for p in ("can_edit", "can_update_users"))
    if not full:
        if not _is_self(request, principal, name):
            raise Forbidden("You do not have permissions to modify this person")
        if "password" in body and principal.method != "basic":
            raise Forbidden("You must authenticate with Basic Auth to modify your password")
        illegal = illegal_for_self(body)
        if illegal:
            raise Unauthorized("You do not have permission to modify: " + ",".join(illegal))
    result = await _writer(request, principal, current).update(name, body, full_access=full)
    request.app[AUTH].forget(name)
    return json_response(result)


@routes.post("/api/v1/users/{username}")
async def update_user(request: web.Request) -> web.Response:
    return await _update(request)


@routes.post("/api/v3/users/{username}")
async def update_user_v3(request: web.Request) -> web.Response:
    """The same as v1 (CHT's v3 update calls it)."""
    return await _update(request)


@routes.delete("/api/v1/users/{username}")
async def delete_user(request: web.Request) -> web.Response:
    principal = await require(request, "can_edit", "can_delete_users")
    name = request.match_info["username"]
    result = await _writer(request, principal, await settings(request)).delete(name)
    # what was granted to this account goes with it (a new user of the same name would not get it anyway)
    try:
        await tokens.revoke_all(request.app[COUCH].db(request.app[CONFIG].db_spatial), name)
    except JamiiError as exc:  # they are dead already: each is bound to the deleted account
        logging.getLogger("jamii.users").warning("user %s deleted, but its API tokens were not: %s", name, exc)
    request.app[AUTH].forget(name)
    return json_response(result)


# ``GET /api/v1/users-info`` (what an offline user would replicate) and ``/api/v1/users-doc-count``.

MISSING = "Missing required query params: role and/or facility_id"


def _roles(raw: str) -> list[str]:
    """``role``: one role, or a JSON array of roles (CHT's convention)."""
    try:
        value = jsonparse.loads(raw)
    except ValueError:
        return [raw]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise BadRequest("Role parameter must be either a string or a JSON encoded array")
    if any(not isinstance(r, str) or not r for r in value):
        raise BadRequest("All roles should be strings")
    return value


def _requested_scope(request: web.Request, current: dict[str, Any]) -> Scope:
    """The scope an offline user with these query parameters would have (for online callers)."""
    role, facilities = request.query.get("role"), [f for f in request.query.getall("facility_id", []) if f]
    if not role or not facilities:
        raise BadRequest(MISSING, body={"code": 400, "error": MISSING})
    roles = _roles(role)
    if has_online_role(roles):  # CHT's rule: any other role (an unknown one too) is offline
        raise BadRequest("Provided role is not offline")
    who = Principal("-", tuple(roles), facility_id=facilities, contact_id=request.query.get("contact_id") or None)
    return offline_scope(who, current)


@routes.get("/api/v1/users-info")
async def users_info(request: web.Request) -> web.Response:
    principal = user(request)
    assert principal is not None
    current = await settings(request)
    if is_offline(principal, current):  # the set the user's own replication keeps up to date
        scope = scope_for(principal, current)
    else:
        await require(request, "can_update_users")
        scope = _requested_scope(request, current)
    visible = await request.app[SCOPES].of_scope(scope, latest=False)  # counts: one refresh behind will do
    return json_response(visible.counts().as_json())


@routes.get("/api/v1/users-doc-count")
@basic_prompt
async def users_doc_count(request: web.Request) -> web.Response:
    require_admin(user(request))
    db = request.app[COUCH].db(request.app[CONFIG].db_logs)
    name = request.query.get("user")
    found: Any = await replication_limit.get_one(db, name) if name else await replication_limit.get_all(db)
    return json_response({"limit": replication_scope.WARN_LIMIT, "users": found})


# ``/medic/login/token/{token}``: log in with the link of a login-by-SMS message.

log = logging.getLogger("jamii.token_login")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Log in</title></head>
<body><form method="post" action="{action}"><p>Log in to the app with this link (it works once).</p>
<button type="submit">Log in</button></form></body></html>
"""
# A form posting to this server, and nothing else: no script, no style, no framing.
PAGE_POLICY = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


@routes.get("/medic/login/token/{token}")
@public
@secret_path
@renders(PAGE_POLICY)
async def token_page(request: web.Request) -> web.Response:
    action = html.escape(request.path, quote=True)
    return web.Response(text=PAGE.format(action=action), content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.post("/medic/login/token/{token}")
@public
@secret_path
async def token_login_post(request: web.Request) -> web.Response:
    """As CHT answers: 302 with the app's URL as the body and the session's cookies (a caller already logged in
    is sent on without using the token)."""
    current = await settings(request)
    token_login.require_enabled(current)
    already = user(request)
    if already is not None:
        home = home_url(already, current)
        return web.Response(status=302, text=home, content_type="text/html")
    both = dbs(request.app)
    user_doc, password = await token_login.claim(both.users, both.medic, request.match_info["token"],
                                                 int(time.time() * 1000),
                                                 sso_enabled=bool(current.get("oidc_provider")))
    name = user_doc["name"]
    principal, cookie = await login_after_change(request.app[AUTH], name, password)
    await _settings_follow(both, user_doc)
    home = home_url(principal, current)
    return logged_in(request, principal, cookie, home, str(current.get("locale") or "en"), home)


async def _settings_follow(both, user_doc: dict) -> None:
    """Record the spent token in user-settings too (a failure here is left to the repair script)."""
    for _ in range(3):
        try:
            current = await both.medic.get_or_none(user_doc["_id"])
            await both.medic.put(synced_settings(user_doc, current))
            return
        except Conflict:
            continue
        except JamiiError as exc:
            log.error("user %s logged in by token, but user-settings not updated: %s", user_doc["name"], exc)
            return
