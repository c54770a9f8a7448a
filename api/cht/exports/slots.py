"""How many exports of each kind stream at once in one API process, and how many may wait for a slot.

An export reads every matching doc and holds its connection for as long as
the client reads. Left unbounded, exports and the many short requests beside
them slow each other until clients time out; a few at a time keep the process
answering everyone and let the exports finish.

Beyond them, as many again may wait for a slot, first come first served, for
at most ``wait`` seconds: a slot that frees is handed on at once instead of
standing idle until a refused client comes back (under the load mix, refused
clients told to come back in 5 s left the slots idle about half the time). Any
more, or a waiter whose time is up, is answered 503 with ``Retry-After``, never
left waiting until the client gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import AsyncIterator

from api.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = 5


class ExportSlots:
    def __init__(self, per_kind: int, wait: float = 10.0, retry_after: int = RETRY_AFTER_SECONDS):
        self.per_kind = per_kind  # 0: no limit
        self.wait = wait  # seconds a request may wait for a slot (0: refused at once)
        self.retry_after = retry_after
        self.running: dict[str, int] = {}
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, kind: str) -> AsyncIterator[None]:
        """A slot for one export of ``kind`` while the block runs; ServiceUnavailable when none is free
        within ``wait`` seconds, or when as many requests as there are slots are waiting already."""
        await self._take(kind)
        try:
            yield
        finally:
            self._give_back(kind)

    async def _take(self, kind: str) -> None:
        if not self.per_kind or self.running.get(kind, 0) < self.per_kind:
            self.running[kind] = self.running.get(kind, 0) + 1
            return
        queue = self._waiting.setdefault(kind, deque())
        if self.wait <= 0 or len(queue) >= self.per_kind:
            raise self._refusal(kind)
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(handed)
        try:
            await asyncio.wait_for(asyncio.shield(handed), self.wait)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            if handed.done() and not handed.cancelled():  # handed a slot as the wait ended: pass it on
                self._give_back(kind)
            else:
                handed.cancel()
                if handed in queue:
                    queue.remove(handed)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise self._refusal(kind) from None

    def _give_back(self, kind: str) -> None:
        """The slot goes to the first request still waiting, else back to the pool."""
        queue = self._waiting.get(kind)
        while queue:
            handed = queue.popleft()
            if not handed.done():
                handed.set_result(None)
                return
        self.running[kind] -= 1

    def _refusal(self, kind: str) -> ServiceUnavailable:
        return ServiceUnavailable(f"{self.per_kind} {kind} export(s) are running already; try again in "
                                  f"{self.retry_after} seconds", retry_after=self.retry_after)
