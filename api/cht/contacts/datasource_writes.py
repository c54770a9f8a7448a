"""People and places created and updated as cht-core's data endpoints do (``POST /api/v1/person``,
``PUT /api/v1/person/{uuid}``, ``POST /api/v1/place``, ``PUT /api/v1/place/{uuid}``).

Each check runs in cht-core's order with its message. What is stored is the body as sent (unknown fields
too) with the type fields (``type: contact`` and ``contact_type`` for a configured type), the lineage
minified and a numeric ``reported_date``; the answer is that doc with its ``_id`` and ``_rev``. These are
other endpoints than the older ``/api/v1/people`` and ``/api/v1/places`` (``writes.py``), which keep their
own bodies and rules.
"""

from __future__ import annotations

import copy
import email.utils
from typing import Any, Mapping

from api import timestamps
from api.cht import datasource as ds
from api.cht.lineage import minify, minify_contact
from api.couch import Database, new_id
from api.errors import BadRequest, NotFound


def _type_fields(settings: Mapping[str, Any], type_id: str) -> dict[str, str]:
    """``type: contact`` + ``contact_type`` for a configured type, else the type itself in ``type``."""
    if ds.type_by_id(settings, type_id) is not None:
        return {"type": "contact", "contact_type": type_id}
    return {"type": type_id}


def _check_contact_input(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, (dict, list)):
        raise BadRequest(f"{what} data not provided.")
    if isinstance(data, list):
        raise BadRequest("The [type] field must have a [string] value.")
    ds.require_string(data, "type")
    ds.require_string(data, "name")
    ds.check_reported_date(data)
    ds.must_not_have(data, "_id")
    ds.must_not_have(data, "_rev")
    return data


def _check_parent_type(child_id: str, parents: list[str], parent: Mapping[str, Any]) -> None:
    parent_type = ds.type_id(parent)
    if parent_type not in parents:
        shown = "undefined" if parent_type is None else parent_type
        raise BadRequest(f"Parent contact of type [{shown}] is not allowed for type [{child_id}].")


def _date_parses(value: Any) -> bool:
    """A date JavaScript's ``Date.parse`` reads: ISO 8601 or RFC 2822 (the forms clients send)."""
    if not isinstance(value, str):
        return False
    try:
        timestamps.to_ms(value, "date_of_birth")
        return True
    except BadRequest:
        pass
    try:
        email.utils.parsedate_to_datetime(value)
        return True
    except (TypeError, ValueError, IndexError):
        return False


async def _save(db: Database, doc: dict[str, Any]) -> dict[str, Any]:
    stored = minify(doc)
    if "_id" not in stored:
        stored["_id"] = new_id()
    result = await db.put(stored)
    return {**stored, "_rev": result["rev"]}


async def create_person(db: Database, settings: Mapping[str, Any], data: Any) -> dict[str, Any]:
    data = _check_contact_input(data, "Person")
    ds.require_string(data, "parent")
    for name in ("phone", "patient_id", "sex"):
        ds.optional_string(data, name)
    if data.get("date_of_birth") and not _date_parses(data["date_of_birth"]):
        raise BadRequest("The [date_of_birth] field must have a [date] value.")
    type_id = data["type"]
    configured = ds.type_by_id(settings, type_id)
    if not ds.is_person_type(configured or {"id": type_id}):
        raise BadRequest(f"[{type_id}] is not a valid person type.")
    parent = await db.get_or_none(data["parent"])
    if parent is None:
        raise BadRequest(f"Parent contact [{data['parent']}] not found.")
    parents = (configured or {}).get("parents") if configured else ds.DEFAULT_PERSON_PARENTS
    _check_parent_type(type_id, parents if isinstance(parents, list) else [], parent)
    doc = {**copy.deepcopy(data), **_type_fields(settings, type_id), "parent": parent,
           "reported_date": ds.reported_date_ms(data.get("reported_date"))}
    return await _save(db, doc)


def _place_type(settings: Mapping[str, Any], type_id: str) -> Mapping[str, Any]:
    found = ds.type_by_id(settings, type_id)
    if found is None and type_id in ds.DEFAULT_PLACE_PARENTS:
        found = {"id": type_id, "parents": ds.DEFAULT_PLACE_PARENTS[type_id] or None}
    if found is None or found.get("person"):
        raise BadRequest(f"[{type_id}] is not a valid place type.")
    return found


async def create_place(db: Database, settings: Mapping[str, Any], data: Any) -> dict[str, Any]:
    data = _check_contact_input(data, "Place")
    for name in ("parent", "contact", "place_id"):
        ds.optional_string(data, name)
    type_id = data["type"]
    place_type = _place_type(settings, type_id)
    found = await db.get_many([i for i in (data.get("parent"), data.get("contact")) if i])
    contact = None
    if data.get("contact"):
        contact = found.get(data["contact"])
        if not ds.is_contact(settings, contact):
            raise BadRequest(f"Primary contact [{data['contact']}] not found.")
    parents = place_type.get("parents")
    takes_parent = isinstance(parents, (list, dict)) or bool(parents)  # JavaScript truthiness: [] is true
    parent = None
    if data.get("parent") or takes_parent:
        if data.get("parent") and not takes_parent:
            raise BadRequest(f"Place type [{type_id}] does not support having a parent contact.")
        if not data.get("parent"):
            raise BadRequest(f"Place type [{type_id}] requires a parent contact.")
        parent = found.get(data["parent"])
        if not ds.is_place(settings, parent):
            raise BadRequest(f"Parent contact [{data['parent']}] not found.")
        _check_parent_type(type_id, parents if isinstance(parents, list) else [], parent)
    doc = {**copy.deepcopy(data), **_type_fields(settings, type_id),
           "reported_date": ds.reported_date_ms(data.get("reported_date"))}
    for name, value in (("parent", parent), ("contact", contact)):
        if value is None:
            doc.pop(name, None)
        else:
            doc[name] = value
    return await _save(db, doc)


def _check_update(settings: Mapping[str, Any], kind: str, data: Any, uuid: str) -> dict[str, Any]:
    what = {"person": "person", "place": "place"}[kind]
    if not isinstance(data, dict):
        raise BadRequest(f"Updated {what} data not provided.")
    data = {**data, "_id": uuid}
    check = ds.is_person if kind == "person" else ds.is_place
    if not check(settings, data):
        raise BadRequest("Valid _id, _rev, and type fields must be provided.")
    return data


def _check_name(original: Mapping[str, Any], updated: Mapping[str, Any], *, changed_only: bool) -> None:
    if (original.get("name") and not changed_only) or (changed_only and original.get("name") != updated.get("name")):
        ds.require_string(updated, "name")


async def _store_update(db: Database, updated: dict[str, Any]) -> dict[str, Any]:
    result = await db.put(minify(copy.deepcopy(updated)))
    return {**updated, "_rev": result["rev"]}


async def update_person(db: Database, settings: Mapping[str, Any], uuid: str, data: Any) -> dict[str, Any]:
    updated = _check_update(settings, "person", data, uuid)
    original = await db.get_or_none(uuid)
    if not ds.is_person(settings, original):
        raise NotFound(f"Person record [{uuid}] not found.")
    ds.check_fields_unchanged(original, updated, ["_rev", "reported_date", "type", "contact_type"])
    _check_name(original, updated, changed_only=False)
    if not ds.same_lineage(original.get("parent", ds.UNDEFINED), updated.get("parent", ds.UNDEFINED)):
        raise BadRequest("Parent lineage does not match.")
    return await _store_update(db, updated)


async def update_place(db: Database, settings: Mapping[str, Any], uuid: str, data: Any) -> dict[str, Any]:
    updated = _check_update(settings, "place", data, uuid)
    contact_id = ds.contact_id_for_update(updated)
    found = await db.get_many([i for i in (uuid, contact_id) if i])
    original = found.get(uuid)
    if not ds.is_place(settings, original):
        raise NotFound(f"Place record [{uuid}] not found.")
    contact = ds.updated_contact(settings, original, updated, found.get(contact_id) if contact_id else None,
                                 minify_contact)
    ds.check_fields_unchanged(original, updated, ["_rev", "reported_date", "type", "contact_type"])
    _check_name(original, updated, changed_only=True)
    if not ds.same_lineage(original.get("parent", ds.UNDEFINED), updated.get("parent", ds.UNDEFINED)):
        raise BadRequest("Parent lineage does not match.")
    if contact is ds.UNDEFINED:
        updated.pop("contact", None)
    else:
        updated["contact"] = contact
    return await _store_update(db, updated)

