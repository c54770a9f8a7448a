"""The reports export at growing sizes: rows per second, time to first byte, and the API process's memory.

The API runs in its own process (``python -m api`` against the bench stack's
CouchDB and database prefix), so its resident memory can be read from
``/proc/<pid>/status`` while an export streams; it must stay flat as the
export grows. Reports are added to reach each size in turn (10k, then 100k,
...); the views are built before timing. Each export is read to the end
by a client that counts rows. Direct CouchDB (the same view pages with
``include_docs``, read by this process) is the reference rate.

    python -m bench.exports [--sizes 50000 500000] [--filtered]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from api.couch import Database
from api.paging import page
from scripts.couchdb import free_port

from .common import bench_stack, build_views

BATCH = 2000
CHWS = 60
DAY = 86400000
BASE = 1704067200000


def _places() -> tuple[list[dict], list[dict]]:
    docs, chws = [], []
    for d in range(3):
        district = {"_id": f"b-dh{d}", "type": "district_hospital", "name": f"District {d}"}
        docs.append(district)
        for c in range(CHWS // 3):
            clinic = {"_id": f"b-cl{d}-{c}", "type": "clinic", "name": f"Clinic {d}-{c}",
                      "parent": {"_id": district["_id"]}}
            person = {"_id": f"b-chw{d}-{c}", "type": "person", "name": f"CHW {d}-{c}",
                      "parent": {"_id": clinic["_id"], "parent": {"_id": district["_id"]}}}
            docs += [clinic, person]
            chws.append({"_id": person["_id"], "parent": person["parent"]})
    return docs, chws


def _report(i: int, chws: list[dict], rng: random.Random) -> dict:
    return {"_id": f"b-r{i:08d}", "type": "data_record", "form": "P" if i % 4 else "V",
            "reported_date": BASE + i * 1000, "from": "+254700000000", "contact": rng.choice(chws),
            "fields": {"patient_name": f"Patient {i}", "lmp": i % 40,
                       "danger_signs": {"fever": "yes" if i % 3 else "no", "cough": i % 2 == 0},
                       "note": "routine visit, all well"}, "errors": []}


async def _load(db: Database, start: int, end: int, chws: list[dict]) -> float:
    rng = random.Random(start)
    started = time.perf_counter()
    for low in range(start, end, BATCH * 4):
        await asyncio.gather(*(db.bulk_docs([_report(i, chws, rng) for i in range(b, min(b + BATCH, end))])
                               for b in range(low, min(low + BATCH * 4, end), BATCH)))
    return time.perf_counter() - started


async def _warm(db: Database) -> float:
    """Build the export's views (``build_views``)."""
    return await build_views(db, [("medic-client", "reports_by_date"), ("medic-client", "reports_by_form"),
                                  ("medic", "reports_by_form_date")])


def _rss_kb(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def _export(url: str, headers: dict[str, str], pid: int, body: dict | None) -> dict[str, float]:
    peak = _rss_kb(pid)[0]
    done = False

    async def sample() -> None:
        nonlocal peak
        while not done:
            peak = max(peak, _rss_kb(pid)[0])
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    first = None
    lines = 0
    size = 0
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        request = session.post(url, json=body, headers=headers) if body else session.get(url, headers=headers)
        async with request as response:
            if response.status != 200:
                raise SystemExit(f"{url}: {response.status} {await response.text()}")
            async for chunk in response.content.iter_any():
                if first is None:
                    first = time.perf_counter() - started
                lines += chunk.count(b"\n")
                size += len(chunk)
    elapsed = time.perf_counter() - started
    done = True
    await sampler
    return {"rows": lines - 1, "seconds": elapsed, "ttfb": first or elapsed, "mb": size / 1e6, "peak_kb": peak}


async def _direct(db: Database) -> tuple[int, float]:
    """Rows per second reading the same view pages straight from CouchDB (the reference)."""
    started = time.perf_counter()
    rows, after = 0, None
    while True:
        got, after = await page(db, "medic-client", "reports_by_date", startkey=None, endkey=None, after=after,
                                limit=500, include_docs=True)
        rows += len(got)
        if after is None:
            return rows, time.perf_counter() - started


async def main(sizes: list[int], filtered: bool) -> dict[str, Any]:
    """Print the figures; return the headline ones of the largest size, and each size's (for ``bench.run``)."""
    figures: dict[str, Any] = {}
    async with bench_stack() as stack:
        db = stack.couch.db(stack.config.db_medic)
        places, chws = _places()
        await db.bulk_docs(places)
        port = free_port()
        prefix = stack.config.db_medic[: -len("medic")]
        env = {**os.environ, "COUCH_URL": stack.config.couch_url_with_credentials(), "JAMII_DB_PREFIX": prefix,
               "API_PORT": str(port), "LOG_LEVEL": "WARNING"}
        api = subprocess.Popen([sys.executable, "-m", "api"], env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    async with aiohttp.ClientSession() as s, s.get(url + "/api/v2/monitoring") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            idle_kb = _rss_kb(api.pid)[0]
            print(f"API process {api.pid}: {idle_kb / 1024:.0f} MB resident when idle")
            print(f"{'reports':>9} {'load s':>7} {'views s':>8} {'export s':>9} {'rows/s':>8} {'first byte':>10} "
                  f"{'MB out':>7} {'peak RSS MB':>12} {'direct rows/s':>14} {'ratio':>6}")
            loaded = 0
            for size in sorted(sizes):
                load_s = await _load(db, loaded, size, chws)
                loaded = size
                views_s = await _warm(db)
                result = await _export(url + "/api/v2/export/reports", stack.admin_headers, api.pid, None)
                if result["rows"] != size:
                    raise SystemExit(f"exported {result['rows']} rows, expected {size}")
                direct_rows, direct_s = await _direct(db)
                rate = result["rows"] / result["seconds"]
                direct_rate = direct_rows / direct_s
                print(f"{size:>9} {load_s:>7.1f} {views_s:>8.1f} {result['seconds']:>9.1f} {rate:>8.0f} "
                      f"{result['ttfb'] * 1000:>8.0f}ms {result['mb']:>7.1f} {result['peak_kb'] / 1024:>12.0f} "
                      f"{direct_rate:>14.0f} {rate / direct_rate:>6.2f}")
                figures = {"reports": size, "rows_per_s": rate, "ratio": rate / direct_rate,
                           "first_byte_ms": result["ttfb"] * 1000, "idle_mb": idle_kb / 1024,
                           "peak_mb": result["peak_kb"] / 1024,
                           "sizes": [*figures.get("sizes", []), {"reports": size, "rows_per_s": rate,
                                                                 "peak_mb": result["peak_kb"] / 1024,
                                                                 "ratio": rate / direct_rate}]}
                if filtered:
                    body = {"filters": {"forms": {"selected": [{"code": "V"}]},
                                        "date": {"from": BASE, "to": BASE + size * 500}}}
                    result = await _export(url + "/api/v2/export/reports", stack.admin_headers, api.pid, body)
                    print(f"{'':>9} form V, first half of the dates: {result['rows']} rows in "
                          f"{result['seconds']:.1f}s ({result['rows'] / result['seconds']:.0f} rows/s), first byte "
                          f"{result['ttfb'] * 1000:.0f}ms, peak RSS {result['peak_kb'] / 1024:.0f} MB")
            print(f"API process high-water mark (VmHWM) over the whole run: {_rss_kb(api.pid)[1] / 1024:.0f} MB")
            return figures
        finally:
            api.terminate()
            api.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50000, 500000])
    parser.add_argument("--filtered", action="store_true", help="also export one form over half the dates")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.filtered))
