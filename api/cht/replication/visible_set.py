"""Each offline user's visible set (the ids of the docs they may have), kept per user and brought forward
from ``_changes`` while the database moves on; and the checks every read and write starts from."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

from api.auth import Principal
from api.cht import visibility
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.purging.served import PurgedSets
from api.cht.reports.reports import subjects_of
from api.couch import Database
from api.errors import JamiiError, NotFound

from . import limit as replication_limit
from . import scope as replication_scope
from .shared import Shared

log = logging.getLogger("jamii.replication")

COUNT_EVERY_SECONDS = 600
MAX_STORED_COUNTS = 10000  # users whose stored replication count a process remembers
MAX_INCREMENTAL = 2000
VIEW_LAG_SECONDS = 5.0  # a fresh set re-judges the changes of this long before it (a view copy's lag)
JUDGED_KEPT = 2000  # revisions a set remembers judging (the recent changes a device's next page will hold)


@dataclass(frozen=True)
class VisibleSet:
    ids: frozenset[str]
    scope: visibility.Scope
    update_seq: Any = None  # where the set is exact up to: the feed it was brought forward over ended there
    tasks: frozenset[str] = frozenset()  # the task docs among them (CHT's warn count leaves them out)
    contacts: frozenset[str] = frozenset()  # the contacts among them (what else is visible depends on them)
    purged: frozenset[str] = frozenset()  # taken out of ids: the user's role set purges them (api.cht.purging)
    checked_seq: Any = None  # the database's update_seq its refresh was asked for (unchanged: still current)
    # id -> the revision its advances judged. Empty after a fresh computation: on a cluster a view can be read
    # from a copy that lacks a recent write the set had judged, so the set's verdicts no longer stand for it.
    judged: Mapping[str, str] = field(default_factory=dict)

    def has_judged(self, change: Mapping[str, Any]) -> bool:
        """Was this change (a ``_changes`` row) judged by the feeds the set was brought forward over?"""
        rev = self.judged.get(change.get("id"))
        return rev is not None and any(c.get("rev") == rev for c in change.get("changes", ()))

    def counts(self) -> replication_scope.Counts:
        """``users-info``, counted as CHT counts it (``replication_scope.count``) from the set itself."""
        counted = self.ids - set(visibility.always_ids(self.scope))
        total = len(counted) + replication_scope.ALWAYS_COUNTED
        return replication_scope.Counts(total_docs=total, warn_docs=total - len(self.tasks & counted))

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.ids

    def in_area(self, doc_id: str) -> bool:
        """In the user's area, purged or not: writes are judged on the area, so purging never refuses an edit."""
        return doc_id in self.ids or doc_id in self.purged


async def primary_places(db: Database, scope: visibility.Scope,
                         contacts: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Contact id -> the contacts naming it as their primary contact (for ``replicate_primary_contacts`` only)."""
    if not scope.primary_contacts:
        return {}
    ids = list(dict.fromkeys(c["_id"] for c in contacts if isinstance(c.get("_id"), str)))
    if not ids:
        return {}
    rows = (await db.view("medic", "contacts_by_primary_contact", keys=ids, include_docs=True))["rows"]
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("doc"):
            found[row["key"]].append(row["doc"])
    return found


async def judge(db: Database, scope: visibility.Scope, docs: list[dict[str, Any]]) -> list[bool]:
    """``visibility.doc_visible`` for each doc, with what it needs looked up for all of them at once."""
    subjects = await subjects_of(db, *(d for d in docs if d.get("type") not in CONTACT_DOC_TYPES))
    contacts = [d for d in docs if d.get("type") in CONTACT_DOC_TYPES]
    primary = await primary_places(db, scope, [*contacts, *subjects.values()])
    return [visibility.doc_visible(scope, doc, subjects, primary) for doc in docs]


class ScopeCache:
    """Visible sets per user, kept exact as the database changes.

    Before each use the database's ``update_seq`` is read (one cheap request).
    Unchanged since the set was made: the set is exact. Changed: the set is
    brought forward from the changes since then, each changed doc judged by
    ``api.cht.visibility`` (and the docs that depend on a changed visible contact
    judged again, see ``_advance``) — cheap for the few changes between two
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
        self._seen = SeenSeqs()
        self.background = background or medic
        self.logs = logs
        self._shared: Shared[visibility.Scope, VisibleSet] = Shared(
            medic, self.background, self._refresh, lambda visible: visible.checked_seq,
            what="The visible set is catching up", patience=patience, on_seq=self._seen.note)
        self._counted: dict[str, float] = {}
        self._stored_counts: dict[str, tuple[float, dict[str, Any]]] = {}  # name -> (when read, stored log)
        self._tasks: set[asyncio.Task[None]] = set()
        self.purges = PurgedSets(medic.couch, medic.name)

    async def get(self, principal: Principal, settings: Mapping[str, Any], *, record: bool = False,
                  latest: bool = True) -> VisibleSet:
        """The user's visible set as of now (``record``: note their replication count; ``latest=False``: the
        newest one at once while a refresh is under way, for answers that say which seq they are as of)."""
        found = await self.of_scope(visibility.scope_for(principal, settings), latest=latest)
        served = await self._without_purged(principal, found)
        self._note_count(principal.name, replication_count(served), force=record)  # as CHT: purged docs left out
        return served

    async def _without_purged(self, principal: Principal, area: VisibleSet) -> VisibleSet:
        """The set as served: what the user's role set purges taken out (reads never show it again). Its
        ``contacts`` stay the area's: what else is visible still depends on them."""
        purged = await self.purges.purged(principal.name, principal.roles, area.ids)
        if not purged:
            return area
        return replace(area, ids=area.ids - purged, tasks=area.tasks - purged, purged=purged)

    async def of_scope(self, scope: visibility.Scope, *, latest: bool = True) -> VisibleSet:
        """The visible set of ``scope`` (a scope names its user), without noting a replication count."""
        return await self._shared.get(scope, latest=latest)

    async def start(self) -> None:
        """Note the database's seq at start-up, so the first sets computed afresh have one to re-read from."""
        try:
            self._seen.note((await self.medic.info())["update_seq"])
        except JamiiError as exc:
            log.warning("visible sets: no start-up seq (%s); the first fresh sets re-read nothing", exc)

    async def _refresh(self, scope: visibility.Scope, cached: VisibleSet | None, update_seq: Any) -> VisibleSet:
        advanced = await self._advance(cached, update_seq) if cached is not None else None
        if advanced is None:
            advanced = await self._afresh(scope, update_seq)
        return replace(advanced, checked_seq=update_seq)

    async def _afresh(self, scope: visibility.Scope, update_seq: Any) -> VisibleSet:
        """The set computed from the views, then brought forward over the changes of the last
        ``VIEW_LAG_SECONDS``: on a cluster a view is read from one copy per shard range, which may not yet have a write
        the database's ``update_seq`` already counts, and that write would be behind the set for good."""
        rewound = self._seen.before(update_seq, VIEW_LAG_SECONDS)
        found = [doc async for doc in replication_scope.visible_docs(self.background, scope)]
        fresh = VisibleSet(frozenset(d.id for d in found), scope, rewound if rewound is not None else update_seq,
                           tasks=frozenset(d.id for d in found if d.type == "task"),
                           contacts=frozenset(d.id for d in found if d.type in CONTACT_DOC_TYPES))
        if rewound is None:
            return fresh
        return await self._advance(fresh, update_seq) or replace(fresh, update_seq=update_seq)

    async def _advance(self, cached: VisibleSet, update_seq: Any) -> VisibleSet | None:
        """The set brought forward over the changes since it was made; None when it must be computed afresh.

        Each changed doc is judged again. A contact that is or was visible may
        change what else is visible: the docs keyed by it are judged again, and
        when one entered or left the area, the reports about the user's own
        contact and places too (their submitter may have come or gone). Afresh:
        after too many changes, when a visible contact was deleted (its short id,
        which its reports may name, is gone with it) or, with
        ``replicate_primary_contacts``, when a visible contact changed that may
        have named or dropped a primary contact (any but a new contact naming
        none: a registration stays cheap).
        """
        body = await self.background.changes(since=cached.update_seq, include_docs=True, limit=MAX_INCREMENTAL + 1)
        results = body.get("results", [])
        if len(results) > MAX_INCREMENTAL:
            return None
        scope = cached.scope
        state = _Advancing(set(cached.ids), set(cached.tasks), set(cached.contacts))
        deleted = [c["id"] for c in results if c.get("deleted")]
        if state.contacts.intersection(deleted):
            return None
        state.remove(deleted)
        docs = [c["doc"] for c in results if c.get("doc") and not c.get("deleted")]
        docless = [c["id"] for c in results if not c.get("doc") and not c.get("deleted")]
        if docless:  # a row whose doc the feed could not include: read it, or it would pass unjudged
            docs += list((await self.background.get_many(docless)).values())
        # Contacts are judged by their lineage (and the places naming them, with replicate_primary_contacts),
        # never by other docs, so those that matter are known first; the other docs and what belongs to
        # those contacts are then looked up side by side: one request waits for the deepest of the two
        # chains of round trips, not for both one after the other.
        contacts = [d for d in docs if d.get("type") in CONTACT_DOC_TYPES]
        others = [d for d in docs if d.get("type") not in CONTACT_DOC_TYPES]
        primary = await primary_places(self.background, scope, contacts)
        relevant, flipped = [], False
        for doc in contacts:
            visible, was = visibility.doc_visible(scope, doc, None, primary), doc["_id"] in state.ids
            if visible or was:
                relevant.append(doc)
                flipped = flipped or visible != was
            state.set(doc, visible)
        if scope.primary_contacts and any(_may_change_primary_contacts(doc) for doc in relevant):
            return None
        judged, owned = await asyncio.gather(judge(self.background, scope, others),
                                             self._owned_by(scope, relevant, flipped))
        for doc, visible in [*zip(others, judged), *owned]:
            state.set(doc, visible)
        # The set is as of the end of the feed it read, not of ``update_seq``: on a cluster the two can come
        # from different copies of a shard, and a write the feed's copy had not yet received would be behind
        # the set's seq for good. Read from where this feed ended, it comes with that copy's next changes.
        return VisibleSet(frozenset(state.ids), scope, body.get("last_seq", update_seq), frozenset(state.tasks),
                          frozenset(state.contacts), judged=_remember(cached.judged, results))

    async def _owned_by(self, scope: visibility.Scope, relevant: list[dict[str, Any]],
                        flipped: bool) -> list[tuple[dict[str, Any], bool]]:
        """The docs keyed by these contacts (and, when one entered or left the area, the reports about the
        user's own contact and places), each judged again."""
        if not relevant:
            return []
        keys = [visibility.js_string(k) for doc in relevant
                for k in (doc["_id"], doc.get("patient_id"), doc.get("place_id")) if visibility.js_truthy(k)]
        if flipped:
            keys += await _own_keys(self.background, scope)
        rows = (await self.background.view("medic", "docs_by_replication_key", keys=list(dict.fromkeys(keys)),
                                           include_docs=True))["rows"]
        owned = [d for d in {r["id"]: r.get("doc") for r in rows}.values()
                 if d and d.get("type") not in CONTACT_DOC_TYPES]
        return list(zip(owned, await judge(self.background, scope, owned)))

    def _note_count(self, name: str, count: int, force: bool = False) -> None:
        """Record the user's count (``force``: now, else at most every ``COUNT_EVERY_SECONDS``). The stored
        log this process last read or wrote is trusted for ``COUNT_EVERY_SECONDS``: while the count does not
        differ from it (``replication_limit.differs``), nothing is read or written."""
        now = time.monotonic()
        if not force and now - self._counted.get(name, -COUNT_EVERY_SECONDS) < COUNT_EVERY_SECONDS:
            return
        self._counted[name] = now
        stored = self._stored_counts.get(name)
        if stored is not None and now - stored[0] < COUNT_EVERY_SECONDS and \
                not replication_limit.differs(stored[1], count, int(time.time() * 1000)):
            return
        if count > replication_scope.WARN_LIMIT:
            log.warning("user %s replicates %d documents, over the %d recommended", name, count,
                        replication_scope.WARN_LIMIT)
        task = asyncio.create_task(self._save_count(name, count))  # no purging yet: all_docs_count == count
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save_count(self, name: str, count: int) -> None:
        try:
            stored = await replication_limit.record(self.logs, name, count, all_docs_count=count)
        except JamiiError as exc:
            log.warning("could not record the replication count of %s: %s", name, exc)
            return
        self._stored_counts[name] = (time.monotonic(), stored)
        if len(self._stored_counts) > MAX_STORED_COUNTS:
            self._stored_counts.pop(next(iter(self._stored_counts)))

    async def close(self) -> None:
        """Finish the count saves; a refresh still under way has nobody left to answer."""
        await self._shared.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class SeenSeqs:
    """The database's ``update_seq`` values this process has read, with when: a seq from a few seconds ago to
    re-read the feed from (seqs are opaque: only passed back to CouchDB, never compared or built)."""

    KEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self._seen: deque[tuple[float, Any]] = deque()

    def note(self, seq: Any) -> None:
        now = time.monotonic()
        if seq is not None and (not self._seen or self._seen[-1][1] != seq):
            self._seen.append((now, seq))
        while len(self._seen) > 1 and self._seen[1][0] < now - self.KEEP_SECONDS:
            self._seen.popleft()

    def before(self, seq: Any, seconds: float) -> Any:
        """The newest seq read at least ``seconds`` before ``seq`` was first read (else the oldest read before
        it; None when there is none: ``seq`` itself was the first, or was never noted)."""
        at_seq = next((at for at, seen in self._seen if seen == seq), None)
        if at_seq is None:
            return None
        earlier = [(at, seen) for at, seen in self._seen if at < at_seq]
        older = [seen for at, seen in earlier if at <= at_seq - seconds]
        return older[-1] if older else (earlier[0][1] if earlier else None)


def _remember(judged: Mapping[str, str], results: list[dict[str, Any]]) -> dict[str, str]:
    """The revisions judged so far with this feed's added, the oldest forgotten past ``JUDGED_KEPT``."""
    kept = dict(judged)
    for change in results:
        kept.pop(change["id"], None)
        kept[change["id"]] = change["changes"][0]["rev"]
    return kept if len(kept) <= JUDGED_KEPT else dict(list(kept.items())[-JUDGED_KEPT:])


def _may_change_primary_contacts(contact: Mapping[str, Any]) -> bool:
    """Could this change have added or removed a primary contact? Not a new contact naming none."""
    return not str(contact.get("_rev", "")).startswith("1-") or visibility.js_truthy(contact.get("contact"))


def replication_count(visible: VisibleSet) -> int:
    """The number of docs CHT reports a user replicates: their set, the client ddoc and settings doc always counted."""
    return len(visible.ids - set(visibility.always_ids(visible.scope))) + replication_scope.ALWAYS_COUNTED


@dataclass
class _Advancing:
    ids: set[str]
    tasks: set[str]
    contacts: set[str]

    def set(self, doc: Mapping[str, Any], visible: bool) -> None:
        doc_id = doc["_id"]
        if not visible:
            self.remove([doc_id])
            return
        self.ids.add(doc_id)
        (self.tasks.add if doc.get("type") == "task" else self.tasks.discard)(doc_id)
        (self.contacts.add if doc.get("type") in CONTACT_DOC_TYPES else self.contacts.discard)(doc_id)

    def remove(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            self.ids.discard(doc_id)
            self.tasks.discard(doc_id)
            self.contacts.discard(doc_id)


async def _own_keys(db: Database, scope: visibility.Scope) -> list[str]:
    """The keys of reports about the user's own contact and places: their ids and short ids."""
    wanted = [i for i in (scope.contact_id, *scope.facility_ids) if i]
    docs = await db.get_many(wanted) if wanted else {}
    codes = [visibility.js_string(c) for d in docs.values() for c in (d.get("patient_id"), d.get("place_id"))
             if visibility.js_truthy(c)]
    return wanted + codes


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


async def judged_here(db: Database, visible: VisibleSet, docs: list[dict[str, Any]]) -> set[str]:
    """The ids of these docs the set lacks but the user may see, judged now by the set's own rule (on a
    cluster the set can lag what another copy or another API process already served); every revision of
    an id must be visible, and purged docs stay out."""
    docs = [d for d in docs if d["_id"] not in visible and d["_id"] not in visible.purged]
    verdicts: dict[str, bool] = {}
    for doc, ok in zip(docs, await judge(db, visible.scope, docs) if docs else []):
        verdicts[doc["_id"]] = verdicts.get(doc["_id"], True) and ok
    return {doc_id for doc_id, ok in verdicts.items() if ok}


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
    return (await judge(db, scope, [doc]))[0]
