"""GET /api/v1/contact/{uuid} through the API against a direct CouchDB GET of the same docs.

20 concurrent keep-alive clients (one connection each, run in a separate
process so they do not share the API's event loop) read random people of a
generated hierarchy (district > health center > clinic > person: a person is
a depth-4 contact, three ancestors above it). Printed: median and p95
latency of direct CouchDB, the API, and the API with ``with_lineage=true``,
and their ratios to direct CouchDB (goal for the plain read: <= 1.3x).

    python -m bench.contacts [--requests 4000] [--clients 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from concurrent.futures import ProcessPoolExecutor

import aiohttp

from api.couch import basic_auth
from tests.hierarchy import build, load

from .common import bench_stack, median_ms, percentile_ms


async def _client(template: str, ids: list[str], count: int, headers: dict[str, str], seed: int) -> list[float]:
    rng = random.Random(seed)
    timings: list[float] = []
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        for _ in range(count):
            url = template.format(id=rng.choice(ids))
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url}: {response.status}")
            timings.append(time.perf_counter() - started)
    return timings


async def _clients(template: str, ids: list[str], requests: int, clients: int,
                   headers: dict[str, str]) -> list[float]:
    per_client = max(1, requests // clients)
    results = await asyncio.gather(*(_client(template, ids, per_client, headers, seed)
                                     for seed in range(clients)))
    return [t for timings in results for t in timings]


def _load(template: str, ids: list[str], requests: int, clients: int, headers: dict[str, str]) -> list[float]:
    return asyncio.run(_clients(template, ids, requests, clients, headers))


async def _run(pool: ProcessPoolExecutor, template: str, ids: list[str], requests: int, clients: int,
               headers: dict[str, str]) -> list[float]:
    return await asyncio.get_running_loop().run_in_executor(pool, _load, template, ids, requests, clients, headers)


async def main(requests: int, clients: int) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        hierarchy = build(seed=7, districts=2, centers=4, clinics=8, people=30, reports_per_clinic=0)
        db = stack.couch.db(stack.config.db_medic)
        await load(db, hierarchy)
        ids = hierarchy.people
        headers = {"Authorization": basic_auth(*stack.admin), "Accept": "application/json"}
        medic = f"{stack.couch_url}/{stack.config.db_medic}"
        cases = [
            ("couchdb GET /medic/{id}", medic + "/{id}"),
            ("api GET /api/v1/contact/{id}", stack.api_url + "/api/v1/contact/{id}"),
            ("api ... ?with_lineage=true", stack.api_url + "/api/v1/contact/{id}?with_lineage=true"),
        ]
        print(f"{len(hierarchy.docs)} contacts; {clients} keep-alive clients, ~{requests} requests per case")
        pool = ProcessPoolExecutor(max_workers=1)
        for _, template in cases:  # warm up connections, caches and the auth cache
            await _run(pool, template, ids, clients * 5, clients, headers)
        medians: dict[str, float] = {}
        for name, template in cases:
            timings = await _run(pool, template, ids, requests, clients, headers)
            medians[name] = median_ms(timings)
            print(f"{name:34s} median {medians[name]:6.2f} ms   p95 {percentile_ms(timings, 95):6.2f} ms")
        direct = medians[cases[0][0]]
        print(f"ratio api / couchdb:              {medians[cases[1][0]] / direct:.2f}x  (goal <= 1.3x)")
        print(f"ratio with_lineage / couchdb:     {medians[cases[2][0]] / direct:.2f}x  (goal <= 2x; "
              "one request once the doc was read before, two the first time, shared by concurrent reads)")
        pool.shutdown()
        api = medians[cases[1][0]]
        return {"contacts": len(hierarchy.docs), "requests": requests, "clients": clients, "api_ms": api,
                "couchdb_ms": direct, "ratio": api / direct, "lineage_ratio": medians[cases[2][0]] / direct}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.clients))
