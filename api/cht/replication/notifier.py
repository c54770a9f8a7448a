"""Wakes waiters when the medic database changes: one longpoll per API process.

Offline users' longpoll ``_changes`` requests cannot be handed to CouchDB
(each one's filter is its own visible set), so they wait here and re-read
their filtered feed when anything changed, instead of each holding a
CouchDB feed open.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from api.couch import Database
from api.errors import JamiiError

log = logging.getLogger("jamii.changes")


class ChangesNotifier:
    def __init__(self, db: Database):
        self.db = db
        self._changed = asyncio.Event()
        self._following = asyncio.Event()  # set once the feed is followed from a known seq
        self._task: asyncio.Task[None] | None = None

    async def mark(self, timeout: float = 5) -> asyncio.Event:
        """The event the next change will set. Take it *before* reading the feed and wait on it after:
        a change made while the feed is read then still wakes the waiter (``wait`` alone would miss it)."""
        if self._task is None or self._task.done():
            self._following = asyncio.Event()
            self._task = asyncio.create_task(self._follow(), name="medic-changes-notifier")
        try:
            await asyncio.wait_for(self._following.wait(), timeout)
        except asyncio.TimeoutError:
            pass  # the database is slow or away: the error path below wakes the waiters
        return self._changed

    async def wait(self, timeout: float, mark: asyncio.Event | None = None) -> bool:
        """Wait for the next change of the database (after ``mark`` was taken); False on timeout."""
        event = mark if mark is not None else await self.mark()
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self) -> None:
        since: Any = None
        while True:
            try:
                if since is None:
                    since = (await self.db.info())["update_seq"]
                    self._following.set()
                body = await self.db.changes(since=since, feed="longpoll", limit=1, timeout=25000,
                                             client_timeout=30)
                if body.get("results"):
                    since = body["last_seq"]
                    self._changed.set()
                    self._changed = asyncio.Event()
            except asyncio.CancelledError:
                raise
            except JamiiError as exc:
                log.warning("changes notifier: %s", exc)
                since = None
                self._following.set()
                self._changed.set()  # let waiters re-check rather than hang on a dead feed
                self._changed = asyncio.Event()
                await asyncio.sleep(1)
