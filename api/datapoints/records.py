"""Records as documents: integer ids given out safely, and records shown as the spec shows them.

Ids: a record is written under ``_id = "<resource>:<n>"`` with ``n`` one more
than the highest id the ``ids`` view knows for that resource. Two concurrent
creates may pick the same ``n``; CouchDB accepts only one of the two writes
(the other gets 409) and the loser moves on to the next number. Ids are never
reused: deleting a record leaves a reservation doc under its ``_id``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from api.couch import Database
from api.errors import Conflict, NotFound

from .model import RESOURCES, Resource, doc_id, record, resource_uri, user_doc_id

DDOC = "datapoints"
URI_FORMATS = ("id", "name", "slug", "uri")
MAX_ATTEMPTS = 200


async def next_id(db: Database, kind: str) -> int:
    rows = (await db.view(DDOC, "ids", startkey=[kind, {}], endkey=[kind], descending=True, limit=1))["rows"]
    return rows[0]["key"][1] + 1 if rows else 1


async def allocate(db: Database, kind: str, build: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """Write ``build(n)`` for the next free id ``n``; returns the doc written (with ``_rev``).

    On a conflict the next number is tried; every few conflicts the view is
    read again, so a burst of concurrent creates spreads out quickly. The write
    is a claim: on a cluster two creates of one id can both be told 202, and
    only a confirmed one gets the id (``Database.confirm``); an unconfirmed one
    deletes its leaf, so no record is left that nobody was told of.
    """
    n = await next_id(db, kind)
    for attempt in range(MAX_ATTEMPTS):
        doc = build(n)
        if await db.claim(doc):
            return doc
        if doc.get("_rev"):  # written but not confirmed
            try:
                await db.delete(doc["_id"], doc["_rev"])
            except (Conflict, NotFound):
                pass  # already deleted as the losing leaf
        n += 1
        if attempt % 8 == 7:
            n = max(n, await next_id(db, kind))
    raise Conflict(f"Could not give the new {kind} an id: too many concurrent creates; try again")


async def by_ids(db: Database, kind: str, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Live records of one resource by id (deleted and missing ones left out)."""
    docs = await db.get_many(doc_id(kind, i) for i in ids)
    return {d["id"]: d for d in docs.values() if d.get("kind") == kind}


def _reference(doc: Mapping[str, Any] | None, kind: str, ref_id: Any, uri_format: str) -> Any:
    if ref_id is None:
        return None
    if uri_format == "id":
        return ref_id
    if uri_format == "uri":
        return resource_uri(kind, ref_id)
    if doc is None:
        return None
    if uri_format == "slug":
        return doc.get("slug") or doc.get("name")
    return doc.get("name")


async def present(db: Database, res: Resource, docs: list[dict[str, Any]], *, user_id: int,
                  uri_format: str = "id", sees: Callable[[Mapping[str, Any]], bool] | None = None
                  ) -> list[dict[str, Any]]:
    """Records as clients see them: stored fields, references, ``resource_uri`` and computed fields.

    ``sees`` tells whether the caller may see a region; a referenced region they
    may not see (the parent of their top region) is shown by id only, never by name.
    """
    wanted: set[str] = set()
    fields = res.by_name
    for shown, stored in res.references.items():
        if uri_format in ("name", "slug"):
            kind = fields[stored].ref
            wanted.update(doc_id(kind, d[stored]) for d in docs if isinstance(d.get(stored), int))
    if res.name == "region":
        wanted.update(doc_id("region_type", d["region_type_id"]) for d in docs
                      if isinstance(d.get("region_type_id"), int))
    if res.name == "custom_dashboard":
        wanted.update(doc_id("user", d["owner_id"]) for d in docs if isinstance(d.get("owner_id"), int))
    related = await db.get_many(wanted) if wanted else {}
    out = []
    for doc in docs:
        item = record(doc, res)
        for shown, stored in res.references.items():
            kind = fields[stored].ref or ""
            ref_id = doc.get(stored)
            target = related.get(doc_id(kind, ref_id)) if ref_id is not None else None
            if target is not None and kind == "region" and sees is not None and not sees(target):
                target = None
            item[shown] = _reference(target, kind, ref_id, uri_format)
        if res.name == "region":
            region_type = related.get(doc_id("region_type", doc.get("region_type_id")))
            item["region_type"] = region_type.get("name") if region_type else None
        if res.name == "custom_dashboard":
            owner = related.get(doc_id("user", doc.get("owner_id")))
            item["owned_by_current_user"] = doc.get("owner_id") == user_id
            item["owner_username"] = owner.get("username") if owner else None
        item["resource_uri"] = resource_uri(res.name, doc["id"])
        out.append({f.name: item.get(f.name) for f in res.fields})
    return out


def references_to(kind: str) -> list[tuple[Resource, str]]:
    """(resource, field) pairs whose value is the id of a ``kind`` record."""
    return [(res, f.name) for res in RESOURCES.values() for f in res.fields
            if f.stored and f.ref == kind and f.name != "id"]


async def users_by_ids(db: Database, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """User profiles by integer id: the id's reservation names the user, the profile must carry that id."""
    reservations = await db.get_many(doc_id("user", i) for i in ids)
    names = {r["id"]: r["username"] for r in reservations.values()
             if r.get("reserves") == "user" and isinstance(r.get("username"), str)}
    profiles = await db.get_many(user_doc_id(name) for name in names.values())
    out = {}
    for user_id, name in names.items():
        profile = profiles.get(user_doc_id(name))
        if profile and profile.get("kind") == "user" and profile.get("id") == user_id:
            out[user_id] = profile
    return out
