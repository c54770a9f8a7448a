"""Spatial units: GeoJSON Features of one organization project, stored in the spatial database.

A unit is the doc ``spatial_unit:<project id>:<unit id>``::

    {doc_type: "spatial_unit", unit_id, project, organization, name, unit_type, attributes,
     relationships: [unit ids of the same project], geometry, created(_by), updated(_by)}

Lists come from views keyed by project (and type), sorted by the lower-cased name and made
unique by the unit id, so a page starts where the last one ended and ``offset`` is a view
``skip``. A search streams the same view range a page at a time and keeps the units whose
name, attribute values or related units' names contain the text: memory stays flat and a
query with ``limit`` stops as soon as it has enough matches (see docs/spatial-units.md for
why this is a scan and not an index).
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Iterable, Mapping

from api.couch import Database
from api.errors import Conflict

from .geometry import INVALID_FORMAT, GeometryError, GeometryFormatError, normalize
from .organizations import DDOC, NULL, REQUIRED, ProjectAccess, field_errors, new_public_id, now, raise_fields

UNIT_PREFIX = "spatial_unit:"
DEFAULT_TYPE = "PA"  # the original platform's default: a parcel
ORDERINGS = ("name", "-name", "type", "-type")
PAGE_SIZE = 500
READ_ONLY = ("id", "project")  # properties a client may send back unchanged; ignored


def unit_doc_id(project_id: str, unit_id: str) -> str:
    return f"{UNIT_PREFIX}{project_id}:{unit_id}"


def feature(doc: Mapping[str, Any], project: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A stored unit as the spec's GeoJSON Feature (with the ``project`` block when given)."""
    properties: dict[str, Any] = {"attributes": doc.get("attributes") or {}, "id": doc["unit_id"],
                                  "name": doc["name"]}
    if project is not None:
        properties["project"] = project
    properties["relationships"] = doc.get("relationships") or []
    properties["type"] = doc["unit_type"]
    return {"type": "Feature", "geometry": doc["geometry"], "properties": properties}


# -- the request body ---------------------------------------------------------------------------

def _field(path: str) -> str:
    """The spec names fields flatly: ``properties.name`` is ``name``, ``geometry.x.y`` is ``geometry``."""
    if path.startswith("properties."):
        path = path[len("properties."):]
    return path.split(".")[0]


def as_feature(body: Any) -> Any:
    """The body as a Feature. drf-gis's rule, which the platform's clients rely on: a body with
    ``properties`` is a Feature; any other object is *flat*, its keys the unit's fields
    (``{"type": "BU"}`` sets the unit type, ``{"geometry": ...}`` the geometry). A body whose
    ``type`` is ``Feature`` stays a Feature (a unit type "Feature" would mean nothing)."""
    if not isinstance(body, dict) or "properties" in body or body.get("type") == "Feature":
        return body
    feature: dict[str, Any] = {"type": "Feature", "properties": {k: v for k, v in body.items() if k != "geometry"}}
    if "geometry" in body:
        feature["geometry"] = body["geometry"]
    return feature


def _geometry(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The geometry as stored, or what is wrong with it in the platform's words where it had them."""
    if value is None:
        return None, NULL
    if value == "":
        return None, REQUIRED  # drf-gis treats an empty string as missing
    try:
        return normalize(value), None
    except GeometryFormatError:
        return None, INVALID_FORMAT
    except GeometryError as exc:
        return None, str(exc)


def parse_feature(body: Any, *, mode: str = "create") -> dict[str, Any]:
    """The unit's fields from a Feature or a flat body.

    ``mode`` ``create``: every field (defaults for the optional ones); ``patch``: the given ones;
    ``put`` (the platform's full update): name and geometry required, optional fields kept when
    not given, as DRF's full update keeps them. Raises a 400 with ``{field: message}`` for every
    field at fault.
    """
    body = as_feature(body)
    partial = mode == "patch"
    found: dict[str, str] = {}
    if isinstance(body, dict):
        if body.get("type", "Feature") != "Feature":
            found["non_field_errors"] = 'Expected a GeoJSON Feature ("type": "Feature")'
        if not partial and "properties" not in body:
            body = {**body, "properties": {}}
    found.update(field_errors("spatial_unit_patch" if partial else "spatial_unit", body, rename=_field))
    if not isinstance(body, dict):
        raise_fields(found)
    fields: dict[str, Any] = {}
    if "geometry" in body and "geometry" not in found:
        geometry, problem = _geometry(body["geometry"])
        if problem:
            found["geometry"] = problem
        else:
            fields["geometry"] = geometry
    raise_fields(found)
    properties = body.get("properties") or {}
    defaults = mode == "create"
    if "name" in properties:
        fields["name"] = properties["name"].strip()
    if "type" in properties or defaults:
        fields["unit_type"] = properties.get("type", DEFAULT_TYPE).strip()
    if "attributes" in properties or defaults:
        fields["attributes"] = properties.get("attributes", {})
    if "relationships" in properties or defaults:
        fields["relationships"] = list(dict.fromkeys(properties.get("relationships", [])))
    return fields


async def check_relationships(db: Database, project_id: str, ids: list[str], own_id: str | None = None) -> None:
    """Every id must be a unit of this project (another project's unit is as unknown as a missing one)."""
    if own_id is not None and own_id in ids:
        raise_fields({"relationships": "A spatial unit cannot be related to itself"})
    if not ids:
        return
    rows = (await db.all_docs([unit_doc_id(project_id, i) for i in ids]))["rows"]
    known = {row["key"] for row in rows if "error" not in row and not (row.get("value") or {}).get("deleted")}
    unknown = [i for i in ids if unit_doc_id(project_id, i) not in known]
    if unknown:
        raise_fields({"relationships": "No spatial unit of this project has the id " + ", ".join(unknown)})


# -- create, read, update, delete ---------------------------------------------------------------

async def create_unit(db: Database, access: ProjectAccess, body: Any, by: str) -> dict[str, Any]:
    fields = parse_feature(body, mode="create")
    project_id = access.project["id"]
    await check_relationships(db, project_id, fields["relationships"])
    unit_id = new_public_id()
    stamp = now()
    doc = {"_id": unit_doc_id(project_id, unit_id), "doc_type": "spatial_unit", "unit_id": unit_id,
           "project": project_id, "organization": access.organization["id"], **fields,
           "created": stamp, "created_by": by, "updated": stamp, "updated_by": by}
    await db.put(doc)
    return doc


async def get_unit(db: Database, project_id: str, unit_id: str) -> dict[str, Any] | None:
    doc = await db.get_or_none(unit_doc_id(project_id, unit_id))
    return doc if doc and doc.get("doc_type") == "spatial_unit" else None


def _apply(doc: dict[str, Any], fields: Mapping[str, Any], by: str, *, merge_attributes: bool) -> None:
    for name, value in fields.items():
        if name == "attributes" and merge_attributes:
            merged = dict(doc.get("attributes") or {})
            for key, item in value.items():
                if item is None:
                    merged.pop(key, None)
                else:
                    merged[key] = item
            doc["attributes"] = merged
        else:
            doc[name] = value
    doc["updated"] = now()
    doc["updated_by"] = by


async def update_unit(db: Database, project_id: str, unit_id: str, body: Any, by: str, *,
                      replace: bool = False) -> dict[str, Any] | None:
    """PATCH: merge a partial Feature into the unit: attributes merged (a null removes a key), other
    given properties and the geometry replaced. ``replace`` (PUT): a whole Feature, whose given
    properties (attributes too) replace the stored ones. None when there is no such unit in the project."""
    fields = parse_feature(body, mode="put" if replace else "patch")
    checked = False
    for _ in range(5):
        doc = await get_unit(db, project_id, unit_id)
        if doc is None:
            return None
        if "relationships" in fields and not checked:
            await check_relationships(db, project_id, fields["relationships"], own_id=unit_id)
            checked = True
        _apply(doc, fields, by, merge_attributes=not replace)
        try:
            await db.put(doc)
            return doc
        except Conflict:
            continue
    raise Conflict("The spatial unit changed too often while being updated; try again")


async def delete_unit(db: Database, project_id: str, unit_id: str) -> bool:
    """Delete the unit and drop it from the relationships of the units that named it."""
    for _ in range(5):
        doc = await get_unit(db, project_id, unit_id)
        if doc is None:
            return False
        try:
            await db.delete(doc["_id"], doc["_rev"])
            break
        except Conflict:
            continue
    else:
        raise Conflict("The spatial unit changed too often while being deleted; try again")
    await _unlink(db, project_id, unit_id)
    return True


async def _unlink(db: Database, project_id: str, unit_id: str) -> None:
    """Remove ``unit_id`` from every unit of the project that relates to it, a page at a time.

    Updated units leave the view, so each round reads the first page again; a round that
    changes nothing (only conflicts, again and again) ends it.
    """
    for _ in range(1000):
        rows = (await db.view(DDOC, "units_by_relationship", key=[project_id, unit_id], include_docs=True,
                              limit=PAGE_SIZE))["rows"]
        docs = [row["doc"] for row in rows if row.get("doc")]
        if not docs:
            return
        for doc in docs:
            doc["relationships"] = [r for r in doc.get("relationships") or [] if r != unit_id]
        results = await db.bulk_docs(docs)
        if not any(r.get("ok") for r in results):
            return


# -- lists and search ---------------------------------------------------------------------------

def _range(project_id: str, unit_type: str | None, ordering: str) -> tuple[str, list[Any], list[Any]]:
    """The view and key range that answer a list in the wanted order."""
    if unit_type is not None:
        return "units_by_type", [project_id, unit_type], [project_id, unit_type, {}]
    if ordering.lstrip("-") == "type":
        return "units_by_type", [project_id], [project_id, {}]
    return "units_by_name", [project_id], [project_id, {}]


async def _pages(db: Database, view: str, start: list[Any], end: list[Any], *, descending: bool,
                 skip: int = 0, limit: int | None = None,
                 first_page: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """The units of a key range, a page at a time. Keys are unique (they end with the unit id),
    so the next page starts at the last key, skipping it. Pages start at ``first_page`` rows
    and double up to PAGE_SIZE (a search that wants a few matches reads little)."""
    params: dict[str, Any] = {"include_docs": True, "descending": descending,
                              "startkey": end if descending else start, "endkey": start if descending else end}
    if skip:
        params["skip"] = skip
    remaining = limit
    page_size = min(PAGE_SIZE, first_page or PAGE_SIZE)
    while remaining is None or remaining > 0:
        size = page_size if remaining is None else min(page_size, remaining)
        page_size = min(PAGE_SIZE, page_size * 2)
        rows = (await db.view(DDOC, view, limit=size, **params))["rows"]
        page = [row["doc"] for row in rows if row.get("doc")]
        if page:
            yield page
        if len(rows) < size:
            return
        if remaining is not None:
            remaining -= len(rows)
        params["startkey"] = rows[-1]["key"]
        params["skip"] = 1


def _strings(value: Any) -> Iterable[str]:
    """The values of an attributes object as text (keys are left out: they name, not describe)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
    elif value is not None:
        yield json.dumps(value)


def matches(doc: Mapping[str, Any], needle: str, related_names: Mapping[str, str]) -> bool:
    """Whether ``needle`` (case-folded) is in the unit's name, an attribute value or a related unit's name."""
    if needle in doc["name"].casefold():
        return True
    if any(needle in text.casefold() for text in _strings(doc.get("attributes"))):
        return True
    return any(needle in related_names.get(r, "").casefold() for r in doc.get("relationships") or ())


async def _related_names(db: Database, project_id: str, page: list[dict[str, Any]]) -> dict[str, str]:
    ids = sorted({r for doc in page for r in doc.get("relationships") or ()})
    if not ids:
        return {}
    rows = (await db.view(DDOC, "unit_names", keys=[[project_id, i] for i in ids]))["rows"]
    return {row["key"][1]: row["value"] for row in rows}


async def iter_units(db: Database, project_id: str, *, unit_type: str | None = None, ordering: str = "name",
                     search: str | None = None, offset: int = 0,
                     limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
    """The project's units (docs) in order, filtered by type and search, from ``offset``, at most ``limit``."""
    view, start, end = _range(project_id, unit_type, ordering)
    descending = ordering.startswith("-")
    if not search:
        async for page in _pages(db, view, start, end, descending=descending, skip=offset, limit=limit):
            for doc in page:
                yield doc
        return
    needle = search.casefold()
    skipped = taken = 0
    first_page = None if limit is None else max(20, 2 * (offset + limit))
    async for page in _pages(db, view, start, end, descending=descending, first_page=first_page):
        names = await _related_names(db, project_id, page)
        for doc in page:
            if not matches(doc, needle, names):
                continue
            if skipped < offset:
                skipped += 1
                continue
            yield doc
            taken += 1
            if limit is not None and taken >= limit:
                return
