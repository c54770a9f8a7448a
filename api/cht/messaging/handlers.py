"""HTTP handlers of the messaging area: forms (JSON, or OpenRosa XML for ODK Collect), records from
JSON or SMS text, the cht-gateway endpoint and the SMS aggregators' webhooks."""

from __future__ import annotations

from aiohttp import web

from api import schemas
from api.cht.translations import translations
from api.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized
from api.security_headers import attachment_headers, renders
from api.web import CONFIG, COUCH, CREDENTIALS, json_response, medic, public, read_json_object, require, settings, user

from . import aggregators as aggregators
from . import forms, records
from . import gateway as sms

routes = web.RouteTableDef()


# ``/api/v1/forms``: the form list (JSON, or OpenRosa XML for ODK Collect), one form, media, validation.

HASHES = web.AppKey("form_hashes", forms.HashCache)
OPENROSA = {"X-OpenRosa-Version": "1.0"}
REALM = 'Basic realm="Jamii", charset="UTF-8"'


def setup(app: web.Application) -> None:
    app[HASHES] = forms.HashCache()



def _is_openrosa(request: web.Request) -> bool:
    return "X-OpenRosa-Version" in request.headers


def _signed_in(request: web.Request) -> None:
    """Any signed-in user may read forms. ODK Collect sends credentials only when challenged,
    so an anonymous OpenRosa request gets a Basic challenge (and only such a request does)."""
    if user(request) is None:
        headers = {"WWW-Authenticate": REALM, **OPENROSA} if _is_openrosa(request) else {}
        raise Unauthorized("Authentication required", headers=headers)


def _base_url(request: web.Request) -> str:
    """The URL clients reached us at, as cht-core writes it: a reverse proxy's X-Forwarded-Proto, and the Host
    header."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme}://{request.host}"


def _xml_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8", headers=OPENROSA)


@routes.get("/api/v1/forms")
@public
@renders()  # OpenRosa XML for ODK Collect: sandboxed, but not turned into a download
async def list_forms(request: web.Request) -> web.Response:
    """The OpenRosa list (with the X-OpenRosa-Version header) or CHT's JSON list of ``<internalId>.xml``."""
    _signed_in(request)
    if _is_openrosa(request):
        return _xml_response(await forms.openrosa_list(medic(request), _base_url(request), request.app[HASHES]))
    return json_response(await forms.list_names(medic(request)))


@routes.get("/api/v1/forms/{form}")
@public
@renders()  # OpenRosa XML for ODK Collect: sandboxed, but not turned into a download
async def get_form(request: web.Request) -> web.Response:
    """``<internalId>.xml``: the XForm as stored, with its attachment's content type (as cht-core)."""
    _signed_in(request)
    data, content_type = await forms.download(medic(request), request.match_info["form"])
    return web.Response(body=data, headers={"Content-Type": content_type})


@routes.get("/api/v1/forms/{form}/manifest")
@public
@renders()  # OpenRosa XML for ODK Collect: sandboxed, but not turned into a download
async def manifest(request: web.Request) -> web.Response:
    _signed_in(request)
    doc = await forms.find_xform(medic(request), request.match_info["form"])
    return _xml_response(forms.openrosa_manifest(doc, _base_url(request)))


@routes.get("/api/v1/forms/{form}/media/{file:.+}")
@public
async def media(request: web.Request) -> web.Response:
    _signed_in(request)
    db = medic(request)
    doc = await forms.find_xform(db, request.match_info["form"])
    file = request.match_info["file"]
    if file not in forms.media_names(doc):
        raise NotFound(f"Form {request.match_info['form']} has no media file {file}")
    data, content_type = await db.get_attachment(doc["_id"], file)
    return web.Response(body=data, content_type=content_type.split(";")[0],
                        headers={**OPENROSA, **attachment_headers(file, content_type)})


@routes.post("/api/v1/forms/validate")
async def validate(request: web.Request) -> web.Response:
    await require(request, "can_configure")
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than {request.app[CONFIG].max_body_bytes} bytes")
    try:
        forms.parse_xform(data)
    except forms.XFormError as exc:
        raise BadRequest(str(exc), field="body") from None
    return json_response({"ok": True})


# ``POST /api/v2/records`` (and ``/api/v1/records``): a report from JSON or from SMS text (``can_create_records``).

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
        records.describe_errors(doc, await translations(medic(request), records.locale_of(doc, current)))
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


# SMS: ``/api/sms`` for cht-gateway, and ``/api/v{1,2}/sms/{aggregator}/{endpoint}`` webhooks for aggregators.

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
    db = medic(request)
    await sms.receive(db, body.get("messages") or [], current)
    await sms.apply_changes(db, sms.gateway_changes(body.get("updates") or []))
    return json_response({"messages": await sms.hand_out(db, current)})



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
    db = medic(request)
    if endpoint == "incoming-messages":
        message = aggregators.incoming_message(aggregator, body)
        counts = await sms.receive(db, [message], await settings(request))
        return json_response({"saved": counts["saved"], "duplicates": counts["duplicates"]})
    change = aggregators.delivery_report(aggregator, body)
    return json_response({"saved": await sms.apply_changes(db, [change])})


for _version in ("v1", "v2"):
    routes.post(f"/api/{_version}/sms/{{aggregator}}/{{endpoint}}")(public(aggregator_webhook))
