"""Failed-login counts kept in CouchDB, so every API process behind one port counts the same failures.

A ``api.login_throttle.FailureStore``. There is no read-modify-write counter (on a CouchDB cluster two
processes updating one counter doc at once can both succeed, and one increment is lost in a conflict):
each event is a document of its own, created once, whose id says everything:
``login-failure:<key>:<ms>:<+|-|0>:<random>`` (``key`` is ``failure_key``'s hash: no name or address is
stored). The count is folded from the key's ids, read with one ``_all_docs`` range, in time order, with the
in-memory store's rule (a new count once ``window`` has passed since the first failure). A success deletes
the key's events. Events older than two windows are deleted when the key is next counted.

Events are written with ``w`` = every live copy (``api.couch``), so the single-copy ``_all_docs`` range
read sees every event acknowledged before it, on any node. Times are wall-clock milliseconds of the process
that wrote the event: API hosts' clocks are expected to agree within a second (NTP). An event whose write
is still on its way when another is counted is missed by that count only: in a burst spread over several
processes a guess or two more than the limit may be checked, never a steady stream.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from .couch import Database
from .login_throttle import Failures

PREFIX = "login-failure:"
LOAD_PAGE = 1000
_KINDS = {"+": 1, "-": -1}


def _event_id(key: str, now: float, by: int) -> str:
    kind = "+" if by > 0 else "-"
    return f"{PREFIX}{key}:{int(now * 1000):013d}:{kind}:{secrets.token_hex(4)}"


def fold(ids: list[str], window: float) -> Failures | None:
    """The count the events (ids, in any order) add up to, by the in-memory store's rule."""
    current: Failures | None = None
    for _, ms, kind, _ in sorted(_parsed(i) for i in ids):
        when, by = ms / 1000, _KINDS.get(kind, 0)
        if current is None or when >= current.first + window:
            current = Failures(when, max(0, by))
        else:
            current = Failures(current.first, max(0, current.count + by))
    return current


def _parsed(doc_id: str) -> tuple[str, int, str, str]:
    """(key, ms, kind, random): the events' order."""
    parts = doc_id[len(PREFIX):].split(":")
    try:
        return parts[0], int(parts[1]), parts[2], parts[3]
    except (IndexError, ValueError):
        return "", 0, "", ""


class CouchFailureStore:
    """Adds and clears go to CouchDB; a count is read from ``_events``, a copy of every key's events kept
    by ``api.auth_follow`` (loaded, then the database's feed), so a check costs no request. Until the copy
    is loaded, or after its feed failed, counts are read from CouchDB."""

    def __init__(self, db: Database, window: float):
        self.db = db
        self.window = window
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # key -> (its lock, adds using it)
        self._events: dict[str, set[str]] | None = None  # key -> its event ids; None: no copy to trust

    async def load(self) -> None:
        """Read every recent event (the feed that keeps the copy is followed from just before)."""
        events: dict[str, set[str]] = {}
        oldest = (time.time() - 2 * self.window) * 1000
        start: dict[str, Any] = {"startkey": PREFIX}
        while True:
            rows = (await self.db.all_docs(**start, endkey=PREFIX + "\ufff0", limit=LOAD_PAGE))["rows"]
            for row in rows:
                key, ms, _, _ = _parsed(row["id"])
                if key and ms >= oldest:
                    events.setdefault(key, set()).add(row["id"])
            if len(rows) < LOAD_PAGE:
                break
            start = {"startkey": rows[-1]["id"], "skip": 1}
        self._events = events

    def seen(self, doc_id: str, deleted: bool) -> None:
        """A change of the database, from its feed."""
        if self._events is None or not doc_id.startswith(PREFIX):
            return
        key = _parsed(doc_id)[0]
        if deleted:
            self._events.get(key, set()).discard(doc_id)
            if not self._events.get(key, True):
                del self._events[key]
        elif key:
            self._events.setdefault(key, set()).add(doc_id)

    def lost(self) -> None:
        """The feed failed: changes may be missed, counts are read from CouchDB until the copy is reloaded."""
        self._events = None

    async def _rows(self, key: str) -> list[dict[str, Any]]:
        """The key's events. A range read comes from one copy, which after a node's restart may still hold
        events deleted meanwhile: the ids found are confirmed by a quorum read (``_all_docs`` by keys)."""
        start = f"{PREFIX}{key}:"
        rows = (await self.db.all_docs(startkey=start, endkey=start + "\ufff0"))["rows"]
        if not rows:
            return rows
        confirmed = (await self.db.all_docs([row["id"] for row in rows]))["rows"]
        return [row for row in confirmed if "value" in row and not row["value"].get("deleted")]

    async def get(self, key: str) -> Failures | None:
        if self._events is not None:
            return fold(list(self._events.get(key, ())), self.window)
        return fold([row["id"] for row in await self._rows(key)], self.window)

    async def add(self, key: str, now: float, window: float, by: int = 1) -> Failures:
        """The count up to and including this event, in the events' order (time, then the random part):
        concurrent adds each get their own place in it, as they would one at a time. Within this process
        they are made one at a time per key, so none is counted before an earlier one is written."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._add(key, time.time(), window, by)
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _add(self, key: str, now: float, window: float, by: int) -> Failures:
        mine = _event_id(key, now, by)
        if by:
            await self.db.put({"_id": mine, "type": "login-failure"})
            self.seen(mine, False)  # this process's next check counts it, before its feed brings it
        rows = await self._rows(key)
        old = [row for row in rows if _parsed(row["id"])[1] / 1000 < now - 2 * window]
        if old:
            await self._delete(old)
        counted = fold([row["id"] for row in rows if row not in old and _parsed(row["id"]) <= _parsed(mine)],
                       window)
        return counted if counted is not None else Failures(now, 0)

    async def clear(self, key: str) -> None:
        await self._delete(await self._rows(key))

    async def _delete(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.db.bulk_docs([{"_id": row["id"], "_rev": row["value"]["rev"], "_deleted": True}
                                     for row in rows])
            for row in rows:
                self.seen(row["id"], True)
