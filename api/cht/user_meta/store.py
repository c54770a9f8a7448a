"""Making a user's meta database as CHT does: its design doc ``_design/medic-user`` and a ``_security``
naming the user (for parity: only the API reaches CouchDB, and it decides who may use the database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api import ddocs
from api.couch import Couch, Database
from api.errors import Conflict

from .names import user_db_name

DDOC_ROOT = Path(__file__).parent
DDOC = ddocs.load("ddoc", "medic-user", root=DDOC_ROOT)


def security(user: str) -> dict[str, Any]:
    return {"admins": {"names": [user], "roles": []}, "members": {"names": [user], "roles": []}}


async def ensure_ddoc(db: Database) -> bool:
    """Install or bring up to date the meta database's design doc; True when it was written."""
    current = await db.get_or_none(DDOC["_id"])
    if current is not None and {k: v for k, v in current.items() if k != "_rev"} == DDOC:
        return False
    doc = dict(DDOC)
    if current is not None:
        doc["_rev"] = current["_rev"]
    try:
        await db.put(doc)
    except Conflict:
        return False  # written meanwhile by another request or the sentinel
    return True


async def ensure(couch: Couch, medic_db: str, user: str) -> bool:
    """The user's meta database exists (made now if it did not: True)."""
    db = couch.db(user_db_name(medic_db, user))
    if await db.exists():
        return False
    created = await couch.create_db(db.name)
    await ensure_ddoc(db)
    await couch.request("PUT", db.path + "/_security", json_body=security(user))
    return created
