"""The exports of the users-meta database: feedback (CSV or XML) and user devices (JSON)."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping, Sequence

from ua_parser import parse as parse_user_agent

from api.cht.reports.search import view_pages
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    XML_END,
    XML_START,
    csv_lines,
    iso,
    json_array_item,
    to_ms,
    translations,
    xml_rows,
)

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
