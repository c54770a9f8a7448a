"""How many docs each user replicated last: ``replication-count-<user>`` docs in the logs database.

The replication code records a user's count with ``record`` after each
replication; ``GET /api/v1/users-doc-count`` reads them (admins only) and
monitoring counts users over the limit (the ``logs/replication_limit`` view).
"""

from __future__ import annotations

import time
from typing import Any

from api.couch import Database
from api.errors import Conflict, NotFound

PREFIX = "replication-count-"
PAGE = 1000


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


async def record(db: Database, user: str, count: int, *, all_docs_count: int | None = None) -> None:
    """Store the number of docs ``user`` replicated (for the replication code), as CHT's
    ``{user, date, count, all_docs_count}``: ``count`` leaves out the docs purged for the user."""
    for _ in range(3):
        doc = await db.get_or_none(doc_id(user)) or {"_id": doc_id(user), "user": user}
        doc.update(count=count, date=int(time.time() * 1000),
                   all_docs_count=count if all_docs_count is None else all_docs_count)
        try:
            await db.put(doc)
            return
        except Conflict:
            continue
