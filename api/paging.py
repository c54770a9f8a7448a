"""Pages over a view with an opaque cursor that stays valid while documents are added.

A cursor is the (key, doc id) of the last row handed out, base64url-encoded
JSON. The next page starts there: with ``startkey`` + ``startkey_docid`` on
CouchDB, and rows up to and including that position are dropped here (which is
also what makes it correct on pouchdb-server, which ignores
``startkey_docid``). New documents sort either before the cursor (not seen,
as with any snapshot-free listing) or after it (seen once); none is skipped or
repeated. Views whose keys are unique (``medic/contacts_by_type_id``) need no
``startkey_docid`` at all and cost the same on both servers.

Doc ids within one key are compared by code point here; CouchDB orders them
by ICU collation, which agrees for the ids CouchDB and Jamii generate
(lower-case hex and dashes).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable

from . import jsonparse
from .couch import Database
from .errors import BadRequest


@dataclass(frozen=True)
class Position:
    key: Any
    doc_id: str


def encode_cursor(position: Position | None) -> str | None:
    if position is None:
        return None
    raw = json.dumps([position.key, position.doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None, *, valid_key: Callable[[Any], bool] = lambda key: True) -> Position | None:
    """The position a cursor names; None for the first page (absent, empty or ``null``)."""
    if raw is None or raw.strip() in ("", "null"):
        return None
    error = BadRequest(f"Invalid cursor token: [{raw}].", field="cursor")
    try:
        value = jsonparse.loads(base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise error from None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str) and valid_key(value[0])):
        raise error
    return Position(value[0], value[1])


async def page(db: Database, ddoc: str, view: str, *, startkey: Any, endkey: Any, after: Position | None,
               limit: int, include_docs: bool = False, distinct_ids: bool = False,
               reduce: bool | None = None, update: bool = True) -> tuple[list[dict[str, Any]], Position | None]:
    """Up to ``limit`` rows after ``after``; the position to continue from, None on the last page.

    ``distinct_ids`` leaves out rows of docs already on this page (a doc
    matching a prefix search under several words). Reading goes on in
    batches (``skip`` from the same start) until the page is full.
    ``update=False``: CouchDB answers from the index as it is, without first
    indexing the writes made since (pouchdb-server ignores it and indexes).
    ``include_docs``: the rows kept are given their docs from one ``get_many``
    (``_bulk_get``), which costs CouchDB 3.4 a third of what the view's own
    ``include_docs`` does (a page of 500 reports: 63 ms of ``beam.smp``
    against 153 ms); a row whose doc was deleted meanwhile is left out.
    """
    params: dict[str, Any] = {"endkey": endkey}
    if reduce is not None:
        params["reduce"] = reduce
    if not update:
        params["update"] = False
    if after is not None:
        params["startkey"] = after.key
        params["startkey_docid"] = after.doc_id
    else:
        params["startkey"] = startkey
    batch = limit + 2
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    read = 0
    while len(rows) <= limit:
        got = (await db.view(ddoc, view, skip=read or None, limit=batch, **params))["rows"]
        read += len(got)
        for row in got:
            if after is not None and row["key"] == after.key and row["id"] <= after.doc_id:
                continue
            if distinct_ids:
                if row["id"] in seen:
                    continue
                seen.add(row["id"])
            rows.append(row)
        if len(got) < batch:
            break
        batch = min(batch * 2, 10000)
    if len(rows) <= limit:
        return await _with_docs(db, rows) if include_docs else rows, None
    rows = rows[:limit]
    position = Position(rows[-1]["key"], rows[-1]["id"])
    return await _with_docs(db, rows) if include_docs else rows, position


async def _with_docs(db: Database, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    docs = await db.get_many(row["id"] for row in rows) if rows else {}
    return [{**row, "doc": docs[row["id"]]} for row in rows if row["id"] in docs]
