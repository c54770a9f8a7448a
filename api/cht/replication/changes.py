"""``_changes`` for offline users: a first sync filtered by CouchDB to the visible ids, later ones scanned and
filtered here (deletions of docs the user could see included), longpolls woken by the shared notifier."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from api.auth import Principal
from api.cht import visibility
from api.cht.contact_types import CONTACT_DOC_TYPES, is_person
from api.couch import Database
from api.errors import BadRequest

from .notifier import ChangesNotifier
from .reads import flag, json_param
from .visible_set import ScopeCache, VisibleSet, judged_here, previously_visible

PAGE = 1000


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _scan(db: Database, current: Callable[[], Awaitable[VisibleSet]], since: Any, limit: int | None,
                style: str | None, wanted: set[str] | None, initial: bool,
                settings: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
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
        if not initial:
            visible = await _with_unjudged(db, visible, results, wanted)
        deleted_unknown = [c for c in results if c.get("deleted") and c["id"] not in visible
                           and not initial and (wanted is None or c["id"] in wanted)]
        was_visible = set()
        if deleted_unknown:
            checks = await asyncio.gather(*(previously_visible(db, visible.scope, c) for c in deleted_unknown))
            was_visible = {c["id"] for c, ok in zip(deleted_unknown, checks) if ok}
        page_kept: list[dict[str, Any]] = []
        full = False
        for change in results:
            since = change["seq"]
            doc_id = change["id"]
            if wanted is not None and doc_id not in wanted:
                continue
            if doc_id in visible or doc_id in was_visible:
                if change.get("deleted") and initial:
                    continue  # a new device has nothing to delete
                page_kept.append(change)
                if limit is not None and len(kept) + len(page_kept) >= limit:
                    full = True
                    break
        kept += page_kept
        if wanted is None:
            kept += await _brought_by_people(db, visible, settings, page_kept, {c["id"] for c in kept})
        if full:
            return kept, since
        if len(results) < PAGE:
            return _resume_at_end(kept, page.get("last_seq", since)), page.get("last_seq", since)


async def _with_unjudged(db: Database, visible: VisibleSet, results: list[dict[str, Any]],
                         wanted: set[str] | None) -> VisibleSet:
    """The set with this page's changes it has not judged at their revision judged here, one by one.

    On a cluster the device's page and the feed the set was brought forward
    over can be read from different copies of a shard: a doc one copy has not
    yet received would pass the device unjudged, and the device would move past
    it for good. Changes older than the set's remembered revisions (a device
    back after long away, a set computed afresh) are judged here too: the cost
    is the device's own backlog, the price of the set's feed for those changes.
    """
    unjudged = [c["id"] for c in results if not c.get("deleted") and c["id"] not in visible
                and c["id"] not in visible.purged and (wanted is None or c["id"] in wanted)
                and not visible.has_judged(c)]
    if not unjudged:
        return visible
    docs = await db.get_many(dict.fromkeys(unjudged))
    seen = await judged_here(db, visible, list(docs.values()))
    if not seen:
        return visible
    return replace(visible, ids=visible.ids | seen,
                   contacts=visible.contacts | {i for i in seen if docs[i].get("type") in CONTACT_DOC_TYPES})


async def _brought_by_people(db: Database, visible: VisibleSet, settings: Mapping[str, Any],
                             changes: list[dict[str, Any]], sent: set[str]) -> list[dict[str, Any]]:
    """Change rows for the visible docs about the visible people that changed here.

    A report about a patient registered after it (an SMS visit in the same batch as the registration, a
    report made offline before the patient reached the server) becomes visible with the patient, but its
    own change is older than the device's position in the feed: it is sent with the patient's change, or
    the device would never get it. People only: a place's change would send every report below it again.
    (A place moved into the area brings its older docs to a fresh sync: docs/replication.md.)"""
    contacts = [c for c in changes if c["id"] in visible.contacts and not c.get("deleted")]
    if not contacts:
        return []
    docs = [d for d in (await db.get_many(c["id"] for c in contacts)).values() if is_person(settings, d)]
    changed_at = {c["id"]: c["seq"] for c in contacts}
    keys = [visibility.js_string(k) for doc in docs
            for k in (doc["_id"], doc.get("patient_id")) if visibility.js_truthy(k)]
    if not keys:
        return []
    rows = (await db.view("medic", "docs_by_replication_key", keys=list(dict.fromkeys(keys))))["rows"]
    owned = sorted({r["id"] for r in rows if r["id"] in visible and r["id"] not in sent})
    if not owned:
        return []
    seq = changed_at[docs[-1]["_id"]]
    found = (await db.all_docs(owned))["rows"]
    return [{"seq": seq, "id": r["id"], "changes": [{"rev": r["value"]["rev"]}]}
            for r in found if "value" in r and not r["value"].get("deleted")]


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
    # resumes from it, and anything written since reaches it in its next request (so a set one refresh
    # behind, answered at once while the next is made, is as right as a newer one). (A filtered feed's own
    # last_seq is the last match on pouchdb-server, which would make the next request read the rest of the
    # database again.)
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
    if query.get("filter") == "_doc_ids" and not isinstance(json_param(query, body, "doc_ids"), list):
        raise BadRequest("`doc_ids` filter parameter is not a list of doc ids.", field="doc_ids")  # CouchDB's words


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
        wanted = {i for i in json_param(query, body, "doc_ids") if isinstance(i, str)}
    include_docs = flag(query, body, "include_docs")

    def current() -> Awaitable[VisibleSet]:
        return scopes.get(principal, settings)

    longpoll = query.get("feed") == "longpoll"
    mark = await notifier.mark() if longpoll else None  # taken before the feed is read: no change is missed
    if initial:  # the set of any seq will do: the device resumes from that seq (see _initial)
        visible = await scopes.get(principal, settings, record=True, latest=False)
        results, last_seq = await _initial(db, visible, style, wanted)
    else:
        results, last_seq = await _scan(db, current, since, limit, style, wanted, initial, settings)
    response: web.StreamResponse | None = None
    if not results and longpoll:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        deadline = time.monotonic() + timeout
        while not results and time.monotonic() < deadline:
            changed = await notifier.wait(min(heartbeat, max(deadline - time.monotonic(), 0)), mark)
            if not changed:
                await response.write(b"\n")
                continue
            mark = await notifier.mark()
            results, last_seq = await _scan(db, current, last_seq, limit, style, wanted, False, settings)
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
