"""Every API process forgets a user's remembered credentials as soon as their ``_users`` doc or one of their
API tokens changes, whichever process (or tool, or CouchDB replication) made the change.

``Authenticator.forget`` is per process; with several processes behind one port, a password changed,
roles changed, or user deleted through one must be refused or re-scoped by all the others at once, not
when their cache expires. So each process follows ``_users/_changes`` (longpoll, from "now") and drops the
named user; and the spatial database's feed for ``api_token:`` docs (a revoked token: every remembered
token is dropped, as the feed holds no owner). A change is seen within one feed round trip (milliseconds).

When a feed fails (CouchDB unreachable, a node lost), changes may have been missed: the whole cache is
dropped, and the feed starts again from the current seq once CouchDB answers. Fail safe: the price is one
password check per caller.

The failed-login events of ``api.login_failures`` are followed the same way, so each process checks a
name's count against a copy in memory instead of reading CouchDB on every request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from .auth import USER_PREFIX, Authenticator
from .couch import Database
from .errors import JamiiError
from .login_failures import CouchFailureStore

log = logging.getLogger("jamii.auth")

WAIT_MS = 25000
CLIENT_TIMEOUT = 30.0
MAX_DELAY = 2.0  # a failed feed is tried again this soon at most


class CredentialFollower:
    def __init__(self, auth: Authenticator, users: Database, tokens: Database, token_prefix: str = "api_token:"):
        self.auth = auth
        self.users = users
        self.tokens = tokens
        self.token_prefix = token_prefix
        self._tasks: list[asyncio.Task[None]] = []
        self.seen = 0  # changes acted on (for tests and metrics)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow(self.users, self._user_changed, self.auth.forget_all)),
                       asyncio.create_task(self._follow(self.tokens, self._token_changed, self.auth.forget_all))]
        failures = self.auth.throttle.store
        if isinstance(failures, CouchFailureStore):  # failed logins counted by every process: a local copy
            self._tasks.append(asyncio.create_task(
                self._follow(failures.db, failures.seen, failures.lost, started=failures.load)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def _user_changed(self, doc_id: str, deleted: bool) -> None:
        if doc_id.startswith(USER_PREFIX):
            self.auth.forget(doc_id[len(USER_PREFIX):])
            self.seen += 1

    def _token_changed(self, doc_id: str, deleted: bool) -> None:
        if doc_id.startswith(self.token_prefix):
            self.auth.forget_scheme("token")
            self.seen += 1

    async def _follow(self, db: Database, changed: Callable[[str, bool], None], lost: Callable[[], None], *,
                      started: Callable[[], Awaitable[None]] | None = None) -> None:
        """Call ``changed(id, deleted)`` for each change of ``db`` from now on; ``started`` once the feed's
        position is known (to read the state it starts from), ``lost`` when changes may have been missed."""
        since: Any = None
        delay = 0.5
        while True:
            try:
                if since is None:
                    since = (await db.changes(descending=True, limit=1)).get("last_seq", 0)
                    if started is not None:
                        await started()
                body = await db.changes(feed="longpoll", since=since, timeout=WAIT_MS, client_timeout=CLIENT_TIMEOUT)
                for row in body.get("results") or ():
                    changed(str(row.get("id", "")), bool(row.get("deleted")))
                since = body.get("last_seq", since)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except JamiiError as exc:
                if since is not None:  # changes may be missed from here: remember nobody
                    lost()
                log.warning("following %s for credentials: %s; again in %.1fs", db.name, exc, delay)
                since = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
