"""Reading contacts as cht-core's data endpoints do: one by id (optionally with lineage), pages of docs by
type or by ids, pages of ids by type and/or freetext.

Pages by type read CHT's ``medic-client/contacts_by_type`` (key ``[type]``, so rows come in doc id order
within a type); freetext searches read ``contacts_by_freetext`` (``["word"]``) and
``contacts_by_type_freetext`` (``[type, "word"]``). Cursors are numeric skips (``api.cht.datasource``).
"""

from __future__ import annotations

from typing import Any, Mapping

from api.cht import datasource as ds
from api.cht.datasource import Page, Raw
from api.cht.reports.freetext import contact_words
from api.couch import Database
from api.errors import BadRequest, NotFound

from .hydration import hydrate_one

KINDS = {"contact": "Contact", "person": "Person", "place": "Place"}


def matches_kind(settings: Mapping[str, Any], doc: Any, kind: str) -> bool:
    if kind == "person":
        return ds.is_person(settings, doc)
    if kind == "place":
        return ds.is_place(settings, doc)
    return ds.is_contact(settings, doc)


async def get_contact(db: Database, settings: Mapping[str, Any], doc_id: str, *, kind: str = "contact",
                      with_lineage: bool = False) -> dict[str, Any]:
    """The contact, as stored or with its lineage; NotFound when missing or of another kind."""
    doc = await (hydrate_one(db, doc_id) if with_lineage else db.get_or_none(doc_id))
    if doc is None or not matches_kind(settings, doc, kind):
        raise NotFound(f"{KINDS[kind]} not found")
    return doc


def _type_reader(db: Database, type_id: str, *, include_docs: bool) -> ds.Read:
    async def read(limit: int, skip: int) -> list[Any]:
        rows = (await db.view("medic-client", "contacts_by_type", key=[type_id], include_docs=include_docs,
                              limit=limit, skip=skip or None))["rows"]
        return [row.get("doc") for row in rows] if include_docs else [row["id"] for row in rows]
    return read


def _ids_reader(db: Database, ids: list[str]) -> ds.Read:
    async def read(limit: int, skip: int) -> list[Any]:
        wanted = ids[skip:skip + limit]
        found = await db.get_many(wanted)
        return [found.get(i) for i in wanted]
    return read


def _kept(settings: Mapping[str, Any], kind: str) -> Any:
    return lambda doc: doc if matches_kind(settings, doc, kind) else None


async def page_by_type(db: Database, settings: Mapping[str, Any], kind: str, raw_type: Raw, cursor: Raw,
                       raw_limit: Raw) -> Page:
    """``GET /api/v1/person|place?type=``: a page of docs of one person or place type."""
    type_id = ds.contact_type_qualifier(raw_type)
    ds.check_cursor(cursor)
    limit = ds.limit_of(raw_limit, ds.DOCS_PAGE_LIMIT)
    allowed = ds.person_type_ids(settings) if kind == "person" else ds.place_type_ids(settings)
    if type_id not in allowed:
        raise BadRequest(f"Invalid contact type [{type_id}].")
    skip = ds.skip_of(cursor)
    return await ds.fetch_and_filter(_type_reader(db, type_id, include_docs=True), _kept(settings, kind), limit,
                                     skip)


async def contact_page(db: Database, settings: Mapping[str, Any], raw_ids: Raw, raw_type: Raw, cursor: Raw,
                       raw_limit: Raw) -> Page:
    """``GET /api/v1/contact``: a page of contact docs of one type, or of the given ids (in their order)."""
    if not ds.given(raw_ids) and not ds.given(raw_type):
        raise BadRequest("Either query param ids or type is required")
    ids = ds.ids_of(raw_ids) if ds.given(raw_ids) else None
    type_id = None if ids is not None else ds.contact_type_qualifier(raw_type)
    ds.check_cursor(cursor)
    limit = ds.limit_of(raw_limit, ds.DOCS_PAGE_LIMIT)
    if type_id is not None and type_id not in ds.contact_type_ids(settings):
        raise BadRequest(f"Invalid contact type [{type_id}].")
    skip = ds.skip_of(cursor)
    read = _ids_reader(db, ids) if ids is not None else _type_reader(db, str(type_id), include_docs=True)
    return await ds.fetch_and_filter(read, _kept(settings, "contact"), limit, skip)


def freetext_reader(db: Database, view: str, term: str, prefix: list[Any], words: Any) -> ds.Read:
    """Ids of a freetext view's rows in the term's range, one row per doc (``ds.first_row_word``)."""
    start, end = ds.freetext_range(term, prefix)

    async def read(limit: int, skip: int) -> list[Any]:
        params: dict[str, Any] = {"key": start} if start == end else {"startkey": start, "endkey": end}
        rows = (await db.view("medic-client", view, include_docs=True, limit=limit, skip=skip or None,
                              **params))["rows"]
        out: list[Any] = []
        for row in rows:
            doc = row.get("doc")
            word = row["key"][-1] if isinstance(row.get("key"), list) and row["key"] else None
            chosen = ds.first_row_word(term, words(doc)) if isinstance(doc, Mapping) else None
            out.append(row["id"] if chosen is None or chosen == word else None)
        return out
    return read


async def contact_uuids(db: Database, settings: Mapping[str, Any], raw_type: Raw, raw_freetext: Raw, cursor: Raw,
                        raw_limit: Raw) -> Page:
    """``GET /api/v1/contact/uuid``: a page of ids of contacts of a type and/or matching a freetext term."""
    if not ds.given(raw_freetext) and not ds.given(raw_type):
        raise BadRequest("Either query param freetext or type is required")
    term = ds.freetext_of(raw_freetext) if ds.given(raw_freetext) else None
    type_id = ds.contact_type_qualifier(raw_type) if ds.given(raw_type) else None
    ds.check_cursor(cursor)
    limit = ds.limit_of(raw_limit, ds.IDS_PAGE_LIMIT)
    if type_id is not None and type_id not in ds.contact_type_ids(settings):
        raise BadRequest(f"Invalid contact type [{type_id}].")
    skip = ds.skip_of(cursor)
    if term is None:
        read = _type_reader(db, str(type_id), include_docs=False)
    elif type_id is not None:
        read = freetext_reader(db, "contacts_by_type_freetext", term, [type_id], contact_words)
    else:
        read = freetext_reader(db, "contacts_by_freetext", term, [], contact_words)
    return await ds.fetch_and_filter(read, ds.distinct(), limit, skip)


async def contact_summaries(db: Database, settings: Mapping[str, Any], body: Any) -> list[dict[str, Any]]:
    """``POST /api/v1/contact/summary``: a summary of each contact among the ids, in their order."""
    ids = ds.ids_qualifier(body)
    found = await db.get_many(ids)
    return [ds.summarise_contact(found[i]) for i in ids if ds.is_contact(settings, found.get(i))]
