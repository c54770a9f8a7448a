"""``/api/v1/forms``: the form list (JSON, or OpenRosa XML for ODK Collect), one form, media, validation."""

from __future__ import annotations

from aiohttp import web

from api.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized
from api.web import CONFIG, COUCH, json_response, public, require, settings, user

from . import forms

routes = web.RouteTableDef()
HASHES = web.AppKey("form_hashes", forms.HashCache)
OPENROSA = {"X-OpenRosa-Version": "1.0"}
REALM = 'Basic realm="Jamii", charset="UTF-8"'


def setup(app: web.Application) -> None:
    app[HASHES] = forms.HashCache()


def _medic(request: web.Request):
    return request.app[COUCH].db(request.app[CONFIG].db_medic)


def _is_openrosa(request: web.Request) -> bool:
    return "X-OpenRosa-Version" in request.headers


def _signed_in(request: web.Request) -> None:
    """Any signed-in user may read forms. ODK Collect sends credentials only when challenged,
    so an anonymous OpenRosa request gets a Basic challenge (and only such a request does)."""
    if user(request) is None:
        headers = {"WWW-Authenticate": REALM, **OPENROSA} if _is_openrosa(request) else {}
        raise Unauthorized("Authentication required", headers=headers)


def _base_url(request: web.Request) -> str:
    """The URL clients reached us at (a reverse proxy's X-Forwarded-Proto/Host win)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"


def _xml_response(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="text/xml", charset="utf-8", headers=OPENROSA)


@routes.get("/api/v1/forms")
@public
async def list_forms(request: web.Request) -> web.Response:
    _signed_in(request)
    if _is_openrosa(request):
        return _xml_response(await forms.openrosa_list(_medic(request), _base_url(request), request.app[HASHES]))
    return json_response(await forms.list_names(_medic(request), await settings(request)))


@routes.get("/api/v1/forms/{form}")
@public
async def get_form(request: web.Request) -> web.Response:
    _signed_in(request)
    name, dot, fmt = request.match_info["form"].rpartition(".")
    if not dot or not name:
        raise NotFound("Ask for a form as <id>.xml or <id>.json")
    fmt = fmt.lower()
    if fmt == "xml":
        db = _medic(request)
        doc = await forms.find_xform(db, name)
        return _xml_response(await forms.xform_bytes(db, doc))
    if fmt == "json":
        return json_response(forms.json_form(await settings(request), name))
    raise NotFound(f"Unknown form format {fmt}: xml or json")


@routes.get("/api/v1/forms/{form}/manifest")
@public
async def manifest(request: web.Request) -> web.Response:
    _signed_in(request)
    doc = await forms.find_xform(_medic(request), request.match_info["form"])
    return _xml_response(forms.openrosa_manifest(doc, _base_url(request)))


@routes.get("/api/v1/forms/{form}/media/{file:.+}")
@public
async def media(request: web.Request) -> web.Response:
    _signed_in(request)
    db = _medic(request)
    doc = await forms.find_xform(db, request.match_info["form"])
    file = request.match_info["file"]
    if file not in forms.media_names(doc):
        raise NotFound(f"Form {request.match_info['form']} has no media file {file}")
    data, content_type = await db.get_attachment(doc["_id"], file)
    return web.Response(body=data, content_type=content_type.split(";")[0], headers=OPENROSA)


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
