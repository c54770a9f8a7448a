"""Periodic jobs inside the sentinel.

Each job runs every ``interval`` seconds. Jobs are single-flight across
processes: a job first takes a lease doc (``job-lock:<name>``) in the sentinel
database, written with its revision so only one taker wins, and gives it up
when done (a crashed holder's lease expires). Jobs must be safe to run twice.
A job stopped by CouchDB being unreachable is logged in one line (no
traceback: it is an outage, not a bug) and tried again after ``retry_seconds``.
A job that may outlast its lease calls ``keep_lease()`` now and then.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from api.couch import Database
from api.errors import Conflict, JamiiError, ServiceUnavailable

log = logging.getLogger("jamii.sentinel.jobs")

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
_HELD: contextvars.ContextVar[tuple[Database, dict, float] | None] = contextvars.ContextVar("job_lease",
                                                                                           default=None)


@dataclass
class Job:
    name: str
    interval: float
    run: Callable[[], Awaitable[None]]
    lease_seconds: float = 600
    retry_seconds: float = 10  # after CouchDB was unreachable, try again this soon rather than a whole interval


async def take_lease(db: Database, name: str, seconds: float) -> dict | None:
    """The lease doc if we now hold it, None if another holder's lease is current."""
    doc = await db.get_or_none(f"job-lock:{name}") or {"_id": f"job-lock:{name}", "type": "job-lock"}
    now = time.time()
    if doc.get("holder") and doc.get("expires", 0) > now:
        return None
    doc.update(holder=HOLDER, expires=now + seconds)
    try:
        await db.put(doc)
    except Conflict:
        return None
    return doc


async def release_lease(db: Database, lease: dict) -> None:
    lease.update(holder=None, expires=0)
    try:
        await db.put(lease)
    except (Conflict, JamiiError):
        pass  # it expires by itself


async def keep_lease() -> None:
    """Renew the running job's lease once a third of it has passed (a job not run by ``run_once``: nothing)."""
    held = _HELD.get()
    if held is None:
        return
    db, lease, seconds = held
    if lease["expires"] - time.time() > seconds * 2 / 3:
        return
    lease["expires"] = time.time() + seconds
    await db.put(lease)  # a Conflict: another holder took an expired lease, and this run must stop


async def run_once(db: Database, job: Job) -> bool:
    """Run a job if nobody else is running it; True when it ran."""
    lease = await take_lease(db, job.name, job.lease_seconds)
    if lease is None:
        return False
    token = _HELD.set((db, lease, job.lease_seconds))
    try:
        await job.run()
    finally:
        _HELD.reset(token)
        await release_lease(db, lease)
    return True


async def run_forever(db: Database, jobs: list[Job], stop: asyncio.Event,
                      may_run: Callable[[], bool] = lambda: True) -> None:
    """Run each job every interval until ``stop``; none while ``may_run()`` is false (the lease not held)."""
    last_run: dict[str, float] = {}
    while not stop.is_set():
        for job in jobs:
            if stop.is_set() or not may_run():
                break
            if time.monotonic() - last_run.get(job.name, -job.interval) < job.interval:
                continue
            last_run[job.name] = time.monotonic()
            try:
                await run_once(db, job)
            except ServiceUnavailable as exc:  # an outage, not a bug: no traceback, and retry soon
                log.warning("job %s: %s; retrying in %.0fs", job.name, exc, min(job.interval, job.retry_seconds))
                last_run[job.name] -= job.interval - min(job.interval, job.retry_seconds)
            except Exception:  # noqa: BLE001 - a failed job runs again next interval
                log.exception("job %s failed", job.name)
        try:
            await asyncio.wait_for(stop.wait(), timeout=1)
        except asyncio.TimeoutError:
            pass
