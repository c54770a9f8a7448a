"""The ``clean-info-docs`` job: info docs whose document is gone are deleted.

The engine drops the info doc of every deletion it sees in the feed; this
job catches what that misses (a doc deleted while a retry recreated its info
doc, or purged). It walks the sentinel database's info docs a page per run
from a cursor kept in ``_local/info-cleanup``, starting over at the end, and
asks the medic database about the page's docs in one request. Only info docs
of the medic feed (``<doc id>-info``) are considered. Deleting twice is
harmless, so it is safe to run twice.
"""

from __future__ import annotations

from api.couch import Database

from .info import info_id

CURSOR = "info-cleanup"


async def clean(sentinel: Database, medic: Database, page: int = 1000) -> int:
    """Delete one page's worth of orphaned info docs; returns how many were deleted."""
    cursor = (await sentinel.get_local(CURSOR) or {}).get("next") or ""
    rows = (await sentinel.all_docs(startkey=cursor, limit=page + 1, include_docs=True))["rows"]
    next_cursor = rows[page]["id"] if len(rows) > page else ""
    infos = [row["doc"] for row in rows[:page]
             if row.get("doc") and row["doc"].get("type") == "info" and isinstance(row["doc"].get("doc_id"), str)
             and row["id"] == info_id(row["doc"]["doc_id"])]
    deleted = 0
    if infos:
        found = (await medic.all_docs([d["doc_id"] for d in infos]))["rows"]
        live = {row["key"] for row in found if "value" in row and not row["value"].get("deleted")}
        gone = [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True} for d in infos if d["doc_id"] not in live]
        if gone:
            deleted = sum(1 for r in await sentinel.bulk_docs(gone) if r.get("ok"))
    await sentinel.put_local(CURSOR, {"next": next_cursor})
    return deleted
