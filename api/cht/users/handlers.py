"""CHT users: list and read (``/api/v1|v2/users``), create one, many or from CSV, update, delete.

The domain work is in ``api.cht.users.users`` (reading, consistency) and ``api.cht.users.writes``
(validation and writes); this module checks permissions and shapes replies,
including the spec's own error bodies for bulk creation.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from aiohttp import web

from api.auth import Principal
from api.cht.visibility import scope_for
from api.errors import BadRequest, Forbidden, JamiiError, PayloadTooLarge
from api.permissions import has_permission
from api.streaming import json_array, stream
from api.web import AUTH, CONFIG, COUCH, json_response, parse_json_body, read_json, require, settings, user

from . import users
from .csv_upload import Row, UploadLog, log_entry, parse
from .writes import Invalid, UserWriter, check_new

routes = web.RouteTableDef()


def dbs(app: web.Application) -> users.Dbs:
    config, couch = app[CONFIG], app[COUCH]
    return users.Dbs(couch.db(config.db_users), couch.db(config.db_medic), couch.db(config.db_logs),
                      couch.db(config.db_sentinel))


def request_base(request: web.Request) -> str:
    """Where this server is, as the client reached it (the token-login link's fallback)."""
    scheme = "https" if request.headers.get("X-Forwarded-Proto", "") == "https" else request.scheme
    return f"{scheme}://{request.host}"


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
    writer = _writer(request, principal, current)
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
    results = await _writer(request, principal, current).create_many([r.data for r in todo], progress)
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
