"""``/api/v1/datapoint``: values per (region, campaign), aggregated up the region tree.

The value of an indicator at a region is its stored value when there is one;
otherwise it is the sum over the region's sub-regions at every depth, where
each sub-region counts with *its* value (stored, or itself aggregated). So a
stored value wins at every level, and nothing is counted twice when values
are stored at two levels of one branch.

How it is read: the ``agg`` view counts every stored value at its own region
and once per ancestor, in rows keyed ``[campaign, depth, region, block of 16
indicator ids]`` whose values hold six numbers per indicator: ``[own count,
own value, count below, total below, sum of their depths, sum of the squares
of their depths]``. CouchDB's built-in ``_sum`` adds them up element by
element and keeps the reductions in the index, so the requested regions of one
depth are read with one ``group=true`` range query per campaign (split where
their ids lie far apart), without running JavaScript at query time (a ``keys``
query would cost CouchDB a fold per key, several times the CPU). A region's
own value wins; otherwise, when all values below sit at one depth (the usual
case: count x sum of squares = square of the sum), the aggregate is the total.
When they sit at two or more depths, the buckets under the region are read
and the exact rule above is applied. Calculated indicators (part/whole
ratios) are computed after aggregation from the components' values at the
region: a ratio of sums.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from api.couch import Database

from .records import DDOC

BLOCK = 16  # indicators per row of the agg view (its map's 16)
PARALLEL_REQUESTS = 4
# Requested regions of one depth whose ids lie further apart are read with separate range queries: a range
# also returns the regions of that depth between them (regions made together get neighbouring ids).
SPAN_GAP = 256


@dataclass(frozen=True)
class Value:
    value: float | int
    is_agg: bool
    is_calc: bool = False


UNSURE = object()  # values below a region at two or more depths: the exact rule must be applied


def block_of(indicator_id: int) -> int:
    return indicator_id // BLOCK


def numbers_of(row: list[float | int], indicator_id: int) -> list[float | int] | None:
    """The six numbers of one indicator in a reduced ``agg`` row (None when it has none there)."""
    at = 6 * (indicator_id % BLOCK)
    found = row[at:at + 6]
    return found if len(found) == 6 and (found[0] or found[2]) else None


def rolled_up(numbers: list[float | int] | None, own_only: bool = False) -> Value | None | object:
    """One indicator's six numbers read: the stored value, the total below, None, or ``UNSURE``."""
    if not numbers:
        return None
    own, value, below, total, depths, squares = numbers
    if own:
        return Value(value, False)
    if own_only or not below:
        return None
    return Value(total, True) if below * squares == depths * depths else UNSURE


def spans(ids: Iterable[int], gap: int = SPAN_GAP) -> list[tuple[int, int]]:
    """Sorted ids cut into (first, last) runs wherever two neighbours lie more than ``gap`` apart."""
    out: list[tuple[int, int]] = []
    for rid in sorted(set(ids)):
        if out and rid - out[-1][1] <= gap:
            out[-1] = (out[-1][0], rid)
        else:
            out.append((rid, rid))
    return out


async def _rollups(db: Database, regions: Iterable[Mapping[str, Any]], campaign_ids: Iterable[int],
                   indicator_ids: set[int]) -> dict[tuple[int, int, int], list[float | int]]:
    """The six numbers of every (region, campaign, indicator) asked for that has any, by that triple."""
    by_depth: dict[int, set[int]] = {}
    for region in regions:
        by_depth.setdefault(region.get("depth") or 0, set()).add(region["id"])
    wanted = {rid for ids in by_depth.values() for rid in ids}
    blocks: dict[int, list[int]] = {}
    for ind in indicator_ids:
        blocks.setdefault(block_of(ind), []).append(ind)
    out: dict[tuple[int, int, int], list[float | int]] = {}
    gate = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def one(campaign_id: int, depth: int, first: int, last: int) -> None:
        async with gate:
            body = await db.view(DDOC, "agg", group=True, startkey=[campaign_id, depth, first],
                                 endkey=[campaign_id, depth, last, {}])
        for row in body["rows"]:
            _, _, rid, block = row["key"]
            if rid not in wanted or block not in blocks or not row.get("value"):
                continue
            for ind in blocks[block]:
                numbers = numbers_of(row["value"], ind)
                if numbers is not None:
                    out[(rid, campaign_id, ind)] = numbers

    await asyncio.gather(*(one(cid, depth, first, last) for cid in set(campaign_ids)
                           for depth, ids in by_depth.items() for first, last in spans(ids)))
    return out


def exact_total(root_id: int, nodes: Mapping[int, tuple[list[int], Mapping[str, Any]]],
                indicator_id: int) -> float | int | None:
    """The aggregate of ``root_id`` from every stored value below it: the values
    stored at regions with no stored value between them and the root."""
    key = str(indicator_id)
    stored = {rid for rid, (_, values) in nodes.items() if key in values}
    total: float | int = 0
    found = False
    for rid in stored:
        path, values = nodes[rid]
        if rid == root_id or root_id not in path:
            continue
        between = path[path.index(root_id) + 1:-1]
        if any(a in stored for a in between):
            continue
        total += values[key]
        found = True
    return total if found else None


async def _subtree(db: Database, region: Mapping[str, Any], campaign_id: int,
                   indicators: Iterable[int]) -> dict[int, tuple[list[int], dict[str, Any]]]:
    """Every stored value under a region for one campaign (for the exact rule), by region."""
    keys = [[campaign_id, region.get("depth") or 0, region["id"], b] for b in sorted({block_of(i) for i in indicators})]
    body = await db.view(DDOC, "agg", keys=keys, reduce=False)
    ids = {row["id"] for row in body["rows"]}
    nodes: dict[int, tuple[list[int], dict[str, Any]]] = {}
    for doc in (await db.get_many(ids)).values():
        paths = doc.get("paths") or {}
        for rid, values in (doc.get("values") or {}).items():
            if rid in paths:
                nodes[int(rid)] = (list(paths[rid]), values)
    return nodes


def calculate(calc: Mapping[str, Any], values: Mapping[int, Value]) -> Value | None:
    part, whole = values.get(calc["part"]), values.get(calc["whole"])
    if part is None or whole is None or not whole.value:
        return None
    if calc["type"] == "difference_ratio":
        ratio = (whole.value - part.value) / whole.value
    else:
        ratio = part.value / whole.value
    return Value(ratio, part.is_agg or whole.is_agg, True)


async def compute(db: Database, regions: list[Mapping[str, Any]], campaigns: list[Mapping[str, Any]],
                  indicators: list[Mapping[str, Any]]) -> dict[tuple[int, int], dict[int, Value]]:
    """Values of the indicators for every (region, campaign): stored, aggregated or calculated."""
    calculated = {i["id"]: i["calculation"] for i in indicators if i.get("calculation")}
    summed = {i["id"] for i in indicators if not i.get("calculation")}
    for calc in calculated.values():
        summed.update((calc["part"], calc["whole"]))
    own_only = set(calculated) - summed
    wanted_ids = sorted(summed | own_only)
    rows = await _rollups(db, regions, [c["id"] for c in campaigns], set(wanted_ids))
    out: dict[tuple[int, int], dict[int, Value]] = {}
    exact: list[tuple[Mapping[str, Any], int, set[int]]] = []
    for region in regions:
        rid = region["id"]
        for campaign in campaigns:
            cid = campaign["id"]
            values: dict[int, Value] = {}
            unsure: set[int] = set()
            for ind in wanted_ids:
                found = rolled_up(rows.get((rid, cid, ind)), ind in own_only)
                if found is UNSURE:
                    unsure.add(ind)
                elif isinstance(found, Value):
                    values[ind] = found
            out[(rid, cid)] = values
            if unsure:
                exact.append((region, cid, unsure))
    gate = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def settle(region: Mapping[str, Any], cid: int, unsure: set[int]) -> None:
        async with gate:
            nodes = await _subtree(db, region, cid, unsure)
        for ind in unsure:
            total = exact_total(region["id"], nodes, ind)
            if total is not None:
                out[(region["id"], cid)][ind] = Value(total, True)

    await asyncio.gather(*(settle(region, cid, unsure) for region, cid, unsure in exact))
    for values in out.values():
        for ind, calc in calculated.items():
            if ind in values:
                continue
            value = calculate(calc, values)
            if value is not None:
                values[ind] = value
    wanted = {i["id"] for i in indicators}
    return {pair: {i: v for i, v in values.items() if i in wanted} for pair, values in out.items()}


def objects(regions: list[Mapping[str, Any]], campaigns: list[Mapping[str, Any]],
            indicators: list[Mapping[str, Any]], values: Mapping[tuple[int, int], Mapping[int, Value]],
            no_pivot: bool) -> list[dict[str, Any]]:
    """The response objects: one per (region, campaign) with data, or one per value with ``no_pivot``."""
    out = []
    for region in regions:
        for campaign in campaigns:
            found = values.get((region["id"], campaign["id"])) or {}
            if not found:
                continue
            entries = [{"indicator": i["id"], "value": v.value, "is_agg": v.is_agg, "is_calc": v.is_calc}
                       if (v := found.get(i["id"])) is not None else
                       {"indicator": i["id"], "value": None, "is_agg": False, "is_calc": bool(i.get("calculation"))}
                       for i in indicators]
            if no_pivot:
                out.extend({"region": region["id"], "campaign": campaign["id"], "indicators": [e]}
                           for e in entries if e["value"] is not None)
            else:
                out.append({"region": region["id"], "campaign": campaign["id"], "indicators": entries})
    return out
