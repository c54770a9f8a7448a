"""CHT's report search (forms, dates, places, validity, verification, freetext) run as one view scan.

CHT's search library queries one view per filter and intersects the id
sets in memory. Exports may match a million reports, so here one view is
read, page by page, and the other filters are checked on each doc as it
streams by:

* every filter that has an index proposes a *plan*: ``medic/reports_by_place_date``
  per selected place, ``medic/reports_by_form_date`` per selected form (both
  bounded by the date range too), ``medic-client/reports_by_freetext`` per
  word, ``medic-client/reports_by_date`` for a date range;
* when there is more than one plan, each is *probed* (its rows counted, ids
  only, up to ``PROBE_LIMIT``) and the smallest wins; plans that all reach
  the limit are ranked place, form, exact freetext term, date, freetext word;
* without any indexed filter, every report is read in date order.

A doc listed twice by a plan (a report under two selected places, or under
several words of a prefix search) is kept only at its first range or its
smallest matching word, so nothing is held in memory to drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping

from api.cht.exports.params import ReportFilters
from api.cht.lineage import lineage_ids
from api.couch import Database
from api.paging import Position, page

from . import freetext

PROBE_LIMIT = 1000
PAGE_SIZE = 500


@dataclass(frozen=True)
class Range:
    ddoc: str
    view: str
    startkey: Any
    endkey: Any


@dataclass
class Plan:
    name: str  # "place", "form", "term", "date", "word", "all"
    ranges: list[Range]
    keys: tuple[str, ...] = ()  # the place ids, form codes or the word the ranges are for
    size: int | None = field(default=None)  # rows counted by the probe (None: not probed)


RANK = ("place", "form", "term", "date", "word", "all")


def _bounded(ddoc: str, view: str, key: str, filters: ReportFilters) -> Range:
    if filters.date.given:
        return Range(ddoc, view, [key, filters.date.start], [key, filters.date.end])
    return Range(ddoc, view, [key], [key, {}])


def plans(filters: ReportFilters) -> list[Plan]:
    """Every way to read the reports these filters select, best first when sizes are unknown."""
    found: list[Plan] = []
    if filters.facilities:
        found.append(Plan("place", [_bounded("medic", "reports_by_place_date", f, filters)
                                    for f in filters.facilities], filters.facilities))
    if filters.forms:
        found.append(Plan("form", [_bounded("medic", "reports_by_form_date", f, filters) for f in filters.forms],
                          filters.forms))
    for word in filters.words:
        start, end = freetext.word_range(word)
        found.append(Plan("term" if ":" in word else "word",
                          [Range("medic-client", "reports_by_freetext", [start], [end])], (word,)))
    if filters.date.given:
        found.append(Plan("date", [Range("medic-client", "reports_by_date", [filters.date.start],
                                         [filters.date.end])]))
    if not found:
        found.append(Plan("all", [Range("medic-client", "reports_by_date", None, None)]))
    return sorted(found, key=lambda p: RANK.index(p.name))


async def probe(db: Database, plan: Plan, limit: int = PROBE_LIMIT) -> int:
    """How many rows the plan's ranges hold, counted up to ``limit`` (ids only)."""
    count = 0
    for r in plan.ranges:
        rows = (await db.view(r.ddoc, r.view, startkey=r.startkey, endkey=r.endkey,
                              limit=limit - count + 1))["rows"]
        count += len(rows)
        if count > limit:
            break
    plan.size = count
    return count


async def choose(db: Database, filters: ReportFilters) -> Plan:
    """The plan that reads the fewest rows (probing only when there is a choice)."""
    options = plans(filters)
    if len(options) == 1:
        return options[0]
    await asyncio.gather(*(probe(db, plan) for plan in options))
    return min(options, key=lambda p: (p.size, RANK.index(p.name)))


def matches(doc: Mapping[str, Any], filters: ReportFilters) -> bool:
    """Does a report pass every filter? (The same rules the views encode, checked on the doc.)"""
    if doc.get("type") != "data_record" or not doc.get("form"):
        return False
    if filters.forms is not None and doc.get("form") not in filters.forms:
        return False
    if not filters.date.contains(doc.get("reported_date")):
        return False
    if filters.facilities is not None:
        chain = set(lineage_ids(doc["contact"])) if isinstance(doc.get("contact"), Mapping) else set()
        if not chain.intersection(filters.facilities):
            return False
    if filters.valid is not None and (not doc.get("errors")) != filters.valid:
        return False
    if filters.verified is not None:
        verified = doc.get("verified") if isinstance(doc.get("verified"), bool) else None
        if verified not in filters.verified:
            return False
    if filters.words:
        words = freetext.report_words(doc)
        if not all(freetext.matches(w, words) for w in filters.words):
            return False
    return True


def first_listing(plan: Plan, index: int, row_key: Any, doc: Mapping[str, Any]) -> bool:
    """Is this row the one place the plan lists this doc (so it is written once)?"""
    if plan.name == "place" and index:
        contact = doc.get("contact")
        chain = set(lineage_ids(contact)) if isinstance(contact, Mapping) else set()
        return not chain.intersection(plan.keys[:index])
    if plan.name == "word":
        return isinstance(row_key, list) and row_key[:1] == [
            freetext.first_match(plan.keys[0], freetext.report_words(doc))]
    return True


async def view_pages(db: Database, ddoc: str, view: str, *, startkey: Any, endkey: Any, limit: int,
                     **params: Any) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of a key range, a page at a time, the next page read while the caller handles this one.

    The first page brings the index up to date; the others are read from it as
    it is (``update=false``), so that a long read (an export) does not wait, page
    after page, for the indexing of every write made meanwhile: on a busy
    CouchDB a page could wait past ``COUCH_TIMEOUT`` and cut the export.
    When the caller stops (a client went away), the read under way is
    cancelled, which releases its CouchDB connection.
    """
    async def fetch(after: Position | None) -> tuple[list[dict[str, Any]], Position | None]:
        return await page(db, ddoc, view, startkey=startkey, endkey=endkey, after=after, limit=limit,
                          update=after is None, **params)

    pending: asyncio.Future[tuple[list[dict[str, Any]], Position | None]] | None = asyncio.ensure_future(fetch(None))
    try:
        while pending is not None:
            rows, after = await pending
            pending = asyncio.ensure_future(fetch(after)) if after is not None else None
            yield rows
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def iter_reports(db: Database, plan: Plan, filters: ReportFilters,
                       page_size: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of the reports that pass the filters, read from the plan's ranges in order."""
    for index, r in enumerate(plan.ranges):
        pages = view_pages(db, r.ddoc, r.view, startkey=r.startkey, endkey=r.endkey,
                           limit=page_size or PAGE_SIZE, include_docs=True)
        async with contextlib.aclosing(pages):
            async for rows in pages:
                docs = [row["doc"] for row in rows
                        if row.get("doc") and matches(row["doc"], filters)
                        and first_listing(plan, index, row["key"], row["doc"])]
                if docs:
                    yield docs
