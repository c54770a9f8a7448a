"""CHT's initial-sync endpoints for offline users: ``get-ids`` (every visible doc with its rev) and
``get-deletes`` (which ids a device should purge)."""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.couch import Database

from .visible_set import WARN_LIMIT, ScopeCache, own_ids

IDS_PER_REQUEST = 1000


async def doc_ids_revs(db: Database, scopes: ScopeCache, principal: Principal,
                       settings: Mapping[str, Any]) -> dict[str, Any]:
    """``get-ids``: every visible doc with its current rev, and the seq to follow ``_changes`` from."""
    last_seq = (await db.info())["update_seq"]  # taken first: nothing written meanwhile is missed
    visible = await scopes.get(principal, settings)
    ids = sorted(visible.ids)
    pairs = []
    for start in range(0, len(ids), IDS_PER_REQUEST):
        rows = (await db.all_docs(ids[start:start + IDS_PER_REQUEST]))["rows"]
        pairs.extend({"id": r["id"], "rev": r["value"]["rev"]} for r in rows
                     if "value" in r and not r["value"].get("deleted"))
    tasks = sum(1 for doc_id in ids if doc_id.startswith("task~"))  # CHT's task doc ids
    warn_docs = len(pairs) - tasks
    return {"doc_ids_revs": pairs, "warn_docs": warn_docs, "last_seq": last_seq, "warn": warn_docs > WARN_LIMIT,
            "limit": WARN_LIMIT}


async def deleted_or_gone(db: Database, scopes: ScopeCache, principal: Principal, settings: Mapping[str, Any],
                          doc_ids: list[str]) -> list[str]:
    """``get-deletes``: which of these ids a device should purge (deleted, missing, or out of its area)."""
    visible = await scopes.get(principal, settings)
    return [doc_id for doc_id in doc_ids if doc_id not in visible and doc_id not in own_ids(principal)]
