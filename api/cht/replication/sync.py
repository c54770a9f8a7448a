"""CHT's initial-sync endpoints for offline users: ``get-ids`` (every visible doc with its rev) and
``get-deletes`` (which ids a device should purge)."""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.couch import Database

from .scope import Counts
from .visible_set import ScopeCache, replication_count

IDS_PER_REQUEST = 1000


async def doc_ids_revs(db: Database, scopes: ScopeCache, principal: Principal,
                       settings: Mapping[str, Any]) -> dict[str, Any]:
    """``get-ids``: every visible doc with its current rev, and the seq to follow ``_changes`` from.

    ``warn_docs`` counts as CHT does: the docs that are not tasks, the client
    design doc and the user's settings doc always among them.
    """
    last_seq = (await db.info())["update_seq"]  # taken first: nothing written meanwhile is missed
    visible = await scopes.get(principal, settings, record=True)
    ids = sorted(visible.ids)
    pairs = []
    for start in range(0, len(ids), IDS_PER_REQUEST):
        rows = (await db.all_docs(ids[start:start + IDS_PER_REQUEST]))["rows"]
        pairs.extend({"id": r["id"], "rev": r["value"]["rev"]} for r in rows
                     if "value" in r and not r["value"].get("deleted"))
    total = replication_count(visible)
    counts = Counts(total_docs=total, warn_docs=total - len(visible.tasks))
    return {"doc_ids_revs": pairs, "warn_docs": counts.warn_docs, "last_seq": last_seq, "warn": counts.warn,
            "limit": counts.limit}


async def deleted_or_gone(db: Database, scopes: ScopeCache, principal: Principal, settings: Mapping[str, Any],
                          doc_ids: list[str]) -> list[str]:
    """``get-deletes``: which of these ids a device should purge: deleted, or no longer the user's to see.

    An id the database has never had is not listed: it is a doc the device
    made and has not pushed yet (CHT's web app asks about every local id it did
    not get from ``get-ids``, and deletes what it is told to).
    """
    visible = await scopes.get(principal, settings)
    wanted = list(dict.fromkeys(doc_id for doc_id in doc_ids if doc_id not in visible))
    known: set[str] = set()
    for start in range(0, len(wanted), IDS_PER_REQUEST):
        rows = (await db.all_docs(wanted[start:start + IDS_PER_REQUEST]))["rows"]
        known.update(r["key"] for r in rows if "value" in r)
    return [doc_id for doc_id in wanted if doc_id in known]
