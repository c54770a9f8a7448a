"""Replication failures, logged as cht-core logs them (``replication-failure-log.js``) and counted for monitoring.

A failed ``GET /api/v1/replication/get-ids`` (an answer of 400 or more, or a request the client gave up) is
added to the user's doc of the month in the logs database, ``replication-fail-<YYYY-MM>-<user>``:
``{user, date, total_failures, failures: [the last 50], daily_failures: {"YYYY-MM-DD": n}}``. Monitoring's
``replication_failure.count`` is the number of users with a failure in the last days.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, Sequence

from api.couch import Database
from api.errors import Conflict

log = logging.getLogger("jamii.monitoring")

PREFIX = "replication-fail-"
MAX_FAILURES = 50
RETRIES = 3


def doc_id(user: str, now: dt.datetime) -> str:
    return f"{PREFIX}{now:%Y-%m}-{user}"


def add_failure(doc: dict[str, Any], now: dt.datetime, status: int, duration_ms: int, roles: Sequence[str],
                request_id: str) -> dict[str, Any]:
    """The log doc with one more failure (counts Jamii does not know are ``null``, as cht-core writes them)."""
    failures = list(doc.get("failures") or [])
    failures.append({"date": int(now.timestamp() * 1000), "status_code": status, "duration": duration_ms,
                     "request_id": request_id, "roles": list(roles), "subjects_count": None, "docs_count": None,
                     "unpurged_docs_count": None})
    daily = dict(doc.get("daily_failures") or {})
    day = f"{now:%Y-%m-%d}"
    daily[day] = daily.get(day, 0) + 1
    return {**doc, "failures": failures[-MAX_FAILURES:], "total_failures": (doc.get("total_failures") or 0) + 1,
            "daily_failures": daily}


async def capture(logs: Database, user: str, roles: Sequence[str], status: int, duration_ms: int,
                  now: dt.datetime | None = None) -> None:
    """Add a failure to the user's log of the month (read, change, write; again if another write won)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    doc_key = doc_id(user, now)
    request_id = str(uuid.uuid4())
    for _ in range(RETRIES):
        stored = await logs.get_or_none(doc_key) or {
            "_id": doc_key, "user": user, "date": int(now.timestamp() * 1000), "total_failures": 0,
            "failures": [], "daily_failures": {}}
        try:
            await logs.put(add_failure(stored, now, status, duration_ms, roles, request_id))
            return
        except Conflict:
            continue
    log.warning("replication failure of %s not logged: the log kept changing", user)


async def users_with_failures(logs: Database, interval_days: float, now: dt.datetime | None = None) -> int:
    """How many users had a failure since the day ``interval_days`` ago."""
    now = now or dt.datetime.now(dt.timezone.utc)
    since = f"{now - dt.timedelta(days=interval_days):%Y-%m-%d}"
    rows = (await logs.view("logs", "replication_failures", startkey=[since]))["rows"]
    return len({row["key"][1] for row in rows})
