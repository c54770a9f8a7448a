"""Reading contacts: one by id (optionally with lineage), pages of people or places, id searches.

Contacts are docs of the configured contact types (``api.cht.contact_types``).
Pages use ``medic/contacts_by_type_id`` (unique keys, stable cursors); id
searches use CHT's ``medic-client/contacts_by_freetext`` (``["word"]``,
``["key:value"]``) and ``contacts_by_type_freetext`` (``[type, word]``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from api.cht import contact_types
from api.cht.visibility import Scope, contact_visible
from api.couch import Database
from api.errors import BadRequest, NotFound
from api.paging import decode_cursor, encode_cursor, page

from .hydration import hydrator

KINDS = {"contact": "Contact", "person": "Person", "place": "Place"}
_WHITESPACE = re.compile(r"\s")


def matches_kind(settings: Mapping[str, Any], doc: Mapping[str, Any] | None, kind: str) -> bool:
    if kind == "person":
        return contact_types.is_person(settings, doc)
    if kind == "place":
        return contact_types.is_place(settings, doc)
    return contact_types.is_contact(settings, doc)


async def get_contact(db: Database, settings: Mapping[str, Any], scope: Scope, doc_id: str, *,
                      kind: str = "contact", with_lineage: bool = False) -> dict[str, Any]:
    """The contact, as stored or hydrated; NotFound when missing, of another kind, or outside the caller's area."""
    doc = await db.get_or_none(doc_id)
    if doc is None or not matches_kind(settings, doc, kind) or not contact_visible(scope, doc):
        raise NotFound(f"{KINDS[kind]} not found")
    if with_lineage:
        [doc] = await hydrator(db, scope).hydrate([doc])
    return doc


def check_type(settings: Mapping[str, Any], type_id: str | None, kind: str) -> str:
    """A configured contact type of this kind, or a 400 naming it."""
    if not type_id:
        raise BadRequest("Query parameter type is required", field="type")
    ok = {"person": contact_types.is_person_type, "place": contact_types.is_place_type}.get(
        kind, lambda s, t: contact_types.get(s, t) is not None)(settings, type_id)
    if not ok:
        raise BadRequest(f"Invalid contact type [{type_id}].", field="type")
    return type_id


def check_freetext(freetext: str) -> str:
    if len(freetext) < 3 or _WHITESPACE.search(freetext):
        raise BadRequest(f"Invalid freetext [{freetext}]: at least 3 characters and no whitespace.",
                         field="freetext")
    return freetext.lower()


def _is_type_key(type_id: str) -> Any:
    return lambda key: isinstance(key, list) and len(key) == 2 and key[0] == type_id and isinstance(key[1], str)


async def list_contacts(db: Database, settings: Mapping[str, Any], kind: str, type_id: str | None,
                        cursor: str | None, limit: int) -> dict[str, Any]:
    """``{data: [docs], cursor}`` of one person or place type, in id order."""
    type_id = check_type(settings, type_id, kind)
    after = decode_cursor(cursor, valid_key=_is_type_key(type_id))
    rows, nxt = await page(db, "medic", "contacts_by_type_id", startkey=[type_id], endkey=[type_id, {}],
                           after=after, limit=limit, include_docs=True)
    return {"data": [row["doc"] for row in rows if row.get("doc")], "cursor": encode_cursor(nxt)}


def freetext_range(freetext: str, prefix: list[Any]) -> tuple[list[Any], list[Any]]:
    """A ``key:value`` term matches exactly; a word matches as a prefix (``abc`` finds ``abcd``)."""
    if ":" in freetext:
        return prefix + [freetext], prefix + [freetext]
    return prefix + [freetext], prefix + [freetext + "\ufff0"]


def in_range(start: list[Any], end: list[Any]) -> Any:
    def valid(key: Any) -> bool:
        return isinstance(key, list) and len(key) == len(start) and key[:-1] == start[:-1] and \
            isinstance(key[-1], str) and start[-1] <= key[-1] <= end[-1]
    return valid


async def contact_uuids(db: Database, settings: Mapping[str, Any], type_id: str | None, freetext: str | None,
                        cursor: str | None, limit: int) -> dict[str, Any]:
    """``{data: [ids], cursor}`` of contacts of a type and/or matching a freetext term."""
    if not type_id and not freetext:
        raise BadRequest('Either "type" or "freetext" is required.', field="type")
    if type_id:
        check_type(settings, type_id, "contact")
    if freetext is None or freetext == "":
        after = decode_cursor(cursor, valid_key=_is_type_key(type_id or ""))
        rows, nxt = await page(db, "medic", "contacts_by_type_id", startkey=[type_id], endkey=[type_id, {}],
                               after=after, limit=limit)
        return {"data": [row["id"] for row in rows], "cursor": encode_cursor(nxt)}
    term = check_freetext(freetext)
    view = "contacts_by_type_freetext" if type_id else "contacts_by_freetext"
    start, end = freetext_range(term, [type_id] if type_id else [])
    after = decode_cursor(cursor, valid_key=in_range(start, end))
    rows, nxt = await page(db, "medic-client", view, startkey=start, endkey=end, after=after, limit=limit,
                           distinct_ids=True)
    return {"data": [row["id"] for row in rows], "cursor": encode_cursor(nxt)}

