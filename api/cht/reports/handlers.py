"""``/api/v1/report`` (cht-core's data endpoints, online users): read a report (with its contact, patient and
place), page through reports by ids, search report ids by freetext or form, create and update reports."""

from __future__ import annotations

from aiohttp import web

from api.cht.contacts.handlers import datasource_body, json_only_body
from api.cht.datasource import query_value
from api.web import json_response, medic, require, settings

from . import reports, writes

routes = web.RouteTableDef()


@routes.get("/api/v1/report/uuid")
async def report_uuids(request: web.Request) -> web.Response:
    await require(request, "can_view_reports", online=True)
    q = request.query
    page = await reports.report_uuids(medic(request), query_value(q, "freetext"), query_value(q, "form"),
                                      query_value(q, "cursor"), query_value(q, "limit"))
    return json_response(page.body())


@routes.get("/api/v1/report")
async def list_reports(request: web.Request) -> web.Response:
    await require(request, "can_view_reports", online=True)
    q = request.query
    page = await reports.report_page(medic(request), query_value(q, "ids"), query_value(q, "cursor"),
                                     query_value(q, "limit"))
    return json_response(page.body())


@routes.post("/api/v1/report/summary")
async def report_summaries(request: web.Request) -> web.Response:
    await require(request, "can_view_reports", online=True)
    return json_response(await reports.report_summaries(medic(request), await json_only_body(request)))


@routes.get("/api/v1/report/{uuid}")
async def get_report(request: web.Request) -> web.Response:
    await require(request, "can_view_reports", online=True)
    doc = await reports.get_report(medic(request), request.match_info["uuid"],
                                   with_lineage=request.query.get("with_lineage") == "true")
    return json_response(doc)


@routes.post("/api/v1/report")
async def create_report(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_create_records", "can_edit")
    return json_response(await writes.create_report(medic(request), await settings(request), body))


@routes.put("/api/v1/report/{uuid}")
async def update_report(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_update_reports", "can_edit")
    return json_response(await writes.update_report(medic(request), await settings(request),
                                                    request.match_info["uuid"], body))
