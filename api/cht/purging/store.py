"""Reading a purge database: which of some ids it lists as purged (a missing database lists none)."""

from __future__ import annotations

from typing import Iterable

from api.couch import Database
from api.errors import NotFound

from .names import extract_id, purged_id

KEYS_PER_REQUEST = 1000


async def purged_revs(db: Database, ids: Iterable[str], per_request: int = KEYS_PER_REQUEST) -> dict[str, str]:
    """``{doc id: rev of its purged: doc}`` for the ids this purge database lists (un-purged ones left out)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), per_request):
        keys = [purged_id(i) for i in wanted[start:start + per_request]]
        try:
            rows = (await db.all_docs(keys))["rows"]
        except NotFound:
            return {}
        for row in rows:
            value = row.get("value")
            doc_id = extract_id(row.get("id") or "")
            if doc_id is not None and isinstance(value, dict) and not value.get("deleted"):
                found[doc_id] = value["rev"]
    return found


async def purged_among(db: Database, ids: Iterable[str]) -> set[str]:
    """The ids this purge database lists as purged."""
    return set(await purged_revs(db, ids))


async def update_seq(db: Database) -> object | None:
    """The purge database's ``update_seq`` (opaque), or None when it does not exist."""
    try:
        return (await db.info())["update_seq"]
    except NotFound:
        return None
