"""Create 1,000 users from CSV through POST /api/v2/users (goal: <= 30 s), against writing the same docs directly.

Each row makes a user with a new clinic under an existing health center and a
new person as its contact (the spec's CSV example): per user a place, a person,
a user-settings doc and a _users doc, plus the import log. The direct figure is
CouchDB alone writing the same number of docs with ``_bulk_docs`` (1,000 _users
docs with passwords, 3,000 medic docs), the floor any import pays. Also timed:
listing the users back (GET /api/v2/users, streamed) and users-info for an
offline user of one of the new clinics.

    python -m bench.users [--users 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import aiohttp

from api.couch import Couch, basic_auth
from tests.hierarchy import build, load

from .common import bench_stack

PASSWORD = "WrAGyGD9805-bench"


def _csv(count: int, centers: list[str]) -> bytes:
    lines = ["username,password,type,fullname,phone,place.name,place.type,place.parent,contact.name,"
             "contact.phone,notes:excluded"]
    for i in range(count):
        lines.append(f"bench-user-{i:05d},{PASSWORD},chw,Bench User {i},+2547{i:08d},Clinic {i},clinic,"
                     f"{centers[i % len(centers)]},Person {i},+2547{i:08d},ignored")
    return ("\n".join(lines) + "\n").encode()


async def _direct(stack, count: int) -> float:
    """CouchDB's own writes of the same docs, 100 users a request, with no time limit: CouchDB 3 hashes each
    password as it stores it (~0.25 s of a core each), so one request takes longer than COUCH_TIMEOUT."""
    async with Couch.from_config(stack.config.replace(couch_timeout=3600)) as couch:
        users, medic = couch.db("_users"), couch.db(stack.config.db_medic)
        prefix = uuid.uuid4().hex[:6]
        started = time.perf_counter()
        for start in range(0, count, 100):
            batch = range(start, min(count, start + 100))
            await medic.bulk_docs([{"type": "clinic", "name": f"d{i}"} for i in batch] +
                                  [{"type": "person", "name": f"p{i}"} for i in batch] +
                                  [{"_id": f"org.couchdb.user:direct-{prefix}-{i}", "type": "user-settings"}
                                   for i in batch])
            await users.bulk_docs([{"_id": f"org.couchdb.user:direct-{prefix}-{i}", "name": f"direct-{prefix}-{i}",
                                    "type": "user", "roles": ["chw"], "password": PASSWORD} for i in batch])
        return time.perf_counter() - started


async def main(count: int) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        h = build(districts=1, centers=10, clinics=1, people=2, reports_per_clinic=0)
        await load(stack.couch.db(stack.config.db_medic), h)
        body = _csv(count, h.centers)
        async with aiohttp.ClientSession(headers=stack.admin_headers) as session:
            started = time.perf_counter()
            async with session.post(f"{stack.api_url}/api/v2/users", data=body,
                                    headers={"Content-Type": "text/csv"}) as response:
                results = await response.json()
                if response.status != 200:
                    raise SystemExit(f"import failed: {response.status} {str(results)[:500]}")
            elapsed = time.perf_counter() - started
            failed = [r for r in results if "error" in r]
            if failed:
                raise SystemExit(f"{len(failed)} users failed, e.g. {failed[0]}")
            direct = await _direct(stack, count)
            started = time.perf_counter()
            async with session.get(f"{stack.api_url}/api/v2/users") as response:
                listed = await response.json()
            listing = time.perf_counter() - started
        async with aiohttp.ClientSession(headers={"Authorization": basic_auth("bench-user-00000", PASSWORD)}) as s:
            times = []
            for _ in range(2):  # the first call also builds the two views' indexes
                started = time.perf_counter()
                async with s.get(f"{stack.api_url}/api/v1/users-info") as response:
                    info = await response.json()
                times.append(time.perf_counter() - started)
    print(f"import of {count} users from CSV (place + person + 2 user docs each): {elapsed:.1f} s "
          f"({count / elapsed:.0f} users/s; goal <= 30 s for 1,000)")
    print(f"direct CouchDB _bulk_docs of the same {count * 4} docs: {direct:.1f} s "
          f"(the API takes {elapsed / direct:.1f}x)")
    print(f"GET /api/v2/users ({len(listed)} users with the direct ones; places and contacts filled in): "
          f"{listing:.2f} s")
    print(f"GET /api/v1/users-info as an offline user: {times[0]:.1f} s cold (view indexes built), "
          f"{times[1] * 1000:.0f} ms warm -> {info}")
    return {"users": count, "import_s": elapsed, "users_per_s": count / elapsed, "direct_s": direct,
            "ratio": elapsed / direct}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    asyncio.run(main(parser.parse_args().users))
