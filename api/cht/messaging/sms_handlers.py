"""SMS: ``/api/sms`` for cht-gateway, and ``/api/v{1,2}/sms/{aggregator}/{endpoint}`` webhooks for aggregators."""

from __future__ import annotations

from aiohttp import web

from api import schemas
from api.errors import BadRequest, Forbidden, Unauthorized
from api.web import CONFIG, COUCH, CREDENTIALS, json_response, public, read_json_object, require, settings

from . import aggregators as aggregators
from . import gateway as sms

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


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _check_key(request: web.Request, aggregator: str) -> None:
    """The webhook must carry the shared key kept in the credential store (compared in constant time)."""
    expected = await request.app[CREDENTIALS].get(aggregators.INCOMING_KEY[aggregator])
    if not expected:
        raise Forbidden(f"No incoming key configured: set the credential {aggregators.INCOMING_KEY[aggregator]}")
    presented = aggregators.presented_key(request.headers.get("Authorization"), request.query.get("key"))
    if presented is None:
        raise Unauthorized("Missing the shared key (Authorization: Token <key>, or ?key=<key>)")
    if not aggregators.key_matches(presented, expected):
        raise Unauthorized("Incorrect key")


async def _webhook_body(request: web.Request) -> dict:
    if request.content_type == "application/json":
        return await read_json_object(request)
    if request.content_type in FORM_TYPES:
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raise BadRequest("Content-Type must be application/json or application/x-www-form-urlencoded",
                     field="Content-Type")


async def aggregator_webhook(request: web.Request) -> web.Response:
    """Incoming messages and delivery reports from RapidPro and Africa's Talking."""
    endpoint = request.match_info["endpoint"]
    aggregator = aggregators.aggregator_of(request.match_info["aggregator"], endpoint)
    await _check_key(request, aggregator)
    body = await _webhook_body(request)
    db = _medic(request)
    if endpoint == "incoming-messages":
        message = aggregators.incoming_message(aggregator, body)
        counts = await sms.receive(db, [message], await settings(request))
        return json_response({"saved": counts["saved"], "duplicates": counts["duplicates"]})
    change = aggregators.delivery_report(aggregator, body)
    return json_response({"saved": await sms.apply_changes(db, [change])})


for _version in ("v1", "v2"):
    routes.post(f"/api/{_version}/sms/{{aggregator}}/{{endpoint}}")(public(aggregator_webhook))
