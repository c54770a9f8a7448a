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

from api import jsonparse
from api.auth import Principal
from api.cht.replication import limit as replication_limit
from api.cht.replication import scope as replication_scope
from api.cht.visibility import Scope, offline_scope, scope_for
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, PayloadTooLarge
from api.handlers.session import set_session_cookie
from api.permissions import has_permission, is_offline, require_admin
from api.streaming import json_array, stream
from api.web import (
    AUTH,
    CONFIG,
    COUCH,
    json_response,
    medic,
    parse_json_body,
    public,
    read_json,
    require,
    secret_path,
    settings,
    user,
)

from . import token_login, users
from .create import UserCreator
from .csv_upload import Row, UploadLog, log_entry, parse
from .rules import Invalid, check_new
from .users import synced_settings
from .writes import UserWriter

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
    """The users, read a page at a time."""
    both = dbs(request.app)
    facility_id, contact_id = request.query.get("facility_id"), request.query.get("contact_id")
    if not v1 and (facility_id or contact_id):
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


@routes.get("/api/v2/users/{username}")
async def get_user(request: web.Request) -> web.Response:
    await require(request, "can_view_users")
    item = await users.get_one(dbs(request.app), request.match_info["username"])
    roles = item.get("roles") or []
    return json_response({**item, "type": roles[0] if roles else "unknown"})


# -- creating ----------------------------------------------------------------------------


def _failing_body(failing: list[tuple[int, Invalid]]) -> dict[str, Any]:
    """The spec's 400 for a batch with invalid users: every failing index and what is wrong with it."""
    only_missing = all(p.missing for _, p in failing)
    lines = [f"Missing fields {', '.join(p.fields)} for user at index {i}" if p.missing
             else f"{p.message} (user at index {i})" for i, p in failing]
    header = "Missing required fields:" if only_missing else "Invalid users:"
    entries = []
    for index, problem in failing:
        entry: dict[str, Any] = {"fields": problem.fields, "index": index}
        if not problem.missing:
            entry["error"] = problem.message
        entries.append(entry)
    return {"code": 400, "error": "\n".join([header, *lines]), "details": {"failingIndexes": entries}}


def _inline(result: dict[str, Any] | JamiiError) -> dict[str, Any]:
    return result if isinstance(result, dict) else {"error": result.message}


@routes.post("/api/v1/users")
async def create_users(request: web.Request) -> web.Response:
    principal = await require(request, "can_create_users")
    current = await settings(request)
    body = await read_json(request)
    writer = _creator(request, principal, current)
    if isinstance(body, list):
        if not body:
            raise BadRequest("No users given", field="body")
        failing = [(i, p) for i, p in ((i, check_new(item, current, principal)) for i, item in enumerate(body)) if p]
        if failing:
            raise BadRequest(f"{len(failing)} invalid user(s)", body=_failing_body(failing))
        return json_response([_inline(r) for r in await writer.create_many(body)])
    problem = check_new(body, current, principal)
    if problem:
        raise problem.error()
    result = (await writer.create_many([body]))[0]
    if isinstance(result, JamiiError):
        raise result
    return json_response(result)


async def _rows(request: web.Request) -> list[Row]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than {request.app[CONFIG].max_body_bytes} bytes")
    if request.content_type == "application/json":
        items = parse_json_body(raw)
        if not isinstance(items, list):
            raise BadRequest("Request body must be a JSON array of users (or CSV)", field="body")
        return [Row(i, item) for i, item in enumerate(items)]
    return parse(raw)


@routes.post("/api/v2/users")
async def import_users(request: web.Request) -> web.Response:
    """CSV (or a JSON array): validated whole first, then created batch by batch with a progress log."""
    principal = await require(request, "can_create_users")
    current = await settings(request)
    upload = await UploadLog.create(dbs(request.app).logs, principal.name)
    try:
        rows = await _rows(request)
    except JamiiError as exc:
        await upload.update({"status": "error", "message": exc.message})
        raise
    if not rows:
        await upload.update({"status": "error", "message": "CSV has no rows"})
        raise BadRequest("The CSV has a header but no users", field="body")
    await upload.update({"status": "parsing", "parsing": {"total": len(rows), "failed": 0, "successful": 0}})
    failing: list[dict[str, Any]] = []
    for row in rows:
        problem = row.error or (None if row.skip else _problem_text(check_new(row.data, current, principal)))
        if problem:
            failing.append({"error": problem, "index": row.index})
    entries = {f["index"]: log_entry(rows[f["index"]].data, "error", f["error"]) for f in failing}
    await upload.update({"status": "error" if failing else "parsed",
                         "parsing": {"total": len(rows), "failed": len(failing), "successful": len(rows) - len(failing)}},
                        [entries.get(r.index) or log_entry(r.data, "parsed") for r in rows])
    if failing:
        raise BadRequest(f"{len(failing)} invalid user(s)", body=failing)
    todo = [r for r in rows if not r.skip]
    saving = {"total": len(rows), "failed": 0, "successful": 0, "ignored": len(rows) - len(todo)}
    data = [log_entry(r.data, "skipped", r.skip) if r.skip else log_entry(r.data, "parsed") for r in rows]

    async def progress(results: list[dict[str, Any] | JamiiError]) -> None:
        for row, result in zip(todo, results):
            if data[row.index]["import"]["status"] == "parsed":
                failed = isinstance(result, JamiiError)
                data[row.index] = log_entry(row.data, "error" if failed else "imported",
                                            result.message if isinstance(result, JamiiError) else None)
                saving["failed" if failed else "successful"] += 1
        await upload.update({"status": "saving", "saving": saving}, data)

    await upload.update({"status": "saving", "saving": saving}, data)
    results = await _creator(request, principal, current).create_many([r.data for r in todo], progress)
    await upload.update({"status": "finished", "saving": saving}, data)
    by_index = {row.index: _inline(result) for row, result in zip(todo, results)}
    return json_response([by_index.get(r.index) or {"skipped": True, "message": r.skip} for r in rows])


def _problem_text(problem: Invalid | None) -> str | None:
    return problem.message if problem else None


# -- updating and deleting -----------------------------------------------------------------


@routes.post("/api/v1/users/{username}")
async def update_user(request: web.Request) -> web.Response:
    principal = user(request)
    assert principal is not None
    name = request.match_info["username"]
    current = await settings(request)
    full = has_permission(principal, "can_update_users", current)
    body = await read_json(request)
    if not full:
        if principal.name != name or principal.method == "jwt":
            raise Forbidden("You do not have permissions to modify this person")
        if isinstance(body, dict) and "password" in body and principal.method != "basic":
            raise Forbidden("You must authenticate with Basic Auth to modify your password", field="password")
    result = await _writer(request, principal, current).update(name, body, full_access=full)
    request.app[AUTH].forget(name)
    return json_response(result)


@routes.delete("/api/v1/users/{username}")
async def delete_user(request: web.Request) -> web.Response:
    principal = await require(request, "can_delete_users")
    name = request.match_info["username"]
    result = await _writer(request, principal, await settings(request)).delete(name)
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
        raise BadRequest("Role parameter must be either a string or a JSON encoded array", field="role")
    if any(not isinstance(r, str) or not r for r in value):
        raise BadRequest("All roles should be strings", field="role")
    return value


def _requested_scope(request: web.Request, current: dict[str, Any]) -> Scope:
    """The scope an offline user with these query parameters would have (for online callers)."""
    role, facilities = request.query.get("role"), [f for f in request.query.getall("facility_id", []) if f]
    if not role or not facilities:
        raise BadRequest(MISSING, body={"code": 400, "error": MISSING})
    roles = _roles(role)
    configured = current.get("roles") if isinstance(current.get("roles"), dict) else {}
    if not any(isinstance(configured.get(r), dict) and configured[r].get("offline") for r in roles):
        raise BadRequest("Provided role is not offline", field="role")
    who = Principal("-", tuple(roles), facility_id=facilities, contact_id=request.query.get("contact_id") or None)
    return offline_scope(who, current)


@routes.get("/api/v1/users-info")
async def users_info(request: web.Request) -> web.Response:
    principal = user(request)
    assert principal is not None
    current = await settings(request)
    if is_offline(principal, current):
        scope = scope_for(principal, current)
    else:
        await require(request, "can_update_users")
        scope = _requested_scope(request, current)
    counts = await replication_scope.count(medic(request), scope)
    return json_response(counts.as_json())


@routes.get("/api/v1/users-doc-count")
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


@routes.get("/medic/login/token/{token}")
@public
@secret_path
async def token_page(request: web.Request) -> web.Response:
    action = html.escape(request.path, quote=True)
    return web.Response(text=PAGE.format(action=action), content_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@routes.post("/medic/login/token/{token}")
@public
@secret_path
async def token_login_post(request: web.Request) -> web.Response:
    token_login.require_enabled(await settings(request))
    both = dbs(request.app)
    user_doc, password = await token_login.claim(both.users, both.medic, request.match_info["token"],
                                                 int(time.time() * 1000))
    name = user_doc["name"]
    request.app[AUTH].forget(name)
    principal, cookie = await request.app[AUTH].login(name, password)
    await _settings_follow(both, user_doc)
    response = json_response({"success": True, "name": principal.name, "roles": list(principal.roles)})
    set_session_cookie(request, response, cookie, request.app[CONFIG].session_timeout_seconds)
    return response


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
