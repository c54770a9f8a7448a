"""A purge run over ``--contacts`` contacts: docs purged per second, and memory that stays flat.

    python -m bench.purging [--contacts 10000]

Set-up (not timed): a hierarchy of about ``--contacts`` people (100 per clinic)
with 5 reports per person (40% older than a year), 1,000 unallocated reports,
2,000 finished tasks (half ended more than 60 days ago) and 500 targets (half
older than 6 months); offline users in three role sets (``chw``,
``chw_supervisor``, both). The views the run reads are built first, as a
running server keeps them.

Timed, in this process (``sentinel.purging.run``, the real QuickJS sandbox),
with the process's RSS sampled every 0.25 s:

1. a first run with CHT's documented example function (reports older than a
   year): purge records written per second, contacts per second, function
   calls and their JavaScript CPU time, staging writes;
2. the same function again: nothing to change, nothing written;
3. a function purging half as much: un-purges per second.

Memory flat: the RSS growth from the end of the first batch to the end of the
run, which must not grow with the number of contacts.

Against the server: the least I/O any purge run does for the same data, done raw
(``floor``): every doc of the medic database read once (``_all_docs``, 1,000 per
request) and as many purge records as the first run wrote, written once
(``_bulk_docs``, 1,000 per request). On a shared machine the ratio of the two
says more than either time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
from pathlib import Path
from typing import Any

from api.settings import default_settings
from sentinel.purging import Limits, run
from tests.hierarchy import build, load

from .common import bench_stack, build_views

DAY_MS = 24 * 3600 * 1000
OLDER_THAN_A_YEAR = """function (userCtx, contact, reports, messages) {
  const yearAgo = Date.now() - 365 * 24 * 60 * 60 * 1000;
  return reports.filter(r => r.reported_date < yearAgo).map(r => r._id);
}"""
OLDER_THAN_TWO_YEARS = OLDER_THAN_A_YEAR.replace("365", "730")
ROLE_SETS = (["chw"], ["chw_supervisor"], ["chw", "chw_supervisor"])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The process's RSS every 0.25 s, and at each batch (the run's ``progress``)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.at_batches: list[float] = []

    async def progress(self) -> None:
        self.at_batches.append(rss_mb())

    async def sample(self) -> None:
        while True:
            self.samples.append(rss_mb())
            await asyncio.sleep(0.25)

    def growth(self) -> float:
        """RSS growth after the first batch: what a bigger deployment would add."""
        if not self.at_batches:
            return 0.0
        return max([*self.samples, *self.at_batches]) - self.at_batches[0]


def world(contacts: int, now_ms: int) -> tuple[Any, list[dict[str, Any]]]:
    rng = random.Random(22)
    clinics = max(1, contacts // 100)
    centers = max(1, round(clinics ** 0.5))
    h = build(seed=22, districts=1, centers=centers, clinics=max(1, clinics // centers), people=100,
              reports_per_clinic=500)
    for report_id in h.reports:  # 40% older than a year, the rest within it
        age = rng.uniform(366, 900) if rng.random() < 0.4 else rng.uniform(0, 360)
        h.by_id[report_id]["reported_date"] = now_ms - int(age * DAY_MS)
    extra: list[dict[str, Any]] = []
    for i in range(1000):
        extra.append({"_id": f"unallocated-{i}", "type": "data_record", "form": "X", "fields": {},
                      "reported_date": now_ms - int(rng.uniform(0, 900) * DAY_MS)})
    today = time.gmtime(now_ms / 1000)
    for i in range(2000):
        ended = time.strftime("%Y-%m-%d", time.gmtime(now_ms / 1000 - (30 + (i % 2) * 60) * 86400))
        extra.append({"_id": f"task~bench-{i}", "type": "task", "state": "Completed", "user": "bench-chw-0",
                      "emission": {"endDate": ended}})
    for i in range(500):
        months = today.tm_year * 12 + today.tm_mon - 1 - (2 if i % 2 else 8)
        extra.append({"_id": f"target~{months // 12:04d}-{months % 12 + 1:02d}~contact-{i}~org.couchdb.user:x",
                      "type": "target", "owner": f"contact-{i}"})
    return h, extra


async def timed(stack: Any, fn: str, sampler: Sampler) -> tuple[Any, float]:
    settings = default_settings()
    settings["purge"] = {"fn": fn, "cron": "0 1 * * SUN"}
    task = asyncio.create_task(sampler.sample())
    started = time.perf_counter()
    try:
        report = await run(stack.couch, stack.config, settings, limits=Limits(), progress=sampler.progress)
    finally:
        task.cancel()
    return report, time.perf_counter() - started


async def floor(stack: Any, records: int) -> float:
    """Seconds to read every medic doc once and write ``records`` small docs once, raw."""
    medic = stack.couch.db(stack.config.db_medic)
    scratch = stack.couch.db(stack.config.db_medic + "-bench-floor")
    await stack.couch.create_db(scratch.name)
    started = time.perf_counter()
    params: dict[str, Any] = {"include_docs": True, "limit": 1000}
    while True:
        rows = (await medic.all_docs(**params))["rows"]
        if len(rows) < 1000:
            break
        params.update(startkey=rows[-1]["id"], skip=1)
    for start in range(0, records, 1000):
        await scratch.bulk_docs([{"_id": f"purged:{i}"} for i in range(start, min(records, start + 1000))])
    seconds = time.perf_counter() - started
    await stack.couch.delete_db(scratch.name)
    return seconds


async def main(contacts: int) -> dict[str, Any]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        now_ms = int(time.time() * 1000)
        h, extra = world(contacts, now_ms)
        medic = stack.couch.db(stack.config.db_medic)
        started = time.perf_counter()
        await load(medic, h)
        for i in range(0, len(extra), 1000):
            await medic.bulk_docs(extra[i:i + 1000])
        people = len(h.people)
        total_contacts = sum(1 for d in h.docs if d.get("type") in ("person", "clinic", "health_center",
                                                                       "district_hospital"))
        print(f"{len(h.docs) + len(extra):,} docs ({total_contacts:,} contacts, {len(h.reports):,} reports) loaded "
              f"in {time.perf_counter() - started:.1f}s")
        del h, extra
        gc.collect()
        users = stack.couch.db(stack.config.db_users)
        await users.bulk_docs([{"_id": f"org.couchdb.user:bench-purge-{i}", "name": f"bench-purge-{i}",
                                "type": "user", "roles": roles, "password": "Secret-passw0rd!"}
                               for i, roles in enumerate(ROLE_SETS)])
        try:
            return await measure(stack, people)
        finally:  # on a COUCH_URL server, _users is shared: later runs (and tests) would count these role sets
            stored = await users.get_many(f"org.couchdb.user:bench-purge-{i}" for i in range(len(ROLE_SETS)))
            await users.bulk_docs([{**doc, "_deleted": True} for doc in stored.values()])


async def measure(stack: Any, people: int) -> dict[str, Any]:
    """The three timed runs and the floor."""
    medic = stack.couch.db(stack.config.db_medic)
    built = await build_views(medic, [("medic", "contacts_by_type_id"), ("medic", "docs_by_replication_key"),
                                      ("medic", "tasks_in_terminal_state")])
    print(f"view indexes built in {built:.1f}s")

    rss_before = rss_mb()
    first_sampler = Sampler()
    first, first_s = await timed(stack, OLDER_THAN_A_YEAR, first_sampler)
    assert first.status == "done", first
    purged = first.counts["purged"]
    print(f"first run: {purged:,} purge records in {first_s:.1f}s ({purged / first_s:,.0f}/s); "
          f"{first.counts['contacts']:,} contacts ({first.counts['contacts'] / first_s:,.0f}/s), "
          f"{first.counts['calls']:,} calls, JS CPU {first.js_cpu_seconds:.2f}s, "
          f"{first.counts['staged']:,} staged; RSS {rss_before:.0f} MB before, "
          f"+{first_sampler.growth():.1f} MB after the first batch; RSS at each batch "
          f"{', '.join(f'{r:.0f}' for r in first_sampler.at_batches)} MB")

    floor_s = await floor(stack, purged)
    print(f"floor (every doc read once, the purge records written once, raw): {floor_s:.1f}s; "
          f"floor / run {floor_s / first_s:.2f}")

    second, second_s = await timed(stack, OLDER_THAN_A_YEAR, Sampler())
    print(f"second run, same function: {second_s:.1f}s, {second.counts['staged']} staged, "
          f"{second.counts['purged']} purged")

    third_sampler = Sampler()
    third, third_s = await timed(stack, OLDER_THAN_TWO_YEARS, third_sampler)
    unpurged = third.counts["unpurged"]
    print(f"third run, half as much: {unpurged:,} un-purged in {third_s:.1f}s ({unpurged / third_s:,.0f}/s)")
    growth = max(first_sampler.growth(), third_sampler.growth())
    return {"contacts": first.counts["contacts"], "people": people, "purged": purged, "first_s": first_s,
            "purged_per_s": purged / first_s, "contacts_per_s": first.counts["contacts"] / first_s,
            "calls": first.counts["calls"], "js_cpu_s": first.js_cpu_seconds, "staged": first.counts["staged"],
            "second_s": second_s, "second_staged": second.counts["staged"], "unpurged": unpurged,
            "unpurged_per_s": unpurged / third_s, "rss_mb": rss_before, "rss_growth_mb": growth,
            "floor_s": floor_s, "floor_ratio": floor_s / first_s,
            "rss_by_batch": [round(r, 1) for r in first_sampler.at_batches]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10000)
    asyncio.run(main(parser.parse_args().contacts))
