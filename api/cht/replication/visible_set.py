"""Each offline user's visible set (the ids of the docs they may have), kept per user and brought forward
from ``_changes`` while the database moves on; and the checks every read and write starts from."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

from api.auth import Principal
from api.cht import visibility
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.purging.served import PurgedSets
from api.cht.reports.reports import subjects_of
from api.couch import Database
from api.errors import JamiiError, NotFound

from . import limit as replication_limit
from . import scope as replication_scope

log = logging.getLogger("jamii.replication")

WARN_LIMIT = 10000
COUNT_EVERY_SECONDS = 600
MAX_INCREMENTAL = 2000


@dataclass(frozen=True)
class VisibleSet:
    ids: frozenset[str]
    scope: visibility.Scope
    update_seq: Any = None  # the database's update_seq when the set was computed
    purged: frozenset[str] = frozenset()  # taken out of ids: the user's role set purges them (api.cht.purging)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.ids

    def in_area(self, doc_id: str) -> bool:
        """In the user's area, purged or not: writes are judged on the area, so purging never refuses an edit."""
        return doc_id in self.ids or doc_id in self.purged


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
        self.purges = PurgedSets(medic.couch, medic.name)

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
        served = await self._without_purged(principal, cached)
        self._note_count(principal.name, len(served.ids), force=record)  # as CHT, what the user replicates
        return served

    async def _without_purged(self, principal: Principal, area: VisibleSet) -> VisibleSet:
        """The set as served: what the user's role set purges taken out (reads never show it again)."""
        purged = await self.purges.purged(principal.name, principal.roles, area.ids)
        return replace(area, ids=area.ids - purged, purged=purged) if purged else area

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


async def check_readable(db: Database, scopes: ScopeCache, principal: Principal, settings: Mapping[str, Any],
                         doc_id: str) -> None:
    """A doc the user may not see does not exist for them."""
    if doc_id in own_ids(principal):
        return
    if doc_id not in await scopes.get(principal, settings):
        raise NotFound("missing")


async def previously_visible(db: Database, scope: visibility.Scope, change: Mapping[str, Any]) -> bool:
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
