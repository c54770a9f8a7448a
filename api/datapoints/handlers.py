"""The datapoints API: ``/api/v2/<resource>`` (GET, POST), ``/api/v1/datapoint`` and ``/api/v1/dataentry``, and
tastypie's ``/api/v1/`` root and resource schemas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, AsyncIterator

from aiohttp import web

from api.errors import JamiiError, NotFound
from api.streaming import stream
from api.web import CONFIG, COUCH, json_response, public, read_json, read_json_object, settings, user

from . import access, entry, service, tastypie, writes
from .model import RESOURCES, csv_cell

routes = web.RouteTableDef()

NAMES = "|".join(sorted(RESOURCES, key=len, reverse=True))
LIST = r"/api/v2/{resource:(" + NAMES + r")}"
DETAIL = LIST + r"/{id:[0-9]+}"
CSV = "text/csv; charset=utf-8"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def _context(request: web.Request) -> access.Context:
    config = request.app[CONFIG]
    couch = request.app[COUCH]
    db, users = couch.db(config.db_datapoints), couch.db(config.db_users)
    who = await access.caller(db, users, user(request), await settings(request))
    return access.Context(db, users, who)


def _csv_headers(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}.csv"'}


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
    ignored = service.ignored_header(listing.meta.get("warnings") or {})
    if listing.format == "csv":
        return await stream(request, _listing_csv(listing), content_type=CSV,
                            headers={**_csv_headers(res.name), **ignored})
    return await stream(request, _listing_json(listing), headers=ignored)


async def _listing_csv(listing: Any) -> AsyncIterator[bytes]:
    pages = listing.batches()
    batch = await anext(pages, None)  # read before the header goes out: an error is still a reply
    yield _csv_lines([listing.columns])
    while batch is not None:
        yield _csv_lines([[obj[c] for c in listing.columns] for obj in batch])
        batch = await anext(pages, None)


async def _listing_json(listing: Any) -> AsyncIterator[bytes]:
    """The ``{objects, meta, errors}`` envelope; ``total_count`` is only known at the end."""
    pages = listing.batches()
    batch = await anext(pages, None)
    yield b'{"objects":['
    comma = b""
    while batch is not None:
        if batch:
            yield comma + b",".join(_dumps(obj) for obj in batch)
            comma = b","
        batch = await anext(pages, None)
    listing.meta["total_count"] = await listing.total()
    yield b'],"meta":' + _dumps(listing.meta) + b',"errors":{}}'


@routes.get(DETAIL)
@routes.get(DETAIL + "/")
async def get_record(request: web.Request) -> web.Response:
    res = RESOURCES[request.match_info["resource"]]
    record_id = int(request.match_info["id"])
    ctx = await _context(request)
    found, warnings = await service.one(ctx, res, record_id, request.query)
    meta: dict[str, Any] = {"limit": 1, "offset": 0, "total_count": len(found)}
    if warnings:
        meta["warnings"] = warnings
    if not found:
        message = f"No {res.name} with id {record_id}"
        raise NotFound(message, field="id", headers=service.ignored_header(warnings), body={
            "meta": meta, "objects": [], "errors": {"id": message}, "code": 404, "error": message, "field": "id"})
    return json_response({"meta": meta, "objects": found, "errors": {}}, headers=service.ignored_header(warnings))


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
    ignored = service.ignored_header(result.meta.get("warnings") or {})
    if result.format != "csv":
        return json_response({"meta": result.meta, "objects": result.objects, "errors": result.errors},
                             headers=ignored)
    return await stream(request, _datapoints_csv(result), content_type=CSV,
                        headers={**_csv_headers("datapoints"), **ignored})


async def _datapoints_csv(result: Any) -> AsyncIterator[bytes]:
    """One row per (region, campaign) with indicator columns, names not ids (or one per indicator)."""
    regions, campaigns = result.regions, result.campaigns
    if result.no_pivot:
        yield _csv_lines([["region", "campaign", "indicator", "value", "is_agg"]])
        names = {i["id"]: i.get("name") for i in result.indicators}
        for obj in result.objects:
            entry_ = obj["indicators"][0]
            yield _csv_lines([[regions[obj["region"]].get("name"), campaigns[obj["campaign"]].get("name"),
                               names.get(entry_["indicator"]), entry_["value"], entry_["is_agg"]]])
    else:
        yield _csv_lines([["region", "campaign", *[i.get("name") for i in result.indicators]]])
        for obj in result.objects:
            yield _csv_lines([[regions[obj["region"]].get("name"), campaigns[obj["campaign"]].get("name"),
                               *[e["value"] for e in obj["indicators"]]]])


@routes.post("/api/v1/dataentry")
@routes.post("/api/v1/dataentry/")
async def post_dataentry(request: web.Request) -> web.Response:
    ctx = await _context(request)
    body = await read_json(request)
    entered = await entry.enter(ctx, body)
    return json_response({"meta": {"total_count": len(entered.objects)}, "objects": entered.objects, "errors": {}},
                         status=201 if entered.created else 200)


@routes.get("/api/v1")
@routes.get("/api/v1/")
@public
async def api_root(request: web.Request) -> web.Response:
    """tastypie's API root: public, as RhizomeDB served it (it names endpoints, no data)."""
    return json_response(tastypie.top_level())


@routes.get(r"/api/v1/{name:(datapoint|dataentry)}/schema")
@routes.get(r"/api/v1/{name:(datapoint|dataentry)}/schema/")
async def resource_schema(request: web.Request) -> web.Response:
    """A v1 resource's schema, for callers who may use the datapoints API (tastypie asked for a login)."""
    await _context(request)
    return json_response(tastypie.schema(request.match_info["name"]))
