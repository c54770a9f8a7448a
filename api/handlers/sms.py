"""SMS: ``/api/sms`` for cht-gateway, and ``/api/v{1,2}/sms/{aggregator}/{endpoint}`` webhooks for aggregators."""

from __future__ import annotations

from aiohttp import web

from .. import schemas, sms
from ..web import CONFIG, COUCH, json_response, read_json_object, require, settings

routes = web.RouteTableDef()


def _medic(request: web.Request):
    return request.app[COUCH].db(request.app[CONFIG].db_medic)


@routes.get("/api/sms")
async def gateway_info(request: web.Request) -> web.Response:
    """cht-gateway's connection test."""
    await require(request, "can_access_gateway_api")
    return json_response({"medic-gateway": True})


@routes.post("/api/sms")
async def gateway_poll(request: web.Request) -> web.Response:
    """Store incoming messages, apply status updates, hand out pending messages (in that order, as CHT)."""
    await require(request, "can_access_gateway_api")
    body = await read_json_object(request)
    schemas.validate("sms_gateway", body)
    current = await settings(request)
    db = _medic(request)
    await sms.receive(db, body.get("messages") or [], current)
    await sms.apply_changes(db, sms.gateway_changes(body.get("updates") or []))
    return json_response({"messages": await sms.hand_out(db, current)})
