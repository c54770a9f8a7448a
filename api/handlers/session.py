"""Sessions: CouchDB's ``/_session`` and CHT's ``/medic/login``, answered by the API.

The cookie is CouchDB's own ``AuthSession``; the API adds the ``Expires``
attribute clients such as cht-conf rely on.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

from aiohttp import web

from api.auth import Principal, parse_basic
from api.errors import BadRequest, Unauthorized
from api.web import AUTH, CONFIG, client_address, couch_errors, json_response, logs_in, public, read_json, user

routes = web.RouteTableDef()


def set_session_cookie(request: web.Request, response: web.StreamResponse, value: str, max_age: int) -> None:
    """Set-Cookie as CouchDB writes it. Attribute names are case-insensitive by the RFC, but
    pouchdb-session-authentication (cht-conf's PouchDB) looks for exactly ``Expires``, which
    aiohttp's cookie writer lower-cases; so the header is written here."""
    attributes = [f"AuthSession={value}", "Version=1", f"Expires={formatdate(time.time() + max_age, usegmt=True)}",
                  f"Max-Age={max_age}", "Path=/", "HttpOnly", "SameSite=Lax"]
    if request.secure or request.headers.get("X-Forwarded-Proto", "") == "https":
        attributes.append("Secure")
    response.headers.add("Set-Cookie", "; ".join(attributes))


async def _credentials(request: web.Request) -> tuple[str, str]:
    """Name and password from a JSON or form body, or else the Basic header."""
    name = password = None
    if request.can_read_body:
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            name, password = form.get("name") or form.get("user"), form.get("password")
        else:
            body = await read_json(request)
            if isinstance(body, dict):
                name, password = body.get("name") or body.get("user"), body.get("password")
    if not name and request.headers.get("Authorization", "").lower().startswith("basic "):
        name, password = parse_basic(request.headers["Authorization"].split(" ", 1)[1].strip())
    if not isinstance(name, str) or not name or not isinstance(password, str):
        raise BadRequest("name and password are required", field="name")
    return name, password


def _ctx(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {"name": None, "roles": []}
    return {"name": principal.name, "roles": list(principal.roles)}


@routes.post("/_session")
@public
@logs_in
@couch_errors
async def post_session(request: web.Request) -> web.Response:
    name, password = await _credentials(request)
    principal, cookie = await request.app[AUTH].login(name, password, client_address(request))
    response = json_response({"ok": True, **_ctx(principal)})
    set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    return response


@routes.get("/_session")
@public
@couch_errors
async def get_session(request: web.Request) -> web.Response:
    principal = user(request)
    info = {"authentication_handlers": ["cookie", "default"], "authentication_db": "_users"}
    if principal is not None:
        info["authenticated"] = "cookie" if principal.method == "cookie" else "default"
    return json_response({"ok": True, "userCtx": _ctx(principal), "info": info})


@routes.delete("/_session")
@public
@couch_errors
async def delete_session(request: web.Request) -> web.Response:
    response = json_response({"ok": True})
    response.del_cookie("AuthSession", path="/")
    return response


@routes.post("/medic/login")
@public
@logs_in
async def login(request: web.Request) -> web.Response:
    """CHT's login form endpoint: ``{"user", "password"}`` -> session cookie."""
    try:
        name, password = await _credentials(request)
    except BadRequest as exc:
        if exc.field == "body":  # a body that is not JSON: say so, rather than "Not logged in"
            raise
        raise Unauthorized("Not logged in") from None
    principal, cookie = await request.app[AUTH].login(name, password, client_address(request))
    response = json_response({"success": True, **_ctx(principal)})
    set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    return response
