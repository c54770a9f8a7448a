"""Work computed from the medic database as of its ``update_seq``, shared by concurrent requests, kept until
the database moves on, and never thrown away because one request stopped waiting.

A request reads ``update_seq`` (its own, quick call). A value made at that seq is answered at once.
Otherwise it waits for a computation that begins after it arrived, so that every write acknowledged before
the request is in the answer:

* none running: one starts now;
* one running that began after the request arrived: it joins that one;
* one running that began before: it joins the one queued behind it (made if there is none), which starts
  when the running one ends, from its value (so it only reads what changed since), or after ``patience``
  seconds if the running one is stuck (a connection that hangs since before an outage).

So one key has at most one computation running and one waiting, however many requests come: when the
database is slow (views catching up after a restart), requests do not each start the same work again.
Requests that can take a value one computation behind (``latest=False``: it says which seq it is as of)
get the newest value at once while one is under way. A
request waits until its deadline (``api.deadline``: then 503 with ``Retry-After``); the computation goes on
within its own limit and its value serves the requests that follow.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Hashable, TypeVar

from api import deadline
from api.couch import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Shared(Generic[K, V]):
    def __init__(self, db: Database, background: Database,
                 compute: Callable[[K, V | None, Any], Awaitable[V]], seq_of: Callable[[V], Any], *,
                 what: str, patience: float = 3.0, size: int = 10000,
                 on_seq: Callable[[Any], None] | None = None):
        """``compute(key, the newest value or None, update_seq)``: the value as of ``update_seq`` (or later);
        it reads through ``background``, whose limit is shared work's. ``db`` answers requests' own reads.
        ``on_seq`` is told every ``update_seq`` read."""
        self.db = db
        self.background = background
        self.compute = compute
        self.seq_of = seq_of
        self.what = what
        self.patience = patience
        self.size = size
        self.on_seq = on_seq or (lambda seq: None)
        self._values: dict[K, tuple[int, V]] = {}  # (the computation's start tick, value)
        self._running: dict[K, tuple[int, asyncio.Future[V]]] = {}
        self._queued: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._tick = 0  # orders request arrivals and computation starts exactly (a clock could tie)

    async def get(self, key: K, *, latest: bool = True) -> V:
        """The value as of now. ``latest=False``: any value no older than the one being computed will do
        (for answers that say which seq they are as of, or counts): while a computation is under way, the
        newest value is answered at once, without waiting for it (nor for one stuck since an outage)."""
        self._tick += 1
        stored = self._values.get(key)
        if not latest and stored is not None and key in self._running:
            return stored[1]
        return await deadline.within(self._current(key, self._tick), self.what)

    async def _current(self, key: K, arrived: int) -> V:
        update_seq = (await self.db.info())["update_seq"]
        self.on_seq(update_seq)
        stored = self._values.get(key)
        if stored is not None and self.seq_of(stored[1]) == update_seq:
            return stored[1]
        running = self._running.get(key)
        if running is None:
            task = self._start(key, update_seq)
        elif running[0] > arrived:
            task = running[1]
        else:
            task = self._queued.get(key) or self._queue(key, running[1])
        return await asyncio.shield(task)  # a request that goes away does not cancel the others' work

    def _start(self, key: K, update_seq: Any = None) -> asyncio.Future[V]:
        self._tick += 1
        began = self._tick
        task = self._keep(asyncio.ensure_future(self._compute(key, update_seq, began)))
        self._running[key] = (began, task)
        task.add_done_callback(lambda done: self._ended(key, done))
        return task

    def _queue(self, key: K, running: asyncio.Future[V]) -> asyncio.Future[V]:
        async def after_it() -> V:
            deadline.unbounded()
            await asyncio.wait([running], timeout=self.patience)
            if self._queued.get(key) is queued:
                del self._queued[key]
            return await self._start(key)

        queued = self._queued[key] = self._keep(asyncio.ensure_future(after_it()))
        return queued

    async def _compute(self, key: K, update_seq: Any, began: int) -> V:
        deadline.unbounded()  # shared: it outlives the request that started it
        if update_seq is None:
            update_seq = (await self.background.info())["update_seq"]
            self.on_seq(update_seq)
        stored = self._values.get(key)
        value = await self.compute(key, stored[1] if stored else None, update_seq)
        stored = self._values.get(key)
        if stored is None or stored[0] < began:  # a computation begun earlier that ends later is not newer
            self._values[key] = (began, value)
        if len(self._values) > self.size:
            self._values.pop(next(iter(self._values)))
        return value

    def _ended(self, key: K, task: asyncio.Future[V]) -> None:
        if key in self._running and self._running[key][1] is task:
            del self._running[key]

    def _keep(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here too: every request waiting for it may have gone

    async def close(self) -> None:
        """Work still under way has nobody left to answer."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
