"""Foci recount: how long counting the cases of every cluster of a country takes.

    python -m bench.foci                                  # 100k cases x 5k clusters, pure and against the server
    python -m bench.foci --server-cases 20000 --server-clusters 1000
    python -m bench.foci --skip-server

Prints
* the pure STRtree recount (api.foci.geometry) on synthetic data of the given
  size: building the tree from GeoJSON, and counting the points;
* against a throwaway server (loaded through the API's bulk create): view index
  builds, ``recount_country`` (first run writes every count, second run finds
  nothing to change), the time to read the same view rows straight from
  CouchDB (the floor for any recount that reads them), the targeted
  ``recount_changes`` after one case moves and after one cluster is reshaped,
  and the count endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time
from typing import Any

import aiohttp
from shapely.geometry import Polygon

from api.foci import geometry as geo
from api.foci.recount import read_points, recount_changes, recount_country

from .common import bench_stack, median_ms

COUNTRY = "swz"
# Eswatini's bounding box, roughly: the data lands where a real program's would.
BOX = (30.79, -27.32, 32.14, -25.72)


def synthetic(n_cases: int, n_clusters: int, seed: int = 8) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Clusters (star-shaped polygons, 0.5-3 km across) and cases (60% around clusters, 40% anywhere)."""
    rng = random.Random(seed)
    clusters, centres = [], []
    for i in range(n_clusters):
        cx, cy = rng.uniform(BOX[0] + 0.05, BOX[2] - 0.05), rng.uniform(BOX[1] + 0.05, BOX[3] - 0.05)
        radius = rng.uniform(0.005, 0.03)
        vertices = rng.randint(6, 14)
        while True:  # evenly spaced, jittered angles; the rare ring GEOS finds degenerate is drawn again
            angles = [(k + rng.uniform(0, 0.8)) * 2 * math.pi / vertices for k in range(vertices)]
            ring = [[cx + radius * rng.uniform(0.6, 1) * math.cos(a), cy + radius * rng.uniform(0.6, 1) * math.sin(a)]
                    for a in angles]
            ring.append(ring[0])
            if Polygon(ring).is_valid:
                break
        clusters.append({"id": f"cluster-{i:05d}", "status": "active",
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
        centres.append((cx, cy, radius))
    cases = []
    for i in range(n_cases):
        if centres and rng.random() < 0.6:
            cx, cy, radius = rng.choice(centres)
            lon, lat = rng.gauss(cx, radius / 1.5), rng.gauss(cy, radius / 1.5)
        else:
            lon, lat = rng.uniform(BOX[0], BOX[2]), rng.uniform(BOX[1], BOX[3])
        cases.append({"id": f"case-{i:06d}", "geometry": {"type": "Point", "coordinates": [lon, lat]}})
    return cases, clusters


def pure(cases: list[dict[str, Any]], clusters: list[dict[str, Any]], runs: int) -> float:
    """Print the pure recount's figures; return its median total in ms."""
    pairs = [(c["id"], c["geometry"]) for c in clusters]
    points = geo.as_points(c["geometry"]["coordinates"] for c in cases)
    builds, counts = [], []
    for _ in range(runs):
        started = time.perf_counter()
        index = geo.ClusterIndex.build(pairs)
        built = time.perf_counter()
        totals = index.counts(points)
        counts.append(time.perf_counter() - built)
        builds.append(built - started)
    inside = sum(totals.values())
    print(f"pure STRtree recount, {len(cases):,} cases x {len(clusters):,} clusters (median of {runs}):")
    print(f"  build the tree from GeoJSON  {median_ms(builds):8.1f} ms")
    print(f"  count every cluster          {median_ms(counts):8.1f} ms")
    print(f"  total                        {median_ms([b + c for b, c in zip(builds, counts)]):8.1f} ms"
          f"   ({inside:,} case-in-cluster hits; {sum(1 for v in totals.values() if v):,} clusters with cases)")
    return median_ms([b + c for b, c in zip(builds, counts)])


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await coro
    return result, time.perf_counter() - started


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> None:
    async with session.post(url, json=body) as response:
        if response.status not in (200, 201):
            raise SystemExit(f"{url}: {response.status} {await response.text()}")


async def server(cases: list[dict[str, Any]], clusters: list[dict[str, Any]], moves: int) -> dict[str, float]:
    """Print the figures against a server; return the headline ones."""
    print(f"\nagainst the server (embedded pouchdb-server unless COUCH_URL is set), "
          f"{len(cases):,} cases x {len(clusters):,} clusters:")
    async with bench_stack() as stack:
        db = stack.couch.db(stack.config.db_foci)
        state = stack.couch.db(stack.config.db_sentinel)
        async with aiohttp.ClientSession(headers=stack.admin_headers) as session:
            before_load = (await db.info())["update_seq"]
            started = time.perf_counter()
            for start in range(0, len(clusters), 5000):
                await post(session, f"{stack.api_url}/v6/foci/cluster?country={COUNTRY}", clusters[start:start + 5000])
            for start in range(0, len(cases), 10000):
                await post(session, f"{stack.api_url}/v6/foci/case?country={COUNTRY}", cases[start:start + 10000])
            loaded = time.perf_counter() - started
            print(f"  load through the API (bulk create)   {loaded:8.1f} s    "
                  f"({(len(cases) + len(clusters)) / loaded:,.0f} records/s)")
            for view in ("cases_by_country", "case_points", "clusters_by_country", "clusters_by_cell"):
                _, took = await timed(db.view("foci", view, limit=0, timeout=3600))
                print(f"  build view {view:<24} {took:8.1f} s")

            since = (await db.info())["update_seq"]
            first, took_first = await timed(recount_country(db, COUNTRY))
            print(f"  recount_country, first (writes)      {took_first * 1000:8.0f} ms   "
                  f"({len(first.changed):,} counts written)")
            runs = []
            for _ in range(3):
                again, took = await timed(recount_country(db, COUNTRY))
                runs.append(took)
            print(f"  recount_country, nothing to change   {median_ms(runs):8.0f} ms   "
                  f"({len(again.changed)} written; median of 3)")
            raw = []
            for _ in range(3):
                _, took = await timed(read_points(db, COUNTRY))
                raw.append(took)
            print(f"  read the case points view only      {median_ms(raw):8.0f} ms   "
                  f"(recount / raw read = {statistics.median(runs) / statistics.median(raw):.2f}x)")
            # The sentinel then reads the load from _changes in batches: each case gets its
            # "last counted at" record, and the counts (already right) are checked again.
            since, batches, deferred = before_load, [], set()
            while True:
                body = await db.changes(since=since, include_docs=True, limit=1000)
                if not body["results"]:
                    break
                since = body["last_seq"]
                result, took = await timed(recount_changes(db, state, [r["doc"] for r in body["results"]],
                                                           defer_full=True))
                deferred.update(result.deferred)
                batches.append(took)
            for country in deferred:
                _, took = await timed(recount_country(db, country))
                batches.append(took)
            print(f"  sentinel catch-up after the load     {sum(batches):8.1f} s    "
                  f"({len(batches) - len(deferred)} batches of up to 1,000 changes, median "
                  f"{median_ms(batches[:len(batches) - len(deferred)]):.0f} ms, then {len(deferred)} full recount)")

            rng = random.Random(1)
            move_times = []
            for i in range(moves):
                case = cases[rng.randrange(len(cases))]
                lon, lat = case["geometry"]["coordinates"]
                moved = {"id": case["id"], "geometry": {"type": "Point", "coordinates": [lon + 0.01, lat]}}
                async with session.put(f"{stack.api_url}/v6/foci/case?country={COUNTRY}", json=moved) as r:
                    assert r.status == 200, await r.text()
                body = await db.changes(since=since, include_docs=True)
                since = body["last_seq"]
                result, took = await timed(recount_changes(db, state, [r["doc"] for r in body["results"]]))
                assert not result.full, "a case the sentinel has seen is recounted in place"
                move_times.append(took)
            print(f"  recount_changes, one case moved      {median_ms(move_times):8.0f} ms   (median of {moves})")
            reshape_times = []
            for i in range(moves):
                cluster = clusters[rng.randrange(len(clusters))]
                ring = [[x + 0.002, y] for x, y in cluster["geometry"]["coordinates"][0]]
                async with session.put(f"{stack.api_url}/v6/foci/cluster?country={COUNTRY}",
                                       json={"id": cluster["id"], "geometry": {"type": "Polygon",
                                                                               "coordinates": [ring]}}) as r:
                    assert r.status == 200, await r.text()
                body = await db.changes(since=since, include_docs=True)
                since = body["last_seq"]
                _, took = await timed(recount_changes(db, state, [r["doc"] for r in body["results"]]))
                reshape_times.append(took)
            print(f"  recount_changes, one cluster reshaped{median_ms(reshape_times):8.0f} ms   (median of {moves})")

            for what in ("number_of_cases", "number_of_clusters"):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    async with session.get(f"{stack.api_url}/v6/foci/{what}?country={COUNTRY}") as r:
                        count = (await r.json())["count"]
                    times.append(time.perf_counter() - started)
                print(f"  GET {what:<32} {median_ms(times):8.0f} ms   (count {count:,}; reduce over the range)")
            return {"recount_ms": median_ms(runs), "raw_read_ms": median_ms(raw),
                    "ratio": statistics.median(runs) / statistics.median(raw), "one_move_ms": median_ms(move_times)}


def run(cases: int = 100_000, clusters: int = 5_000, server_cases: int | None = None,
        server_clusters: int | None = None, runs: int = 5, moves: int = 10,
        skip_server: bool = False) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    all_cases, all_clusters = synthetic(cases, clusters)
    figures = {"cases": cases, "clusters": clusters, "pure_ms": pure(all_cases, all_clusters, runs)}
    if not skip_server:
        server_data = synthetic(server_cases if server_cases is not None else cases,
                                server_clusters if server_clusters is not None else clusters)
        figures.update(server_cases=len(server_data[0]), server_clusters=len(server_data[1]),
                       **asyncio.run(server(*server_data, moves)))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=5_000)
    parser.add_argument("--server-cases", type=int, default=None, help="defaults to --cases")
    parser.add_argument("--server-clusters", type=int, default=None, help="defaults to --clusters")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--moves", type=int, default=10)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    run(args.cases, args.clusters, args.server_cases, args.server_clusters, args.runs, args.moves, args.skip_server)


if __name__ == "__main__":
    main()
