"""Reading reports (``data_record`` docs with a ``form``): one by id, and id searches by freetext.

A restricted (offline) caller sees a report when its subject is in their area
(``api.cht.visibility.report_visible``); the subjects are looked up by id and by
short id in one round.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.contacts.contacts import check_freetext, freetext_range, in_range
from api.cht.contacts.hydration import docs_by_shortcode, hydrator
from api.cht.lineage import is_report
from api.cht.visibility import Scope, lookup_keys, report_visible
from api.couch import Database
from api.errors import NotFound
from api.paging import decode_cursor, encode_cursor, page


async def subjects_of(db: Database, *reports: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The contacts the docs' replication keys and submitters name (by id or short id), for the visibility check.

    One round for any number of docs (a replicated batch of writes).
    """
    keys = list(dict.fromkeys(k for report in reports for k in lookup_keys(report)))
    if not keys:
        return {}
    by_id, by_code = await asyncio.gather(db.get_many(keys), docs_by_shortcode(db, keys))
    subjects: dict[str, dict[str, Any]] = {}
    for key in keys:
        doc = by_code.get(key) or by_id.get(key)
        if doc is not None and doc.get("type") in CONTACT_DOC_TYPES:
            subjects[key] = doc
    return subjects


async def visible_report(db: Database, scope: Scope, report: Mapping[str, Any]) -> bool:
    if not scope.restricted:
        return True
    return report_visible(scope, report, await subjects_of(db, report))


async def get_report(db: Database, scope: Scope, doc_id: str, *, with_lineage: bool = False) -> dict[str, Any]:
    doc = await db.get_or_none(doc_id)
    if doc is None or not is_report(doc) or not await visible_report(db, scope, doc):
        raise NotFound("Report not found")
    if with_lineage:
        [doc] = await hydrator(db, scope).hydrate([doc])
    return doc


async def report_uuids(db: Database, freetext: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """``{data: [ids], cursor}`` of reports matching a word (prefix) or a ``key:value`` term."""
    term = check_freetext(freetext or "")
    start, end = freetext_range(term, [])
    after = decode_cursor(cursor, valid_key=in_range(start, end))
    rows, nxt = await page(db, "medic-client", "reports_by_freetext", startkey=start, endkey=end, after=after,
                           limit=limit, distinct_ids=True)
    return {"data": [row["id"] for row in rows], "cursor": encode_cursor(nxt)}
