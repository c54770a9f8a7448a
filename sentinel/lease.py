"""One active sentinel among several: a lease doc in the sentinel database, taken and kept through MVCC.

The lease is the normal doc ``sentinel-lease`` (``api.checkpoint.LEASE_ID``): ``{holder, generation,
renewed, seq}``, where ``seq`` holds the feeds' checkpoints. So:

* **Holding.** The holder rewrites the doc at the revision it last wrote every ``renew`` seconds. A
  409 means another sentinel took it: it is deposed and stops at once.
* **Expiry without clocks.** A standby reads the doc every ``poll`` seconds and notes, by its *own*
  monotonic clock, when the revision last changed. Unchanged for ``ttl`` seconds means the holder is gone
  (no wall clocks compared across machines). A lease released on a clean stop (no holder) is free at once.
* **Takeover** is a write at the revision read, as a claim (``Database.claim``): on a cluster it is made
  with ``w`` = every live copy and a 202 is settled by CouchDB's own winner, so two standbys never both win.
* **Fencing.** The checkpoints move only through the holder's MVCC writes of this doc, so a deposed
  sentinel can never move them; and the holder fences itself: ``valid`` turns false once ``ttl - margin``
  seconds pass without a successful renewal (CouchDB unreachable), before any standby can take over, and
  the sentinel writes no batch while it is false.

A 202 is settled after the short fixed wait (``SETTLE_SECONDS``), not one that follows slow writes: a
renewal must finish well within ``ttl - margin``.

Takeover after the holder is killed: at most ``ttl + poll`` (+ the settle wait of a 202), 12.5 s with the
defaults.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any

from api.checkpoint import LEASE_ID, seq_in
from api.couch import SETTLE_SECONDS, Database
from api.errors import Conflict, JamiiError, ServiceUnavailable

log = logging.getLogger("jamii.sentinel.lease")


class LeaseLost(ServiceUnavailable):
    """This sentinel no longer holds the lease (deposed, or unable to renew it in time)."""


class Lease:
    def __init__(self, db: Database, *, ttl: float = 10.0, renew: float | None = None, poll: float | None = None,
                 margin: float | None = None, holder: str | None = None):
        """``renew``, ``poll`` and ``margin`` default to 3, 2 and 3 s for the default ``ttl`` of 10 s, and
        in proportion for a shorter one."""
        self.db = db
        self.ttl = ttl
        self.renew_every = renew if renew is not None else min(3.0, ttl * 0.3)
        self.poll = poll if poll is not None else min(2.0, ttl * 0.2)
        self.margin = margin if margin is not None else min(3.0, ttl * 0.3)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.doc: dict[str, Any] | None = None  # the lease as we last wrote it, while we hold it
        self.generation = 0
        self._renewed = 0.0  # monotonic time of our last successful write
        self._lock = asyncio.Lock()  # renewals and checkpoint moves write the same doc one at a time
        self.lost = asyncio.Event()

    @property
    def valid(self) -> bool:
        """Whether this sentinel may write: it holds the lease, renewed recently enough that no standby can
        have taken it over yet."""
        return (self.doc is not None and not self.lost.is_set()
                and time.monotonic() - self._renewed < self.ttl - self.margin)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless ``valid``: called before every batch is written."""
        if not self.valid:
            raise LeaseLost("this sentinel does not hold the lease")

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this sentinel holds the lease (True), or ``stop`` is set (False)."""
        seen_rev: str | None = None
        seen_at = time.monotonic()
        while not stop.is_set():
            try:
                current = await self.db.get_or_none(LEASE_ID)
                if current is not None and current.get("_rev") != seen_rev:
                    seen_rev, seen_at = current.get("_rev"), time.monotonic()
                free = (current is None or not current.get("holder")
                        or time.monotonic() - seen_at >= self.ttl)
                if free and await self._take(current):
                    return True
            except JamiiError as exc:
                log.warning("lease: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
            except asyncio.TimeoutError:
                pass
        return False

    async def _take(self, current: dict[str, Any] | None) -> bool:
        generation = int((current or {}).get("generation") or 0) + 1
        doc = {**(current or {}), "_id": LEASE_ID, "type": "sentinel-lease", "holder": self.holder,
               "generation": generation, "renewed": int(time.time() * 1000)}
        if current is None:
            doc.pop("_rev", None)
        if not await self.db.claim(doc, settle_wait=SETTLE_SECONDS, confirm=False):
            return False
        self.doc, self.generation, self._renewed = doc, generation, time.monotonic()
        self.lost.clear()
        log.info("lease taken by %s (generation %d)", self.holder, generation)
        return True

    def seq(self, name: str) -> Any:
        """The checkpoint of feed ``name`` as the lease holds it (0: the start)."""
        seq = seq_in(self.doc, name)
        return 0 if seq is None else seq

    async def save(self, name: str, seq: Any) -> None:
        """Move feed ``name``'s checkpoint: an MVCC write of the lease, so only the holder can."""
        await self._write({"seq": {**(self.doc or {}).get("seq", {}), name: seq}})

    async def renew(self) -> None:
        await self._write({})

    async def _write(self, changes: dict[str, Any]) -> None:
        async with self._lock:
            self.check()
            doc = {**(self.doc or {}), **changes, "renewed": int(time.time() * 1000)}
            try:
                result = await self.db.put(doc)
            except Conflict:
                self._depose("another sentinel took the lease")
            if result.get("accepted") and not await self.db.settle(LEASE_ID, doc["_rev"], SETTLE_SECONDS):
                self._depose("another sentinel's write of the lease won")
            self.doc, self._renewed = doc, time.monotonic()

    def _depose(self, why: str) -> None:
        log.warning("lease lost by %s: %s", self.holder, why)
        self.doc = None
        self.lost.set()
        raise LeaseLost(why)

    async def keep(self, stop: asyncio.Event) -> None:
        """Renew every ``renew`` seconds until ``stop`` or the lease is lost (then ``lost`` is set)."""
        while not stop.is_set() and not self.lost.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.renew_every)
                return
            except asyncio.TimeoutError:
                pass
            try:
                await self.renew()
            except JamiiError as exc:  # CouchDB away: try again; ``valid`` fences us meanwhile
                if not isinstance(exc, LeaseLost):
                    log.warning("lease renewal failed: %s", exc)
                if isinstance(exc, LeaseLost) or not self.valid:
                    # deposed, or too long without a renewal (the next try is refused by ``check``): the
                    # sentinel stops being active and waits to take the lease again
                    self.doc = None
                    self.lost.set()
                    return

    async def release(self) -> None:
        """Give the lease up on a clean stop, so a standby takes it at once."""
        try:
            await self._write({"holder": None})
        except JamiiError:
            return
        self.doc = None
        log.info("lease released by %s", self.holder)
