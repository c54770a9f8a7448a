"""Durable ``_changes`` checkpoints, kept as ``_local`` docs (never replicated).

The sentinel stores how far it has processed the medic database's feed in the
sentinel database; monitoring reads it to report the backlog. A seq is opaque
(CouchDB 3 seqs are strings): it is stored and passed back, never compared.
"""

from __future__ import annotations

import time
from typing import Any

from .couch import Database
from .errors import Conflict

SENTINEL = "sentinel-checkpoint"


async def read(db: Database, name: str) -> Any:
    """The stored seq, or 0 (the start of the feed) when there is none."""
    doc = await db.get_local(name)
    return doc.get("seq", 0) if doc else 0


async def write(db: Database, name: str, seq: Any, rev: str | None = None) -> str:
    """Store ``seq``; returns the new rev, which passed back next time saves reading the doc first."""
    body = {"seq": seq, "updated": int(time.time() * 1000)}
    if rev is not None:
        try:
            return (await db.put({**body, "_id": "_local/" + name, "_rev": rev}))["rev"]
        except Conflict:
            pass  # someone else wrote it (a second worker, a test): overwrite as usual
    return await db.put_local(name, body)
