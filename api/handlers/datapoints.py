"""The datapoints API: ``/api/v2/<resource>`` (GET, POST), ``/api/v1/datapoint`` and ``/api/v1/dataentry``."""

from __future__ import annotations

import csv
import io
import json
import logging
from typing import Any, AsyncIterator

from aiohttp import web

from ..datapoints import access, entry, service, writes
from ..datapoints.model import RESOURCES, csv_cell
from ..errors import JamiiError, NotFound
from ..web import CONFIG, COUCH, json_response, read_json, read_json_object, settings, user

routes = web.RouteTableDef()
log = logging.getLogger("jamii.datapoints")

NAMES = "|".join(sorted(RESOURCES, key=len, reverse=True))
LIST = r"/api/v2/{resource:(" + NAMES + r")}"
DETAIL = LIST + r"/{id:[0-9]+}"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def _context(request: web.Request) -> access.Context:
    config = request.app[CONFIG]
    couch = request.app[COUCH]
    db, users = couch.db(config.db_datapoints), couch.db(config.db_users)
    who = await access.caller(db, users, user(request), await settings(request))
    return access.Context(db, users, who)


def _aborted(request: web.Request, exc: BaseException) -> ConnectionResetError:
    """A failure after the reply started: cut the connection so the client sees an incomplete body."""
    log.warning("%s %s: stream aborted: %s", request.method, request.path, exc)
    if request.transport is not None:
        request.transport.close()
    return ConnectionResetError("stream aborted")


async def _chain(first: list[dict[str, Any]] | None,
                 rest: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[list[dict[str, Any]]]:
    if first is not None:
        yield first
    async for batch in rest:
        yield batch


async def _csv_response(request: web.Request, filename: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    await response.prepare(request)
    return response


def _csv_lines(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([[csv_cell(cell) for cell in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


@routes.get(LIST)
@routes.get(LIST + "/")
async def list_records(request: web.Request) -> web.StreamResponse:
    res = RESOURCES[request.match_info["resource"]]
    ctx = await _context(request)
    listing = await service.listing(ctx, res, request.query)
    pages = listing.batches()
    first = await anext(pages, None)
    if listing.format == "csv":
        response = await _csv_response(request, res.name)
        try:
            await response.write(_csv_lines([listing.columns]))
            async for batch in _chain(first, pages):
                await response.write(_csv_lines([[obj[c] for c in listing.columns] for obj in batch]))
        except (JamiiError, OSError) as exc:
            raise _aborted(request, exc) from exc
        await response.write_eof()
        return response
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    await response.prepare(request)
    try:
        await response.write(b'{"objects":[')
        separator = b""
        async for batch in _chain(first, pages):
            parts = []
            for obj in batch:
                parts.append(separator + _dumps(obj))
                separator = b","
            await response.write(b"".join(parts))
        listing.meta["total_count"] = await listing.total()
        await response.write(b'],"meta":' + _dumps(listing.meta) + b',"errors":{}}')
    except (JamiiError, OSError) as exc:
        raise _aborted(request, exc) from exc
    await response.write_eof()
    return response


@routes.get(DETAIL)
@routes.get(DETAIL + "/")
async def get_record(request: web.Request) -> web.Response:
    res = RESOURCES[request.match_info["resource"]]
    record_id = int(request.match_info["id"])
    ctx = await _context(request)
    found = await service.one(ctx, res, record_id, request.query)
    if not found:
        message = f"No {res.name} with id {record_id}"
        raise NotFound(message, field="id", body={"meta": {"limit": 1, "offset": 0, "total_count": 0},
                                                   "objects": [], "errors": {"id": message},
                                                   "code": 404, "error": message, "field": "id"})
    return json_response({"meta": {"limit": 1, "offset": 0, "total_count": 1}, "objects": found, "errors": {}})


def _post_error(exc: JamiiError) -> JamiiError:
    """The spec's POST envelope (``objects``, ``meta``, ``error``) around the usual error body."""
    if exc.body is None:
        exc.body = {"objects": None, "meta": None, "error": exc.message, "code": exc.status}
        if exc.field:
            exc.body["field"] = exc.field
    return exc


@routes.post(LIST)
@routes.post(LIST + "/")
async def post_record(request: web.Request) -> web.Response:
    res = RESOURCES[request.match_info["resource"]]
    try:
        ctx = await _context(request)
        body = await read_json_object(request)
        result = await writes.post(ctx, res, body)
    except JamiiError as exc:
        raise _post_error(exc) from None
    return json_response({"objects": result, "meta": None, "error": None}, status=201 if "new_id" in result else 200)


@routes.get("/api/v1/datapoint")
@routes.get("/api/v1/datapoint/")
async def get_datapoints(request: web.Request) -> web.StreamResponse:
    ctx = await _context(request)
    result = await service.datapoints(ctx, request.query)
    if result.format != "csv":
        return json_response({"meta": result.meta, "objects": result.objects, "errors": result.errors})
    regions, campaigns = result.regions, result.campaigns
    response = await _csv_response(request, "datapoints")
    try:
        if result.no_pivot:
            await response.write(_csv_lines([["region", "campaign", "indicator", "value", "is_agg"]]))
            names = {i["id"]: i.get("name") for i in result.indicators}
            for obj in result.objects:
                entry_ = obj["indicators"][0]
                await response.write(_csv_lines([[regions[obj["region"]].get("name"),
                                                  campaigns[obj["campaign"]].get("name"),
                                                  names.get(entry_["indicator"]), entry_["value"], entry_["is_agg"]]]))
        else:
            await response.write(_csv_lines([["region", "campaign", *[i.get("name") for i in result.indicators]]]))
            for obj in result.objects:
                await response.write(_csv_lines([[regions[obj["region"]].get("name"),
                                                  campaigns[obj["campaign"]].get("name"),
                                                  *[e["value"] for e in obj["indicators"]]]]))
    except OSError as exc:
        raise _aborted(request, exc) from exc
    await response.write_eof()
    return response


@routes.post("/api/v1/dataentry")
@routes.post("/api/v1/dataentry/")
async def post_dataentry(request: web.Request) -> web.Response:
    ctx = await _context(request)
    body = await read_json(request)
    stored = await entry.enter(ctx, body)
    return json_response({"meta": {"total_count": len(stored)}, "objects": stored, "errors": {}})
