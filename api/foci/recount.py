"""The cluster recount: keep every cluster's ``cases`` equal to the cases of its country inside it.

Two entry points for the sentinel (see docs/foci.md):

* ``recount_country(db, country)``: a full recount of one country. It reads the
  country's clusters and case points from views, counts with an STRtree
  (``api.foci.geometry``) and writes only the counts that differ.
* ``recount_changes(db, state_db, docs)`` (and ``recount_change`` for one doc):
  the targeted recount for changed foci documents as the ``_changes`` feed
  delivers them (``include_docs``; deleted ones as tombstones). A changed
  cluster gets its own count again; a changed case makes the clusters that hold
  its previous or its new position count again. Each cluster is counted exactly
  from the cases in the geohash cells around it, so a recount never depends on
  how many times it ran.

Where a case was last counted is kept by the sentinel in ``state_db`` (doc
``foci-recount:<case doc id>`` with ``country`` and ``point``), because neither
a moved case's new revision nor a deleted case's tombstone reliably says where
it was. A case without such a record whose revision is not its first falls back
to a full recount of its country (data from before the sentinel ran, or written
around it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from api.couch import Database, rev_generation

from . import geometry as geo
from .foci import CASE, CLUSTER, DDOC, TYPES, now_ms, parse_doc_id

log = logging.getLogger("jamii.foci.recount")

STATE_PREFIX = "foci-recount:"
PAGE = 50000  # view rows per request: a page of points is ~5 MB of JSON
KEYS_PER_QUERY = 2000
CONCURRENCY = 8
# Above this many moved cases or clusters to recount in one country in one
# batch (a bulk upload), one full recount is cheaper than looking each up.
FULL_RECOUNT_ABOVE = 200

Position = tuple[str, tuple[float, float]]  # (country, (lon, lat))


@dataclass
class RecountResult:
    clusters: int = 0  # clusters counted
    cases: int = 0  # case points read
    changed: list[str] = field(default_factory=list)  # doc ids of clusters whose count was written
    full: list[str] = field(default_factory=list)  # countries recounted in full
    deferred: list[str] = field(default_factory=list)  # countries that need a full recount (defer_full=True)
    seconds: float = 0.0

    def add(self, other: "RecountResult") -> None:
        self.clusters += other.clusters
        self.cases += other.cases
        self.changed.extend(other.changed)
        self.full.extend(other.full)
        self.deferred.extend(other.deferred)


# -- reading ------------------------------------------------------------------

async def read_clusters(db: Database, country: str) -> list[dict[str, Any]]:
    """Every cluster doc of a country."""
    return [row["doc"] async for row in db.iter_view(
        DDOC, "clusters_by_country", page_size=2000, startkey=[country], endkey=[country, {}],
        include_docs=True, reduce=False) if row.get("doc")]


async def read_points(db: Database, country: str, cells: Iterable[str] = ("",)) -> np.ndarray:
    """The (lon, lat) of the country's cases in the given geohash cells ("" is every case)."""
    values: list[list[float]] = []
    for cell in cells:
        async for row in db.iter_view(DDOC, "case_points", page_size=PAGE, startkey=[country, cell],
                                      endkey=[country, cell + "\ufff0"]):
            values.append(row["value"])
    return geo.as_points(values)


async def clusters_at(db: Database, country: str, points: Iterable[tuple[float, float]]) -> dict[str, dict[str, Any]]:
    """The cluster docs of a country whose polygon holds any of ``points``, by doc id."""
    points = list(dict.fromkeys(points))
    keys = sorted({(country, prefix) for lon, lat in points for prefix in geo.point_prefixes(lon, lat)})
    candidates: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), KEYS_PER_QUERY):
        body = await db.view(DDOC, "clusters_by_cell", keys=[list(k) for k in keys[start:start + KEYS_PER_QUERY]],
                             include_docs=True)
        for row in body.get("rows") or []:
            if row.get("doc"):
                candidates[row["id"]] = row["doc"]
    hit = geo.clusters_to_recount(((i, d.get("geometry")) for i, d in candidates.items()), points)
    return {i: candidates[i] for i in hit}


# -- writing ------------------------------------------------------------------

async def write_counts(db: Database, counted: list[tuple[dict[str, Any], int]]) -> list[str]:
    """Write new counts; returns the doc ids written.

    On a conflict the doc is read again; the count still holds when its
    geometry is the one that was counted (else its own change will be
    recounted, so it is left alone).
    """
    pending = [(doc, n) for doc, n in counted if doc.get("cases") != n]
    written: list[str] = []
    for _ in range(3):
        if not pending:
            break
        now = now_ms()
        for doc, n in pending:
            doc["cases"] = n
            doc["updated_at"] = now
        retry: list[tuple[dict[str, Any], int]] = []
        for start in range(0, len(pending), 1000):
            chunk = pending[start:start + 1000]
            results = await db.bulk_docs([doc for doc, _ in chunk])
            for (doc, n), result in zip(chunk, results):
                if result.get("ok"):
                    written.append(doc["_id"])
                elif result.get("error") == "conflict":
                    retry.append((doc, n))
                else:
                    log.warning("recount: could not write %s: %s", doc["_id"], result)
        pending = []
        if retry:
            fresh = await db.get_many(doc["_id"] for doc, _ in retry)
            for doc, n in retry:
                current = fresh.get(doc["_id"])
                if current and current.get("geometry") == doc.get("geometry") and current.get("cases") != n:
                    pending.append((current, n))
    return written


# -- full recount ---------------------------------------------------------------

async def recount_country(db: Database, country: str) -> RecountResult:
    """Count every cluster of a country again and write the counts that changed."""
    started = time.monotonic()
    clusters, points = await asyncio.gather(read_clusters(db, country), read_points(db, country))
    counts = geo.count_cases(((doc["_id"], doc.get("geometry")) for doc in clusters), points)
    changed = await write_counts(db, [(doc, counts[doc["_id"]]) for doc in clusters if doc["_id"] in counts])
    return RecountResult(clusters=len(counts), cases=len(points), changed=changed, full=[country],
                         seconds=time.monotonic() - started)


async def recount_all(db: Database, countries: Iterable[str]) -> dict[str, RecountResult]:
    """A full recount of each country (a safety net to run now and then, and after importing data)."""
    return {country: await recount_country(db, country) for country in countries}


# -- targeted recount ---------------------------------------------------------------

def _id_country(doc_id: str) -> str:
    parsed = parse_doc_id(doc_id)
    assert parsed is not None  # only foci ids get here
    return parsed[1]


def _position(doc: Mapping[str, Any]) -> Position | None:
    """Where a case doc is now (None when deleted or unusable)."""
    if doc.get("_deleted") or doc.get("type") != TYPES[CASE] or not isinstance(doc.get("country"), str):
        return None
    point = geo.point_of(doc.get("geometry"))
    return None if point is None else (doc["country"], point)


def _state_position(state: Mapping[str, Any] | None) -> Position | None:
    if not state or not isinstance(state.get("country"), str):
        return None
    point = geo.point_of({"type": "Point", "coordinates": state.get("point")})
    return None if point is None else (state["country"], point)


async def count_cluster(db: Database, doc: Mapping[str, Any]) -> int | None:
    """The exact count of one cluster, from the case points in the cells around it."""
    bbox = geo.bbox_of(doc.get("geometry"))
    if bbox is None or not isinstance(doc.get("country"), str):
        return None
    points = await read_points(db, doc["country"], geo.covering_cells(bbox, geo.POINT_LEVEL))
    return geo.count_in(doc.get("geometry"), points)


async def _recount_clusters(db: Database, ids: Iterable[str]) -> RecountResult:
    """Count these clusters exactly; clusters that share geohash cells read each cell once."""
    docs = [d for d in (await db.get_many(ids)).values()
            if d.get("type") == TYPES[CLUSTER] and isinstance(d.get("country"), str)]
    cells_of: dict[str, list[tuple[str, str]]] = {}
    for doc in docs:
        bbox = geo.bbox_of(doc.get("geometry"))
        if bbox is not None:
            cells_of[doc["_id"]] = [(doc["country"], c) for c in geo.covering_cells(bbox, geo.POINT_LEVEL)]
    wanted = sorted({cell for cells in cells_of.values() for cell in cells})
    limit = asyncio.Semaphore(CONCURRENCY)

    async def read(country: str, cell: str) -> np.ndarray:
        async with limit:
            return await read_points(db, country, [cell])

    arrays = dict(zip(wanted, await asyncio.gather(*(read(*cell) for cell in wanted))))
    counted = []
    for doc in docs:
        if doc["_id"] in cells_of:
            points = np.concatenate([arrays[cell] for cell in cells_of[doc["_id"]]])
            n = geo.count_in(doc.get("geometry"), points)
            if n is not None:
                counted.append((doc, n))
    return RecountResult(clusters=len(counted), cases=sum(len(a) for a in arrays.values()),
                         changed=await write_counts(db, counted))


async def recount_changes(db: Database, state_db: Database, docs: Iterable[Mapping[str, Any]], *,
                          defer_full: bool = False) -> RecountResult:
    """Bring the counts up to date after these foci docs changed (other docs are ignored).

    ``docs`` are the changed docs as ``_changes?include_docs=true`` gives them,
    tombstones included. Safe to call again with the same docs.

    Some changes need a full recount of their country (a bulk upload, a case
    the sentinel never saw before). With ``defer_full`` those countries are
    listed in ``deferred`` instead of recounted, so a caller working through a
    backlog can run ``recount_country`` once when it has caught up rather than
    once per batch.
    """
    started = time.monotonic()
    cases: dict[str, Mapping[str, Any]] = {}
    clusters: dict[str, Mapping[str, Any]] = {}
    for doc in docs:
        parsed = parse_doc_id(str(doc.get("_id", "")))
        if parsed is not None:
            (cases if parsed[0] == CASE else clusters)[doc["_id"]] = doc
    states = await state_db.get_many(STATE_PREFIX + i for i in cases)

    full: set[str] = set()
    lookups: dict[str, set[tuple[float, float]]] = defaultdict(set)
    moved: Counter[str] = Counter()
    state_writes: list[dict[str, Any]] = []
    for case_id, doc in cases.items():
        id_country = _id_country(case_id)
        state = states.get(STATE_PREFIX + case_id)
        now = _position(doc)
        before = _state_position(state)
        if state is not None:
            if before == now:
                continue  # not moved since it was last counted
        elif doc.get("_deleted") or rev_generation(doc.get("_rev")) > 1:
            full.add(now[0] if now else id_country)  # where it was counted before is unknown
        elif now is None:
            continue  # a first revision that is not a usable case was never counted
        for position in (before, now):
            if position is not None:
                lookups[position[0]].add(position[1])
                moved[position[0]] += 1
        if now is not None:
            state_writes.append({"_id": STATE_PREFIX + case_id, "country": now[0], "point": list(now[1]),
                                 **({"_rev": state["_rev"]} if state else {})})
        elif state is not None:
            state_writes.append({"_id": state["_id"], "_rev": state["_rev"], "_deleted": True})

    full.update(country for country, n in moved.items() if n > FULL_RECOUNT_ABOVE)
    targets: dict[str, set[str]] = defaultdict(set)
    for country, points in lookups.items():
        if country not in full:
            targets[country].update(await clusters_at(db, country, points))
    for cluster_id, doc in clusters.items():
        country = doc["country"] if isinstance(doc.get("country"), str) else _id_country(cluster_id)
        if not doc.get("_deleted") and country not in full:
            targets[country].add(cluster_id)
    for country, ids in list(targets.items()):
        if len(ids) > FULL_RECOUNT_ABOVE:
            full.add(country)

    result = RecountResult()
    for country in sorted(full):
        if defer_full:
            result.deferred.append(country)
        else:
            result.add(await recount_country(db, country))
    for country, ids in targets.items():
        if country not in full and ids:
            result.add(await _recount_clusters(db, ids))
    if state_writes:
        for outcome in await state_db.bulk_docs(state_writes):
            if outcome.get("error"):
                log.warning("recount: could not record %s: %s", outcome.get("id"), outcome.get("error"))
    result.seconds = time.monotonic() - started
    return result


async def recount_change(db: Database, state_db: Database, doc: Mapping[str, Any]) -> RecountResult:
    """``recount_changes`` for one changed doc."""
    return await recount_changes(db, state_db, [doc])
