"""How many docs each user replicated last: ``replication-count-<user>`` docs in the logs database.

The replication code records a user's count with ``record`` after each
replication; ``GET /api/v1/users-doc-count`` reads them (admins only) and
monitoring counts users over the limit (the ``logs/replication_limit`` view).
As cht-core does, a stored count is only replaced when the new one differs by
more than ``COUNT_DIFF`` docs or the stored one is more than ``MAX_AGE_MS``
old: the log says roughly how much a user replicates, and rewriting it on every
sync would cost two requests per sync and wake every follower of the logs
database.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from api.couch import Database
from api.errors import Conflict, NotFound

PREFIX = "replication-count-"
PAGE = 1000
COUNT_DIFF = 100  # cht-core's LOG_COUNT_DIFF
MAX_AGE_MS = 31 * 24 * 3600 * 1000  # cht-core's LOG_MONTH_DIFF: a month


def doc_id(user: str) -> str:
    return PREFIX + user


async def get_one(db: Database, user: str) -> dict[str, Any]:
    doc = await db.get_or_none(doc_id(user))
    if doc is None:
        raise NotFound(f"No replication count recorded for user {user}", field="user")
    return doc


async def get_all(db: Database) -> list[dict[str, Any]]:
    """Every user's count doc, read a page at a time (one small doc per user)."""
    docs: list[dict[str, Any]] = []
    start, skip = PREFIX, 0
    while True:
        rows = (await db.all_docs(startkey=start, endkey=PREFIX + "\ufff0", include_docs=True, limit=PAGE,
                                  skip=skip))["rows"]
        docs.extend(r["doc"] for r in rows if r.get("doc"))
        if len(rows) < PAGE:
            return docs
        start, skip = rows[-1]["id"], 1


def differs(stored: Mapping[str, Any] | None, count: int, now_ms: int) -> bool:
    """Is ``count`` worth storing over ``stored`` (cht-core's rule): nothing stored yet, a count more than
    ``COUNT_DIFF`` away, or a stored one older than ``MAX_AGE_MS``."""
    if not stored or (not stored.get("date") and not stored.get("count")):
        return True
    old_count, old_date = stored.get("count"), stored.get("date")
    if not isinstance(old_count, int) or abs(old_count - count) > COUNT_DIFF:
        return True
    return not isinstance(old_date, (int, float)) or now_ms - old_date > MAX_AGE_MS


async def record(db: Database, user: str, count: int, *, all_docs_count: int | None = None) -> dict[str, Any]:
    """Store the number of docs ``user`` replicated (for the replication code), as CHT's
    ``{user, date, count, all_docs_count}`` when it ``differs`` from the stored one; ``count`` leaves out
    the docs purged for the user. Returns the doc as stored now."""
    doc: dict[str, Any] = {}
    for _ in range(3):
        doc = await db.get_or_none(doc_id(user)) or {"_id": doc_id(user), "user": user}
        now = int(time.time() * 1000)
        if not differs(doc, count, now):
            return doc
        doc.update(count=count, date=now, all_docs_count=count if all_docs_count is None else all_docs_count)
        try:
            await db.put(doc)
            return doc
        except Conflict:
            continue
    return doc
