"""Users from CSV (``POST /api/v2/users``) and the ``bulk-user-upload-<ms>`` log each import keeps.

The header names properties, dotted for nested ones (``contact.name``,
``place.parent``); a column whose name ends ``:excluded`` is ignored, as is an
empty cell. ``TRUE``/``FALSE`` (any case) become booleans and a ``roles``
cell is split on spaces, commas or semicolons. A row whose
``import.status:excluded`` is ``imported`` or ``skipped`` (a spreadsheet that
was uploaded before) is skipped, as in CHT.

The log doc in the logs database records who uploaded when, a ``progress``
(``parsing`` -> ``parsed`` -> ``saving`` -> ``finished``, or ``error``, with
counts) and ``data``: each row (without its password) with
``import: {status, message}``. It is rewritten after parsing and after each
batch of users, so a long import can be followed while it runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from typing import Any

from api.couch import Database
from api.errors import BadRequest, Conflict

STATUS_COLUMN = "import.status:excluded"
MESSAGE_COLUMN = "import.message:excluded"
SKIP_STATUSES = ("imported", "skipped")
LOG_PREFIX = "bulk-user-upload-"


@dataclass
class Row:
    index: int
    data: dict[str, Any]
    error: str | None = None
    skip: str | None = None  # why it is skipped (the previous import's message)


def _value(column: str, raw: str) -> Any:
    text = raw.strip()
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    if column == "roles":
        return [r for r in re.split(r"[\s,;]+", text) if r]
    return text


def _assign(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValueError(f"{'.'.join(path)} conflicts with the {part} column")
        node = child
    if isinstance(node.get(path[-1]), dict):
        raise ValueError(f"{'.'.join(path)} conflicts with the {'.'.join(path)}.* columns")
    node[path[-1]] = value


def parse(raw: bytes) -> list[Row]:
    """Rows of a CSV body (UTF-8, a byte-order mark allowed); a 400 when it cannot be read at all."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("The CSV is not UTF-8 text", field="body") from None
    if not text.strip():
        raise BadRequest("CSV is empty.", field="body")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
        lines = list(reader)
    except csv.Error as exc:
        raise BadRequest(f"The CSV cannot be read: {exc}", field="body") from None
    named = [h for h in header if h]
    if len(named) != len(set(named)):
        raise BadRequest("The CSV header names a column twice", field="body")
    rows = []
    for cells in lines:
        if not any(c.strip() for c in cells):
            continue
        row = Row(len(rows), {})
        try:
            if len(cells) > len(header):
                raise ValueError(f"the row has {len(cells)} cells but the header {len(header)}")
            for column, cell in zip(header, cells):
                lowered = column.lower()
                if lowered == STATUS_COLUMN and cell.strip().lower() in SKIP_STATUSES:
                    row.skip = row.skip or cell.strip().lower()
                if lowered == MESSAGE_COLUMN and row.skip is not None:
                    row.skip = cell.strip() or row.skip
                if not column or lowered.endswith(":excluded") or not cell.strip():
                    continue
                _assign(row.data, column.split("."), _value(column, cell))
        except ValueError as exc:
            row.error = f"Row {row.index + 1}: {exc}"
        rows.append(row)
    return rows


def log_entry(data: Any, status: str, message: str | None = None) -> dict[str, Any]:
    entry = {k: v for k, v in data.items() if k != "password"} if isinstance(data, dict) else {}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry["import"] = {"status": status, "message": message or f"{status} on {now}"}
    return entry


class UploadLog:
    """The ``bulk-user-upload-<ms>`` doc of one import."""

    def __init__(self, db: Database, doc: dict[str, Any]):
        self.db = db
        self.doc = doc

    @classmethod
    async def create(cls, db: Database, uploaded_by: str) -> "UploadLog":
        for _ in range(5):
            now = dt.datetime.now(dt.timezone.utc)
            doc = {"_id": f"{LOG_PREFIX}{int(now.timestamp() * 1000)}", "type": "bulk-user-upload",
                   "bulk_uploaded_by": uploaded_by,
                   "bulk_uploaded_on": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                   "progress": {"status": "initiated"}, "data": []}
            try:
                await db.put(doc)
                return cls(db, doc)
            except Conflict:
                continue  # another import started in the same millisecond
        raise Conflict("Could not create the import log; try again")

    @property
    def id(self) -> str:
        return str(self.doc["_id"])

    async def update(self, progress: dict[str, Any], data: list[dict[str, Any]] | None = None) -> None:
        self.doc["progress"] = {**self.doc.get("progress", {}), **progress}
        if data is not None:
            self.doc["data"] = data
        await self.db.put(self.doc)
