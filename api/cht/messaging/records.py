"""Reports (``data_record`` docs) from JSON or from SMS text, shaped as CHT's records service makes them.

JSON is read as cht-core reads it (``createRecordByJSON``): without ``_meta``, a form code, or a known
form, nothing is written (a 400 with cht-core's message, where cht-core answers 500); otherwise the report
is always stored: the form's fields are copied (others dropped), dates made milliseconds and ``1``/``0``
booleans, and a required field missing or a value of the wrong type is recorded in the report's ``errors``
with cht-core's codes and messages (``sys.missing_fields``, ``sys.incorrect_type``).
SMS text comes from people, so it is always stored too: what could not be parsed
is recorded in the report's ``errors`` (see ``api.cht.messaging.sms_parser``).

The sender's contact is not looked up here: the sentinel's ``update_clinics``
transition attaches it, like for any other report.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import time
import uuid
from typing import Any, Mapping

from api.cht import phones
from api.cht.translations import render
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


ERROR_TEXTS = {  # cht-core's English texts (api/resources/translations/messages-en.properties)
    "sys.missing_fields": "Missing or invalid fields: {{fields}}.",
    "sys.incorrect_type": "Incorrect type of field {{key}}, expected {{expectedType}}.",
}
DATE_NUMBER = re.compile(r"\d{13,}")


def _present(value: Any) -> bool:
    return value is not None and value != ""


class _InvalidDate:
    """A date field's value JavaScript cannot read (``NaN``): present for the checks, stored as ``null``."""


INVALID_DATE = _InvalidDate()


def _json_date(value: Any) -> Any:
    """``moment(value).valueOf()``: ms from a number, an ISO 8601 or RFC 2822 date (UTC when no zone)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return INVALID_DATE
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return int(moment.timestamp() * 1000)
    return INVALID_DATE


def _type_error(kind: Any, value: Any) -> bool:
    """cht-core's type check of a present value (fields with a ``list`` are not checked)."""
    if kind == "integer":
        return isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not value.is_integer())
    if kind == "string":
        return not isinstance(value, str)
    if kind == "boolean":
        return not isinstance(value, bool)
    if kind == "complex":
        return not isinstance(value, (dict, list))
    return False


def _merge(path: list[str], record: dict[str, Any], data: Any) -> None:
    """A form field (``a.b`` nests) copied from the data into the record, as cht-core's ``smsparser.merge``."""
    if len(path) > 1:
        head = path[0]
        if isinstance(data, Mapping) and data.get(head):
            if not isinstance(record.get(head), dict):
                record[head] = {}
            _merge(path[1:], record[head], data[head])
        return
    if isinstance(data, Mapping) and path[0] in data:
        value = data[path[0]]
        record[path[0]] = None if value is INVALID_DATE else value


def _reported(value: Any) -> int | None:
    """``parseSentTimestamp``: a number as it is, 13+ digits as ms, else a readable date; None when unusable."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if value else None
    if isinstance(value, str):
        found = DATE_NUMBER.search(value)
        if found:
            return int(found.group(0))
        parsed = _json_date(value)
        return parsed if isinstance(parsed, int) and parsed else None
    return None


def from_json(body: dict[str, Any], settings: Mapping[str, Any], now: int | None = None) -> dict[str, Any]:
    """A report from ``{field: value, ..., "_meta": {form, from, reported_date, locale}}``, as cht-core makes it.

    The errors carry ``code`` and, until ``describe_errors`` writes their messages, the values for them.
    """
    meta = body.get("_meta")
    if not _present(meta):
        raise BadRequest("Missing _meta property.", field="_meta")
    form = meta.get("form") if isinstance(meta, Mapping) else None
    if not _present(form):
        raise BadRequest("Missing required field: form", field="_meta.form")
    if not isinstance(form, str):
        raise BadRequest("_meta.form must be a form code", field="_meta.form")
    options = {**meta, "form": form.upper()}
    forms = settings.get("forms") if isinstance(settings.get("forms"), Mapping) else {}
    definition = forms.get(options["form"])
    if not isinstance(definition, Mapping) or not isinstance(definition.get("fields"), Mapping):
        raise BadRequest(f"Form not found: {options['form']}", field="_meta.form")
    defined: Mapping[str, Any] = definition["fields"]
    data: dict[str, Any] = {}
    for key, value in body.items():
        if key == "_meta":
            continue
        field = defined.get(key) if isinstance(defined.get(key), Mapping) else None
        if field is not None and field.get("type") == "date":
            value = _json_date(value)
        elif field is not None and field.get("type") == "boolean" and type(value) is int and value in (0, 1):
            value = bool(value)
        data[key.lower()] = value
    fields: dict[str, Any] = {}
    for key in defined:
        _merge(str(key).split("."), fields, data)
    errors: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, field in defined.items():
        field = field if isinstance(field, Mapping) else {}
        value = data.get(key)
        if field.get("required") and value is None:
            missing.append(key)
        elif value is not None and not field.get("list") and value is not INVALID_DATE \
                and _type_error(field.get("type"), value):
            errors.append({"code": "sys.incorrect_type", "ctx": {"expectedType": field.get("type"), "key": key}})
    if missing:
        errors.append({"code": "sys.missing_fields", "ctx": {"fields": missing}})
    reported = _reported(options.get("reported_date")) or (now or now_ms())
    doc = _record(options["form"], fields, errors, options.get("from"), reported, settings, sms_message=options)
    reference = definition.get("facility_reference")
    if reference:
        value = data.get(reference)
        doc["refid"] = value.upper() if isinstance(value, str) else value
    return doc


def locale_of(doc: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The locale of a report's messages, as cht-core picks it."""
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    sms = doc.get("sms_message") if isinstance(doc.get("sms_message"), Mapping) else {}
    for value in (doc.get("locale"), fields.get("locale"), sms.get("locale"), settings.get("locale")):
        if isinstance(value, str) and value:
            return value
    return "en"


def describe_errors(doc: dict[str, Any], texts: Mapping[str, str]) -> None:
    """Give each error its message in the report's language (the English text when there is no translation)."""
    for error in doc.get("errors") or []:
        if "ctx" in error:
            ctx = error.pop("ctx")
            error["message"] = render(texts.get(error["code"]) or ERROR_TEXTS.get(error["code"], error["code"]), ctx)


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
