"""Short ids: ``patient_id`` for people, ``place_id`` for places; numeric, unique among contacts.

Uniqueness is kept by reservations, not by a view: whoever hands out a code
(the API's contact writer, the sentinel) first creates the doc
``shortcode:<code>`` in the sentinel database, without a rev. CouchDB lets
exactly one creation of an id succeed, so a conflict means "taken" and two
writers can never get the same code, whatever the views have indexed yet. On a
CouchDB cluster the creation is written to every live copy and a split answer
(202) is settled by CouchDB's own winner (``Database.settle``).
Many codes are reserved with one ``_bulk_docs`` (a result per id).

Codes that contacts carried before reservations existed are reserved once by
``backfill`` (``scripts/setup_db.py``); codes that reach the database another
way (replication, direct writes) are reserved by the sentinel when it sees the
contact in the feed (``adopt``). A code the API is *given* is also checked
against ``contacts_by_reference``, for a contact of that second kind the
sentinel has not reached yet. A reservation whose contact never got saved (a
crash, an undone write) only wastes its code.

Codes start at 5 digits and grow by one when most random candidates are
taken, as CHT's generator does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, Iterable, Mapping

from api.couch import Database
from api.errors import Conflict, ServiceUnavailable

MIN_LENGTH = 5
PREFIX = "shortcode:"
BACKFILL_MARKER = "shortcode-reservations"
BACKFILL_PAGE = 1000


def reservation_id(code: str) -> str:
    return PREFIX + str(code)


def _reservation(code: str, owner: str | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": reservation_id(code), "type": "shortcode", "code": code,
                           "reserved_date": int(time.time() * 1000)}
    if owner:
        doc["contact_id"] = owner
    return doc


async def _create(codes_db: Database, wanted: Mapping[str, str | None]) -> tuple[set[str], set[str]]:
    """Create these reservations in one request: (codes reserved now, codes already reserved)."""
    if not wanted:
        return set(), set()
    docs = [_reservation(code, owner) for code, owner in wanted.items()]
    results = await codes_db.bulk_docs(docs)
    made, taken, undecided = set(), set(), {}
    for code, doc, result in zip(wanted, docs, results):
        if result.get("ok") and result.get("accepted"):
            undecided[code] = {**doc, "_rev": result["rev"]}
        elif result.get("ok"):
            made.add(code)
        elif result.get("error") == "conflict":
            taken.add(code)
        else:
            raise ServiceUnavailable(f"could not reserve short id {code}: {result.get('error')}")
    # on a cluster, fewer copies than asked took these: held only once confirmed (Database.confirm); a
    # reservation left unconfirmed is a code spent, never a code given twice
    for code, won in zip(undecided, await asyncio.gather(*(codes_db.confirm(doc) for doc in undecided.values()))):
        (made if won else taken).add(code)
    return made, taken


async def reserve(codes_db: Database, wanted: Mapping[str, str | None]) -> set[str]:
    """Reserve these codes (code → the contact that gets it); returns the ones now held.

    A code already reserved for the same contact counts as held (a contact
    keeping its own code); one reserved for another contact, or for nobody
    named, does not.
    """
    made, taken = await _create(codes_db, wanted)
    owned = [code for code in taken if wanted[code]]
    if owned:
        found = await codes_db.get_many(reservation_id(code) for code in owned)
        made.update(code for code in owned if found.get(reservation_id(code), {}).get("contact_id") == wanted[code])
    return made


async def adopt(codes_db: Database, codes: Mapping[str, str]) -> set[str]:
    """Reserve the codes contacts already carry (code → contact id); returns those reserved by someone else.

    A code reserved already is normally the same contact's (the API or the
    sentinel reserved it before writing); the caller may log the others.
    """
    _, taken = await _create(codes_db, codes)
    if not taken:
        return set()
    found = await codes_db.get_many(reservation_id(code) for code in taken)
    return {code for code in taken
            if found.get(reservation_id(code), {}).get("contact_id") not in (None, codes[code])}


async def used(db: Database, codes: Iterable[str]) -> set[str]:
    """The codes some contact in the medic database carries (``contacts_by_reference``)."""
    codes = list(dict.fromkeys(codes))
    if not codes:
        return set()
    body = await db.view("medic-client", "contacts_by_reference", keys=[["shortcode", c] for c in codes])
    return {row["key"][1] for row in body["rows"]}


async def fresh(codes_db: Database, owners: list[str | None]) -> list[str]:
    """A newly reserved code for each of ``owners`` (contact ids, or None when not known yet), in order."""
    result: list[str | None] = [None] * len(owners)
    length, tried, refused = MIN_LENGTH, 0, 0
    while None in result:
        pending = [i for i, code in enumerate(result) if code is None]
        candidates: dict[str, int] = {}
        while len(candidates) < len(pending):
            code = str(secrets.randbelow(9 * 10 ** (length - 1)) + 10 ** (length - 1))
            if code not in candidates:
                candidates[code] = pending[len(candidates)]
        made, taken = await _create(codes_db, {code: owners[i] for code, i in candidates.items()})
        for code in made:
            result[candidates[code]] = code
        tried, refused = tried + len(candidates), refused + len(taken)
        if tried >= 10 and refused * 2 > tried:
            length, tried, refused = length + 1, 0, 0
    return [code for code in result if code is not None]


async def assign(medic: Database, codes_db: Database, docs: list[tuple[dict[str, Any], str, str]]) -> None:
    """Give each (doc, field, path) a reserved code in ``field`` unless it has one; given codes must be free."""
    given: dict[str, tuple[str | None, str]] = {}
    for doc, name, path in docs:
        if doc.get(name) not in (None, ""):
            code = str(doc[name])
            if code in given:
                raise Conflict(f"{name} {code} is used twice in this request", field=path)
            given[code] = (doc.get("_id"), path)
            doc[name] = code
    for code in sorted(await claim(medic, codes_db, {code: owner for code, (owner, _) in given.items()})):
        raise Conflict(f"The short id {code} is already used by another contact", field=given[code][1])
    missing = [(doc, name) for doc, name, _ in docs if doc.get(name) in (None, "")]
    for (doc, name), code in zip(missing, await fresh(codes_db, [doc.get("_id") for doc, _ in missing])):
        doc[name] = code


async def claim(medic: Database, codes_db: Database, given: Mapping[str, str | None]) -> set[str]:
    """Reserve codes requests chose themselves; returns those another contact has (by view or reservation)."""
    if not given:
        return set()
    in_view = await used(medic, given)
    held = await reserve(codes_db, {code: owner for code, owner in given.items() if code not in in_view})
    return {code for code in given if code in in_view or code not in held}


async def backfill(medic: Database, codes_db: Database) -> int:
    """Reserve, once, the code of every contact that has one (a database from before reservations)."""
    if await codes_db.get_or_none(BACKFILL_MARKER) or await codes_db.get_local(BACKFILL_MARKER):
        return 0
    count = 0
    page: dict[str, str] = {}
    async for row in medic.iter_view("medic-client", "contacts_by_reference", startkey=["shortcode"],
                                     endkey=["shortcode", {}], page_size=BACKFILL_PAGE):
        page[str(row["key"][1])] = row["id"]
        if len(page) >= BACKFILL_PAGE:
            count += len((await _create(codes_db, page))[0])
            page = {}
    count += len((await _create(codes_db, page))[0])
    await mark_backfilled(codes_db)
    return count


async def mark_backfilled(codes_db: Database) -> None:
    """A database with no contacts from before reservations needs no backfill."""
    try:  # a normal doc: a _local one can read stale on a cluster after a node's restart
        await codes_db.put({"_id": BACKFILL_MARKER, "type": "shortcode-backfill", "done": int(time.time() * 1000)})
    except Conflict:
        pass  # marked already
