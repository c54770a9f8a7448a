"""Offline users replicate through the API: the CouchDB protocol, filtered to what they may see.

The **visible set** (``api/cht/replication/scope.py``) is the ids of the docs an
offline user may have: their part of the hierarchy to their replication
depth, the reports about it, global docs (settings, forms), their own
user-settings doc and the client design doc. Every read answers from it and
every write is checked against it:

* ``_changes`` from the start (a first sync) is the feed filtered by CouchDB
  to the visible ids (``_doc_ids``), all at once. From a later ``since`` it
  scans the feed and keeps the changes of visible docs, plus deletions of docs
  the user could see before they were deleted (judged from the revision before
  the deletion) — which a ``_doc_ids`` filter could not find, since deleted
  docs are in no view. Sequences are passed on as CouchDB gave them, never
  compared. ``feed=longpoll`` waits for the next change of the database (one
  shared longpoll per process), with heartbeats.
* ``_all_docs``, ``_bulk_get``, ``_revs_diff`` and reads by id answer for
  visible docs only; any other doc is "missing", exactly as if it did not
  exist.
* writes are accepted when the user may see the stored doc (if any) and the
  new version, holds ``can_edit`` and passes ``api/cht/replication/write_rules.py``; refused
  docs come back as ``{"id", "error": "forbidden"}`` in request order while
  the others are written.

A replication asks for hundreds of batches, so each user's set is kept and
reused for as long as the database's ``update_seq`` is unchanged (then it is
still exact); any write anywhere makes the next request compute it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from api import jsonparse
from api.auth import Principal
from api.cht import visibility
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.reports.reports import subjects_of
from api.couch import CouchError, Database, new_id
from api.errors import BadRequest, Forbidden, InvalidDocument, JamiiError, NotFound

from . import limit as replication_limit
from . import scope as replication_scope
from . import write_rules
from .notifier import ChangesNotifier

log = logging.getLogger("jamii.replication")

PAGE = 1000
WARN_LIMIT = 10000
COUNT_EVERY_SECONDS = 600
MAX_INCREMENTAL = 2000


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class VisibleSet:
    ids: frozenset[str]
    scope: visibility.Scope
    update_seq: Any = None  # the database's update_seq when the set was computed

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.ids


class ScopeCache:
    """Visible sets per user, kept exact as the database changes.

    Before each use the database's ``update_seq`` is read (one cheap request).
    Unchanged since the set was made: the set is exact. Changed: the set is
    brought forward from the changes since then, each changed doc judged by
    ``api.cht.visibility`` (and, when a contact entered or left the area, the docs
    that belong to it judged again) — cheap for the few changes between two
    syncs. After more than ``MAX_INCREMENTAL`` changes it is computed afresh
    from the views. Seqs are passed back to CouchDB, or compared for equality
    only. Also records each user's replication count.

    Concurrent requests of one user share a refresh, but only one that began
    after the request arrived: its reads come after the request's arrival, so
    every write acknowledged before then is in it, and a refresh stuck since
    before a database outage never answers a request made after it.
    """

    def __init__(self, medic: Database, logs: Database):
        self.medic = medic
        self.logs = logs
        self._sets: dict[tuple[Any, ...], VisibleSet] = {}
        self._refreshing: dict[tuple[Any, ...], tuple[int, asyncio.Task[VisibleSet]]] = {}  # (began at tick, task)
        self._tick = 0  # orders request arrivals and refresh starts exactly (a clock could tie)
        self._counted: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, principal: Principal, settings: Mapping[str, Any], *, record: bool = False) -> VisibleSet:
        """The user's visible set as of now (``record``: note their replication count)."""
        scope = visibility.scope_for(principal, settings)
        key = (principal.name, scope)
        self._tick += 1
        arrived = self._tick
        update_seq = (await self.medic.info())["update_seq"]
        cached = self._sets.get(key)
        if cached is None or cached.update_seq != update_seq:
            flight = self._refreshing.get(key)
            if flight is None or flight[0] < arrived:
                self._tick += 1
                task = asyncio.ensure_future(self._refresh(key, scope, cached, update_seq))
                flight = self._refreshing[key] = (self._tick, task)
                task.add_done_callback(lambda done: self._refreshed(key, done))
            cached = await asyncio.shield(flight[1])  # a request that goes away does not cancel the others' refresh
        self._note_count(principal.name, len(cached.ids), force=record)
        return cached

    def _refreshed(self, key: tuple[Any, ...], task: asyncio.Task[VisibleSet]) -> None:
        if key in self._refreshing and self._refreshing[key][1] is task:
            del self._refreshing[key]
        if not task.cancelled():
            task.exception()  # retrieved here too: every request waiting for it may have gone

    async def _refresh(self, key: tuple[Any, ...], scope: visibility.Scope, cached: VisibleSet | None,
                       update_seq: Any) -> VisibleSet:
        advanced = await self._advance(cached, update_seq) if cached is not None else None
        if advanced is None:
            ids = {doc.id async for doc in replication_scope.visible_docs(self.medic, scope)}
            advanced = VisibleSet(frozenset(ids), scope, update_seq)
        self._sets[key] = advanced
        if len(self._sets) > 10000:
            self._sets.pop(next(iter(self._sets)))
        return advanced

    async def _advance(self, cached: VisibleSet, update_seq: Any) -> VisibleSet | None:
        """The set brought forward over the changes since it was made; None when there are too many."""
        body = await self.medic.changes(since=cached.update_seq, include_docs=True, limit=MAX_INCREMENTAL + 1)
        results = body.get("results", [])
        if len(results) > MAX_INCREMENTAL:
            return None
        scope = cached.scope
        ids = set(cached.ids)
        always = set(visibility.always_ids(scope))
        docs = [c["doc"] for c in results if c.get("doc") and not c.get("deleted")]
        ids.difference_update(c["id"] for c in results if c.get("deleted"))
        flipped: list[dict[str, Any]] = []
        subjects = await subjects_of(self.medic, *(d for d in docs if d.get("type") not in CONTACT_DOC_TYPES))
        for doc in docs:
            now = doc["_id"] in always or visibility.doc_visible(scope, doc, subjects)
            if now != (doc["_id"] in ids) and doc.get("type") in CONTACT_DOC_TYPES:
                flipped.append(doc)
            (ids.add if now else ids.discard)(doc["_id"])
        if flipped:  # what belongs to a contact that entered or left the area is judged again
            keys = [k for doc in flipped for k in (doc["_id"], doc.get("patient_id"), doc.get("place_id")) if k]
            rows = (await self.medic.view("medic", "docs_by_replication_key", keys=keys))["rows"]
            owned = list((await self.medic.get_many(r["id"] for r in rows)).values())
            owned_subjects = await subjects_of(self.medic, *(d for d in owned if d.get("type") not in CONTACT_DOC_TYPES))
            for doc in owned:
                visible = doc["_id"] in always or visibility.doc_visible(scope, doc, owned_subjects)
                (ids.add if visible else ids.discard)(doc["_id"])
        return VisibleSet(frozenset(ids), scope, update_seq)

    def _note_count(self, name: str, count: int, force: bool = False) -> None:
        if not force and time.monotonic() - self._counted.get(name, -COUNT_EVERY_SECONDS) < COUNT_EVERY_SECONDS:
            return
        self._counted[name] = time.monotonic()
        if count > WARN_LIMIT:
            log.warning("user %s replicates %d documents, over the %d recommended", name, count, WARN_LIMIT)
        task = asyncio.create_task(self._save_count(name, count))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save_count(self, name: str, count: int) -> None:
        try:
            await replication_limit.record(self.logs, name, count)
        except JamiiError as exc:
            log.warning("could not record the replication count of %s: %s", name, exc)

    async def close(self) -> None:
        """Finish the count saves; a refresh still under way has nobody left to answer."""
        refreshes = [task for _, task in self._refreshing.values()]
        for task in refreshes:
            task.cancel()
        pending = [*self._tasks, *refreshes]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def own_ids(principal: Principal) -> set[str]:
    """Docs a user always has: their user-settings doc and the client design doc."""
    return set(visibility.always_ids(visibility.Scope(restricted=True, user=principal.name)))


# -- reads ---------------------------------------------------------------------------------

async def check_readable(db: Database, scopes: ScopeCache, principal: Principal, settings: Mapping[str, Any],
                         doc_id: str) -> None:
    """A doc the user may not see does not exist for them."""
    if doc_id in own_ids(principal):
        return
    if doc_id not in await scopes.get(principal, settings):
        raise NotFound("missing")


def _json_param(query: Mapping[str, str], body: Mapping[str, Any], name: str) -> Any:
    if name in body:
        return body[name]
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return jsonparse.loads(raw)
    except ValueError:
        raise BadRequest(f"{name} must be JSON", field=name) from None


def _flag(query: Mapping[str, str], body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, query.get(name))
    return value is True or value == "true"


async def all_docs(db: Database, visible: VisibleSet, query: Mapping[str, str],
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """``_all_docs`` over the visible set: rows for visible ids, ``not_found`` for any other key."""
    options = {k: v for k, v in (("include_docs", _flag(query, body, "include_docs")),
                                 ("conflicts", _flag(query, body, "conflicts"))) if v}
    keys = _json_param(query, body, "keys")
    if keys is not None:
        if not isinstance(keys, list):
            raise BadRequest("keys must be an array", field="keys")
        wanted = [k for k in keys if isinstance(k, str) and k in visible]
        found = {row["key"]: row for row in (await db.all_docs(wanted, **options))["rows"]} if wanted else {}
        rows = [found.get(k) or {"key": k, "error": "not_found"} for k in keys]
        return {"total_rows": len(visible.ids), "offset": 0, "rows": rows}
    ids = sorted(visible.ids, reverse=_flag(query, body, "descending"))
    start = _json_param(query, body, "startkey") or _json_param(query, body, "start_key")
    end = _json_param(query, body, "endkey") or _json_param(query, body, "end_key")
    inclusive = body.get("inclusive_end", query.get("inclusive_end", "true")) not in (False, "false")
    descending = _flag(query, body, "descending")
    for name, key in (("startkey", start), ("endkey", end)):
        if key is not None and not isinstance(key, str):
            raise BadRequest(f"{name} must be a document id (a JSON string)", field=name)
    if start is not None:
        ids = [i for i in ids if (i <= start if descending else i >= start)]
    if end is not None:
        ids = [i for i in ids if (i > end if descending else i < end) or (inclusive and i == end)]
    skip = _count(body.get("skip", query.get("skip")), "skip") or 0
    limit = _count(body.get("limit", query.get("limit")), "limit")
    page = ids[skip:] if limit is None else ids[skip:skip + limit]
    rows = (await db.all_docs(page, **options))["rows"] if page else []
    return {"total_rows": len(visible.ids), "offset": skip, "rows": [r for r in rows if "error" not in r]}


def _count(value: Any, name: str) -> int | None:
    """A non-negative integer parameter (``skip``, ``limit``), given as a number or a string of digits."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise BadRequest(f"{name} must be a non-negative integer", field=name)


def _missing(doc_id: str, rev: Any) -> dict[str, Any]:
    return {"id": doc_id, "docs": [{"error": {"id": doc_id, "rev": rev or "undefined", "error": "not_found",
                                              "reason": "missing"}}]}


async def without_latest_for_unknown_revs(db: Database, query: Mapping[str, str],
                                          wanted: Iterable[tuple[Any, Any]]) -> str | None:
    """The query string without ``latest`` when a requested rev is not in its doc's tree, else None.

    pouchdb-server (the embedded database) dies on ``latest=true`` with a rev it does not
    have. CouchDB answers a rev it does not have as missing with or without ``latest``, so
    dropping it for such a request only changes revs that exist but are not leaves (they come
    back as asked instead of as their leaf). One ``_revs_diff`` tells which revs are unknown.
    """
    pairs = [(doc_id, rev) for doc_id, rev in wanted if rev is not None]
    if "latest" not in query or not pairs:
        return None
    if all(isinstance(doc_id, str) and isinstance(rev, str) for doc_id, rev in pairs):
        asked: dict[str, list[str]] = {}
        for doc_id, rev in pairs:
            asked.setdefault(doc_id, []).append(rev)
        _, missing, _ = await db.couch.request("POST", db.path + "/_revs_diff", json_body=asked)
        if not any(missing.values()):
            return None
    return urlencode([(k, v) for k, v in query.items() if k != "latest"])


async def bulk_get(db: Database, visible: VisibleSet, query: Mapping[str, str],
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """``_bulk_get`` of visible docs; other ids are "missing", except the tombstones of docs the
    user could see before they were deleted (the feed announced those deletions)."""
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in docs):
        raise BadRequest("docs must be an array of {id, rev}", field="docs")
    answers: dict[int, dict[str, Any]] = {}
    if docs:
        query_string = await without_latest_for_unknown_revs(db, query, ((d["id"], d.get("rev")) for d in docs))
        params = dict(query) if query_string is None else dict(parse_qsl(query_string))
        _, answer, _ = await db.couch.request("POST", db.path + "/_bulk_get", params=params,
                                              json_body={"docs": docs})
        by_id = {r.get("id"): r for r in answer.get("results", [])}  # pouchdb-server collapses duplicates
        for index, request_doc in enumerate(docs):
            result = by_id.get(request_doc["id"])
            if result is None:
                continue
            if request_doc["id"] in visible:
                answers[index] = result
            else:
                tombstones = await _visible_tombstones(db, visible.scope, result)
                if tombstones:
                    answers[index] = {"id": request_doc["id"], "docs": tombstones}
    return {"results": [answers.get(i) or _missing(d["id"], d.get("rev")) for i, d in enumerate(docs)]}


async def _visible_tombstones(db: Database, scope: visibility.Scope, result: Mapping[str, Any]) -> list[Any]:
    """The deletion revisions in a ``_bulk_get`` result that the user may receive, bodies stripped."""
    kept = []
    for entry in result.get("docs", []):
        doc = entry.get("ok")
        if not isinstance(doc, dict) or not doc.get("_deleted"):
            continue
        change = {"id": doc["_id"], "changes": [{"rev": doc["_rev"]}]}
        if await _previously_visible(db, scope, change):
            stripped = {k: doc[k] for k in ("_id", "_rev", "_deleted", "_revisions") if k in doc}
            kept.append({"ok": stripped})
    return kept


async def revs_diff(db: Database, visible: VisibleSet, body: Mapping[str, Any]) -> dict[str, Any]:
    """Visible docs as CouchDB answers; any other id as if the server had never seen it."""
    if not all(isinstance(revs, list) for revs in body.values()):
        raise BadRequest("each id must map to an array of revisions", field="body")
    known = {doc_id: revs for doc_id, revs in body.items() if doc_id in visible}
    answer: dict[str, Any] = {}
    if known:
        _, answer, _ = await db.couch.request("POST", db.path + "/_revs_diff", json_body=known)
    for doc_id, revs in body.items():
        if doc_id not in visible:
            answer[doc_id] = {"missing": revs}
    return answer


# -- _changes -----------------------------------------------------------------------------------

async def _previously_visible(db: Database, scope: visibility.Scope, change: Mapping[str, Any]) -> bool:
    """Could the user see a deleted doc just before its deletion? Judged from the revision before it."""
    try:
        tombstone_rev = change["changes"][0]["rev"]
        tombstone = await db.get(change["id"], rev=tombstone_rev, revs=True)
        revisions = tombstone.get("_revisions") or {}
        if len(revisions.get("ids", [])) < 2:
            return False
        previous = f"{revisions['start'] - 1}-{revisions['ids'][1]}"
        doc = await db.get(change["id"], rev=previous)
    except (NotFound, KeyError, IndexError, TypeError):
        return False
    return visibility.doc_visible(scope, doc, await subjects_of(db, doc))


async def _scan(db: Database, current: Callable[[], Awaitable[VisibleSet]], since: Any, limit: int | None,
                style: str | None, wanted: set[str] | None, initial: bool) -> tuple[list[dict[str, Any]], Any]:
    """Visible changes after ``since`` (up to ``limit``), and the seq to continue from.

    The visible set is asked for (``current``) after each page is read, never
    before: a set made before the read would not know docs written in between,
    which would be skipped while the returned seq moves past them, so the
    device would never get them.
    """
    kept: list[dict[str, Any]] = []
    while True:
        page = await db.changes(since=since, limit=PAGE, style=style)
        visible = await current()
        results = page.get("results", [])
        deleted_unknown = [c for c in results if c.get("deleted") and c["id"] not in visible
                           and not initial and (wanted is None or c["id"] in wanted)]
        was_visible = set()
        if deleted_unknown:
            checks = await asyncio.gather(*(_previously_visible(db, visible.scope, c) for c in deleted_unknown))
            was_visible = {c["id"] for c, ok in zip(deleted_unknown, checks) if ok}
        for change in results:
            since = change["seq"]
            doc_id = change["id"]
            if wanted is not None and doc_id not in wanted:
                continue
            if doc_id in visible or doc_id in was_visible:
                if change.get("deleted") and initial:
                    continue  # a new device has nothing to delete
                kept.append(change)
                if limit is not None and len(kept) >= limit:
                    return kept, since
        if len(results) < PAGE:
            return _resume_at_end(kept, page.get("last_seq", since)), page.get("last_seq", since)


async def _initial(db: Database, visible: VisibleSet, style: str | None,
                   wanted: set[str] | None) -> tuple[list[dict[str, Any]], Any]:
    """A first sync: every visible doc's change at once, filtered by CouchDB itself (``_doc_ids``).

    The client's ``limit`` is not applied: PouchDB splits what it receives
    into batches of its own, and a first sync then costs one filtered read of
    the feed instead of many scans through the API.
    """
    ids = visible.ids if wanted is None else visible.ids & wanted
    body = await db.changes(doc_ids=sorted(ids), since=0, style=style)
    results = [c for c in body.get("results", []) if not c.get("deleted")]
    # The set is exact as of its update_seq, so every visible change up to that seq is here: the client
    # resumes from it. (A filtered feed's own last_seq is the last match on pouchdb-server, which would
    # make the next request read the rest of the database again.)
    return _resume_at_end(results, visible.update_seq), visible.update_seq


def _resume_at_end(results: list[dict[str, Any]], last_seq: Any) -> list[dict[str, Any]]:
    """Give the last kept change the feed's last seq: PouchDB resumes from the last change's seq,
    and everything up to ``last_seq`` has been judged, so it need not be read again."""
    if results and last_seq is not None:
        results[-1] = {**results[-1], "seq": last_seq}
    return results


def check_changes_query(query: Mapping[str, str], body: Mapping[str, Any]) -> None:
    """Refuse ``_changes`` parameters CouchDB would refuse, before they reach it.

    pouchdb-server (the embedded database) dies on ``filter=_doc_ids`` without
    an array of ``doc_ids`` and waits forever on a ``timeout`` that is not a
    number, so numbers and the ids are checked here for every caller.
    """
    for name in ("limit", "timeout", "heartbeat"):
        value = query.get(name)
        if value in (None, "") or (name == "heartbeat" and value == "true"):
            continue
        if not (value.isascii() and value.isdigit()):
            raise BadRequest(f"{name} must be a non-negative integer", field=name)
    if query.get("filter") == "_doc_ids" and not isinstance(_json_param(query, body, "doc_ids"), list):
        raise BadRequest("doc_ids must be an array of document ids", field="doc_ids")


async def serve_changes(request: web.Request, db: Database, scopes: ScopeCache, notifier: ChangesNotifier,
                        principal: Principal, settings: Mapping[str, Any], query: Mapping[str, str],
                        body: Mapping[str, Any]) -> web.StreamResponse:
    since: Any = body.get("since", query.get("since", 0))
    if since == "now":
        since = (await db.info())["update_seq"]
    initial = since in (0, "0", None, "")
    check_changes_query(query, body)
    limit = int(query["limit"]) if query.get("limit") else None
    timeout = min(int(query.get("timeout") or 60000), 300000) / 1000
    heartbeat = int(query["heartbeat"]) / 1000 if query.get("heartbeat") not in (None, "", "true") else 10
    style = query.get("style") if query.get("style") == "all_docs" else None
    wanted = None
    if query.get("filter") == "_doc_ids":
        wanted = {i for i in _json_param(query, body, "doc_ids") if isinstance(i, str)}
    include_docs = _flag(query, body, "include_docs")

    def current() -> Awaitable[VisibleSet]:
        return scopes.get(principal, settings)

    if initial:
        results, last_seq = await _initial(db, await scopes.get(principal, settings, record=True), style, wanted)
    else:
        results, last_seq = await _scan(db, current, since, limit, style, wanted, initial)
    response: web.StreamResponse | None = None
    if not results and query.get("feed") == "longpoll":
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = time.monotonic() + timeout
        while not results and time.monotonic() < deadline:
            changed = await notifier.wait(min(heartbeat, max(deadline - time.monotonic(), 0)))
            if not changed:
                await response.write(b"\n")
                continue
            results, last_seq = await _scan(db, current, last_seq, limit, style, wanted, False)
    if include_docs and results:
        live = [c["id"] for c in results if not c.get("deleted")]
        docs = await db.get_many(live)
        for change in results:
            change["doc"] = docs.get(change["id"]) or {"_id": change["id"], "_rev": change["changes"][0]["rev"],
                                                       "_deleted": True}
    payload = dumps({"results": results, "last_seq": last_seq})
    if response is None:
        return web.Response(body=payload, content_type="application/json")
    await response.write(payload)
    await response.write_eof()
    return response


# -- writes --------------------------------------------------------------------------------------

# The underscore fields CouchDB accepts at the top of a document.
SPECIAL_MEMBERS = frozenset({"_id", "_rev", "_deleted", "_attachments", "_revisions", "_revs_info", "_conflicts",
                             "_deleted_conflicts", "_local_seq"})


async def write_docs(db: Database, principal: Principal, settings: Mapping[str, Any],
                     docs: list[dict[str, Any]], *, new_edits: bool,
                     scopes: ScopeCache | None) -> list[dict[str, Any]]:
    """Write the docs this user may write; the others come back ``forbidden``, in request order.

    ``scopes`` is given for offline users, whose writes must stay inside what they may see.
    """
    for doc in docs:
        if "_id" not in doc:
            doc["_id"] = new_id()
        elif not isinstance(doc["_id"], str) or not doc["_id"]:
            raise BadRequest("_id must be a non-empty string", field="_id")
        special = next((k for k in doc if k.startswith("_") and k not in SPECIAL_MEMBERS), None)
        if special is not None:  # CouchDB's 400 doc_validation (pouchdb-server answers 500)
            raise InvalidDocument(f"Bad special document member: {special}", field=special)
    stored = await db.get_many(d["_id"] for d in docs)
    refused: dict[int, str] = {}
    visible = await scopes.get(principal, settings) if scopes is not None else None
    new_subjects = await subjects_of(db, *(d for d in docs if not d.get("_deleted"))) \
        if visible is not None else {}
    for index, doc in enumerate(docs):
        old = stored.get(doc["_id"])
        reason = write_rules.refusal(principal, settings, doc["_id"], doc, old)
        if reason is None and visible is not None and doc["_id"] not in own_ids(principal):
            if old is not None and doc["_id"] not in visible:
                reason = "You may not change a document outside your place"
            elif not doc.get("_deleted") and not visibility.doc_visible(visible.scope, doc, new_subjects):
                reason = "The document would be outside your place"
        if reason is not None:
            refused[index] = reason
    allowed = [d for i, d in enumerate(docs) if i not in refused]
    try:
        written = await db.bulk_docs(allowed, new_edits=new_edits) if allowed else []
    except CouchError as exc:
        if exc.couch_status != 400:
            raise
        # Only what the client sent makes CouchDB refuse a whole _bulk_docs (a malformed _rev, _id...).
        raise BadRequest(exc.reason or exc.error, field="_rev" if "rev" in exc.reason else None) from None
    by_id = {r.get("id"): r for r in written}
    results = []
    for index, doc in enumerate(docs):
        if index in refused:
            results.append({"id": doc["_id"], "error": "forbidden", "reason": refused[index]})
        elif doc["_id"] in by_id:
            results.append(by_id[doc["_id"]])
        elif new_edits:
            results.append({"id": doc["_id"], "error": "unknown_error", "reason": "no result from CouchDB"})
    if not new_edits:  # CouchDB answers replicated writes with their errors only
        return [r for r in results if "error" in r]
    return results


async def check_attachment_write(db: Database, scopes: ScopeCache | None, principal: Principal,
                                 settings: Mapping[str, Any], doc_id: str) -> None:
    old = await db.get_or_none(doc_id)
    reason = write_rules.refusal(principal, settings, doc_id, old or {}, old)
    if reason is None and scopes is not None and old is not None and doc_id not in own_ids(principal):
        if doc_id not in await scopes.get(principal, settings):
            raise NotFound("missing")
    if reason is not None:
        raise Forbidden(reason)


# -- CHT's initial-sync endpoints ------------------------------------------------------------

async def doc_ids_revs(db: Database, scopes: ScopeCache, principal: Principal,
                       settings: Mapping[str, Any]) -> dict[str, Any]:
    """``get-ids``: every visible doc with its current rev, and the seq to follow ``_changes`` from."""
    last_seq = (await db.info())["update_seq"]  # taken first: nothing written meanwhile is missed
    visible = await scopes.get(principal, settings)
    ids = sorted(visible.ids)
    pairs = []
    for start in range(0, len(ids), PAGE):
        rows = (await db.all_docs(ids[start:start + PAGE]))["rows"]
        pairs.extend({"id": r["id"], "rev": r["value"]["rev"]} for r in rows
                     if "value" in r and not r["value"].get("deleted"))
    tasks = sum(1 for doc_id in ids if doc_id.startswith("task~"))  # CHT's task doc ids
    warn_docs = len(pairs) - tasks
    return {"doc_ids_revs": pairs, "warn_docs": warn_docs, "last_seq": last_seq, "warn": warn_docs > WARN_LIMIT,
            "limit": WARN_LIMIT}


async def deleted_or_gone(db: Database, scopes: ScopeCache, principal: Principal, settings: Mapping[str, Any],
                          doc_ids: list[str]) -> list[str]:
    """``get-deletes``: which of these ids a device should purge (deleted, missing, or out of its area)."""
    visible = await scopes.get(principal, settings)
    return [doc_id for doc_id in doc_ids if doc_id not in visible and doc_id not in own_ids(principal)]
