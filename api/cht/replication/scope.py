"""The visible set: every doc id an offline user replicates, computed from the views, never a scan.

This is ``api.cht.visibility`` applied to a whole area at once, the way cht-core's
``getAuthorizationContext`` and ``getDocsByReplicationKey`` compute it (tests
compare the two on generated hierarchies):

1. ``medic/contacts_by_depth`` rows ``[facility, depth]`` for depths 0..replication_depth
   (or every depth) give the contacts of the area, each with its level below
   the facility, its short id and its primary contact;
2. with ``replicate_primary_contacts``, the primary contacts of those contacts
   that live outside the area are asked for too (``contacts_by_depth`` by
   ``[id]``); each primary contact counts at the level of its highest place;
3. the subjects are those ids and short ids, ``_all``, the user's
   ``org.couchdb.user:<name>`` and, when the user may see unallocated reports,
   ``_unassigned``; ``medic/docs_by_replication_key`` is asked for them in
   batches of keys, and each row is decided from its value alone: reports by
   their key's level (``report_depth`` unless the user submitted them) and, when
   private and about the user's own contact or place, by whether their
   submitter is a subject; tasks, targets and contacts by their key.

Ids are yielded as they are decided (an async generator), each once, with the
doc's type, so callers can count (``users-info``) or serve (replication)
without holding the rows. Memory is the area's contacts plus the ids already
yielded.

A replication key naming no existing contact (a report whose patient or
submitter doc is gone) matches nothing here, as in CHT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable, Mapping

from api.cht.visibility import UNASSIGNED_KEY, Scope, always_ids, fixed_subjects, js_string, js_truthy
from api.couch import Database

KEY_BATCH = 500
WARN_LIMIT = 10000
# A first sync is one ``_changes`` filtered by the user's visible ids (``_doc_ids``). CouchDB looks each id up
# when there are at most ``[couchdb] changes_doc_ids_optimization_threshold`` of them (its default: 100);
# beyond that it compares every change in the database with the whole list of ids, a cost of docs x ids
# (CouchDB 3.4.3, 1,000 ids in a 20,000-doc database: 270 ms, against 55 ms looked up).
# ``scripts/setup_db.py`` raises the threshold to this on every node: twice the recommended most docs per user.
DOC_IDS_LOOKUP_THRESHOLD = 2 * WARN_LIMIT
ALWAYS_COUNTED = 2  # CHT counts the client design doc and the user's settings doc, present or not


@dataclass(frozen=True)
class VisibleDoc:
    id: str
    type: str | None


@dataclass(frozen=True)
class Counts:
    total_docs: int
    warn_docs: int
    limit: int = WARN_LIMIT

    @property
    def warn(self) -> bool:
        return self.warn_docs >= self.limit

    def as_json(self) -> dict[str, Any]:
        return {"total_docs": self.total_docs, "warn_docs": self.warn_docs, "warn": self.warn,
                "limit": self.limit}


@dataclass
class Subjects:
    """A user's subjects, as CHT's authorization context holds them.

    ``levels``: contact ids and short ids -> their lowest level below a facility
    (None: no level, which no ``report_depth`` lets through); ``contacts``: the
    subject contacts' ids -> their short id; ``own``: the ids and short ids of
    the user's contact and facilities.
    """

    scope: Scope
    levels: dict[str, int | None] = field(default_factory=dict)
    contacts: dict[str, str | None] = field(default_factory=dict)
    own: set[str] = field(default_factory=set)

    def add(self, contact_id: str, code: Any, level: int | None) -> None:
        code = _code(code)
        self.contacts.setdefault(contact_id, code)
        for key in (contact_id, code):
            if key is not None:
                self.levels[key] = _lowest(self.levels.get(key, level), level)

    def __contains__(self, key: object) -> bool:
        return key in self.levels or key in fixed_subjects(self.scope)

    def keys(self) -> list[str]:
        return list(dict.fromkeys([*fixed_subjects(self.scope), *self.levels]))

    def allowed(self, key: str, value: Mapping[str, Any]) -> bool:
        """Is the doc of this ``docs_by_replication_key`` row (its key a subject) visible?"""
        if value.get("type") != "data_record":
            return True  # global docs, contacts, tasks and targets: their key is a subject
        if self.sensitive(value):
            return False
        if self.scope.report_depth < 0 or value.get("submitter") == self.scope.contact_id:
            return True
        level = 0 if key == UNASSIGNED_KEY else self.levels.get(key)
        return level is not None and level <= self.scope.report_depth

    def sensitive(self, value: Mapping[str, Any]) -> bool:
        """A private report about the user's own contact or place, by a submitter who is not a subject."""
        subject, submitter = value.get("subject"), value.get("submitter")
        return bool(value.get("private") and subject and submitter and subject in self.own
                    and submitter not in self)


def _lowest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _code(value: Any) -> str | None:
    return js_string(value) if js_truthy(value) else None


def _batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _area(db: Database, scope: Scope) -> AsyncIterator[tuple[str, int, Mapping[str, Any]]]:
    for facility in dict.fromkeys(scope.facility_ids):
        end = [facility, scope.depth] if scope.depth >= 0 else [facility, {}]
        async for row in db.iter_view("medic", "contacts_by_depth", startkey=[facility, 0], endkey=end):
            value = row.get("value")
            yield row["id"], row["key"][1], value if isinstance(value, Mapping) else {}


async def subjects_for(db: Database, scope: Scope) -> Subjects:
    """The subjects of a (restricted) scope, from ``contacts_by_depth``: a few requests whatever its size."""
    subjects = Subjects(scope)
    places_of: dict[str, set[str]] = defaultdict(set)  # primary contact id -> the area's contacts naming it
    async for contact_id, level, value in _area(db, scope):
        # without a depth limit CHT asks for [facility] rows, which have no depth: no level for report_depth
        subjects.add(contact_id, value.get("shortcode"), level if scope.depth >= 0 else None)
        primary = value.get("primary_contact")
        if scope.primary_contacts and isinstance(primary, str) and primary:
            places_of[primary].add(contact_id)
    if places_of:
        await _add_primary_contacts(db, subjects, places_of)
    await _add_own(db, scope, subjects)
    return subjects


async def _add_primary_contacts(db: Database, subjects: Subjects, places_of: Mapping[str, set[str]]) -> None:
    """Primary contacts living outside the area join it; each counts at the level of its highest place."""
    outside = [pc for pc in places_of if pc not in subjects.contacts]
    for batch in _batches(outside, KEY_BATCH):
        rows = (await db.view("medic", "contacts_by_depth", keys=[[pc] for pc in batch]))["rows"]
        for row in rows:
            if row["id"] in places_of:  # the [id] rows of what lies below a contact are not its own
                subjects.add(row["id"], (row.get("value") or {}).get("shortcode"), None)
    levels: dict[str, int | None] = {}
    for pc, places in places_of.items():
        if pc in subjects.contacts:
            found = [subjects.levels.get(place) for place in places]
            levels[pc] = min((level for level in found if level is not None), default=None)
    for pc, level in levels.items():
        for key in (pc, subjects.contacts[pc]):
            if key is not None:
                subjects.levels[key] = level


async def _add_own(db: Database, scope: Scope, subjects: Subjects) -> None:
    """The ids and short ids of the user's contact and facilities (private reports about them may be hidden)."""
    wanted = [i for i in (scope.contact_id, *scope.facility_ids) if i]
    subjects.own.update(wanted)
    if wanted:
        for doc in (await db.get_many(wanted)).values():
            subjects.own.update(c for c in (_code(doc.get("patient_id")), _code(doc.get("place_id"))) if c)


async def visible_docs(db: Database, scope: Scope) -> AsyncIterator[VisibleDoc]:
    """Every doc of the medic database this (restricted) scope replicates, each once."""
    if not scope.restricted:
        raise ValueError("the visible set is for offline users; online users see everything")
    seen: set[str] = set()
    present = await db.all_docs(list(always_ids(scope)))
    for row in present["rows"]:
        if row.get("id") and not row.get("error") and not (row.get("value") or {}).get("deleted"):
            seen.add(row["id"])
            yield VisibleDoc(row["id"], None)
    subjects = await subjects_for(db, scope)
    for contact_id in subjects.contacts:
        if contact_id not in seen:
            seen.add(contact_id)
            yield VisibleDoc(contact_id, "contact")
    for batch in _batches(subjects.keys(), KEY_BATCH):
        rows = (await db.view("medic", "docs_by_replication_key", keys=batch))["rows"]
        for row in rows:
            doc_id = row["id"]
            value = row.get("value") or {}
            if doc_id not in seen and subjects.allowed(row["key"], value):
                seen.add(doc_id)
                yield VisibleDoc(doc_id, value.get("type"))


async def count(db: Database, scope: Scope, limit: int = WARN_LIMIT) -> Counts:
    """``users-info``: every visible doc, and those that are not tasks, counted as CHT counts them."""
    always = set(always_ids(scope))
    total = tasks = 0
    async for doc in visible_docs(db, scope):
        if doc.id not in always:
            total += 1
            tasks += doc.type == "task"
    total += ALWAYS_COUNTED
    return Counts(total_docs=total, warn_docs=total - tasks, limit=limit)
