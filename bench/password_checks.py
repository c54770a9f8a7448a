"""Checking passwords at CouchDB 3.4's cost without stopping the event loop: inline, threads or processes.

    python -m bench.password_checks [--checks 8]

The API checks Basic and login passwords itself (``api.password_check``): a CouchDB 3.4 hash is PBKDF2-SHA256
with 600,000 iterations, ~0.25-0.4 s of a core. ``--checks`` different passwords are checked at once, in
three ways, while a ticker measures how late the event loop wakes it (every 5 ms):

* inline, on the loop (what to avoid);
* a thread pool of one thread per core (``hashlib`` releases the GIL while it hashes) — what the API uses;
* a process pool of one process per core (started beforehand; each check's arguments are pickled).

Reported: wall time, and the ticker's delay (median, 99th percentile, worst). No database is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from api.password_check import StoredHash, matches

COUCHDB_34 = StoredHash("pbkdf2", "0" * 64, "0123456789abcdef0123456789abcdef", "sha256", 600_000)
TICK = 0.005


async def _ticker(delays: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(TICK)
        delays.append(time.perf_counter() - started - TICK)


async def _one_way(how: str, checks: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    workers = os.cpu_count() or 2
    pool: Executor | None = None
    if how == "thread":
        pool = ThreadPoolExecutor(workers)
    elif how == "process":
        pool = ProcessPoolExecutor(workers)
        await asyncio.gather(*(loop.run_in_executor(pool, matches, "warm", COUCHDB_34) for _ in range(workers)))
    delays: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(delays, stop))
    await asyncio.sleep(TICK * 2)
    started = time.perf_counter()
    if pool is None:
        for n in range(checks):
            matches(f"password-{n}", COUCHDB_34)
            await asyncio.sleep(0)
    else:
        await asyncio.gather(*(loop.run_in_executor(pool, matches, f"password-{n}", COUCHDB_34)
                               for n in range(checks)))
    wall = time.perf_counter() - started
    stop.set()
    await ticker
    if pool is not None:
        pool.shutdown()
    delays.sort()
    return {f"{how}_wall_s": wall, f"{how}_lag_p50_ms": statistics.median(delays) * 1000,
            f"{how}_lag_p99_ms": delays[max(0, int(len(delays) * 0.99) - 1)] * 1000,
            f"{how}_lag_max_ms": delays[-1] * 1000}


async def run(checks: int = 8) -> dict[str, float]:
    """Print the figures; return them (for ``bench.run``)."""
    figures: dict[str, float] = {"checks": checks, "cores": os.cpu_count() or 0}
    for how in ("inline", "thread", "process"):
        found = await _one_way(how, checks)
        figures.update(found)
        print(f"{how:8s} {checks} checks: {found[f'{how}_wall_s']:.2f} s; loop late by "
              f"{found[f'{how}_lag_p50_ms']:.1f} ms (median), {found[f'{how}_lag_p99_ms']:.1f} ms (p99), "
              f"{found[f'{how}_lag_max_ms']:.1f} ms (worst)")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.checks))


if __name__ == "__main__":
    main()
