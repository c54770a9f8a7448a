"""The contacts export (CSV, as cht-core's ``contact-mapper``), filtered by type and search words."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping

from api.cht.reports import freetext
from api.cht.reports.search import view_pages
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    csv_header,
    csv_lines,
)
from .params import ContactFilters


CONTACT_COLUMNS = ["id", "rev", "name", "patient_id", "type", "contact_type", "place_id"]


def contact_row(doc: Mapping[str, Any]) -> list[Any]:
    return [doc.get("_id"), doc.get("_rev"), doc.get("name"), doc.get("patient_id"), doc.get("type"),
            doc.get("contact_type"), doc.get("place_id")]


def contact_ranges(filters: ContactFilters) -> tuple[str | None, list[tuple[str, str, Any, Any]]]:
    """The word read from the index (an exact ``key:value`` term, else the longest word) and the ranges."""
    word = None
    if filters.words:
        word = sorted(filters.words, key=lambda w: (":" not in w, -len(w)))[0]
        start, end = freetext.word_range(word)
        if filters.types:
            return word, [("medic-client", "contacts_by_type_freetext", [t, start], [t, end])
                          for t in filters.types]
        return word, [("medic-client", "contacts_by_freetext", [start], [end])]
    if filters.types:
        return None, [("medic", "contacts_by_type_id", [t], [t, {}]) for t in filters.types]
    return None, [("medic", "contacts_by_type_id", None, None)]


def contact_matches(doc: Mapping[str, Any], filters: ContactFilters, word: str | None, row_key: Any) -> bool:
    kind = freetext.contact_type_of(doc)
    if not kind or (filters.types is not None and kind not in filters.types):
        return False
    if not filters.words:
        return True
    words = freetext.contact_words(doc)
    if not all(freetext.matches(w, words) for w in filters.words):
        return False
    if word is not None and ":" not in word:
        return isinstance(row_key, list) and row_key[-1] == freetext.first_match(word, words)
    return True


async def contacts_csv(db: Database, filters: ContactFilters) -> AsyncGenerator[str, None]:
    """The contacts export: a header, then one row per contact, a page at a time (in type, then id order)."""
    word, ranges = contact_ranges(filters)
    yield csv_header(CONTACT_COLUMNS)
    for ddoc, view, startkey, endkey in ranges:
        pages = view_pages(db, ddoc, view, startkey=startkey, endkey=endkey, limit=PAGE_SIZE, include_docs=True)
        async with aclosing(pages):
            async for rows in pages:
                lines = [contact_row(row["doc"]) for row in rows
                         if row.get("doc") and contact_matches(row["doc"], filters, word, row["key"])]
                if lines:
                    yield csv_lines(lines)
