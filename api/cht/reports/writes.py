"""Reports created and updated as cht-core's data endpoints do (``POST /api/v1/report``,
``PUT /api/v1/report/{uuid}``).

The form must be an XForm (a ``form:<code>`` doc) and the contact an existing contact; the fields are stored
as sent. Each check runs in cht-core's order with its message; the stored doc has its contact minified,
``type: data_record`` and a numeric ``reported_date``.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from api.cht import datasource as ds
from api.cht.lineage import minify, minify_contact
from api.couch import Database, new_id
from api.errors import BadRequest, NotFound

FORM_PREFIX = "form:"


async def xform_codes(db: Database) -> set[str]:
    """The codes of the installed XForms: the ids of the ``form:<code>`` docs."""
    rows = (await db.all_docs(startkey=FORM_PREFIX, endkey=FORM_PREFIX + ds.END))["rows"]
    return {row["id"][len(FORM_PREFIX):] for row in rows}


async def create_report(db: Database, settings: Mapping[str, Any], data: Any) -> dict[str, Any]:
    if not isinstance(data, (dict, list)):
        raise BadRequest("Report data not provided.")
    if isinstance(data, list):
        raise BadRequest("The [form] field must have a [string] value.")
    ds.require_string(data, "form")
    ds.check_reported_date(data)
    ds.require_string(data, "contact")
    ds.must_not_have(data, "_id")
    ds.must_not_have(data, "_rev")
    if data.get("type") and data["type"] != "data_record":
        raise BadRequest('Report type must be "data_record".')
    contact = await db.get_or_none(data["contact"])
    if data["form"] not in await xform_codes(db):
        raise BadRequest(f"Invalid form value [{data['form']}].")
    if not ds.is_contact(settings, contact):
        raise BadRequest(f"Contact [{data['contact']}] not found.")
    doc = minify({**copy.deepcopy(data), "contact": contact,
                  "reported_date": ds.reported_date_ms(data.get("reported_date")), "type": "data_record"})
    doc["_id"] = new_id()
    result = await db.put(doc)
    return {**doc, "_rev": result["rev"]}


async def update_report(db: Database, settings: Mapping[str, Any], uuid: str, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("Updated report data not provided.")
    updated = {**data, "_id": uuid}
    if not ds.is_report(updated):
        raise BadRequest("Valid _id, _rev, form, and type fields must be provided.")
    contact_id = ds.contact_id_for_update(updated)
    found = await db.get_many([i for i in (uuid, contact_id) if i])
    original = found.get(uuid)
    if not ds.is_report(original):
        raise NotFound(f"Report record [{uuid}] not found.")
    contact = ds.updated_contact(settings, original, updated, found.get(contact_id) if contact_id else None,
                                 minify_contact)
    if original.get("contact") and contact is ds.UNDEFINED:
        raise BadRequest("A contact must be provided.")
    ds.check_fields_unchanged(original, updated, ["_rev", "reported_date"])
    if original.get("form") != updated.get("form"):
        ds.require_string(updated, "form")
        if updated["form"] not in await xform_codes(db):
            raise BadRequest(f"Invalid form value [{updated['form']}].")
    if contact is ds.UNDEFINED:
        updated.pop("contact", None)
    else:
        updated["contact"] = contact
    result = await db.put(minify(copy.deepcopy(updated)))
    return {**updated, "_rev": result["rev"]}
