"""CHT 3.7-4.2's purge download for devices: ``/purging``, ``/purging/changes``, ``/purging/checkpoint``.

CHT 4.3 replaced them with ``get-ids``/``get-deletes`` (which Jamii serves too);
older apps still ask these. A device reads the purged ids of its area from the
purge database of its role set, page by page, and moves a checkpoint
(``_local/<replication id>`` in that database) as it purges them.

Jamii keeps each user's checkpoints under a prefix of their own (a hash of the
name), so two users sharing a role set cannot move each other's: CHT keys them
by the device's replication id alone.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from api.couch import Couch, Database, check_name
from api.errors import BadRequest, Conflict

from .names import extract_id, purge_db_name, purged_id, role_hash
from .store import update_seq

DEFAULT_LIMIT = 100
PAGE = 1000  # rows of the purge feed read per request
MAX_LIMIT = 10000
MAX_REPLICATION_ID = 200


def purge_db(couch: Couch, medic_db: str, roles: Iterable[str]) -> Database:
    return couch.db(purge_db_name(medic_db, role_hash(roles)))


def checkpoint_id(user: str, replication_id: str) -> str:
    """The ``_local`` doc holding one device's position in the purge feed, in the user's own namespace."""
    return "_local/" + hashlib.sha256(user.encode()).hexdigest()[:16] + "-" + replication_id


def replication_id(header: str | None) -> str | None:
    """The ``medic-replication-id`` header, checked; None when absent."""
    return required_replication_id(header) if header else None


def required_replication_id(header: str | None) -> str:
    """The ``medic-replication-id`` header, which a checkpoint needs (CHT's 400 without it)."""
    if not header:
        raise BadRequest("Missing required header medic-replication-id", field="medic-replication-id")
    check_name(header)
    if len(header) > MAX_REPLICATION_ID:
        raise BadRequest(f"medic-replication-id is longer than {MAX_REPLICATION_ID} characters",
                         field="medic-replication-id")
    return header


def limit_of(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}", field="limit")
    return int(raw)


async def info(db: Database) -> dict[str, Any] | bool:
    """The purge database's info, or ``false`` when it does not exist (no purge run for this role set yet)."""
    if await update_seq(db) is None:
        return False
    return await db.info()


async def changes(db: Database, user: str, area: Iterable[str], device: str | None, limit: int) -> dict[str, Any]:
    """Purged ids of the user's area after the device's checkpoint: ``{purged_ids, last_seq}``.

    ``{}`` (CHT's answer) when the purge database does not exist or the area is empty. The feed is read
    from the checkpoint and filtered here, not by CouchDB's ``_doc_ids``: with the area's thousands of ids
    CouchDB would look each one up on every call (``scripts/setup_db.py`` makes it look ids up rather than
    scan, for first syncs), while a device checking again reads only what was purged since.
    """
    wanted = {purged_id(i) for i in area}
    if not wanted or await update_seq(db) is None:
        return {}
    since: Any = 0
    if device is not None:
        saved = await db.get_or_none(checkpoint_id(user, device))
        since = saved.get("last_seq", 0) if saved else 0
    matched: list[dict[str, Any]] = []
    while True:  # the area's rows of the feed, as a ``_doc_ids`` filter with ``limit`` would give them
        page = await db.changes(since=since, limit=PAGE)
        results = page.get("results", [])
        for change in results:
            since = change["seq"]
            if change["id"] in wanted:
                matched.append(change)
                if len(matched) == limit:
                    break
        if len(matched) == limit or len(results) < PAGE:
            break
    if len(matched) < limit:
        since = page.get("last_seq", since)
    purged = [extract_id(c["id"]) for c in matched if not c.get("deleted")]
    return {"purged_ids": [i for i in purged if i is not None], "last_seq": since}


async def checkpoint(db: Database, user: str, device: str, seq: str) -> dict[str, bool]:
    """Move the device's checkpoint to ``seq`` (``now``: the purge database's current seq)."""
    current = await update_seq(db)
    if current is None:
        return {"success": True}  # nothing purged yet: nothing to remember (as CHT)
    doc = {"_id": checkpoint_id(user, device), "last_seq": current if seq == "now" else seq}
    saved = await db.get_or_none(doc["_id"])
    if saved:
        doc["_rev"] = saved["_rev"]
    try:
        await db.put(doc)
    except Conflict:
        pass  # the same device checkpointing twice at once: either position is one it has reached
    return {"success": True}
