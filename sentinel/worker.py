"""The ``_changes`` follower.

It reads the medic database's feed in batches from a checkpoint stored in the
sentinel database, hands each batch to ``process_batch``, and moves the
checkpoint only after the batch's work is written. A crash anywhere means the
batch is read again on restart, never skipped. An unreachable CouchDB is
retried with backoff (at most 5 s apart, so the feed resumes within 5 s of
CouchDB's return); any error restarts the feed from the checkpoint.

With a lease (``sentinel.lease``: several sentinels, one active) the checkpoint is read from and moved
through the lease, and no batch is processed while the lease is not surely held.

During a backlog the checkpoint moves at most every ``checkpoint_seconds``
(and whenever the feed is caught up, and on a clean stop), not after every
batch: a checkpoint that lags only means more changes are read again after a
crash, and the info docs make those replays run nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

from api import checkpoint
from api.config import Config
from api.couch import Couch
from api.errors import JamiiError

from .lease import Lease

log = logging.getLogger("jamii.sentinel")

Batch = list[dict[str, Any]]
OUTAGE_MAX_DELAY = 5.0
# How long one caught-up ``_changes`` wait lasts before it is asked again. A wake-up lost on the way (seen on
# pouchdb-server under a long test run: a write sat unseen by a waiting longpoll for over 20 s) costs at
# most this; on CouchDB an idle wait is one small request per feed this often.
FEED_WAIT_SECONDS = 10.0
BatchProcessor = Callable[[Batch], Awaitable[None]]


async def ignore_batch(batch: Batch) -> None:
    """The processor until transitions are configured: nothing to do."""


class Worker:
    """Follows one database's feed (medic by default) under one checkpoint name."""

    def __init__(self, couch: Couch, config: Config, process_batch: BatchProcessor = ignore_batch, *,
                 db_name: str | None = None, checkpoint_name: str = checkpoint.SENTINEL,
                 batch_size: int = 100, wait_seconds: float = FEED_WAIT_SECONDS, read_ahead: bool = True,
                 checkpoint_seconds: float = 0, include_docs: bool = True, lease: Lease | None = None):
        self.couch = couch
        self.lease = lease
        self.medic = couch.db(db_name or config.db_medic)
        self.sentinel = couch.db(config.db_sentinel)
        self.checkpoint_name = checkpoint_name
        self.process_batch = process_batch
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.seq: Any = None
        self.processed = 0
        self.read_ahead = read_ahead
        self.checkpoint_seconds = checkpoint_seconds
        self.include_docs = include_docs  # False: the processor reads the docs it needs (see Engine)
        self._ahead: tuple[Any, asyncio.Future[dict[str, Any]]] | None = None
        self._unsaved: Any = None  # processed up to here, not yet in the checkpoint
        self._checkpoint_rev: str | None = None
        self._saved_at = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the feed until ``stop`` is set; the batch under way is finished first.

        Any error (CouchDB unreachable, a bug in a batch) restarts the feed from
        the checkpoint after a backoff: the worker itself never dies.
        """
        delay = 1.0
        try:
            while not stop.is_set():
                try:
                    if self.seq is None:
                        self.seq = await self._read_checkpoint()
                        log.info("following %s from %r", self.medic.name, self.seq)
                    await self.step(stop)
                    delay = 1.0
                except Exception as exc:  # noqa: BLE001 - the feed must go on
                    outage = isinstance(exc, JamiiError)
                    if outage:
                        log.warning("feed error: %s; retrying in %.0fs", exc, delay)
                    else:
                        log.exception("batch failed; retrying from the checkpoint in %.0fs", delay)
                    self.seq = None  # re-read the checkpoint: the durable truth
                    self._unsaved = None
                    await self._drop_ahead()
                    await _sleep_or_stop(stop, delay)
                    # an unreachable CouchDB is tried every few seconds, so the feed resumes soon after it
                    # returns; a batch that keeps failing (a bug) backs off further
                    delay = min(delay * 2, OUTAGE_MAX_DELAY if outage else 30)
            try:
                await self.save_checkpoint()  # a clean stop: the last batches are done
            except JamiiError as exc:
                log.warning("could not move the checkpoint on stop: %s", exc)
        finally:
            await self._drop_ahead()

    async def save_checkpoint(self) -> None:
        """Move the checkpoint to the last processed batch, if it is not there yet."""
        if self._unsaved is None:
            return
        seq, self._unsaved = self._unsaved, None
        if self.lease is not None:
            await self.lease.save(self.checkpoint_name, seq)
        else:
            self._checkpoint_rev = await checkpoint.write(self.sentinel, self.checkpoint_name, seq,
                                                          self._checkpoint_rev)
        self._saved_at = time.monotonic()

    async def _read_checkpoint(self) -> Any:
        if self.lease is not None:
            self.lease.check()
            seq = self.lease.seq(self.checkpoint_name)
            # the first holder after an upgrade starts from the checkpoint kept before leases
            return seq if seq != 0 else await checkpoint.read(self.sentinel, self.checkpoint_name)
        return await checkpoint.read(self.sentinel, self.checkpoint_name)

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """Read and process one batch (waiting for changes if there are none); returns its size.

        While a full batch is processed, the next one is already read (a plain,
        non-waiting ``_changes`` request from the batch's ``last_seq``), so the
        read overlaps the work. Docs read ahead may be a revision behind one
        this batch writes; the engine then meets a conflict and leaves them to
        their newer change, as for any concurrent edit.
        """
        body = await self._take_ahead()
        if body is None:
            await self.save_checkpoint()  # caught up: the checkpoint must not lag while we wait
            feed = asyncio.ensure_future(self.medic.changes(
                since=self.seq, limit=self.batch_size, include_docs=self.include_docs, feed="longpoll",
                timeout=int(self.wait_seconds * 1000), client_timeout=self.wait_seconds))
            if stop is not None:
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({feed, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if feed not in done:
                    feed.cancel()
                    return 0
            body = await feed
        results = body.get("results") or []
        if results:
            if self.read_ahead and len(results) >= self.batch_size:
                self._ahead = (body["last_seq"], asyncio.ensure_future(self.medic.changes(
                    since=body["last_seq"], limit=self.batch_size, include_docs=self.include_docs)))
            started = time.monotonic()
            if self.lease is not None:
                self.lease.check()  # fenced: a sentinel that may have lost the lease writes nothing
            await self.process_batch(results)
            self._unsaved = body["last_seq"]
            if len(results) < self.batch_size or time.monotonic() - self._saved_at >= self.checkpoint_seconds:
                await self.save_checkpoint()
            self.processed += len(results)
            log.info("%s: processed %d change(s) in %d ms; at %r", self.medic.name, len(results),
                     (time.monotonic() - started) * 1000, body["last_seq"])
        self.seq = body.get("last_seq", self.seq)
        return len(results)

    async def _take_ahead(self) -> dict[str, Any] | None:
        """The batch read ahead, if it starts where we are and has changes."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        since, task = ahead
        if since != self.seq:
            await _cancel(task)
            return None
        body = await task
        return body if body.get("results") else None

    async def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            await _cancel(ahead[1])


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - however it ended, it is not wanted
        pass


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass
