"""Foci: malaria case clusters and cases per country, kept in the foci database.

Records are CouchDB documents in ``config.db_foci``:

* cluster ``{"_id": "cluster:<country>:<id>", "type": "foci_cluster", "country",
  "id", "status", "geometry", "cases", "updated_at"}``
* case ``{"_id": "case:<country>:<id>", "type": "foci_case", "country", "id",
  "geometry", "personalised_instance_id", "updated_at"}``

The country is part of the document id, so the same record id may exist in two
countries and a record is never reachable through another country; the
sentinel can tell a deleted record's country from its id alone. ``cases`` is
written only by the recount (``api.foci.recount``): what a client sends there
is ignored. The countries are the app settings' ``foci.countries`` (country
codes, matched case-insensitively), ``default_settings.json``'s list when the
settings have none.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, AsyncIterator, Mapping

from api import schemas
from api.couch import Database
from api.errors import BadRequest, Conflict, JamiiError, NotFound
from api.settings import default_settings

from . import geometry as foci_geometry

DDOC = "foci"
CLUSTER = "cluster"
CASE = "case"
TYPES = {CLUSTER: "foci_cluster", CASE: "foci_case"}
KIND_OF_TYPE = {v: k for k, v in TYPES.items()}
LIST_VIEWS = {CLUSTER: "clusters_by_country", CASE: "cases_by_country"}
SCHEMAS = {CLUSTER: "foci_cluster", CASE: "foci_case"}
# The original system's cluster statuses.
STATUSES = ("investigated", "suggested", "visual review", "active", "inactive", "cleared")
DEFAULT_STATUS = "suggested"
DEFAULT_INSTANCE = "default"
# Records per create request; larger uploads are split by the client.
MAX_BULK = 10000
WRITE_CHUNK = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


# -- countries ----------------------------------------------------------------

@lru_cache(maxsize=1)
def default_countries() -> tuple[str, ...]:
    return tuple(default_settings()["foci"]["countries"])


def countries(settings: Mapping[str, Any]) -> list[str]:
    """The configured country codes."""
    foci = settings.get("foci")
    if isinstance(foci, Mapping) and isinstance(foci.get("countries"), list):
        return [c for c in foci["countries"] if isinstance(c, str) and c]
    return list(default_countries())


def resolve_country(settings: Mapping[str, Any], value: Any, *, unknown: type[JamiiError]) -> str:
    """The configured spelling of a country code; ``unknown`` (NotFound or BadRequest) when it is not one."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("country is required", field="country")
    wanted = value.strip().lower()
    for code in countries(settings):
        if code.lower() == wanted:
            return code
    raise unknown(f"Unknown country: {value}", field="country")


# -- ids ----------------------------------------------------------------------

def doc_id(kind: str, country: str, record_id: str) -> str:
    return f"{kind}:{country}:{record_id}"


def parse_doc_id(value: str) -> tuple[str, str, str] | None:
    """(kind, country, record id) of a foci document id, None for any other id."""
    kind, sep, rest = value.partition(":")
    country, sep2, record_id = rest.partition(":")
    if not sep or not sep2 or kind not in TYPES or not country or not record_id:
        return None
    return kind, country, record_id


# -- validation and documents -------------------------------------------------

def _prefixed(exc: BadRequest, index: int | None) -> BadRequest:
    if index is None:
        return exc
    field = f"{index}.{exc.field}" if exc.field else str(index)
    return BadRequest(f"{index}.{exc.message}" if exc.field else f"{index}: {exc.message}", field=field)


def validate_record(kind: str, body: Any, *, creating: bool, index: int | None = None) -> dict[str, Any]:
    """The client's record, checked and normalised (geometry rings closed, server fields dropped)."""
    try:
        if not isinstance(body, dict):
            if index is None:
                raise BadRequest("Request body must be a JSON object", field="body")
            raise BadRequest("must be a JSON object")
        schemas.validate(SCHEMAS[kind], body)
        record: dict[str, Any] = {}
        if "id" in body:
            record["id"] = body["id"]
        elif not creating:
            raise BadRequest("id: is required", field="id")
        if "geometry" in body:
            normalize = foci_geometry.normalize_polygon if kind == CLUSTER else foci_geometry.normalize_point
            record["geometry"] = normalize(body["geometry"])
        elif creating:
            raise BadRequest("geometry: is required", field="geometry")
        for name in ("status", "personalised_instance_id"):
            if name in body:
                record[name] = body[name]
        return record
    except BadRequest as exc:
        raise _prefixed(exc, index) from None


def new_doc(kind: str, country: str, record: Mapping[str, Any], now: int) -> dict[str, Any]:
    record_id = record.get("id") or str(uuid.uuid4())
    doc: dict[str, Any] = {"_id": doc_id(kind, country, record_id), "type": TYPES[kind], "country": country,
                           "id": record_id, "geometry": record["geometry"]}
    if kind == CLUSTER:
        doc["status"] = record.get("status", DEFAULT_STATUS)
        doc["cases"] = 0
    else:
        doc["personalised_instance_id"] = record.get("personalised_instance_id", DEFAULT_INSTANCE)
    doc["updated_at"] = now
    return doc


def _content(kind: str, doc: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a client controls: equal content means a create is a harmless retry."""
    if kind == CLUSTER:
        return doc.get("geometry"), doc.get("status")
    return doc.get("geometry"), doc.get("personalised_instance_id")


def apply_update(doc: dict[str, Any], record: Mapping[str, Any], now: int) -> bool:
    """Set the fields the client sent; True when anything changed (then ``updated_at`` moves)."""
    changed = False
    for name in ("geometry", "status", "personalised_instance_id"):
        if name in record and doc.get(name) != record[name]:
            doc[name] = record[name]
            changed = True
    if changed:
        doc["updated_at"] = now
    return changed


def to_api(kind: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record as the API shows it."""
    if kind == CLUSTER:
        cases = doc.get("cases")
        return {"id": doc.get("id"), "cases": cases if isinstance(cases, int) else 0,
                "status": doc.get("status"), "geometry": doc.get("geometry"), "updated_at": doc.get("updated_at")}
    return {"_id": doc.get("_id"), "id": doc.get("id"), "geometry": doc.get("geometry"),
            "personalised_instance_id": doc.get("personalised_instance_id", DEFAULT_INSTANCE),
            "updated_at": doc.get("updated_at")}


# -- reads --------------------------------------------------------------------

async def iter_records(db: Database, kind: str, country: str, *, page_size: int = 500) -> AsyncIterator[dict[str, Any]]:
    """Every record of a country, as the API shows it, read a page at a time."""
    async for row in db.iter_view(DDOC, LIST_VIEWS[kind], page_size=page_size, startkey=[country],
                                  endkey=[country, {}], include_docs=True, reduce=False):
        if row.get("doc"):
            yield to_api(kind, row["doc"])


async def count(db: Database, kind: str, country: str) -> int:
    body = await db.view(DDOC, LIST_VIEWS[kind], startkey=[country], endkey=[country, {}], reduce=True)
    rows = body.get("rows") or []
    return int(rows[0]["value"]) if rows else 0


# -- writes -------------------------------------------------------------------

@dataclass
class Created:
    ids: list[str]  # record ids of everything in the request, in request order
    written: int  # how many were new (the others were identical retries)


async def create(db: Database, kind: str, country: str, body: Any) -> Created:
    """Create one record (an object) or many (an array of them).

    All are checked first and nothing is written when any is refused.

    A record whose id exists with the same content is a retried upload: it is
    not written again. One whose id exists with other content is a conflict
    (409, nothing written).
    """
    if isinstance(body, dict):
        bodies, many = [body], False
    elif isinstance(body, list):
        bodies, many = body, True
    else:
        raise BadRequest("Request body must be a JSON object or an array of them", field="body")
    if not bodies:
        raise BadRequest("Nothing to create: the array is empty", field="body")
    if len(bodies) > MAX_BULK:
        raise BadRequest(f"At most {MAX_BULK} records per request", field="body")
    now = now_ms()
    docs = [new_doc(kind, country, validate_record(kind, body, creating=True, index=i if many else None), now)
            for i, body in enumerate(bodies)]
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs):
        if doc["_id"] in seen:
            raise BadRequest(f"{i}.id: {doc['id']} is also record {seen[doc['_id']]} of this request",
                             field=f"{i}.id")
        seen[doc["_id"]] = i
    existing = await db.get_many(seen)
    clashes = [doc["id"] for doc in docs
               if doc["_id"] in existing and _content(kind, existing[doc["_id"]]) != _content(kind, doc)]
    if clashes:
        shown = ", ".join(clashes[:10]) + (" ..." if len(clashes) > 10 else "")
        raise Conflict(f"{len(clashes)} {kind}(s) already exist with other content: {shown}", field="id")
    fresh = [doc for doc in docs if doc["_id"] not in existing]
    written = 0
    for start in range(0, len(fresh), WRITE_CHUNK):
        results = await db.bulk_docs(fresh[start:start + WRITE_CHUNK])
        failed = [r for r in results if r.get("error")]
        written += len(results) - len(failed)
        if failed:
            raise Conflict(f"{len(failed)} {kind}(s) were written by someone else at the same time "
                           f"({failed[0].get('id')}); {written} written; send the request again", field="id")
    return Created([doc["id"] for doc in docs], written)


async def update(db: Database, kind: str, country: str, body: Any, record_id: str | None = None) -> bool:
    """Update one record (the fields sent); True when it changed. NotFound when there is no such record."""
    if record_id is not None and isinstance(body, dict):
        if body.get("id", record_id) != record_id:
            raise BadRequest(f"id: {body['id']} does not match the id in the path ({record_id})", field="id")
        body = {**body, "id": record_id}
    record = validate_record(kind, body, creating=False)
    target = doc_id(kind, country, record["id"])
    for _ in range(5):
        doc = await db.get_or_none(target)
        if doc is None:
            raise NotFound(f"No {kind} {record['id']} in {country}", field="id")
        if not apply_update(doc, record, now_ms()):
            return False
        try:
            await db.put(doc)
            return True
        except Conflict:
            continue  # the recount wrote the count meanwhile: read again
    raise Conflict(f"The {kind} was changed by someone else at the same time; try again", field="id")


async def delete(db: Database, kind: str, country: str, record_id: str) -> None:
    """Delete one record, keeping its country and geometry in the tombstone (the recount reads them)."""
    if not record_id:
        raise BadRequest("id is required", field="id")
    target = doc_id(kind, country, record_id)
    for _ in range(5):
        doc = await db.get_or_none(target)
        if doc is None:
            raise NotFound(f"No {kind} {record_id} in {country}", field="id")
        tombstone = {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True, "type": doc.get("type"),
                     "country": doc.get("country"), "id": doc.get("id"), "geometry": doc.get("geometry"),
                     "updated_at": now_ms()}
        try:
            await db.put(tombstone)
            return
        except Conflict:
            continue
    raise Conflict(f"The {kind} was changed by someone else at the same time; try again", field="id")
