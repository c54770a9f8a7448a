"""``/api/v1/datapoint`` over a large generated region tree: median time for 20 indicators x 50 regions.

    python -m bench.datapoints                      # 100,000 datapoints
    python -m bench.datapoints --datapoints 1000000 # the issue's size

The tree is 1 country > 5 provinces > 50 districts > sub-districts > 10
settlements each, with one value per (settlement, campaign, indicator):
``datapoints / (indicators x campaigns)`` settlements. The 50 regions asked
for are the 50 districts, so every answer is an aggregate over every
settlement below (the usual dashboard). Printed: data generation and index
build times, the API's median and 95th percentile, and the same ``agg`` view
query sent straight to CouchDB (the API's share is the difference).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import aiohttp

from api.couch import Database
from api.datapoints import entry
from api.datapoints.model import now_iso

from .common import bench_stack, median_ms, percentile_ms

PROVINCES, DISTRICTS, SETTLEMENTS_PER_SUB = 5, 50, 10


def record(kind: str, n: int, **fields: Any) -> dict[str, Any]:
    return {"_id": f"{kind}:{n}", "kind": kind, "id": n, **fields, "created_at": now_iso()}


def region(n: int, name: str, level: int, parent: list[int]) -> dict[str, Any]:
    path = parent + [n]
    return record("region", n, name=name, slug=name.lower(), region_code=name, region_type_id=level + 1,
                  office_id=1, parent_region_id=parent[-1] if parent else None, latitude=None, longitude=None,
                  shape_file_path=None, source_id=None, path=path, depth=level)


def tree(settlements: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Regions depth first (siblings get consecutive ids, as an import makes them): all, districts, settlements."""
    subs = max(DISTRICTS, settlements // SETTLEMENTS_PER_SUB)
    regions: list[dict[str, Any]] = []
    counter = iter(range(1, 10 ** 9))

    def add(name: str, level: int, parent: list[int]) -> dict[str, Any]:
        doc = region(next(counter), name, level, parent)
        regions.append(doc)
        return doc

    country = add("Country", 0, [])
    districts, leaves = [], []
    per_district = [subs // DISTRICTS + (1 if i < subs % DISTRICTS else 0) for i in range(DISTRICTS)]
    left = settlements
    for p in range(PROVINCES):
        province = add(f"P{p}", 1, country["path"])
        for d in range(DISTRICTS // PROVINCES):
            index = p * (DISTRICTS // PROVINCES) + d
            district = add(f"P{p}D{d}", 2, province["path"])
            districts.append(district)
            for s in range(per_district[index]):
                sub = add(f"P{p}D{d}S{s}", 3, district["path"])
                for t in range(min(SETTLEMENTS_PER_SUB, left)):
                    leaves.append(add(f"P{p}D{d}S{s}T{t}", 4, sub["path"]))
                    left -= 1
    return regions, districts, leaves


async def bulk(db: Database, docs: list[dict[str, Any]], size: int = 1000) -> None:
    for i in range(0, len(docs), size):
        results = await db.bulk_docs(docs[i:i + size])
        failed = [r for r in results if r.get("error")]
        if failed:
            raise RuntimeError(f"bulk write failed: {failed[0]}")


async def generate(db: Database, datapoints: int, indicators: int, campaigns: int,
                   rng: random.Random) -> tuple[list[dict[str, Any]], dict[tuple[int, int, int], int]]:
    settlements = max(1, datapoints // (indicators * campaigns))
    regions, districts, leaves = tree(settlements)
    meta = [record("office", 1, name="office"), record("campaign_type", 1, name="NID")]
    meta += [record("region_type", i + 1, name=n) for i, n in
             enumerate(("country", "province", "district", "sub-district", "settlement"))]
    meta += [record("indicator", i, name=f"Indicator {i}", short_name=f"i{i}", slug=f"i{i}", description="",
                    is_reported=True, source_id=None, source_name="", bound_json=[], tag_json=[], calculation=None)
             for i in range(1, indicators + 1)]
    meta += [record("campaign", c, name=f"c{c}", slug=f"c{c}", start_date=f"2016-{c:02d}-01",
                    end_date=f"2016-{c:02d}-05", office_id=1, campaign_type_id=1) for c in range(1, campaigns + 1)]
    await bulk(db, meta + regions)
    buckets: dict[str, dict[str, Any]] = {}
    totals: dict[tuple[int, int, int], int] = {}
    district_of = {leaf["id"]: leaf["path"][2] for leaf in leaves}
    for campaign in range(1, campaigns + 1):
        for leaf in leaves:
            key = entry.bucket_id(campaign, leaf["id"])
            bucket = buckets.setdefault(key, entry.new_bucket(campaign, leaf["id"]))
            for indicator in range(1, indicators + 1):
                value = rng.randint(0, 1000)
                entry.set_value(bucket, leaf, indicator, value, {"by": 1, "at": "2016-01-01T00:00:00.000"})
                total_key = (district_of[leaf["id"]], campaign, indicator)
                totals[total_key] = totals.get(total_key, 0) + value
    await bulk(db, list(buckets.values()), size=200)
    return districts, totals


async def timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, Any]:
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {body}")
    return time.perf_counter() - started, body


async def run(datapoints: int = 100_000, indicators: int = 20, campaigns: int = 5,
              repeat: int = 21) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    rng = random.Random(9)
    async with bench_stack() as stack:
        db = stack.couch.db(stack.config.db_datapoints)
        started = time.perf_counter()
        districts, totals = await generate(db, datapoints, indicators, campaigns, rng)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        for view in ("agg", "ids", "region_offices"):
            await db.view("datapoints", view, limit=0, timeout=36000,
                          **({"reduce": False} if view == "agg" else {}))
        indexed = time.perf_counter() - started
        docs = (await db.info())["doc_count"]
        print(f"datapoints: {datapoints:,} values in {docs:,} docs; generated in {generated:.1f}s, "
              f"views built in {indexed:.1f}s")
        indicator_ids = ",".join(str(i) for i in range(1, indicators + 1))
        region_ids = ",".join(str(d["id"]) for d in districts)
        headers = stack.admin_headers
        async with aiohttp.ClientSession() as session:
            base = f"{stack.api_url}/api/v1/datapoint/?indicator__in={indicator_ids}&region__in={region_ids}&limit=0"
            _, warm = await timed(session, base + "&campaign__in=1", headers)
            wrong = [(o["region"], e["indicator"]) for o in warm["objects"] for e in o["indicators"]
                     if e["value"] != totals[(o["region"], 1, e["indicator"])]]
            if wrong or len(warm["objects"]) != len(districts):
                raise RuntimeError(f"aggregates differ from the generated sums: {wrong[:5]}")
            figures = {}
            for label, query in (("1 campaign", "&campaign__in=1"), (f"{campaigns} campaigns", "")):
                times = [(await timed(session, base + query, headers))[0] for _ in range(repeat)]
                figures[label] = times
                print(f"  /api/v1/datapoint {indicators} indicators x {len(districts)} districts, {label}: "
                      f"median {median_ms(times):.0f} ms, p95 {percentile_ms(times, 95):.0f} ms")
            ids = [d["id"] for d in districts]
            raw = []
            for _ in range(repeat):
                started = time.perf_counter()
                await db.view("datapoints", "agg", group=True, startkey=[1, 2, min(ids)], endkey=[1, 2, max(ids), {}])
                raw.append(time.perf_counter() - started)
            api = median_ms(figures["1 campaign"])
            print(f"  the agg view query alone, straight to CouchDB, 1 campaign: median {median_ms(raw):.0f} ms "
                  f"(the API takes {api / max(median_ms(raw), 0.001):.1f}x that)")
            return {"datapoints": datapoints, "api_ms": api,
                    "all_campaigns_ms": median_ms(figures[f"{campaigns} campaigns"]),
                    "couchdb_ms": median_ms(raw), "ratio": api / max(median_ms(raw), 0.001)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datapoints", type=int, default=100_000, help="stored values to generate (default 100000)")
    parser.add_argument("--indicators", type=int, default=20)
    parser.add_argument("--campaigns", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=21, help="timed requests per figure")
    args = parser.parse_args()
    asyncio.run(run(args.datapoints, args.indicators, args.campaigns, args.repeat))


if __name__ == "__main__":
    main()
