"""``POST /api/v2/records`` (and ``/api/v1/records``): a report from JSON or from SMS text (``can_create_records``)."""

from __future__ import annotations

from aiohttp import web

from api.errors import BadRequest
from api.web import CONFIG, COUCH, json_response, read_json_object, require, settings

from . import records

routes = web.RouteTableDef()

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _sms_fields(request: web.Request) -> dict[str, str]:
    form = await request.post()
    values: dict[str, str] = {}
    for name in ("message", "from", "sent_timestamp", "locale"):
        value = form.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be text, not a file", field=name)
        if value is not None:
            values[name] = value
    for name in ("message", "from"):
        if name not in values:
            raise BadRequest(f"Missing required field: {name}", field=name)
    # In a form-encoded body an unescaped "+" is a space: "from=+5511943348031" (as the spec's own
    # example sends it) arrives as " 5511943348031". A leading space before digits is that lost "+".
    sender = values["from"]
    if sender[:1] == " " and sender.strip().isdigit():
        values["from"] = "+" + sender.strip()
    return values


async def create(request: web.Request) -> web.Response:
    await require(request, "can_create_records")
    current = await settings(request)
    if request.content_type == "application/json":
        doc = records.from_json(await read_json_object(request), current)
    elif request.content_type in FORM_TYPES:
        sms = await _sms_fields(request)
        doc = records.from_sms(
            sms["message"], sms["from"], current,
            reported_date=records.parse_timestamp(sms.get("sent_timestamp"), "sent_timestamp"),
            locale=sms.get("locale") or None,
        )
    else:
        raise BadRequest("Content-Type must be application/json or application/x-www-form-urlencoded",
                         field="Content-Type")
    doc_id = await records.save(request.app[COUCH].db(request.app[CONFIG].db_medic), doc)
    return json_response({"success": True, "id": doc_id})


routes.post("/api/v2/records")(create)
routes.post("/api/v1/records")(create)
