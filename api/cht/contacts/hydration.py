"""Hydration against the medic database: the ``Hydrator`` of ``api.cht.lineage`` wired to CouchDB.

Docs are fetched by id in bulk (``Database.get_many``, ``_bulk_get``); short ids (``patient_id``/``place_id``)
are resolved through ``medic-client/contacts_by_reference``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping, MutableMapping

from api.cht.lineage import Hydrator
from api.couch import Database


class Hints(MutableMapping[str, list[str]]):
    """A bounded map (least recently used out) of which docs each place names as its contacts, so a
    ``with_lineage`` read asks for them with the ancestors; only hints: what the docs say when read wins."""

    def __init__(self, size: int = 20000):
        self.size = size
        self._items: OrderedDict[str, list[str]] = OrderedDict()

    def __getitem__(self, key: str) -> list[str]:
        value = self._items[key]
        self._items.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: list[str]) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


CONTACT_HINTS = Hints()  # per process: hints are checked against the docs read, so they are never wrong, only late


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
    reads = db.couch.batched(db.name)  # concurrent hydrations share requests while CouchDB is busy

    async def fetch(ids: list[str]) -> Mapping[str, dict[str, Any]]:
        return await reads.get_many(ids)

    async def resolve(codes: list[str]) -> Mapping[str, dict[str, Any]]:
        return await docs_by_shortcode(db, codes)

    return Hydrator(fetch, resolve, CONTACT_HINTS, fresh_fetches=True)  # each caller gets docs of its own


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
    """One doc with its lineage (``?with_lineage=true``); None when there is no such doc. Usually two requests:
    the doc, then its ancestors with the contacts they named when last seen (a third when those changed)."""
    return await hydrator(db).hydrate_one(doc_id)

