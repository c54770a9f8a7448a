"""The contacts export (JSON array), filtered by type, parent and search words."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping

from api.cht.reports import freetext
from api.cht.reports.search import view_pages
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    json_array_item,
)
from .params import ContactFilters


def contact_item(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": doc.get("_id"), "rev": doc.get("_rev"), "name": doc.get("name"),
            "patient_id": doc.get("patient_id"), "type": doc.get("type"),
            "contact_type": doc.get("contact_type"), "place_id": doc.get("place_id")}


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


async def contacts_json(db: Database, filters: ContactFilters) -> AsyncGenerator[str, None]:
    """The contacts export: a JSON array, written a page at a time."""
    word, ranges = contact_ranges(filters)
    yield "["
    first = True
    for ddoc, view, startkey, endkey in ranges:
        pages = view_pages(db, ddoc, view, startkey=startkey, endkey=endkey, limit=PAGE_SIZE, include_docs=True)
        async with aclosing(pages):
            async for rows in pages:
                chunk = []
                for row in rows:
                    doc = row.get("doc")
                    if doc and contact_matches(doc, filters, word, row["key"]):
                        chunk.append(json_array_item(contact_item(doc), first))
                        first = False
                if chunk:
                    yield "".join(chunk)
    yield "]"
