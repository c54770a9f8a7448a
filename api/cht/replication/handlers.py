"""``/medic``: the CouchDB replication protocol, served by the API; and CHT's initial-sync endpoints
(``/api/v1/replication/get-ids`` and ``get-deletes``).

Admins get CouchDB's own behaviour: requests are passed through as they are
(as admin), bodies streamed both ways. Online users get it too, except that
their writes are checked by ``api/cht/replication/write_rules.py`` first and admin-only
endpoints are refused. Offline users are served by ``visible_set``, ``reads``, ``changes``, ``writes`` and ``sync``:
every read is filtered to the documents they may see and every write is
checked against it; a document they may not see answers 404 as if it did not
exist. Errors use CouchDB's ``{"error", "reason"}`` shape.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from aiohttp import web

from api import jsonparse
from api.auth import Principal
from api.cht.monitoring.handlers import capture_replication_failures
from api.couch import check_name, quote_id, quote_path
from api.errors import BadRequest, Forbidden, NotFound
from api.permissions import is_offline
from api.web import (
    CONFIG,
    COUCH,
    couch_errors,
    json_response,
    medic,
    read_json,
    read_json_object,
    settings,
    user,
)

from . import changes, reads, sync, visible_set, writes
from .notifier import ChangesNotifier
from .proxy import passthrough

log = logging.getLogger("jamii.replication")
routes = web.RouteTableDef()
NOTIFIER = web.AppKey("changes_notifier", ChangesNotifier)
SCOPES = web.AppKey("replication_scopes", visible_set.ScopeCache)

# _changes filters pouchdb-server survives (others crash it: _design, _selector, ddoc filters).
SAFE_FILTERS = frozenset({"_doc_ids"})
CLIENT_DDOC = "_design/medic-client"


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        medic = app[COUCH].db(app[CONFIG].db_medic)
        app[NOTIFIER] = ChangesNotifier(medic)
        app[SCOPES] = visible_set.ScopeCache(medic, app[COUCH].db(app[CONFIG].db_logs))

    async def stop(app: web.Application) -> None:
        await app[NOTIFIER].close()
        await app[SCOPES].close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


# -- helpers ----------------------------------------------------------------

class Caller:
    """Who is asking, and how they are served."""

    def __init__(self, principal: Principal, app_settings: dict[str, Any]):
        self.principal = principal
        self.settings = app_settings
        self.admin = principal.is_admin
        self.offline = not self.admin and is_offline(principal, app_settings)


async def caller(request: web.Request) -> Caller:
    principal = user(request)
    if principal is None:  # the auth middleware refuses anonymous callers first
        raise Forbidden("Authentication required")
    return Caller(principal, await settings(request))


def admin_only(c: Caller) -> None:
    if not c.admin:
        raise Forbidden("Only admins may do this")


def local_id(c: Caller, name: str) -> str:
    """Non-admins' ``_local`` docs live in a namespace of their own, so users cannot touch each other's."""
    if c.admin:
        return name
    return hashlib.sha256(c.principal.name.encode()).hexdigest()[:16] + "-" + name


# -- the database ----------------------------------------------------------------

@routes.get("/medic")
@routes.get("/medic/")
@couch_errors
async def db_info(request: web.Request) -> web.StreamResponse:
    await caller(request)
    info = await medic(request).info()
    return json_response({**info, "db_name": "medic"})


@routes.put("/medic")
@routes.put("/medic/")
@routes.delete("/medic")
@routes.delete("/medic/")
@couch_errors
async def db_admin(request: web.Request) -> web.StreamResponse:
    admin_only(await caller(request))
    return await passthrough(request, "")


@routes.post("/medic")
@routes.post("/medic/")
@couch_errors
async def post_doc(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    doc = await read_json_object(request)
    result = await writes.write_docs(medic(request), c.principal, c.settings, [doc], new_edits=True,
                                          scopes=request.app[SCOPES] if c.offline else None)
    return _single_write_response(result[0])


def _single_write_response(result: dict[str, Any]) -> web.Response:
    if result.get("ok"):
        return json_response(result, status=201)
    error = result.get("error", "unknown_error")
    status = {"conflict": 409, "forbidden": 403, "not_found": 404, "bad_request": 400}.get(error, 500)
    return json_response({"error": error, "reason": result.get("reason", error)}, status=status)


@routes.post("/medic/_ensure_full_commit")
@couch_errors
async def ensure_full_commit(request: web.Request) -> web.Response:
    await caller(request)
    return json_response({"ok": True, "instance_start_time": "0"}, status=201)


# -- replication protocol -----------------------------------------------------------

def _json_object(body: bytes | None) -> dict[str, Any]:
    """A POST body's JSON object, for checking its parameters; anything else is left to CouchDB,
    except nesting too deep to parse safely (on either side)."""
    try:
        parsed = jsonparse.loads(body) if body else {}
    except jsonparse.InvalidJSON as exc:
        if exc.problem == "depth":
            raise BadRequest(f"body: {exc}", field="body") from None
        return {}
    return parsed if isinstance(parsed, dict) else {}


@routes.get("/medic/_changes")
@routes.post("/medic/_changes")
@couch_errors
async def changes_feed(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    query = request.query
    if query.get("filter") and query["filter"] not in SAFE_FILTERS:
        raise BadRequest(f"filter {query['filter']} is not supported; use _doc_ids", field="filter")
    if query.get("feed") in ("continuous", "eventsource"):
        raise BadRequest("feed=continuous is not supported; use feed=longpoll", field="feed")
    if not c.offline:
        body = await request.read() if request.method == "POST" and request.can_read_body else None
        changes.check_changes_query(query, _json_object(body))
        return await passthrough(request, "/_changes", body=body)
    body = await read_json(request) if request.can_read_body and request.method == "POST" else {}
    return await changes.serve_changes(request, medic(request), request.app[SCOPES], request.app[NOTIFIER],
                                           c.principal, c.settings, query, body if isinstance(body, dict) else {})


@routes.get("/medic/_all_docs")
@routes.post("/medic/_all_docs")
@couch_errors
async def all_docs(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    if not c.offline:
        return await passthrough(request, "/_all_docs")
    body = await read_json_object(request) if request.method == "POST" and request.can_read_body else {}
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await reads.all_docs(medic(request), visible, request.query, body))


@routes.post("/medic/_bulk_get")
@couch_errors
async def bulk_get(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    if not c.offline:
        body = await request.read() if request.can_read_body else None
        docs = _json_object(body).get("docs")
        wanted = [(d.get("id"), d.get("rev")) for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []
        query_string = await reads.without_latest_for_unknown_revs(medic(request), request.query, wanted)
        return await passthrough(request, "/_bulk_get", body=body, query_string=query_string)
    body = await read_json_object(request)
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await reads.bulk_get(medic(request), visible, request.query, body))


@routes.post("/medic/_revs_diff")
@couch_errors
async def revs_diff(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    if not c.offline:
        return await passthrough(request, "/_revs_diff")
    body = await read_json_object(request)
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await reads.revs_diff(medic(request), visible, body))


@routes.post("/medic/_bulk_docs")
@couch_errors
async def bulk_docs(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    if c.admin:
        return await passthrough(request, "/_bulk_docs")
    body = await read_json_object(request)
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise BadRequest("docs must be an array of objects", field="docs")
    results = await writes.write_docs(medic(request), c.principal, c.settings, docs,
                                           new_edits=body.get("new_edits", True) is not False,
                                           scopes=request.app[SCOPES] if c.offline else None)
    return json_response(results, status=201)


# -- _local docs (checkpoints) ------------------------------------------------------------

@routes.get("/medic/_local/{name}")
@routes.put("/medic/_local/{name}")
@routes.delete("/medic/_local/{name}")
@couch_errors
async def local_doc(request: web.Request) -> web.StreamResponse:
    """Replication checkpoints. Non-admins' are stored under a prefix of their own, and shown
    under the id they asked for (PouchDB writes back the ``_id`` it read)."""
    c = await caller(request)
    check_name(request.match_info["name"])
    asked = "_local/" + request.match_info["name"]
    stored = "_local/" + local_id(c, request.match_info["name"])
    db = medic(request)
    if request.method == "GET":
        doc = await db.get(stored)
        return json_response({**doc, "_id": asked})
    if request.method == "PUT":
        doc = await read_json_object(request)
        _, result, _ = await db.couch.request("PUT", db.doc_path(stored), json_body={**doc, "_id": stored})
        return json_response({**result, "id": asked}, status=201)
    rev = request.query.get("rev")
    if not rev:
        raise BadRequest("Document rev required to delete", field="rev")
    result = await db.delete(stored, rev)
    return json_response({**result, "id": asked})


# -- design docs, views, queries -----------------------------------------------------------

@routes.get("/medic/_design/{ddoc}")
@routes.put("/medic/_design/{ddoc}")
@routes.delete("/medic/_design/{ddoc}")
@routes.get("/medic/_design/{ddoc}/{rest:.+}")
@routes.post("/medic/_design/{ddoc}/{rest:.+}")
@routes.put("/medic/_design/{ddoc}/{rest:.+}")
@routes.delete("/medic/_design/{ddoc}/{rest:.+}")
@couch_errors
async def design(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    ddoc_id = "_design/" + request.match_info["ddoc"]
    rest = request.match_info.get("rest")
    reading = request.method in ("GET", "HEAD") or (request.method == "POST" and rest and "/_view/" in "/" + rest)
    if not c.admin:
        if not reading:
            raise Forbidden("Only admins may change design documents")
        if c.offline and (ddoc_id != CLIENT_DDOC or (rest and rest.startswith("_view"))):
            raise NotFound("missing")
    suffix = "/" + quote_id(ddoc_id) + (("/" + quote_path(rest)) if rest else "")
    served = rest if rest and request.method in ("GET", "HEAD") and not rest.startswith("_") else None
    return await passthrough(request, suffix, attachment=served)


@routes.post("/medic/_find")
@routes.post("/medic/_explain")
@couch_errors
async def find(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    if c.offline:
        raise Forbidden("Offline users replicate; they do not query the server")
    return await passthrough(request, "/" + request.path.rsplit("/", 1)[1])


@routes.get("/medic/_index")
@routes.post("/medic/_index")
@routes.delete("/medic/_index/{rest:.+}")
@routes.get("/medic/_security")
@routes.put("/medic/_security")
@routes.post("/medic/_compact")
@routes.post("/medic/_view_cleanup")
@routes.get("/medic/_revs_limit")
@routes.put("/medic/_revs_limit")
@couch_errors
async def admin_endpoints(request: web.Request) -> web.StreamResponse:
    admin_only(await caller(request))
    return await passthrough(request, "/" + quote_path(request.path[len("/medic/"):]))


# -- documents and attachments -------------------------------------------------------------

def _open_revs(open_revs: str | None) -> list[str]:
    """The revs of ``open_revs``: ``all`` or a JSON array of revs, as CouchDB demands (pouchdb-server
    fails with 500 on anything else)."""
    if open_revs is None or open_revs == "all":
        return []
    try:
        revs = jsonparse.loads(open_revs)
    except ValueError:
        revs = None
    if not isinstance(revs, list) or not all(isinstance(rev, str) for rev in revs):
        raise BadRequest("open_revs must be all or a JSON array of revs", field="open_revs")
    return revs


@routes.get("/medic/{doc_id}")
@routes.put("/medic/{doc_id}")
@routes.delete("/medic/{doc_id}")
@couch_errors
async def document(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    doc_id = request.match_info["doc_id"]
    check_name(doc_id)
    if doc_id.startswith("_"):
        raise NotFound("missing") if request.method == "GET" else BadRequest(
            "Only reserved document ids may start with underscore.", field="_id")
    db = medic(request)
    if request.method in ("GET", "HEAD"):
        revs = _open_revs(request.query.get("open_revs")) + [request.query.get("rev")]
        if c.offline:
            await visible_set.check_readable(db, request.app[SCOPES], c.principal, c.settings, doc_id)
        query_string = await reads.without_latest_for_unknown_revs(db, request.query,
                                                                         [(doc_id, rev) for rev in revs])
        return await passthrough(request, "/" + quote_id(doc_id), query_string=query_string)
    if c.admin:
        return await passthrough(request, "/" + quote_id(doc_id))
    if request.method == "PUT":
        doc = await read_json_object(request)
        doc["_id"] = doc_id
        if "rev" in request.query and "_rev" not in doc:
            doc["_rev"] = request.query["rev"]
        new_edits = request.query.get("new_edits") != "false"
    else:
        rev = request.query.get("rev") or request.headers.get("If-Match")
        if not rev:
            raise BadRequest("Document rev required to delete", field="rev")
        doc = {"_id": doc_id, "_rev": rev, "_deleted": True}
        new_edits = True
    result = await writes.write_docs(db, c.principal, c.settings, [doc], new_edits=new_edits,
                                          scopes=request.app[SCOPES] if c.offline else None)
    return _single_write_response(result[0] if result else {"ok": True, "id": doc_id, "rev": doc.get("_rev")})


@routes.get("/medic/{doc_id}/{attachment:.+}")
@routes.put("/medic/{doc_id}/{attachment:.+}")
@routes.delete("/medic/{doc_id}/{attachment:.+}")
@couch_errors
async def attachment(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    doc_id = request.match_info["doc_id"]
    if doc_id.startswith("_"):
        raise NotFound("missing")
    db = medic(request)
    suffix = "/" + quote_id(doc_id) + "/" + quote_path(request.match_info["attachment"])
    if request.method in ("GET", "HEAD"):
        if c.offline:
            await visible_set.check_readable(db, request.app[SCOPES], c.principal, c.settings, doc_id)
        return await passthrough(request, suffix, raw=True, attachment=request.match_info["attachment"])
    if not c.admin:
        await writes.check_attachment_write(db, request.app[SCOPES] if c.offline else None,
                                                 c.principal, c.settings, doc_id)
    return await passthrough(request, suffix)


# -- CHT's initial-sync endpoints for offline users: ``get-ids`` and ``get-deletes``.

async def _offline_caller(request: web.Request):  # noqa: ANN202 - (principal, settings)
    principal, app_settings = user(request), await settings(request)
    if principal is None or not is_offline(principal, app_settings):
        raise BadRequest("Only offline users replicate; this endpoint is for them", field="user")
    return principal, app_settings


@routes.get("/api/v1/replication/get-ids")
@capture_replication_failures
async def get_ids(request: web.Request) -> web.Response:
    principal, app_settings = await _offline_caller(request)
    return json_response(await sync.doc_ids_revs(medic(request), request.app[SCOPES], principal,
                                                        app_settings))


@routes.post("/api/v1/replication/get-deletes")
async def get_deletes(request: web.Request) -> web.Response:
    principal, app_settings = await _offline_caller(request)
    body = await read_json_object(request)
    doc_ids = body.get("doc_ids")
    if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
        raise BadRequest("doc_ids must be an array of document ids", field="doc_ids")
    gone = await sync.deleted_or_gone(medic(request), request.app[SCOPES], principal, app_settings, doc_ids)
    return json_response({"doc_ids": gone})
