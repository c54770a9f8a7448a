"""The exports: reports, messages and feedback as CSV, contacts and user devices as JSON, all streamed.

Each export is an async generator of text chunks: the first chunk (the CSV
header, or ``[``) comes once everything that can fail for a bad request has
been checked, then one chunk per page of documents read from CouchDB. The
handler writes each chunk as it comes, so memory stays flat however large
the export, and stops reading when the client goes away.

CSV follows RFC 4180 (quotes doubled, CRLF line ends; CHT escapes quotes
with backslashes, which spreadsheet programs and CSV parsers misread).
Nested values (arrays, objects) are written as JSON in one cell.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections import OrderedDict
from contextlib import aclosing
from datetime import datetime, timedelta, timezone
from typing import Any, AsyncGenerator, Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

from ua_parser import parse as parse_user_agent

from api import timestamps
from api.cht.lineage import lineage_ids
from api.cht.messages import STATES
from api.cht.messaging import sms_parser
from api.cht.reports import freetext
from api.cht.reports import search as report_search
from api.cht.reports.search import view_pages
from api.couch import Database
from api.errors import BadRequest

from .params import ContactFilters, DateRange, Options, ReportFilters

PAGE_SIZE = 500
SAMPLE_REPORTS = 50  # reports of each form read to find its field columns
SAMPLE_CONCURRENCY = 8
MAX_FORMS = 1000
NAME_CACHE_SIZE = 20000


# -- cells and lines -------------------------------------------------------------


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return freetext.js_string(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return out.getvalue()


def _xml_text(value: Any) -> str:
    text = cell(value)
    text = "".join(c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
                   or c > "\uffff")
    return escape(text)


def xml_rows(rows: Iterable[Sequence[Any]]) -> str:
    """Rows of an Excel 2003 XML (SpreadsheetML) table, every cell a string."""
    return "".join("<Row>" + "".join(f'<Cell><Data ss:Type="String">{_xml_text(v)}</Data></Cell>' for v in row)
                   + "</Row>\n" for row in rows)


XML_START = ('<?xml version="1.0" encoding="UTF-8"?>\n<?mso-application progid="Excel.Sheet"?>\n'
             '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
             'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">\n'
             '<Worksheet ss:Name="{name}"><Table>\n')
XML_END = "</Table></Worksheet></Workbook>\n"


def json_array_item(value: Any, first: bool) -> str:
    return ("" if first else ",") + json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# -- dates -------------------------------------------------------------------------


def to_ms(value: Any) -> int | None:
    """Milliseconds since the epoch from ms or an ISO 8601 string; None when it is neither.

    The lenient twin of ``api.timestamps.to_ms``: an export writes what it can read.
    """
    if value is None:
        return None
    try:
        return timestamps.to_ms(value)
    except BadRequest:
        return None


def iso(ms: int, offset_minutes: int = 0) -> str:
    """ISO 8601 with milliseconds: ``Z`` in UTC, else the offset (``+02:00``)."""
    zone = timezone.utc if not offset_minutes else timezone(timedelta(minutes=offset_minutes))
    moment = datetime.fromtimestamp(ms / 1000, tz=zone)
    text = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if not offset_minutes else text


def export_date(value: Any, human_readable: bool) -> Any:
    """A date column: epoch ms, or ISO 8601 (UTC) when human readable; empty when there is none."""
    if value in (None, ""):
        return ""
    ms = to_ms(value)
    if ms is None:
        return value
    return iso(ms) if human_readable else ms


def filename(kind: str, extension: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(now if now is not None else time.time()))
    return f"{kind}-{stamp}.{extension}"


# -- contact names, cached ---------------------------------------------------------------


class NameCache:
    """Contact names by id, fetched in one request per page for the ids not yet known.

    Bounded (least recently used names are dropped), so a long export over a
    large hierarchy keeps flat memory while the names of the few contacts that
    submit most reports stay cached.
    """

    def __init__(self, db: Database, size: int = NAME_CACHE_SIZE):
        self._db = db
        self._size = size
        self._names: OrderedDict[str, str | None] = OrderedDict()

    async def load(self, ids: Iterable[str]) -> None:
        missing = [i for i in dict.fromkeys(ids) if i and i not in self._names]
        for i in dict.fromkeys(ids):
            if i in self._names:
                self._names.move_to_end(i)
        if not missing:
            return
        found = await self._db.get_many(missing)
        for doc_id in missing:
            doc = found.get(doc_id)
            name = doc.get("name") if doc else None
            self._names[doc_id] = name if isinstance(name, str) else None
        while len(self._names) > self._size:
            self._names.popitem(last=False)

    def name(self, doc_id: str | None) -> str | None:
        return self._names.get(doc_id) if doc_id else None


def _contact_chain(doc: Mapping[str, Any], levels: int = 4) -> list[str]:
    contact = doc.get("contact")
    return lineage_ids(contact)[:levels] if isinstance(contact, Mapping) else []


# -- translations -----------------------------------------------------------------------------


async def translations(db: Database, locale: str) -> dict[str, str]:
    """CHT's translation doc for a locale (``messages-<locale>``: ``generic`` overridden by ``custom``)."""
    doc = await db.get_or_none(f"messages-{locale}")
    if not doc:
        return {}
    merged: dict[str, str] = {}
    for part in ("generic", "custom"):
        values = doc.get(part)
        if isinstance(values, Mapping):
            merged.update({k: v for k, v in values.items() if isinstance(v, str)})
    return merged


# -- reports ------------------------------------------------------------------------------------

REPORT_COLUMNS = ["_id", "form", "patient_id", "reported_date", "from", "contact.name", "contact.parent.name",
                  "contact.parent.parent.name", "contact.parent.parent.parent.name"]


def flatten(fields: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """``{"a": {"b": 1}}`` -> ``{("a", "b"): 1}``; arrays stay one value (their length varies)."""
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in fields.items():
        path = prefix + (str(key),)
        if isinstance(value, Mapping):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


async def forms_in_use(db: Database) -> list[str]:
    """The forms that have reports, one key jump each (no reduce, so the cost does not grow with reports)."""
    forms: list[str] = []
    params: dict[str, Any] = {}
    while len(forms) < MAX_FORMS:
        rows = (await db.view("medic-client", "reports_by_form", limit=1, reduce=False, **params))["rows"]
        if not rows:
            break
        key = rows[0]["key"]
        form = key[0] if isinstance(key, list) and key else None
        if not isinstance(form, str):
            break
        forms.append(form)
        params["startkey"] = [form, {}]
    return forms


async def report_field_columns(db: Database, settings: Mapping[str, Any],
                               forms: Sequence[str] | None) -> list[tuple[str, ...]]:
    """Field paths for the columns: each JSON form's fields, and the fields found in a sample of each
    form's reports (as CHT does, from the reports themselves, since XForms vary)."""
    codes = list(forms) if forms else await forms_in_use(db)
    paths: set[tuple[str, ...]] = set()
    json_forms = settings.get("forms") if isinstance(settings.get("forms"), Mapping) else {}
    for code in codes:
        found = sms_parser.find_form(json_forms, code) if json_forms else None
        if found is not None:
            paths.update((name,) for name, _ in sms_parser.ordered_fields(found[1]))

    async def sample(code: str) -> None:
        rows = (await db.view("medic-client", "reports_by_form", key=[code], limit=SAMPLE_REPORTS,
                              include_docs=True, reduce=False))["rows"]
        for row in rows:
            doc = row.get("doc") or {}
            if doc.get("form") == code and isinstance(doc.get("fields"), Mapping):
                paths.update(flatten(doc["fields"]))

    for start in range(0, len(codes), SAMPLE_CONCURRENCY):
        await asyncio.gather(*(sample(code) for code in codes[start:start + SAMPLE_CONCURRENCY]))
    return sorted(paths, key=lambda p: ".".join(p))


def _field(fields: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(fields, Mapping):
            return None
        fields = fields.get(part)
    return None if isinstance(fields, Mapping) else fields


async def reports_csv(db: Database, settings: Mapping[str, Any], filters: ReportFilters,
                      options: Options) -> AsyncGenerator[str, None]:
    """The reports export: a header, then one CSV row per report, a page at a time."""
    paths, plan = await asyncio.gather(report_field_columns(db, settings, filters.forms),
                                       report_search.choose(db, filters))
    yield csv_lines([REPORT_COLUMNS + ["fields." + ".".join(p) for p in paths]])
    names = NameCache(db)
    async for docs in report_search.iter_reports(db, plan, filters):
        await names.load(i for doc in docs for i in _contact_chain(doc))
        rows = []
        for doc in docs:
            chain = _contact_chain(doc) + [None] * 4
            fields = doc.get("fields")
            rows.append([doc.get("_id"), doc.get("form"), doc.get("patient_id"),
                         export_date(doc.get("reported_date"), options.human_readable), doc.get("from")]
                        + [names.name(i) for i in chain[:4]]
                        + [_field(fields, p) for p in paths])
        yield csv_lines(rows)


# -- messages ------------------------------------------------------------------------------------

MESSAGE_COLUMNS = (["Record UUID", "Patient ID", "Reported Date", "From", "Contact Name", "Message Type",
                    "Message State", "Received Timestamp"]
                   + [s.replace("-", " ").title() + " Timestamp" for s in STATES]
                   + ["Sent By", "To Phone", "Message Body"])


def message_tasks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every group of messages on a doc, normalised as CHT's export does (auto replies, tasks, incoming)."""
    tasks: list[dict[str, Any]] = []
    reported = doc.get("reported_date")
    if isinstance(doc.get("responses"), list) and doc["responses"]:
        tasks.append({"type": "Automated Reply", "state": "sent", "state_history": [
            {"state": "sent", "timestamp": reported}], "messages": doc["responses"]})
    for key in ("tasks", "scheduled_tasks"):
        if isinstance(doc.get(key), list):
            tasks.extend(t for t in doc[key] if isinstance(t, Mapping))
    sms = doc.get("sms_message")
    if isinstance(sms, Mapping) and sms.get("message"):
        tasks.append({"type": "Message", "state": "received", "state_history": [
            {"state": "received", "timestamp": reported}],
            "messages": [{"sent_by": doc.get("from") or sms.get("from"), "message": sms["message"]}]})
    return tasks


def _state_date(state: str, task: Mapping[str, Any], history: Mapping[str, Any], human: bool) -> Any:
    if state == "scheduled" and task.get("due"):
        return export_date(task["due"], human)
    if state in history:
        return export_date(history[state], human)
    if task.get("state") == state:
        return export_date(task.get("timestamp"), human)
    return ""


def _message_contact_id(message: Mapping[str, Any], doc: Mapping[str, Any]) -> str | None:
    contact = message.get("contact")
    if isinstance(contact, Mapping) and isinstance(contact.get("_id"), str):
        return contact["_id"]
    chain = _contact_chain(doc, 1)
    return chain[0] if chain else None


def message_rows(doc: Mapping[str, Any], names: NameCache, translate: Mapping[str, str],
                 human: bool) -> list[list[Any]]:
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    patient_id = doc.get("patient_id") or fields.get("patient_id")
    rows = []
    for task in message_tasks(doc):
        history = {h.get("state"): h.get("timestamp") for h in task.get("state_history") or []
                   if isinstance(h, Mapping)}
        key = task.get("translation_key")
        kind = (translate.get(key, key) if isinstance(key, str) and key else None) or task.get("type") \
            or "Task Message"
        for message in task.get("messages") or []:
            if not isinstance(message, Mapping):
                continue
            contact = message.get("contact")
            name = contact.get("name") if isinstance(contact, Mapping) and contact.get("name") else \
                names.name(_message_contact_id(message, doc))
            rows.append([doc.get("_id"), patient_id, export_date(doc.get("reported_date"), human), doc.get("from"),
                         name, kind, task.get("state"), _state_date("received", task, history, human)]
                        + [_state_date(s, task, history, human) for s in STATES]
                        + [message.get("sent_by"), message.get("to"), message.get("message")])
    return rows


async def messages_csv(db: Database, settings: Mapping[str, Any], dates: DateRange,
                       options: Options) -> AsyncGenerator[str, None]:
    """The messages export: one row per message (outgoing, scheduled, automatic reply or incoming)."""
    translate = await translations(db, str(settings.get("locale") or "en"))
    yield csv_lines([MESSAGE_COLUMNS])
    names = NameCache(db)
    startkey, endkey = ([dates.start], [dates.end]) if dates.given else (None, None)
    pages = view_pages(db, "medic", "messages_by_reported_date", startkey=startkey, endkey=endkey,
                       limit=PAGE_SIZE, include_docs=True)
    async with aclosing(pages):
        async for rows in pages:
            docs = [row["doc"] for row in rows if row.get("doc")]
            await names.load(i for doc in docs for task in message_tasks(doc) for m in task.get("messages") or []
                             if isinstance(m, Mapping) for i in [_message_contact_id(m, doc)] if i)
            lines = [line for doc in docs for line in message_rows(doc, names, translate, options.human_readable)]
            if lines:
                yield csv_lines(lines)


# -- contacts ---------------------------------------------------------------------------------------


def contact_item(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": doc.get("_id"), "rev": doc.get("_rev"), "name": doc.get("name"),
            "patient_id": doc.get("patient_id"), "type": doc.get("type"),
            "contact_type": doc.get("contact_type"), "place_id": doc.get("place_id")}


def contact_ranges(filters: ContactFilters) -> tuple[str | None, list[tuple[str, str, Any, Any]]]:
    """The word read from the index (an exact ``key:value`` term, else the longest word) and the ranges."""
    word = None
    if filters.words:
        word = sorted(filters.words, key=lambda w: (":" not in w, -len(w)))[0]
        start, end = freetext.word_range(word)
        if filters.types:
            return word, [("medic-client", "contacts_by_type_freetext", [t, start], [t, end])
                          for t in filters.types]
        return word, [("medic-client", "contacts_by_freetext", [start], [end])]
    if filters.types:
        return None, [("medic", "contacts_by_type_id", [t], [t, {}]) for t in filters.types]
    return None, [("medic", "contacts_by_type_id", None, None)]


def contact_matches(doc: Mapping[str, Any], filters: ContactFilters, word: str | None, row_key: Any) -> bool:
    kind = freetext.contact_type_of(doc)
    if not kind or (filters.types is not None and kind not in filters.types):
        return False
    if not filters.words:
        return True
    words = freetext.contact_words(doc)
    if not all(freetext.matches(w, words) for w in filters.words):
        return False
    if word is not None and ":" not in word:
        return isinstance(row_key, list) and row_key[-1] == freetext.first_match(word, words)
    return True


async def contacts_json(db: Database, filters: ContactFilters) -> AsyncGenerator[str, None]:
    """The contacts export: a JSON array, written a page at a time."""
    word, ranges = contact_ranges(filters)
    yield "["
    first = True
    for ddoc, view, startkey, endkey in ranges:
        pages = view_pages(db, ddoc, view, startkey=startkey, endkey=endkey, limit=PAGE_SIZE, include_docs=True)
        async with aclosing(pages):
            async for rows in pages:
                chunk = []
                for row in rows:
                    doc = row.get("doc")
                    if doc and contact_matches(doc, filters, word, row["key"]):
                        chunk.append(json_array_item(contact_item(doc), first))
                        first = False
                if chunk:
                    yield "".join(chunk)
    yield "]"


# -- feedback ------------------------------------------------------------------------------------------

FEEDBACK_COLUMNS = ("id", "reported_date", "user", "app_version", "url", "info")


def feedback_row(doc: Mapping[str, Any], tz_minutes: int) -> list[Any]:
    meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
    user = meta.get("user")
    ms = to_ms(meta.get("time"))
    return [doc.get("_id"), iso(ms, -tz_minutes) if ms is not None else meta.get("time"),
            user.get("name") if isinstance(user, Mapping) else user, meta.get("version"), meta.get("url"),
            doc.get("info")]


async def feedback_export(users_meta: Database, medic_db: Database, fmt: str, locale: str, tz_minutes: int,
                          header: bool) -> AsyncGenerator[str, None]:
    """Feedback docs in date order, as CSV or Excel XML; dates in the ``tz`` offset (JS sign: -120 is UTC+2)."""
    labels = await translations(medic_db, locale)
    head = [[labels.get(c, c) for c in FEEDBACK_COLUMNS]] if header else []
    encode = csv_lines if fmt == "csv" else xml_rows
    yield (XML_START.format(name="feedback") if fmt == "xml" else "") + encode(head)
    pages = view_pages(users_meta, "users-meta", "feedback_by_date", startkey=None, endkey=None, limit=PAGE_SIZE,
                       include_docs=True, reduce=False)
    async with aclosing(pages):
        async for rows in pages:
            lines = [feedback_row(row["doc"], tz_minutes) for row in rows if row.get("doc")]
            if lines:
                yield encode(lines)
    if fmt == "xml":
        yield XML_END


# -- user devices -------------------------------------------------------------------------------------


def browser(user_agent: Any) -> dict[str, Any]:
    if not isinstance(user_agent, str) or not user_agent:
        return {"name": None, "version": None}
    found = parse_user_agent(user_agent).user_agent
    if found is None:
        return {"name": None, "version": None}
    version = ".".join(p for p in (found.major, found.minor, found.patch) if p)
    return {"name": found.family, "version": version or None}


def device_item(key: Sequence[Any], value: Mapping[str, Any]) -> dict[str, Any]:
    return {"user": key[0], "deviceId": key[1], "date": key[2], "browser": browser(value.get("userAgent")),
            "apk": value.get("apk"), "android": value.get("android"), "cht": value.get("cht"),
            "settings": value.get("settings")}


async def user_devices_json(users_meta: Database) -> AsyncGenerator[str, None]:
    """One entry per user and device, from its latest telemetry doc; rows come sorted by user, device, date."""
    yield "["
    first = True
    current: tuple[Any, Any] | None = None
    latest: tuple[Any, Any] | None = None
    pages = view_pages(users_meta, "users-meta", "telemetry_by_user_device", startkey=None, endkey=None,
                       limit=PAGE_SIZE * 2)
    async with aclosing(pages):
        async for rows in pages:
            chunk = []
            for row in rows:
                key = row["key"]
                if current is not None and (key[0], key[1]) != current and latest is not None:
                    chunk.append(json_array_item(device_item(*latest), first))
                    first = False
                current, latest = (key[0], key[1]), (key, row.get("value") or {})
            if chunk:
                yield "".join(chunk)
    yield (json_array_item(device_item(*latest), first) if latest is not None else "") + "]"
