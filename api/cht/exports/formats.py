"""The exports: reports, messages, contacts and feedback as CSV, user devices as JSON, all streamed.

Each export is an async generator of text chunks: the first chunk (the CSV
header, or ``[``) comes once everything that can fail for a bad request has
been checked, then one chunk per page of documents read from CouchDB. The
handler writes each chunk as it comes, so memory stays flat however large
the export, and stops reading when the client goes away.

CSV is written exactly as cht-core writes it (``api/src/services/export-data.js``): the header line is the
column names joined by commas; in a row a string is quoted with every ``"`` written ``\\"`` (backslash,
quote; commas, newlines and backslashes are left as they are), an array is its JSON, quoted and escaped the
same way, a number or boolean is written bare, a missing value is empty and an object is
``[object Object]``; every line ends with ``\\n``. The one deliberate difference: a text cell a spreadsheet
would run as a formula gets a leading apostrophe (``api.spreadsheet``, issue 23).

This module holds what every export shares: cells, CSV and XML rows, dates, file names, and the contact
name lookups; each export has its own module (``reports``, ``messages``, ``contacts``,
``users_meta``).
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

from api import timestamps
from api.cht.lineage import lineage_ids
from api.cht.reports import freetext
from api.couch import Database
from api.errors import BadRequest
from api.spreadsheet import neutralise

PAGE_SIZE = 500


NAME_CACHE_SIZE = 20000


def js_value(value: Any) -> Any:
    """A JSON value as JavaScript holds it: a float with no fraction is an integer (``1.0`` is ``1``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [js_value(v) for v in value]
    if isinstance(value, dict):
        return {k: js_value(v) for k, v in value.items()}
    return value


def js_json(value: Any) -> str:
    """``JSON.stringify(value)``."""
    return json.dumps(js_value(value), separators=(",", ":"), ensure_ascii=False)


def csv_cell(value: Any) -> str:
    """One cell as cht-core writes it (see the module doc), formulas made inert."""
    if isinstance(value, str):
        return '"' + neutralise(value).replace('"', '\\"') + '"'
    if isinstance(value, list):
        return '"' + js_json(value).replace('"', '\\"') + '"'
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return freetext.js_string(value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def csv_header(columns: Sequence[str]) -> str:
    """The header line: column names as they are (never quoted), formulas made inert."""
    return ",".join(neutralise(c) for c in columns) + "\n"


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    return "".join(",".join(csv_cell(v) for v in row) + "\n" for row in rows)


def cell(value: Any) -> str:
    """A value as plain text (the XML spreadsheet's cells)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return freetext.js_string(value)
    if isinstance(value, str):
        return value
    return js_json(value)


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
    """A date column: epoch ms, or ISO 8601 (UTC) when human readable; the empty string (written ``""``) when
    there is none, as cht-core's ``date-format``."""
    if value in (None, "", 0):
        return ""
    ms = to_ms(value)
    if ms is None:
        return value
    return iso(ms) if human_readable else ms


def filename(kind: str, extension: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d%H%M", time.gmtime(now if now is not None else time.time()))
    return f"{kind}-{stamp}.{extension}"


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


def contact_chain(doc: Mapping[str, Any], levels: int = 4) -> list[str]:
    contact = doc.get("contact")
    return lineage_ids(contact)[:levels] if isinstance(contact, Mapping) else []
