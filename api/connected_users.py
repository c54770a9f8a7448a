"""Who has used the API lately: one ``connected-user-<name>`` doc per user in the logs database.

Written at most once per ``interval`` per user and process, in the
background, so a request never waits on it; monitoring counts the docs whose
``timestamp`` falls in the asked window.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .couch import Database
from .errors import Conflict, JamiiError

log = logging.getLogger("jamii.connected_users")


class ConnectedUsers:
    def __init__(self, db: Database, interval: float = 3600):
        self.db = db
        self.interval = interval
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def touch(self, name: str) -> None:
        now = time.monotonic()
        if now - self._last.get(name, -self.interval) < self.interval:
            return
        self._last[name] = now
        task = asyncio.create_task(self._save(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save(self, name: str) -> None:
        doc_id = f"connected-user-{name}"
        for _ in range(3):
            try:
                doc = await self.db.get_or_none(doc_id) or {"_id": doc_id, "type": "connected-user", "user": name}
                doc["timestamp"] = int(time.time() * 1000)
                await self.db.put(doc)
                return
            except Conflict:
                continue
            except JamiiError as exc:
                self._last.pop(name, None)  # try again on the next request
                log.warning("could not record connected user: %s", exc)
                return

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
