"""``/medic-user-{name}-meta``: each user's meta database, for its owner (and admins) only.

As in CHT: ``PUT /medic-user-<name>-meta/`` by that user makes the database
(200 ``{"ok": true}``, whether it existed or not; anyone else gets 403
"Insufficient privileges"). Every other request is the CouchDB protocol, passed
on as admin for the owner (within ``access``) and for admins. Anybody else gets
what CouchDB's ``_security`` answers a CHT user: 404 when the database does not
exist, 403 when it does. The name in the URL is the escaped one
(``api.cht.user_meta.names``); the database is named after the configured medic
database, as CHT rewrites ``/medic-user-`` when its database has another name.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from api import jsonparse
from api.auth import Principal
from api.cht.replication.proxy import passthrough
from api.couch import check_name, quote_path
from api.errors import BadRequest, Forbidden, NotFound
from api.web import CONFIG, COUCH, couch_errors, json_response, read_json, read_json_object, user

from . import access, names, store

routes = web.RouteTableDef()

NO_DATABASE = {"error": "not_found", "reason": "Database does not exist."}
NOT_A_MEMBER = {"error": "forbidden", "reason": "You are not allowed to access this db."}
SAFE_FILTERS = frozenset({"_doc_ids"})  # pouchdb-server dies on the others (docs/replication.md)
BODILESS = frozenset({"_ensure_full_commit"})


class _Target:
    def __init__(self, request: web.Request):
        self.escaped = request.match_info["name"]
        self.rest = request.match_info.get("rest", "")
        self.db = request.app[COUCH].db(names.db_name(request.app[CONFIG].db_medic, self.escaped))
        principal = user(request)
        if principal is None:
            raise Forbidden("Authentication required")
        self.principal: Principal = principal
        self.owner = names.escape_username(principal.name) == self.escaped
        self.admin = principal.is_admin


async def _allowed(request: web.Request) -> _Target:
    """The target, once the caller may use it; refusals shaped as CouchDB answers a CHT user."""
    target = _Target(request)
    for segment in target.rest.split("/"):
        check_name(segment)
    if not await target.db.exists():  # answered here: pouchdb-server words it differently from CouchDB
        raise NotFound(NO_DATABASE["reason"], body=NO_DATABASE)
    if not (target.owner or target.admin):
        raise Forbidden(NOT_A_MEMBER["reason"], body=NOT_A_MEMBER)
    if not target.admin:
        reason = access.owner_refusal(request.method, target.rest)
        if reason is not None:
            raise Forbidden(reason)
    if target.rest == "_changes":
        if request.query.get("filter") and request.query["filter"] not in SAFE_FILTERS:
            raise BadRequest(f"filter {request.query['filter']} is not supported; use _doc_ids", field="filter")
        if request.query.get("feed") in ("continuous", "eventsource"):
            raise BadRequest("feed=continuous is not supported; use feed=longpoll", field="feed")
    return target


@routes.put("/medic-user-{name}-meta")
@routes.put("/medic-user-{name}-meta/")
async def create(request: web.Request) -> web.Response:
    """CHT's ``create-user-db``: the caller's own meta database, made if missing."""
    principal = user(request)
    if principal is None or names.escape_username(principal.name) != request.match_info["name"]:
        raise Forbidden("Insufficient privileges")
    await store.ensure(request.app[COUCH], request.app[CONFIG].db_medic, principal.name)
    return json_response({"ok": True})


@routes.get("/medic-user-{name}-meta")
@routes.get("/medic-user-{name}-meta/")
@routes.post("/medic-user-{name}-meta")
@routes.post("/medic-user-{name}-meta/")
@routes.delete("/medic-user-{name}-meta")
@routes.delete("/medic-user-{name}-meta/")
@routes.get("/medic-user-{name}-meta/{rest:.+}")
@routes.put("/medic-user-{name}-meta/{rest:.+}")
@routes.post("/medic-user-{name}-meta/{rest:.+}")
@routes.delete("/medic-user-{name}-meta/{rest:.+}")
@couch_errors
async def meta(request: web.Request) -> web.StreamResponse:
    target = await _allowed(request)
    rest = target.rest
    suffix = ("/" + quote_path(rest)) if rest else "/"
    attachment = bool(rest) and not rest.startswith("_") and "/" in rest
    if request.method == "GET" and attachment:
        return await passthrough(request, suffix, raw=True, attachment=rest.split("/", 1)[1], db_path=target.db.path,
                                 public_path=_public_path(request))
    document_write = rest in ("", "_bulk_docs") or not (rest.startswith("_") or attachment)
    if request.method in ("POST", "PUT") and document_write:
        return await _write(request, target, suffix)
    if request.method in ("POST", "PUT") and not target.admin and rest not in BODILESS:
        body = await read_json(request)  # the owner's bodies are read and checked here, never streamed on
        return await passthrough(request, suffix, body=jsonparse.dumps(body), db_path=target.db.path,
                                 public_path=_public_path(request))
    # an admin's bodies (and an owner's bodiless triggers) go on as they are, as on any database
    return await passthrough(request, suffix, db_path=target.db.path, public_path=_public_path(request),
                             raw_body=request.method in ("POST", "PUT"))



def _public_path(request: web.Request) -> str:
    """The database as the client names it (a ``Location`` CouchDB gives is rewritten to it)."""
    return "/" + quote("medic-user-" + request.match_info["name"] + "-meta", safe="")


async def _write(request: web.Request, target: _Target, suffix: str) -> web.StreamResponse:
    """Document writes, with the design doc's rule applied here (pouchdb-server ignores it)."""
    body = await read_json_object(request)
    if target.rest != "_bulk_docs":
        if access.purged_stub(body):
            raise Forbidden(access.PURGED)
        return await passthrough(request, suffix, body=jsonparse.dumps(body), db_path=target.db.path,
                                 public_path=_public_path(request))
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise BadRequest("docs must be an array of objects", field="docs")
    refused = [d for d in docs if access.purged_stub(d)]
    if not refused:
        return await passthrough(request, suffix, body=jsonparse.dumps(body), db_path=target.db.path,
                                 public_path=_public_path(request))
    new_edits = body.get("new_edits", True) is not False
    kept = [d for d in docs if not access.purged_stub(d)]
    results = await target.db.bulk_docs(kept, new_edits=new_edits) if kept else []
    by_id = {r.get("id"): r for r in results}
    answer: list[dict[str, Any]] = []
    for doc in docs:
        if access.purged_stub(doc):
            answer.append({"id": doc.get("_id"), "error": "forbidden", "reason": access.PURGED})
        elif doc.get("_id") in by_id:
            answer.append(by_id[doc["_id"]])
    return json_response(answer, status=201)
