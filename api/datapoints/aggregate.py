"""``/api/v1/datapoint``: values per (region, campaign), aggregated up the region tree.

The value of an indicator at a region is its stored value when there is one;
otherwise it is the sum over the region's sub-regions at every depth, where
each sub-region counts with *its* value (stored, or itself aggregated). So a
stored value wins at every level, and nothing is counted twice when values
are stored at two levels of one branch.

How it is read: the ``agg`` view reduces, per (region, campaign, block of 64
indicator ids), every value stored in the region's subtree to
``[shallowest depth, sum at that depth, deepest depth, total]``. One POSTed
``keys`` query with ``group=true`` returns these for every requested region
and campaign. The shallowest depth being the region's own means a stored
value; otherwise, when all values below sit at one depth (the usual case),
the aggregate is the total. When they sit at two or more depths, the buckets
under the region are read and the exact rule above is applied. Calculated indicators (part/whole ratios) are computed after
aggregation from the components' values at the region: a ratio of sums.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from api.couch import Database

from .records import DDOC

BLOCK = 64
KEYS_PER_REQUEST = 1000
PARALLEL_REQUESTS = 4


@dataclass(frozen=True)
class Value:
    value: float | int
    is_agg: bool
    is_calc: bool = False


def block_of(indicator_id: int) -> int:
    return indicator_id // BLOCK


async def _sums(db: Database, keys: list[list[int]]) -> dict[tuple[int, ...], dict[str, Any]]:
    out: dict[tuple[int, ...], dict[str, Any]] = {}
    gate = asyncio.Semaphore(PARALLEL_REQUESTS)

    async def one(chunk: list[list[int]]) -> None:
        async with gate:
            body = await db.view(DDOC, "agg", keys=chunk, group=True)
        for row in body["rows"]:
            if row.get("value"):
                out[tuple(row["key"])] = row["value"]

    await asyncio.gather(*(one(keys[i:i + KEYS_PER_REQUEST]) for i in range(0, len(keys), KEYS_PER_REQUEST)))
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
    keys = [[region["id"], campaign_id, b] for b in sorted({block_of(i) for i in indicators})]
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
    blocks = sorted({block_of(i) for i in summed | own_only})
    sums = await _sums(db, [[r["id"], c["id"], b] for r in regions for c in campaigns for b in blocks])
    out: dict[tuple[int, int], dict[int, Value]] = {}
    exact: list[tuple[Mapping[str, Any], int, set[int]]] = []
    for region in regions:
        rid, depth = region["id"], region["depth"]
        for campaign in campaigns:
            cid = campaign["id"]
            values: dict[int, Value] = {}
            unsure: set[int] = set()
            for ind in summed | own_only:
                found = sums.get((rid, cid, block_of(ind)), {}).get(str(ind))
                if found is None:
                    continue
                shallowest, at_shallowest, deepest, total = found
                if shallowest == depth:
                    values[ind] = Value(at_shallowest, False)
                elif ind in own_only:
                    continue
                elif shallowest == deepest:
                    values[ind] = Value(total, True)
                else:
                    unsure.add(ind)
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
