"""``/api/v1/tokens``: API tokens for ``Authorization: Token <key>`` (made, listed, revoked).

``setup`` registers the ``Token`` scheme with the authenticator once it exists, so a token
is accepted wherever a password is.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import tokens
from api.auth import Principal
from api.errors import BadRequest, Forbidden, NotFound
from api.web import AUTH, CONFIG, COUCH, json_response, read_json, user

routes = web.RouteTableDef()


def _dbs(app: web.Application) -> tuple[Any, Any]:
    config = app[CONFIG]
    return app[COUCH].db(config.db_spatial), app[COUCH].db(config.db_users)


def _caller(request: web.Request) -> Principal:
    principal = user(request)
    assert principal is not None  # every route here needs credentials
    return principal


def _owner(principal: Principal, name: str | None) -> str:
    """Whose tokens a request is about: the caller's own, or (admins only) anyone's."""
    if name is None or name == principal.name:
        return principal.name
    if not principal.is_admin:
        raise Forbidden("Only admins may manage other users' tokens")
    return name


@routes.post("/api/v1/tokens")
async def create_token(request: web.Request) -> web.Response:
    principal = _caller(request)
    if principal.method in ("token", "jwt"):
        raise Forbidden("Tokens are made with a password or a session, not with another token")
    body = await read_json(request) if request.body_exists else {}
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object", field="body")
    name, owner = body.get("name", ""), body.get("user")
    if not isinstance(name, str) or len(name) > 100:
        raise BadRequest("name must be a string of at most 100 characters", field="name")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise BadRequest("user must be a user name", field="user")
    unknown = sorted(set(body) - {"name", "user"})
    if unknown:
        raise BadRequest(f"Unknown field {unknown[0]}", field=unknown[0])
    db, users = _dbs(request.app)
    created = await tokens.create(db, users, _owner(principal, owner), name)
    return json_response(created, status=201)


@routes.get("/api/v1/tokens")
async def list_tokens(request: web.Request) -> web.Response:
    db, _ = _dbs(request.app)
    return json_response(await tokens.list_for(db, _owner(_caller(request), request.query.get("user"))))


@routes.delete("/api/v1/tokens/{id}")
async def revoke_token(request: web.Request) -> web.Response:
    principal = _caller(request)
    db, _ = _dbs(request.app)
    doc = await tokens.find(db, request.match_info["id"])
    if doc is None or (doc["user"] != principal.name and not principal.is_admin):
        raise NotFound("No such token")
    await tokens.revoke(db, doc)
    request.app[AUTH].forget(doc["user"])
    return web.Response(status=204)


async def _register_scheme(app: web.Application) -> None:
    db, users = _dbs(app)

    async def token(credentials: str) -> Principal:
        return await tokens.authenticate(db, users, credentials)

    app[AUTH].register_scheme("Token", token)


def setup(app: web.Application) -> None:
    """Register the Token scheme after the authenticator is made (app.py's first startup hook)."""
    app.on_startup.append(_register_scheme)
