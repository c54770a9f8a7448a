"""Short ids: ``patient_id`` for people, ``place_id`` for places; numeric, unique among contacts.

Uniqueness is checked against ``medic-client/contacts_by_reference`` (one view
request per batch of candidates). Codes start at 5 digits and grow by one when
most random candidates are taken, as CHT's generator does. Two writers picking
the same fresh code in the same instant is not prevented (CouchDB has no
unique index); with random codes over a space kept at least half empty it
is rare, and a lookup by short id then answers the first match.
"""

from __future__ import annotations

import secrets
from typing import Any, Iterable

from .couch import Database
from .errors import Conflict

MIN_LENGTH = 5


async def used(db: Database, codes: Iterable[str]) -> set[str]:
    codes = list(dict.fromkeys(codes))
    if not codes:
        return set()
    body = await db.view("medic-client", "contacts_by_reference", keys=[["shortcode", c] for c in codes])
    return {row["key"][1] for row in body["rows"]}


async def fresh(db: Database, count: int, exclude: set[str] | None = None) -> list[str]:
    """``count`` codes no contact uses yet."""
    exclude = set(exclude or ())
    found: list[str] = []
    length = MIN_LENGTH
    while len(found) < count:
        wanted = max(10, 2 * (count - len(found)))
        candidates = {str(secrets.randbelow(9 * 10 ** (length - 1)) + 10 ** (length - 1)) for _ in range(wanted)}
        candidates -= exclude
        taken = await used(db, candidates)
        for code in sorted(candidates - taken):
            if len(found) < count:
                found.append(code)
                exclude.add(code)
        if len(taken) * 2 > len(candidates):
            length += 1
    return found


async def assign(db: Database, docs: list[tuple[dict[str, Any], str, str]]) -> None:
    """Give each (doc, field, path) a code in ``field`` unless it has one; given codes must be free."""
    given: dict[str, str] = {}
    for doc, name, path in docs:
        if doc.get(name) not in (None, ""):
            code = str(doc[name])
            if code in given:
                raise Conflict(f"{name} {code} is used twice in this request", field=path)
            given[code] = path
            doc[name] = code
    for code in await used(db, given):
        raise Conflict(f"The short id {code} is already used by another contact", field=given[code])
    missing = [(doc, name) for doc, name, _ in docs if doc.get(name) in (None, "")]
    for (doc, name), code in zip(missing, await fresh(db, len(missing), set(given))):
        doc[name] = code
