"""Reading reports (``data_record`` docs with a ``form``) as cht-core's data endpoints do: one by id, pages of
docs by ids, pages of ids by freetext or by form (numeric cursors, ``api.cht.datasource``).

``subjects_of`` finds what replication needs to decide whether an offline caller sees a report
(``api.cht.visibility``: its subject is in their area); the subjects are looked up by id and by short id in
one round.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping

from api.cht import datasource as ds
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.contacts.contacts import freetext_reader
from api.cht.contacts.hydration import docs_by_shortcode, hydrate_one
from api.cht.datasource import UNDEFINED, Page, Raw
from api.cht.visibility import lookup_keys
from api.couch import Database
from api.errors import BadRequest, NotFound

from .freetext import report_words


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


async def get_report(db: Database, doc_id: str, *, with_lineage: bool = False) -> dict[str, Any]:
    """``GET /api/v1/report/{uuid}``: the report, as stored or with its contact, patient and place."""
    doc = await (hydrate_one(db, doc_id) if with_lineage else db.get_or_none(doc_id))
    if not ds.is_report(doc):
        raise NotFound("Report not found")
    return doc


def _forms_reader(db: Database, forms: list[str]) -> ds.Read:
    async def read(limit: int, skip: int) -> list[Any]:
        rows = (await db.view("medic-client", "reports_by_form", keys=[[f] for f in forms], reduce=False,
                              limit=limit, skip=skip or None))["rows"]
        return [row["id"] for row in rows]
    return read


async def report_uuids(db: Database, raw_freetext: Raw, raw_forms: Raw, cursor: Raw, raw_limit: Raw) -> Page:
    """``GET /api/v1/report/uuid``: ids of reports matching a freetext term, or else of the given forms."""
    if raw_freetext is UNDEFINED and raw_forms is not UNDEFINED:
        forms: list[str] | None = ds.forms_of(raw_forms)
        term = None
    else:
        forms, term = None, ds.freetext_of(raw_freetext)
    ds.check_cursor(cursor)
    limit = ds.limit_of(raw_limit, ds.IDS_PAGE_LIMIT)
    skip = ds.skip_of(cursor)
    read = _forms_reader(db, forms) if forms is not None else \
        freetext_reader(db, "reports_by_freetext", str(term), [], report_words)
    return await ds.fetch_and_filter(read, ds.distinct(), limit, skip)


async def report_page(db: Database, raw_ids: Raw, cursor: Raw, raw_limit: Raw) -> Page:
    """``GET /api/v1/report?ids=``: a page of the reports among the given ids, in their order."""
    if not ds.given(raw_ids):
        raise BadRequest("Query param ids is required")
    ids = ds.ids_of(raw_ids)
    ds.check_cursor(cursor)
    limit = ds.limit_of(raw_limit, ds.DOCS_PAGE_LIMIT)
    skip = ds.skip_of(cursor)

    async def read(size: int, start: int) -> list[Any]:
        wanted = ids[start:start + size]
        found = await db.get_many(wanted)
        return [found.get(i) for i in wanted]

    return await ds.fetch_and_filter(read, lambda doc: doc if ds.is_report(doc) else None, limit, skip)


async def report_summaries(db: Database, body: Any) -> list[dict[str, Any]]:
    """``POST /api/v1/report/summary``: a summary of each report among the ids, in their order."""
    ids = ds.ids_qualifier(body)
    found = await db.get_many(ids)
    return [ds.summarise_report(found[i]) for i in ids if ds.is_report(found.get(i))]
