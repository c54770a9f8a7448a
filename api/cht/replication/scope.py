"""The visible set: every doc id an offline user replicates, computed from two views, never a scan.

This is ``api.cht.visibility`` applied to a whole area at once (tests compare the
two on generated hierarchies):

1. ``medic/contacts_by_depth`` rows ``[facility, depth]`` for depths 0..replication_depth
   (or every depth) give the contacts of the area, each with its level below
   the facility and its short id;
2. ``medic/docs_by_replication_key`` is asked for those ids and short ids (plus
   ``_all``, ``_unassigned`` when the user may see unallocated reports, and the
   user's task keys), in batches of keys, and each row is decided from its value:
   reports by their subject's level (``report_depth`` unless the user submitted
   them), tasks by their user, targets by their owner.

A report about the user's own contact or facility with a submitter is
"sensitive": it is visible only when the submitter, as the report records
them, is inside the area. The view value does not carry the submitter's
lineage, so those few reports are fetched and decided from the doc.

Ids are yielded as they are decided (an async generator), each once, with the
doc's type, so callers can count (``users-info``) or serve (replication)
without holding the rows. Memory is the area's contacts plus the ids already
yielded.

A replication key naming no existing contact (a report whose patient or
submitter doc is gone) matches nothing here; ``api.cht.visibility`` may still place
such a report by the lineage copied into it. CHT does not replicate those
either.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Mapping

from api.cht.visibility import ALL_KEY, UNASSIGNED_KEY, Scope, always_ids, depth_in_scope, user_keys
from api.couch import Database

KEY_BATCH = 500
DOC_BATCH = 200
WARN_LIMIT = 10000


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
        return self.warn_docs > self.limit

    def as_json(self) -> dict[str, Any]:
        return {"total_docs": self.total_docs, "warn_docs": self.warn_docs, "warn": self.warn,
                "limit": self.limit}


@dataclass
class _Area:
    """The contacts of the area: id -> level below the nearest facility, short id -> ids."""

    levels: dict[str, int]
    codes: dict[str, set[str]]

    def subject_ids(self, key: str) -> set[str]:
        if key in self.levels:
            return {key}
        return self.codes.get(key, set())


async def _area(db: Database, scope: Scope) -> AsyncIterator[tuple[str, int, Any]]:
    for facility in dict.fromkeys(scope.facility_ids):
        end = [facility, scope.depth] if scope.depth >= 0 else [facility, {}]
        async for row in db.iter_view("medic", "contacts_by_depth", startkey=[facility, 0], endkey=end):
            yield row["id"], row["key"][1], row.get("value")


def _batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Decider:
    """Decides one ``docs_by_replication_key`` row at a time, as ``visibility.doc_visible`` would."""

    def __init__(self, scope: Scope, area: _Area):
        self.scope = scope
        self.area = area
        self.tasks = set(user_keys(scope.user))
        self.sensitive = {scope.contact_id, *scope.facility_ids} - {None}

    def decide(self, key: str, value: Mapping[str, Any]) -> str:
        """``yes``, ``no`` or ``doc`` (the report must be read to decide)."""
        kind = value.get("type")
        if key == ALL_KEY:
            return "yes"
        if kind == "task":
            return "yes" if key in self.tasks else "no"
        if kind == "target":
            return "yes" if self.area.subject_ids(key) else "no"
        if kind != "data_record":
            return "no"  # contacts come from the area itself
        if key == UNASSIGNED_KEY:
            return "yes" if self.scope.unassigned else "no"
        ids = self.area.subject_ids(key)
        if not ids:
            return "no"
        if value.get("submitter") and ({key} | ids) & self.sensitive:
            return "doc"
        return "yes" if self.deep_enough(key, value) else "no"

    def deep_enough(self, key: str, value: Mapping[str, Any]) -> bool:
        """``report_depth`` limits reports about contacts below it, except the user's own."""
        if self.scope.report_depth < 0:
            return True
        if self.scope.contact_id is not None and value.get("submitter") == self.scope.contact_id:
            return True
        return min(self.area.levels[i] for i in self.area.subject_ids(key)) <= self.scope.report_depth

    def decide_with_doc(self, key: str, value: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
        contact = doc.get("contact") if isinstance(doc.get("contact"), Mapping) else None
        if contact is None or depth_in_scope(self.scope, contact) is None:
            return False
        return self.deep_enough(key, value)


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
    area = _Area({}, defaultdict(set))
    async for doc_id, level, code in _area(db, scope):
        if doc_id not in area.levels or level < area.levels[doc_id]:
            area.levels[doc_id] = level
        if isinstance(code, (str, int)) and not isinstance(code, bool) and str(code):
            area.codes[str(code)].add(doc_id)
        if doc_id not in seen:
            seen.add(doc_id)
            yield VisibleDoc(doc_id, "contact")
    decider = _Decider(scope, area)
    keys: list[str] = [ALL_KEY, *user_keys(scope.user), *area.levels, *area.codes]
    if scope.unassigned:
        keys.append(UNASSIGNED_KEY)
    undecided: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    for batch in _batches(dict.fromkeys(keys), KEY_BATCH):
        rows = (await db.view("medic", "docs_by_replication_key", keys=batch))["rows"]
        for row in rows:
            doc_id = row["id"]
            if doc_id in seen:
                continue
            value = row.get("value") or {}
            outcome = decider.decide(row["key"], value)
            if outcome == "yes":
                seen.add(doc_id)
                undecided.pop(doc_id, None)
                yield VisibleDoc(doc_id, value.get("type"))
            elif outcome == "doc":
                undecided[doc_id].append((row["key"], value))
    for batch in _batches(undecided.items(), DOC_BATCH):
        docs = await db.get_many(doc_id for doc_id, _ in batch)
        for doc_id, rows in batch:
            doc = docs.get(doc_id)
            if doc is not None and any(decider.decide_with_doc(k, v, doc) for k, v in rows):
                seen.add(doc_id)
                yield VisibleDoc(doc_id, doc.get("type"))


async def count(db: Database, scope: Scope, limit: int = WARN_LIMIT) -> Counts:
    """``users-info``: every visible doc, and those that are not tasks."""
    total = tasks = 0
    async for doc in visible_docs(db, scope):
        total += 1
        if doc.type == "task":
            tasks += 1
    return Counts(total_docs=total, warn_docs=total - tasks, limit=limit)
