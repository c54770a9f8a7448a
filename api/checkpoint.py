"""Durable ``_changes`` checkpoints, kept in the sentinel's lease doc (a normal doc, see ``sentinel.lease``).

The sentinel stores how far it has processed each feed (medic, foci) in the sentinel database; monitoring
reads it to report the backlog. A seq is opaque (CouchDB 3 seqs are strings): it is stored and passed
back, never compared.

They are not ``_local`` docs: on a CouchDB cluster a ``_local`` doc has no MVCC and is never repaired, so
after a node's restart a stale copy can win reads and move a checkpoint backwards. A normal doc is
replicated between the copies, and writing it at a known revision lets the lease fence it: a sentinel that
lost the lease cannot move the checkpoint. A ``_local`` checkpoint from before is read once, as the start.
"""

from __future__ import annotations

import time
from typing import Any

from .couch import Database
from .errors import Conflict

SENTINEL = "sentinel-checkpoint"
LEASE_ID = "sentinel-lease"
WRITE_TRIES = 5


def seq_in(doc: dict[str, Any] | None, name: str) -> Any:
    """The seq stored for feed ``name`` in a lease doc, None when there is none."""
    seqs = (doc or {}).get("seq")
    return seqs.get(name) if isinstance(seqs, dict) else None


async def read(db: Database, name: str) -> Any:
    """The stored seq, or 0 (the start of the feed) when there is none."""
    seq = seq_in(await db.get_or_none(LEASE_ID), name)
    if seq is not None:
        return seq
    old = await db.get_local(name)
    return old.get("seq", 0) if old else 0


async def write(db: Database, name: str, seq: Any, rev: str | None = None) -> str:
    """Store ``seq`` outside any lease (tools, tests, a sentinel run without one): an MVCC update of the
    lease doc, read again on a conflict. Returns the new rev. ``rev`` is accepted for the old callers and
    only saves nothing: the doc is shared by every feed, so it is always read first."""
    for _ in range(WRITE_TRIES):
        doc = await db.get_or_none(LEASE_ID) or {"_id": LEASE_ID, "type": "sentinel-lease"}
        doc["seq"] = {**(doc.get("seq") or {}), name: seq}
        doc["updated"] = int(time.time() * 1000)
        try:
            return (await db.put(doc))["rev"]
        except Conflict:
            continue
    raise Conflict(f"the checkpoint {name} kept changing under this write")
