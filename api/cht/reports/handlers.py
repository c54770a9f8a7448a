"""``/api/v1/report``: read a report (with its contact, patient and place), search report ids."""

from __future__ import annotations

from aiohttp import web

from api.cht.visibility import scope_for
from api.errors import BadRequest
from api.web import json_response, medic, query_bool, query_int, require, settings

from . import reports

routes = web.RouteTableDef()

UUID_LIMIT = 10000


@routes.get("/api/v1/report/uuid")
async def report_uuids(request: web.Request) -> web.Response:
    await require(request, "can_view_reports", online=True)
    freetext = request.query.get("freetext")
    if not freetext:
        raise BadRequest("Query parameter freetext is required", field="freetext")
    limit = query_int(request.query, "limit", UUID_LIMIT, minimum=1, maximum=UUID_LIMIT)
    db = medic(request)
    return json_response(await reports.report_uuids(db, freetext, request.query.get("cursor"), limit))


@routes.get("/api/v1/report/{uuid}")
async def get_report(request: web.Request) -> web.Response:
    principal = await require(request, "can_view_reports")
    db = medic(request)
    doc = await reports.get_report(db, scope_for(principal, await settings(request)), request.match_info["uuid"],
                                   with_lineage=query_bool(request.query, "with_lineage"))
    return json_response(doc)
