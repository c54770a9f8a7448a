"""Hydration against the medic database: the ``Hydrator`` of ``api.cht.lineage`` wired to CouchDB.

Ancestors and contacts are fetched with one ``_all_docs?keys`` per level; short
ids (``patient_id``/``place_id``) are resolved through
``medic-client/contacts_by_reference`` in the same round. For a restricted
(offline) caller, contacts outside their area stay ``{_id, parent}`` stubs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from api.cht.lineage import Hydrator
from api.cht.visibility import UNRESTRICTED, Scope, contact_visible
from api.couch import Database


async def docs_by_shortcode(db: Database, codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Contacts by short id, one view request for all of them; unknown codes are left out."""
    codes = list(dict.fromkeys(str(c) for c in codes))
    if not codes:
        return {}
    body = await db.view("medic-client", "contacts_by_reference", keys=[["shortcode", c] for c in codes],
                         include_docs=True)
    found: dict[str, dict[str, Any]] = {}
    for row in body["rows"]:
        if row.get("doc"):
            found.setdefault(row["key"][1], row["doc"])
    return found


def hydrator(db: Database, scope: Scope) -> Hydrator:
    async def fetch(ids: list[str]) -> Mapping[str, dict[str, Any]]:
        return await db.get_many(ids)

    async def resolve(codes: list[str]) -> Mapping[str, dict[str, Any]]:
        return await docs_by_shortcode(db, codes)

    visible = (lambda doc: contact_visible(scope, doc)) if scope.restricted else None
    return Hydrator(fetch, resolve, visible)


async def hydrate_ids(db: Database, ids: list[str], scope: Scope) -> list[dict[str, Any]]:
    """``/api/v1/hydrate``: each id's doc hydrated, in request order; ``{id, error}`` for missing ones."""
    found = await db.get_many(ids)
    hydrated = await hydrator(db, scope).hydrate(found[i] for i in dict.fromkeys(ids) if i in found)
    by_id = {doc["_id"]: doc for doc in hydrated}
    return [{"id": i, "doc": by_id[i]} if i in by_id else {"id": i, "error": "not_found"} for i in ids]


async def hydrate_one(db: Database, doc_id: str) -> dict[str, Any] | None:
    """One doc with its lineage (``?with_lineage=true``); None when there is no such doc."""
    doc = await db.get_or_none(doc_id)
    if doc is None:
        return None
    [filled] = await hydrator(db, UNRESTRICTED).hydrate([doc])
    return filled
