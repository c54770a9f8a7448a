"""``/api/v2/export/*``: reports, messages, contacts, feedback, user devices and DHIS2 data value sets.

Every export takes GET with form-style parameters or POST with a JSON body
(``{"filters": ..., "options": ...}``), is for online users only, and needs
its CHT permission (``can_export_all`` grants every export). The format is the
export's own (``Accept`` is not read, as in CHT): CSV, or JSON for user devices
and DHIS2. Everything
that can be wrong with a request is answered as a 4xx before the first
byte; then the export streams: each page read from CouchDB is written at
once, and the next one is read only when the client has taken it (a write
waits while the connection's buffers are full: a slow client slows its own
export, not the server's memory). If the client goes away the export stops
reading; if CouchDB fails part-way the connection is cut without a proper
end, so a client never takes a truncated file for a whole one. At most
``EXPORT_CONCURRENCY`` exports of each kind run at once per process; as many
more may wait up to ``EXPORT_WAIT_SECONDS`` for a slot, and any beyond them is
a 503 with ``Retry-After`` (``slots.py``).
"""

from __future__ import annotations

import time
from typing import Any, AsyncGenerator

from aiohttp import web

from api import streaming
from api.cht.translations import translations
from api.errors import BadRequest, Forbidden, NotFound
from api.permissions import has_permission
from api.timestamps import now_ms
from api.web import CONFIG, COUCH, json_response, medic, public, read_json, require, settings

from . import contacts, dhis, formats, messages, reports, users_meta
from .slots import ExportSlots
from .params import contact_filters, feedback_params, message_filters, options, parse_form, report_filters
from .params import dhis_filters as parse_dhis_filters

routes = web.RouteTableDef()
SLOTS = web.AppKey("export_slots", ExportSlots)

PERMISSIONS = {
    "reports": "can_export_messages",  # as in CHT: reports and messages share one permission
    "messages": "can_export_messages",
    "contacts": "can_export_contacts",
    "feedback": "can_export_feedback",
    "user-devices": "can_export_devices_details",
    "dhis": "can_export_dhis",
}
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSV = "text/csv; charset=utf-8"
JSON = "application/json; charset=utf-8"
XML = "application/vnd.ms-excel; charset=utf-8"


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        app[SLOTS] = ExportSlots(app[CONFIG].export_concurrency, app[CONFIG].export_wait_seconds)

    app.on_startup.append(start)


async def allowed(request: web.Request, kind: str) -> None:
    """Online users only; ``can_export_all`` or the export's own permission."""
    principal = await require(request, online=True)
    current = await settings(request)
    if not has_permission(principal, "can_export_all", current) and \
            not has_permission(principal, PERMISSIONS[kind], current):
        raise Forbidden("Insufficient privileges")


async def parameters(request: web.Request) -> dict[str, Any]:
    """The request's parameters as one nested object: the query string, merged with a POST body."""
    params = parse_form(request.query.items())
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type in FORM_TYPES:
        body = parse_form((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
    else:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object", field="body")
    return {**params, **body}


async def stream(request: web.Request, kind: str, chunks: AsyncGenerator[str, None], content_type: str,
                 name: str) -> web.StreamResponse:
    """An export streamed as a file download (``api.streaming``: errors before the first chunk are replies),
    in one of its kind's slots."""
    try:
        async with request.app[SLOTS].hold(kind):
            return await streaming.stream(request, _encoded(chunks), content_type=content_type,
                                          headers={"Content-Disposition": f"attachment; filename={name}"})
    finally:
        await chunks.aclose()


async def _encoded(chunks: AsyncGenerator[str, None]) -> AsyncGenerator[bytes, None]:
    """The chunks as bytes, the first two (the header and the first page) as one: nothing is sent before the
    first page is read, so a CouchDB too busy to answer it in time is a 503 with ``Retry-After``, not a file
    cut after its header (seen under load: the first page waits for the index to catch up with writes)."""
    try:
        first = await anext(chunks, None)
        if first is None:
            return
        yield (first + (await anext(chunks, None) or "")).encode()
        async for chunk in chunks:
            yield chunk.encode()
    finally:
        await chunks.aclose()


@routes.get("/api/v2/export/reports", allow_head=False)
@routes.post("/api/v2/export/reports")
async def export_reports(request: web.Request) -> web.StreamResponse:
    await allowed(request, "reports")
    raw = await parameters(request)
    filters, opts = report_filters(raw, now_ms()), options(raw)
    chunks = reports.reports_csv(medic(request), filters, opts)
    return await stream(request, "reports", chunks, CSV, formats.filename("reports", "csv"))


@routes.get("/api/v2/export/messages", allow_head=False)
@routes.post("/api/v2/export/messages")
async def export_messages(request: web.Request) -> web.StreamResponse:
    await allowed(request, "messages")
    raw = await parameters(request)
    dates, opts = message_filters(raw, now_ms()), options(raw)
    chunks = messages.messages_csv(medic(request), await settings(request), dates, opts)
    return await stream(request, "messages", chunks, CSV, formats.filename("messages", "csv"))


@routes.get("/api/v2/export/contacts", allow_head=False)
@routes.post("/api/v2/export/contacts")
async def export_contacts(request: web.Request) -> web.StreamResponse:
    await allowed(request, "contacts")
    raw = await parameters(request)
    filters = contact_filters(raw)
    return await stream(request, "contacts", contacts.contacts_csv(medic(request), filters), CSV,
                        formats.filename("contacts", "csv"))


@routes.get("/api/v2/export/feedback", allow_head=False)
@routes.post("/api/v2/export/feedback")
async def export_feedback(request: web.Request) -> web.StreamResponse:
    await allowed(request, "feedback")
    fmt, locale, tz, header = feedback_params(await parameters(request))
    meta_db = request.app[COUCH].db(request.app[CONFIG].db_users_meta)
    chunks = users_meta.feedback_export(meta_db, medic(request), fmt, locale, tz, header)
    return await stream(request, "feedback", chunks, CSV if fmt == "csv" else XML, formats.filename("feedback", fmt))


@routes.get("/api/v2/export/user-devices", allow_head=False)
@routes.post("/api/v2/export/user-devices")
async def export_user_devices(request: web.Request) -> web.StreamResponse:
    await allowed(request, "user-devices")
    meta_db = request.app[COUCH].db(request.app[CONFIG].db_users_meta)
    return await stream(request, "user-devices", users_meta.user_devices_json(meta_db), JSON,
                        formats.filename("user-devices", "json"))


@routes.get("/api/v2/export/dhis", allow_head=False)
@routes.post("/api/v2/export/dhis")
async def export_dhis(request: web.Request) -> web.Response:
    await allowed(request, "dhis")
    raw = await parameters(request)
    filters, opts = parse_dhis_filters(raw), options(raw)
    current = await settings(request)
    db = medic(request)
    async with request.app[SLOTS].hold("dhis"):
        translate = await translations(db, str(current.get("locale") or "en")) if opts.human_readable else {}
        result = await dhis.data_value_set(db, current, filters, opts, translate, time.time())
    name = formats.filename("dhis", "json")
    return json_response(result, headers={"Content-Disposition": f"attachment; filename={name}"})


@routes.get("/api/v2/export/{type}", allow_head=False)
@routes.post("/api/v2/export/{type}")
@public
async def unknown_export(request: web.Request) -> web.Response:
    """Any other export type: cht-core's 404, to anyone (it names no data)."""
    raise NotFound(f'Invalid export type "{request.match_info["type"]}"')
