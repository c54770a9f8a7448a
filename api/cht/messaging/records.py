"""Reports (``data_record`` docs) from JSON or from SMS text, shaped as CHT's records service makes them.

JSON comes from programs, so it is checked strictly: any problem (no form,
unknown form, a field the form does not have, a value that does not fit, a
required field missing) is a 400 naming the field and nothing is written.
SMS text comes from people, so it is always stored: what could not be parsed
is recorded in the report's ``errors`` (see ``api.cht.messaging.sms_parser``).

The sender's contact is not looked up here: the sentinel's ``update_clinics``
transition attaches it, like for any other report.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
import uuid
from typing import Any, Mapping

from api import schemas
from api.cht import phones
from api.couch import Database, new_id
from api.errors import BadRequest, ServiceUnavailable

from . import sms_parser

GATEWAY_NAMESPACE = uuid.UUID("0b7e2a5c-5d4e-4f65-8a53-95c3c1e3b0a7")
DIGITS_RE = re.compile(r"^\d+$")


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_timestamp(value: Any, field: str) -> int | None:
    """Milliseconds since the epoch from ms (number or digits) or ISO 8601; None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if DIGITS_RE.match(text):
            return int(text)
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
            return int(moment.timestamp() * 1000)
    raise BadRequest(f"{field} must be milliseconds since the epoch or an ISO 8601 date", field=field)


def gateway_doc_id(gateway_ref: str) -> str:
    """The id of the report for a gateway's message id: the same message twice is one doc."""
    return uuid.uuid5(GATEWAY_NAMESPACE, gateway_ref).hex


def _record(form: str | None, fields: dict[str, Any], errors: list[dict[str, Any]], sender: Any,
            reported_date: int, settings: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": "data_record"}
    if form is not None:
        doc["form"] = form
    if isinstance(sender, str):
        sender = phones.normalize(sender, settings) or sender
    if sender is not None:
        doc["from"] = sender
    doc.update({"fields": fields, "errors": errors, "tasks": [], "reported_date": reported_date})
    doc.update({k: v for k, v in extra.items() if v is not None})
    return doc


def from_json(body: dict[str, Any], settings: Mapping[str, Any], now: int | None = None) -> dict[str, Any]:
    """A report from ``{field: value, ..., "_meta": {form, from, reported_date, locale}}``."""
    schemas.validate("record_json", body)
    meta = body["_meta"]
    found = sms_parser.find_form(settings.get("forms") or {}, meta["form"])
    if found is None:
        raise BadRequest(f"Form not found: {meta['form']}", field="_meta.form")
    form, definition = found
    known = {key.lower(): key for key, _ in sms_parser.ordered_fields(definition)}
    raw: dict[str, Any] = {}
    for name, value in body.items():
        if name == "_meta":
            continue
        lower = name.lower()
        if lower not in known:
            raise BadRequest(f"Form {form} has no field {name}", field=name)
        if known[lower] in raw:
            raise BadRequest(f"Field {name} is given twice (names are not case-sensitive)", field=name)
        raw[known[lower]] = value
    locale = meta.get("locale")
    fields, errors = sms_parser.build_fields(definition, raw, settings, locale)
    if errors:
        raise BadRequest(errors[0]["message"], field=errors[0]["fields"][0])
    reported = parse_timestamp(meta.get("reported_date"), "_meta.reported_date") or (now or now_ms())
    return _record(form, fields, [], meta.get("from"), reported, settings, locale=locale)


def from_sms(message: str, sender: str, settings: Mapping[str, Any], *, reported_date: int | None = None,
             locale: str | None = None, gateway_ref: str | None = None) -> dict[str, Any]:
    """A report (or, for text that is no form, an incoming message) from an SMS; never refuses."""
    parsed = sms_parser.parse(message, settings, locale)
    reported = reported_date or now_ms()
    sms_message: dict[str, Any] = {"type": "sms_message", "message": message, "from": sender,
                                   "form": parsed.code, "reported_date": reported}
    for key, value in (("locale", locale), ("gateway_ref", gateway_ref)):
        if value is not None:
            sms_message[key] = value
    doc = _record(parsed.form, parsed.fields, parsed.errors, sender, reported, settings,
                  locale=locale, sms_message=sms_message)
    doc["_id"] = gateway_doc_id(gateway_ref) if gateway_ref else new_id()
    return doc


async def save(db: Database, doc: dict[str, Any]) -> str:
    doc.setdefault("_id", new_id())
    await db.put(doc)
    return doc["_id"]


async def save_incoming(db: Database, docs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Write SMS reports made with ``gateway_ref`` ids; returns (saved ids, ids already there)."""
    saved, duplicates = [], []
    for doc, result in zip(docs, await db.bulk_docs(docs)):
        if result.get("ok"):
            saved.append(doc["_id"])
        elif result.get("error") == "conflict":
            duplicates.append(doc["_id"])
        else:
            problem = result.get("reason") or result.get("error")
            raise ServiceUnavailable(f"could not store message {doc['_id']}: {problem}")
    return saved, duplicates
