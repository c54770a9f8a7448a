"""``/medic``: the CouchDB replication protocol, served by the API; and CHT's initial-sync endpoints
(``/api/v1/replication/get-ids`` and ``get-deletes``).

Admins get CouchDB's own behaviour: requests are passed on (as admin) and
answers streamed back. Every JSON body, for every role, is read by the API's
strict reader and checked (``bodies``) first, and CouchDB gets it as the API
read it; only attachments and other bodies that are not JSON go on as sent.
Online users get CouchDB's behaviour too, except that their writes are checked
by ``api/cht/replication/write_rules.py`` first and admin-only endpoints are
refused. Offline users are served by ``visible_set``, ``reads``, ``changes``, ``writes`` and ``sync``:
every read is filtered to the documents they may see and every write is
checked against it; a document they may not see answers 404 as if it did not
exist. Errors use CouchDB's ``{"error", "reason"}`` shape.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Awaitable, TypeVar

from aiohttp import web

from api import deadline, jsonparse
from api.auth import Principal
from api.cht.monitoring.handlers import capture_replication_failures
from api.cht.passthrough.rules import NOT_SERVER_ADMIN, SERVER_ADMIN_ENDPOINTS
from api.couch import check_name, quote_id, quote_path
from api.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound, Unauthorized
from api.permissions import INSUFFICIENT, firewall, is_offline
from api.web import (
    BACKGROUND_COUCH,
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

from . import bodies, changes, reads, sync, visible_set, write_rules, writes
from .notifier import ChangesNotifier
from .proxy import passthrough, passthrough_json

T = TypeVar("T")
log = logging.getLogger("jamii.replication")
routes = web.RouteTableDef()
NOTIFIER = web.AppKey("changes_notifier", ChangesNotifier)
SCOPES = web.AppKey("replication_scopes", visible_set.ScopeCache)

# _changes filters pouchdb-server survives (others crash it: _design, _selector, ddoc filters).
SAFE_FILTERS = frozenset({"_doc_ids"})
CLIENT_DDOC = "_design/medic-client"
MEMBER_READS = frozenset({"_index", "_security", "_revs_limit"})
NO_DATABASE = "Database does not exist."


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        medic = app[COUCH].db(app[CONFIG].db_medic)
        background = app[BACKGROUND_COUCH].db(app[CONFIG].db_medic)
        app[NOTIFIER] = ChangesNotifier(medic)
        app[SCOPES] = visible_set.ScopeCache(medic, app[COUCH].db(app[CONFIG].db_logs), background,
                                             patience=app[CONFIG].couch_timeout)
        await app[SCOPES].start()

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


def behind_firewall(c: Caller) -> None:
    """cht-core's offline-user firewall, which it puts before the CouchDB endpoints it has not audited."""
    if c.offline:
        firewall(c.principal, c.settings)


async def json_body(request: web.Request, *, empty: Any = None, json_type: bool = True) -> Any:
    """The body, read by the strict reader; ``empty`` for no body (else no body is a 400). ``json_type``:
    CouchDB takes it only as ``application/json`` (its 415 otherwise)."""
    if json_type:
        bodies.require_json_type(request.headers.get("Content-Type"))
    if empty is not None and not request.can_read_body:
        return empty
    return await read_json(request)


def within_deadline(work: Awaitable[T]) -> Awaitable[T]:
    """An offline user's read, which makes several CouchDB calls one after another: all of them within the
    request's one deadline (``api.deadline``), else 503 with ``Retry-After``. (Writes are not cut part-way.)"""
    return deadline.within(work, "CouchDB did not answer in time")


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
    return await passthrough(request, "")  # creating or deleting the database takes no body


@routes.post("/medic")
@routes.post("/medic/")
@couch_errors
async def post_doc(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    doc = bodies.document(await json_body(request))
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
    behind_firewall(await caller(request))
    bodies.require_json_type(request.headers.get("Content-Type"))
    return json_response({"ok": True, "instance_start_time": "0"}, status=201)


# -- replication protocol -----------------------------------------------------------

@routes.get("/medic/_changes")
@routes.post("/medic/_changes")
@couch_errors
async def changes_feed(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    query = request.query
    body = bodies.changes(await json_body(request, empty={})) if request.method == "POST" else {}
    if query.get("filter") and query["filter"] not in SAFE_FILTERS:
        raise BadRequest(f"filter {query['filter']} is not supported; use _doc_ids", field="filter")
    if query.get("feed") in ("continuous", "eventsource"):
        raise BadRequest("feed=continuous is not supported; use feed=longpoll", field="feed")
    if not c.offline:
        changes.check_changes_query(query, body)
        if request.method == "POST":
            return await passthrough_json(request, "/_changes", body)
        return await passthrough(request, "/_changes")
    served = changes.serve_changes(request, medic(request), request.app[SCOPES], request.app[NOTIFIER],
                                   c.principal, c.settings, query, body)
    return await (served if query.get("feed") == "longpoll" else within_deadline(served))


@routes.get("/medic/_all_docs")
@routes.post("/medic/_all_docs")
@couch_errors
async def all_docs(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    body = await json_body(request, empty={}) if request.method == "POST" else {}
    bodies.all_docs(body)
    if not c.offline:
        if request.method == "POST":
            return await passthrough_json(request, "/_all_docs", body)
        return await passthrough(request, "/_all_docs")
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await within_deadline(reads.all_docs(medic(request), visible, request.query, body)))


@routes.post("/medic/_bulk_get")
@couch_errors
async def bulk_get(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    body = await json_body(request)
    bodies.bulk_get(body)
    if not c.offline:
        db, docs = medic(request), body["docs"]
        unknown = await reads.unknown_revs(db, ((d["id"], d.get("rev")) for d in docs)) \
            if "latest" in request.query else set()
        if not unknown:
            return await passthrough_json(request, "/_bulk_get", body)
        return json_response({"results": await reads.bulk_get_results(db, request.query, docs, unknown)})
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await within_deadline(reads.bulk_get(medic(request), visible, request.query, body)))


@routes.post("/medic/_revs_diff")
@couch_errors
async def revs_diff(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    body = await json_body(request)
    bodies.revs_by_id(body)
    if not c.offline:
        return await passthrough_json(request, "/_revs_diff", body)
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    return json_response(await within_deadline(reads.revs_diff(medic(request), visible, body)))


@routes.post("/medic/_bulk_docs")
@couch_errors
async def bulk_docs(request: web.Request) -> web.StreamResponse:
    c = await caller(request)
    body = await json_body(request)
    bodies.bulk_docs(body)
    if c.admin and not any(write_rules.is_purged(d) for d in body["docs"]):
        return await passthrough_json(request, "/_bulk_docs", body)
    results = await writes.write_docs(medic(request), c.principal, c.settings, body["docs"],
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
    method = "GET" if request.method == "HEAD" else request.method
    reading = method == "GET" or (method == "POST" and rest is not None and rest.startswith("_view/"))
    if not reading or (rest and rest.startswith("_")):  # writes, views, lists, shows...: not for offline users
        behind_firewall(c)
    allowed = bodies.design_methods(rest) if rest else "*"
    if allowed != "*" and method not in allowed.split(","):
        raise MethodNotAllowed(allowed)
    if not c.admin:
        if not reading:
            raise Forbidden("Only admins may change design documents")
        if c.offline and ddoc_id != CLIENT_DDOC:
            raise NotFound("missing")
    suffix = "/" + quote_id(ddoc_id) + (("/" + quote_path(rest)) if rest else "")
    if method in ("GET", "DELETE"):
        served = rest if rest and method == "GET" and not rest.startswith("_") else None  # an attachment
        return await passthrough(request, suffix, attachment=served)
    if rest is None:  # the design doc itself
        return await _put_doc(request, suffix, ddoc_id)
    kind = rest.split("/", 1)[0]
    if kind in ("_view", "_list"):
        body = await json_body(request)
        bodies.view_query(body)
        return await passthrough_json(request, suffix, body)
    if kind in ("_show", "_update") and request.can_read_body and \
            bodies.is_json_type(request.headers.get("Content-Type")):
        return await passthrough_json(request, suffix, await json_body(request, json_type=False))
    # an attachment of the design doc, a function's body that is not JSON, or a (deprecated) rewrite
    return await passthrough(request, suffix, raw_body=True)


async def _put_doc(request: web.Request, suffix: str, doc_id: str) -> web.StreamResponse:
    """``PUT`` of a whole document as admin: a JSON doc (its ``_id`` is the URL's, as CouchDB makes it), or
    a multipart upload with its attachments, passed on as it is."""
    if (request.headers.get("Content-Type") or "").lower().startswith("multipart/"):
        return await passthrough(request, suffix, raw_body=True)
    doc = bodies.document(await json_body(request, json_type=False))
    doc["_id"] = doc_id
    if write_rules.is_purged(doc):
        raise Forbidden(write_rules.PURGED)  # even for admins, as cht-core's validate_doc_update refuses it
    return await passthrough_json(request, suffix, doc)


@routes.post("/medic/_find")
@routes.post("/medic/_explain")
@couch_errors
async def find(request: web.Request) -> web.StreamResponse:
    behind_firewall(await caller(request))
    body = await json_body(request)
    bodies.find(body)
    return await passthrough_json(request, "/" + request.path.rsplit("/", 1)[1], body)


@routes.get("/medic/_index")
@routes.post("/medic/_index")
@routes.delete("/medic/_index/{rest:.+}")
@routes.get("/medic/_security")
@routes.put("/medic/_security")
@routes.post("/medic/_compact")
@routes.post("/medic/_view_cleanup")
@routes.get("/medic/_revs_limit")
@routes.put("/medic/_revs_limit")
@routes.post("/medic/_purge")
@couch_errors
async def admin_endpoints(request: web.Request) -> web.StreamResponse:
    """For admins; CouchDB lets the database's members read the indexes, ``_security`` and ``_revs_limit``,
    so online users may too. Offline users: cht-core's firewall, or its document handler's refusal."""
    c = await caller(request)
    name = request.path[len("/medic/"):]
    if c.offline and name.split("/", 1)[0] == "_revs_limit":
        raise Forbidden(INSUFFICIENT)
    behind_firewall(c)
    if not c.admin and name in SERVER_ADMIN_ENDPOINTS:
        raise Unauthorized(NOT_SERVER_ADMIN)  # CouchDB's answer, which cht-core relays
    if not (request.method == "GET" and name.split("/", 1)[0] in MEMBER_READS):
        admin_only(c)
    suffix = "/" + quote_path(name)
    if request.method in ("GET", "HEAD", "DELETE") or name == "_view_cleanup":  # no body (CouchDB reads none)
        return await passthrough(request, suffix)
    if name == "_compact":  # no body either, but CouchDB asks for the type (its 415)
        bodies.require_json_type(request.headers.get("Content-Type"))
        return await passthrough(request, suffix, content_type=bodies.JSON_TYPE)
    check = {"_index": bodies.index, "_security": bodies.security, "_revs_limit": bodies.revs_limit,
             "_purge": bodies.revs_by_id}[name]
    body = await json_body(request, json_type=name in ("_index", "_purge"))
    check(body)
    return await passthrough_json(request, suffix, body)


@routes.get("/medic/_design_docs")
@routes.post("/medic/_design_docs")
@routes.get("/medic/_local_docs")
@routes.post("/medic/_local_docs")
@couch_errors
async def doc_lists(request: web.Request) -> web.StreamResponse:
    """CouchDB's lists of design docs (online users may read each design doc, so the list too) and of
    ``_local`` docs (admins only: users' checkpoints are kept apart from each other's)."""
    c = await caller(request)
    name = request.path.rsplit("/", 1)[1]
    if c.offline and request.method == "GET":
        raise Forbidden(INSUFFICIENT)  # cht-core's document handler: not a doc an offline user may have
    behind_firewall(c)
    if name == "_local_docs":
        admin_only(c)
    if request.method == "GET":
        return await passthrough(request, "/" + name)
    body = await json_body(request, empty={})
    bodies.all_docs(body)
    return await passthrough_json(request, "/" + name, body)


@routes.post("/medic/_missing_revs")
@couch_errors
async def missing_revs(request: web.Request) -> web.StreamResponse:
    """The revisions the server lacks (an older ``_revs_diff``); for offline users answered from the
    visible set, as their ``_revs_diff`` is."""
    c = await caller(request)
    body = await json_body(request)
    bodies.revs_by_id(body)
    if not c.offline:
        return await passthrough_json(request, "/_missing_revs", body)
    visible = await request.app[SCOPES].get(c.principal, c.settings)
    diff = await reads.revs_diff(medic(request), visible, body)
    return json_response({"missing_revs": {doc_id: entry["missing"] for doc_id, entry in diff.items()
                                           if isinstance(entry, dict) and entry.get("missing")}})


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
    if doc_id.startswith("_") and c.admin:  # an endpoint no route has: CouchDB's to answer
        return await passthrough(request, "/" + quote_path(doc_id))
    if doc_id.startswith("_"):
        raise NotFound("missing") if request.method == "GET" else BadRequest(
            "Only reserved document ids may start with underscore.", field="_id")
    db = medic(request)
    if request.method in ("GET", "HEAD"):
        open_revs = _open_revs(request.query.get("open_revs"))
        if c.offline:
            await visible_set.check_readable(db, request.app[SCOPES], c.principal, c.settings, doc_id)
        query_string = await reads.doc_query(db, doc_id, request.query, open_revs)
        return await passthrough(request, "/" + quote_id(doc_id), query_string=query_string)
    if c.admin:
        if request.method == "PUT":
            return await _put_doc(request, "/" + quote_id(doc_id), doc_id)
        return await passthrough(request, "/" + quote_id(doc_id))
    if request.method == "PUT":
        doc = bodies.document(await json_body(request, json_type=False))
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
    suffix = "/" + quote_id(doc_id) + "/" + quote_path(request.match_info["attachment"])
    if doc_id.startswith("_") and c.admin:  # an endpoint no route has (``_partition/...``): CouchDB's
        return await passthrough(request, suffix)
    if doc_id.startswith("_"):
        raise NotFound("missing")
    db = medic(request)
    if request.method in ("GET", "HEAD"):
        if c.offline:
            await visible_set.check_readable(db, request.app[SCOPES], c.principal, c.settings, doc_id)
        return await passthrough(request, suffix, raw=True, attachment=request.match_info["attachment"])
    if not c.admin:
        await writes.check_attachment_write(db, request.app[SCOPES] if c.offline else None,
                                                 c.principal, c.settings, doc_id)
    return await passthrough(request, suffix, raw_body=request.method == "PUT")  # the attachment's bytes


# -- CHT's initial-sync endpoints for offline users: ``get-ids`` and ``get-deletes``.

async def _offline_caller(request: web.Request):  # noqa: ANN202 - (principal, settings)
    """The offline caller. cht-core passes anyone else's request on to CouchDB, which has no database
    called ``api``: its 404 is their answer here too."""
    principal, app_settings = user(request), await settings(request)
    if principal is None or not is_offline(principal, app_settings):
        raise NotFound(NO_DATABASE, body={"error": "not_found", "reason": NO_DATABASE})
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
