"""Hydration against the medic database: the ``Hydrator`` of ``api.cht.lineage`` wired to CouchDB.

Docs are fetched with ``_all_docs?keys``; short ids (``patient_id``/``place_id``) are resolved through
``medic-client/contacts_by_reference``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from api.cht.lineage import Hydrator
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


def hydrator(db: Database) -> Hydrator:
    async def fetch(ids: list[str]) -> Mapping[str, dict[str, Any]]:
        return await db.get_many(ids)

    async def resolve(codes: list[str]) -> Mapping[str, dict[str, Any]]:
        return await docs_by_shortcode(db, codes)

    return Hydrator(fetch, resolve)


async def hydrate_ids(db: Database, ids: list[str]) -> list[dict[str, Any]]:
    """``/api/v1/hydrate``: an entry per id asked, in request order (a repeated id each time): ``{id, doc}``, or
    ``{id, error: "not_found"}``."""
    if not ids:
        return []
    by_id: dict[str, dict[str, Any]] = {}
    for doc in await hydrator(db).hydrate_ids(ids):
        by_id.setdefault(doc.get("_id"), doc)
    return [{"id": i, "doc": by_id[i]} if i in by_id else {"id": i, "error": "not_found"} for i in ids]


async def hydrate_one(db: Database, doc_id: str) -> dict[str, Any] | None:
    """One doc with its lineage (``?with_lineage=true``); None when there is no such doc."""
    return await hydrator(db).hydrate_one(doc_id)
