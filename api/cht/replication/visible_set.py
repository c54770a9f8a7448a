"""Each offline user's visible set (the ids of the docs they may have), kept per user and brought forward
from ``_changes`` while the database moves on; and the checks every read and write starts from."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Mapping

from api.auth import Principal
from api.cht import visibility
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.reports.reports import subjects_of
from api.couch import Database
from api.errors import JamiiError, NotFound

from . import limit as replication_limit
from . import scope as replication_scope
from .shared import Shared

log = logging.getLogger("jamii.replication")

WARN_LIMIT = 10000
COUNT_EVERY_SECONDS = 600
MAX_INCREMENTAL = 2000


@dataclass(frozen=True)
class VisibleSet:
    ids: frozenset[str]
    scope: visibility.Scope
    update_seq: Any = None  # the database's update_seq when the set was computed
    tasks: frozenset[str] = frozenset()  # the ids of the tasks among them (users-info counts the others)

    def counts(self) -> replication_scope.Counts:
        """``users-info``: every doc the user replicates, and those that are not tasks."""
        return replication_scope.Counts(total_docs=len(self.ids), warn_docs=len(self.ids) - len(self.tasks))

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

    Concurrent requests of one user share a refresh (``shared.Shared``: one
    begun after the request arrived, at most one running and one waiting per
    user, each waited for until the request's deadline). The refresh reads
    through ``background``, a client whose limit is catching-up work's, not a
    request's: after a restart, views catching up are worked through once,
    instead of being started again by each request and thrown away at each
    timeout.
    """

    def __init__(self, medic: Database, logs: Database, background: Database | None = None,
                 patience: float = 3.0):
        self.medic = medic
        self.background = background or medic
        self.logs = logs
        self._shared: Shared[visibility.Scope, VisibleSet] = Shared(
            medic, self.background, self._refresh, lambda visible: visible.update_seq,
            what="The visible set is catching up", patience=patience)
        self._counted: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, principal: Principal, settings: Mapping[str, Any], *, record: bool = False) -> VisibleSet:
        """The user's visible set as of now (``record``: note their replication count)."""
        found = await self.of_scope(visibility.scope_for(principal, settings))
        self._note_count(principal.name, len(found.ids), force=record)
        return found

    async def of_scope(self, scope: visibility.Scope) -> VisibleSet:
        """The visible set of ``scope`` (a scope names its user), without noting a replication count."""
        return await self._shared.get(scope)

    async def _refresh(self, scope: visibility.Scope, cached: VisibleSet | None, update_seq: Any) -> VisibleSet:
        advanced = await self._advance(cached, update_seq) if cached is not None else None
        if advanced is None:
            docs = [doc async for doc in replication_scope.visible_docs(self.background, scope)]
            advanced = VisibleSet(frozenset(d.id for d in docs), scope, update_seq,
                                  frozenset(d.id for d in docs if d.type == "task"))
        return advanced

    async def _advance(self, cached: VisibleSet, update_seq: Any) -> VisibleSet | None:
        """The set brought forward over the changes since it was made; None when there are too many."""
        body = await self.background.changes(since=cached.update_seq, include_docs=True,
                                             limit=MAX_INCREMENTAL + 1)
        results = body.get("results", [])
        if len(results) > MAX_INCREMENTAL:
            return None
        scope = cached.scope
        ids, tasks = set(cached.ids), set(cached.tasks)
        always = set(visibility.always_ids(scope))
        docs = [c["doc"] for c in results if c.get("doc") and not c.get("deleted")]
        gone = [c["id"] for c in results if c.get("deleted")]
        ids.difference_update(gone)
        tasks.difference_update(gone)

        def judged(doc: Mapping[str, Any], visible: bool) -> None:
            (ids.add if visible else ids.discard)(doc["_id"])
            (tasks.add if visible and doc.get("type") == "task" else tasks.discard)(doc["_id"])

        # Contacts are judged by their lineage alone, so those that entered or left the area are known at
        # once, and what belongs to them is read while the other docs' subjects are: three round trips, not
        # five, on the path every offline request of a busy area waits on.
        contacts = [d for d in docs if d.get("type") in CONTACT_DOC_TYPES]
        others = [d for d in docs if d.get("type") not in CONTACT_DOC_TYPES]
        flipped = []
        for doc in contacts:
            now = doc["_id"] in always or visibility.doc_visible(scope, doc)
            if now != (doc["_id"] in ids):
                flipped.append(doc)
            judged(doc, now)
        subjects, (owned, owned_subjects) = await asyncio.gather(subjects_of(self.background, *others),
                                                                 self._owned_by(flipped))
        for doc in others:
            judged(doc, doc["_id"] in always or visibility.doc_visible(scope, doc, subjects))
        for doc in owned:  # what belongs to a contact that entered or left the area is judged again
            judged(doc, doc["_id"] in always or visibility.doc_visible(scope, doc, owned_subjects))
        return VisibleSet(frozenset(ids), scope, update_seq, frozenset(tasks))

    async def _owned_by(self, contacts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The docs that belong to these contacts (by id or short id), and their subjects."""
        if not contacts:
            return [], {}
        keys = [k for doc in contacts for k in (doc["_id"], doc.get("patient_id"), doc.get("place_id")) if k]
        rows = (await self.background.view("medic", "docs_by_replication_key", keys=keys, include_docs=True))["rows"]
        owned = list({row["id"]: row["doc"] for row in rows if row.get("doc")}.values())
        return owned, await subjects_of(self.background, *(d for d in owned if d.get("type") not in CONTACT_DOC_TYPES))

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
        await self._shared.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


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
