"""The database server's CPU per request, by kind of request the API sends, on the load bench's data.

Why a request costs what it does decides how the API reads: on CouchDB 3.4 a
request has a fixed cost of about a millisecond before it reads anything, and
``_all_docs`` by keys looks each key up on its own while ``_bulk_get`` reads
them together. Each kind is sent a fixed number of times (4 at once) against the
seeded hierarchy of ``bench.load`` with 3,000 more reports, and the server's
CPU (``beam.smp`` and its ``couchjs`` helpers, read from ``/proc``; the Node
process for pouchdb-server) is divided by the number sent.

    python -m bench.couch_costs [--scale 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any, Awaitable, Callable

from .common import Stack, bench_stack, server_cpu_parts
from .load import seed

EXTRA_REPORTS = 3000
AT_ONCE = 4


def _report(world: Any, when: int) -> dict[str, Any]:
    return {"_id": str(uuid.uuid4()), "type": "data_record", "form": "V", "content_type": "xml",
            "reported_date": when, "contact": {"_id": random.choice(world.contacts)},
            "fields": {"patient_id": "x", "a": "hello", "b": 12, "c": {"d": "e"}}}


async def _kinds(stack: Stack, world: Any) -> dict[str, tuple[int, Callable[[], Awaitable[Any]]]]:
    """name -> (how many to send, one request)."""
    db = stack.couch.db(stack.config.db_medic)
    reports = [_report(world, int(time.time() * 1000) + i) for i in range(EXTRA_REPORTS)]
    for start in range(0, EXTRA_REPORTS, 500):
        await db.bulk_docs(reports[start:start + 500])
    ids = [doc["_id"] for doc in reports]
    keys = [row["key"] for row in (await db.view("medic-client", "reports_by_date", limit=2000))["rows"]]
    await db.view("medic-client", "contacts_by_reference", limit=1)
    recent = (await db.changes(descending=True, limit=20))["results"][-1]["seq"]
    visible = world.contacts[:150] + ids[:100]
    await _quiet(stack)

    def bulk_get(count: int) -> Callable[[], Awaitable[Any]]:
        return lambda: stack.couch.request("POST", f"{db.path}/_bulk_get",
                                           json_body={"docs": [{"id": i} for i in random.sample(ids, count)]})

    return {
        "GET /db": (200, db.info),
        "GET one doc": (200, lambda: db.get(random.choice(ids))),
        "_bulk_get, 1 doc": (200, bulk_get(1)),
        "_bulk_get, 7 docs": (200, bulk_get(7)),
        "_all_docs, 7 keys with docs": (200, lambda: db.all_docs(random.sample(ids, 7), include_docs=True)),
        "_bulk_get, 500 docs": (30, bulk_get(500)),
        "_all_docs, 500 keys with docs": (30, lambda: db.all_docs(random.sample(ids, 500), include_docs=True)),
        "_all_docs, 500 keys, no docs": (30, lambda: db.all_docs(random.sample(ids, 500))),
        "view page of 500, include_docs": (30, lambda: db.view("medic-client", "reports_by_date", limit=500,
                                                               startkey=random.choice(keys), include_docs=True)),
        "view page of 500, no docs": (30, lambda: db.view("medic-client", "reports_by_date", limit=500,
                                                          startkey=random.choice(keys))),
        "view, 5 keys with docs": (200, lambda: db.view("medic-client", "contacts_by_reference", include_docs=True,
                                                        keys=[["shortcode", str(random.randrange(99999))]
                                                              for _ in range(5)])),
        "_changes since a recent seq, docs": (200, lambda: db.changes(since=recent, include_docs=True)),
        "_changes since 0, 250 doc_ids": (30, lambda: db.changes(doc_ids=visible, since=0, style="all_docs")),
        "write one doc": (200, lambda: db.bulk_docs([_report(world, 1)])),
        "write one doc, then a view query": (100, lambda: _write_then_query(db, world)),
    }


async def _quiet(stack: Stack, most: float = 120.0) -> None:
    """Wait until the server is idle (its background indexer done with the seeded docs), so that its work
    is not counted against the first kinds measured."""
    ends = time.monotonic() + most
    while time.monotonic() < ends:
        before = server_cpu_parts(stack)
        await asyncio.sleep(1.0)
        after = server_cpu_parts(stack)
        if before is None or after is None or sum(after) - sum(before) < 0.05:
            return


async def _write_then_query(db: Any, world: Any) -> None:
    await db.bulk_docs([_report(world, 1)])
    await db.view("medic-client", "contacts_by_reference", keys=[["shortcode", "none"]])


async def main(scale: float = 1.0) -> dict[str, float]:
    """Print the server's CPU per request of each kind; return them in ms (for a report)."""
    async with bench_stack() as stack:
        world = await seed(stack, random.Random(14))
        costs: dict[str, float] = {}
        for name, (count, send) in (await _kinds(stack, world)).items():
            count = max(1, int(count * scale))
            gate = asyncio.Semaphore(AT_ONCE)

            async def one() -> None:
                async with gate:
                    await send()

            before = server_cpu_parts(stack)
            await asyncio.gather(*(one() for _ in range(count)))
            after = server_cpu_parts(stack)
            if before is None or after is None:
                print("the server's CPU cannot be read from here (not on this machine)")
                return {}
            server, helpers = ((a - b) * 1000 / count for a, b in zip(after, before))
            costs[name] = server + helpers
            print(f"{name:36s} server {server:7.2f} ms   helpers (couchjs) {helpers:6.2f} ms   per request")
        return costs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="send this fraction of each kind's count")
    asyncio.run(main(parser.parse_args().scale))
