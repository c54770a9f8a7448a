"""Spatial units: list pages, whole-project streams, search and writes, against direct CouchDB.

    python -m bench.spatial [units]      (default 20000 units in the measured project)

Prints medians (ms) and ratios to the equivalent direct CouchDB request where there is one.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any, Awaitable, Callable

import aiohttp

from api.couch import basic_auth
from api.spatial.units import unit_doc_id

from .common import bench_stack, median_ms

WORDS = ("Apartment", "Building", "Parcel", "Community", "Park", "Road", "School", "Clinic", "Market", "Well")


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        seconds.append(time.perf_counter() - started)
    return seconds


def square(lon: float, lat: float) -> dict[str, Any]:
    d = 0.0005
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d],
                                                [lon, lat]]]}


async def main(count: int) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        admin = stack.admin_headers
        async with aiohttp.ClientSession() as http:
            async def call(method: str, path: str, **kwargs: Any) -> Any:
                async with http.request(method, stack.api_url + path, headers=admin, **kwargs) as resp:
                    body = await resp.read()
                    assert resp.status < 300, (resp.status, body[:200])
                    return body

            await call("POST", "/organizations/", json={"name": "Bench", "slug": "bench"})
            await call("POST", "/organizations/bench/projects/", json={"name": "Big", "slug": "big"})
            await call("POST", "/organizations/bench/projects/", json={"name": "Small", "slug": "small"})
            project_id = (await (await http.get(stack.api_url + "/organizations/bench/projects/big/",
                                                headers=admin)).json())["id"]
            small_id = (await (await http.get(stack.api_url + "/organizations/bench/projects/small/",
                                              headers=admin)).json())["id"]
            db = stack.couch.db(stack.config.db_spatial)
            rng = random.Random(7)
            started = time.perf_counter()
            for pid, n in ((project_id, count), (small_id, count // 10)):
                for batch in range(0, n, 1000):
                    docs = []
                    for i in range(batch, min(n, batch + 1000)):
                        unit_id = f"{pid[:8]}{i:016d}"
                        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}"
                        docs.append({"_id": unit_doc_id(pid, unit_id), "doc_type": "spatial_unit",
                                     "unit_id": unit_id, "project": pid, "organization": "bench", "name": name,
                                     "unit_type": rng.choice(("PA", "BU", "AP", "MI")),
                                     "attributes": {"address": f"{i} Sesame St", "owner": rng.choice(WORDS)},
                                     "relationships": [], "geometry": square(36.8 + i * 1e-5, -1.28)})
                    await db.bulk_docs(docs)
            print(f"seeded {count} units (+{count // 10} in another project) in {time.perf_counter() - started:.1f} s")

            units = "/organizations/bench/projects/big/spatial/"
            for view_name in ("units_by_name", "units_by_type", "unit_names"):
                started = time.perf_counter()
                await db.view("spatial", view_name, limit=0, timeout=3600)
                print(f"index build of {view_name}: {time.perf_counter() - started:.1f} s")

            couch_auth = {"Authorization": basic_auth(*stack.admin), "Accept": "application/json"}
            view = f"{stack.couch_url}/{stack.config.db_spatial}/_design/spatial/_view/units_by_name"

            async def direct_page() -> None:
                params = {"startkey": f'["{project_id}"]', "endkey": f'["{project_id}",{{}}]', "limit": "100",
                          "include_docs": "true", "skip": "5000"}
                async with http.get(view, params=params, headers=couch_auth) as resp:
                    await resp.read()

            api_page = median_ms(await timed(lambda: call("GET", units + "?limit=100&offset=5000"), 20))
            couch_page = median_ms(await timed(direct_page, 20))
            print(f"page of 100 at offset 5000: API {api_page:.1f} ms, CouchDB view {couch_page:.1f} ms "
                  f"(x{api_page / couch_page:.2f})")
            typed = median_ms(await timed(lambda: call("GET", units + "?type=BU&limit=100&ordering=-name"), 20))
            print(f"type filter, page of 100, descending: {typed:.1f} ms")

            async def direct_all() -> None:
                params = {"startkey": f'["{project_id}"]', "endkey": f'["{project_id}",{{}}]', "include_docs": "true"}
                async with http.get(view, params=params, headers=couch_auth) as resp:
                    await resp.read()

            api_all_s = await timed(lambda: call("GET", units), 3)
            size = len(await call("GET", units))
            couch_all = median_ms(await timed(direct_all, 3))
            api_all = median_ms(api_all_s)
            print(f"whole project ({count} units, {size / 1e6:.1f} MB streamed): API {api_all:.0f} ms, "
                  f"CouchDB view with docs {couch_all:.0f} ms (x{api_all / couch_all:.2f})")

            early = median_ms(await timed(lambda: call("GET", units + "?search=apartment&limit=20"), 10))
            print(f"search, common word, limit 20: {early:.1f} ms (stops at the 20th match)")
            rare = median_ms(await timed(lambda: call("GET", units + f"?search=unit-{count - 1}-nowhere"), 3))
            print(f"search, no match (scans all {count} units): {rare:.0f} ms "
                  f"({rare / count * 1000:.1f} ms per 1000 units)")

            unit_ids = []

            async def create() -> None:
                body = {"type": "Feature", "geometry": square(-245.39, -3.33),
                        "properties": {"name": "Bench unit", "attributes": {"k": "v"}}}
                unit_ids.append(json.loads(await call("POST", units, json=body))["properties"]["id"])

            created = median_ms(await timed(create, 50))
            got = median_ms(await timed(lambda: call("GET", units + unit_ids[0] + "/"), 50))

            async def direct_get() -> None:
                path = f"{stack.couch_url}/{stack.config.db_spatial}/{unit_doc_id(project_id, unit_ids[0])}"
                async with http.get(path, headers=couch_auth) as resp:
                    await resp.read()

            couch_get = median_ms(await timed(direct_get, 50))
            print(f"create one unit: {created:.1f} ms; get one: API {got:.1f} ms, CouchDB GET {couch_get:.1f} ms "
                  f"(x{got / couch_get:.2f})")
            return {"units": count, "page_ratio": api_page / couch_page, "all_ratio": api_all / couch_all,
                    "get_ratio": got / couch_get, "create_ms": created}


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
