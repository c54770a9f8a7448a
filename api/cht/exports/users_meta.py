"""The exports of the users-meta database: feedback (CSV, or an XML spreadsheet) and user devices (JSON)."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping, Sequence

from ua_parser import parse as parse_user_agent

from api.cht.reports.search import view_pages
from api.cht.translations import translations
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    XML_END,
    XML_START,
    csv_header,
    csv_lines,
    iso,
    js_json,
    json_array_item,
    to_ms,
    xml_rows,
)

FEEDBACK_COLUMNS = ("id", "reported_date", "user", "app_version", "url", "info")
FEEDBACK_PREFIX = "feedback-"


def feedback_row(doc: Mapping[str, Any], tz_minutes: int | None, fmt: str) -> list[Any]:
    """As cht-core's ``feedback-mapper``: the stored time, and ``info`` as JSON with its commas escaped (``\\,``).
    With ``tz`` the time is written in that offset; in the XML spreadsheet ``info`` is plain JSON."""
    meta = doc.get("meta") if isinstance(doc.get("meta"), Mapping) else {}
    user = meta.get("user")
    when = meta.get("time")
    ms = to_ms(when) if tz_minutes is not None else None
    info = js_json(doc.get("info")) if "info" in doc else None
    return [doc.get("_id"), iso(ms, -tz_minutes) if ms is not None and tz_minutes is not None else when,
            user.get("name") if isinstance(user, Mapping) else None, meta.get("version"), meta.get("url"),
            info.replace(",", "\\,") if info is not None and fmt == "csv" else info]


async def _feedback_pages(users_meta: Database) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The ``feedback-`` docs, newest id first, a page at a time (as cht-core reads them)."""
    params: dict[str, Any] = {"startkey": FEEDBACK_PREFIX + "\ufff0"}
    while True:
        rows = (await users_meta.all_docs(endkey=FEEDBACK_PREFIX, descending=True, include_docs=True,
                                          limit=PAGE_SIZE, **params))["rows"]
        docs = [row["doc"] for row in rows if row.get("doc")]
        if docs:
            yield docs
        if len(rows) < PAGE_SIZE:
            return
        params = {"startkey": rows[-1]["id"], "skip": 1}


async def feedback_export(users_meta: Database, medic_db: Database, fmt: str, locale: str | None,
                          tz_minutes: int | None, header: bool) -> AsyncGenerator[str, None]:
    """Feedback docs, newest first, as cht-core's CSV; Jamii's extensions: the XML spreadsheet, column names
    in a locale, dates in a ``tz`` offset (JS sign: -120 is UTC+2), no header row."""
    labels = await translations(medic_db, locale) if locale else {}
    names = [labels.get(c, c) for c in FEEDBACK_COLUMNS]
    if fmt == "xml":
        yield XML_START.format(name="feedback") + (xml_rows([names]) if header else "")
    else:
        yield csv_header(names) if header else ""
    async for docs in _feedback_pages(users_meta):
        lines = [feedback_row(doc, tz_minutes, fmt) for doc in docs]
        yield csv_lines(lines) if fmt == "csv" else xml_rows(lines)
    if fmt == "xml":
        yield XML_END


# bowser's names (cht-core parses user agents with it) for ua-parser's families
BROWSER_NAMES = {
    "Chrome Mobile WebView": "Chrome", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome",
    "Chromium": "Chromium", "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox", "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari", "Edge": "Microsoft Edge", "Edge Mobile": "Microsoft Edge",
    "Opera Mobile": "Opera", "Samsung Internet": "Samsung Internet for Android", "IE": "Internet Explorer",
}


def browser(user_agent: Any) -> dict[str, Any]:
    """``{name, version}`` of the browser, with bowser's names and full version; keys it cannot tell are left out."""
    if not isinstance(user_agent, str) or not user_agent:
        return {}
    found = parse_user_agent(user_agent).user_agent
    if found is None:
        return {}
    result: dict[str, Any] = {}
    if found.family and found.family != "Other":
        result["name"] = BROWSER_NAMES.get(found.family, found.family)
    version = ".".join(p for p in (found.major, found.minor, found.patch, found.patch_minor) if p)
    if version:
        result["version"] = version
    return result


def device_item(key: Sequence[Any], value: Mapping[str, Any]) -> dict[str, Any]:
    """One device as cht-core's ``user-devices`` export: values it does not have are left out."""
    storage = value.get("storage") if isinstance(value.get("storage"), Mapping) else {}
    item: dict[str, Any] = {"user": key[0], "deviceId": key[1], "date": key[2],
                            "browser": browser(value.get("userAgent"))}
    for name, found in (("apk", value.get("apk")), ("android", value.get("android")), ("cht", value.get("cht")),
                        ("settings", value.get("settings")), ("storageFree", storage.get("free")),
                        ("storageTotal", storage.get("total"))):
        if found is not None:
            item[name] = found
    return item


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
