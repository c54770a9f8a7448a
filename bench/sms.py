"""How fast SMS reports come in and outgoing messages go out through the API.

    python -m bench.sms [--reports 500] [--messages 2000] [--pollers 4]

1. SMS reports posted to ``/api/v2/records`` (form-encoded, parsed against a
   JSON form) by 10 concurrent clients, against writing the same docs straight
   to CouchDB with 10 concurrent PUTs (the ratio is the API's cost: auth,
   parsing, normalising the phone).
2. Draining ``--messages`` pending outgoing messages through ``POST /api/sms``
   with one poller, then with ``--pollers`` concurrent pollers (each message
   must be handed out exactly once), against one ``_bulk_docs`` write of the
   same docs per 25 messages straight to CouchDB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time

import aiohttp

from api.cht import messages
from api.cht.messaging import records
from api.couch import new_id

from .common import bench_stack, median_ms, percentile_ms

FORM = {"YYYZ": {"meta": {"code": "YYYZ"}, "fields": {
    "nurse": {"type": "string", "required": True, "position": 0},
    "week": {"type": "integer", "range": [1, 53], "position": 1},
    "year": {"type": "integer", "position": 2},
    "visit": {"type": "string", "position": 3}}}}


async def timed_concurrently(jobs: list, concurrency: int) -> tuple[float, list[float]]:
    """Run coroutine factories ``concurrency`` at a time; (wall seconds, per-call seconds)."""
    queue = list(jobs)
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            job = queue.pop()
            started = time.monotonic()
            await job()
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.monotonic() - started, latencies


async def bench_reports(stack, http: aiohttp.ClientSession, count: int) -> dict[str, float]:
    await http.put(f"{stack.api_url}/api/v1/settings", json={"forms": FORM}, headers=stack.admin_headers)
    medic = stack.couch.db(stack.config.db_medic)

    def api_job(i: int):
        async def post() -> None:
            async with http.post(f"{stack.api_url}/api/v2/records", headers=stack.admin_headers,
                                 data={"message": f"1!YYYZ!Sam{i}#23#2015#ANC", "from": "0712345678"}) as resp:
                assert resp.status == 200, await resp.text()
        return post

    settings = (await medic.get("settings"))["settings"]

    def couch_job(i: int):
        async def put() -> None:
            await medic.put(records.from_sms(f"1!YYYZ!Sam{i}#23#2015#ANC", "0712345678", settings))
        return put

    api_wall, api_lat = await timed_concurrently([api_job(i) for i in range(count)], 10)
    couch_wall, couch_lat = await timed_concurrently([couch_job(i) for i in range(count)], 10)
    print(f"SMS reports, {count} by 10 clients:")
    print(f"  API    {count / api_wall:8.0f} reports/s  median {median_ms(api_lat):6.1f} ms  "
          f"p95 {percentile_ms(api_lat, 95):6.1f} ms")
    print(f"  CouchDB PUT {count / couch_wall:5.0f} docs/s     median {median_ms(couch_lat):6.1f} ms  "
          f"p95 {percentile_ms(couch_lat, 95):6.1f} ms")
    print(f"  API / CouchDB time ratio: {api_wall / couch_wall:.2f}")
    return {"reports_per_s": count / api_wall, "reports_ratio": api_wall / couch_wall}


async def seed_pending(stack, prefix: str, count: int) -> None:
    medic = stack.couch.db(stack.config.db_medic)
    now = dt.datetime.now(dt.timezone.utc)
    docs = []
    for i in range(count):
        doc = {"_id": f"{prefix}-{i}", "type": "data_record", "reported_date": 1}
        messages.add_task(doc, messages.new_task("+254712345678", f"reminder {i}", f"{prefix}-m{i}", now))
        docs.append(doc)
    for start in range(0, count, 1000):
        await medic.bulk_docs(docs[start:start + 1000])


async def drain(stack, http: aiohttp.ClientSession, pollers: int) -> tuple[float, list[str]]:
    handed: list[str] = []

    async def poller() -> None:
        while True:
            async with http.post(f"{stack.api_url}/api/sms", json={}, headers=stack.admin_headers) as resp:
                batch = (await resp.json())["messages"]
            if not batch:
                return
            handed.extend(m["id"] for m in batch)

    started = time.monotonic()
    await asyncio.gather(*(poller() for _ in range(pollers)))
    return time.monotonic() - started, handed


async def bench_gateway(stack, http: aiohttp.ClientSession, count: int, pollers: int) -> dict[str, float]:
    medic = stack.couch.db(stack.config.db_medic)
    # warm the views before timing
    await medic.view("medic", "messages_by_state", limit=1)
    print(f"Gateway hand-out of {count} pending messages (25 per poll):")
    walls = {}
    for label, n in (("1 poller", 1), (f"{pollers} pollers", pollers)):
        prefix = f"p{n}"
        await seed_pending(stack, prefix, count)
        await medic.view("medic", "messages_by_state", limit=1)
        wall, handed = await drain(stack, http, n)
        assert len(handed) == len(set(handed)) == count, (len(handed), len(set(handed)))
        walls[n] = wall
        print(f"  {label:10} {count / wall:8.0f} messages/s  ({wall:.2f} s, each handed out once)")
    docs = [{"_id": new_id(), "n": i} for i in range(count)]
    started = time.monotonic()
    for start in range(0, count, 25):
        await medic.bulk_docs(docs[start:start + 25])
    couch_wall = time.monotonic() - started
    print(f"  CouchDB _bulk_docs of 25 docs: {count / couch_wall:8.0f} docs/s  ({couch_wall:.2f} s)")
    print(f"  API (1 poller) / CouchDB writes time ratio: {walls[1] / couch_wall:.2f} "
          "(a poll reads the view and the docs, then writes them)")
    return {"messages_per_s": count / walls[1], "messages_ratio": walls[1] / couch_wall}


async def run(reports: int = 500, messages: int = 2000, pollers: int = 4) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        async with aiohttp.ClientSession() as http:
            return {"reports": reports, "messages": messages, **await bench_reports(stack, http, reports),
                    **await bench_gateway(stack, http, messages, pollers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reports", type=int, default=500)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pollers", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args.reports, args.messages, args.pollers))


if __name__ == "__main__":
    main()
