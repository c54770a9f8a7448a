"""``PUT /api/v1/credentials/{key}``: store a secret for an integration (never returned, never logged)."""

from __future__ import annotations

from aiohttp import web

from api.errors import BadRequest, Forbidden, PayloadTooLarge
from api.web import CONFIG, CREDENTIALS, behind_firewall, json_response

routes = web.RouteTableDef()


@routes.put("/api/v1/credentials/{key}")
async def put_credential(request: web.Request) -> web.Response:
    """As in CHT, for CouchDB server admins only (offline users meet the firewall first)."""
    principal = await behind_firewall(request)
    if not principal.is_admin:
        raise Forbidden("Insufficient permissions")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"Request body is larger than {request.app[CONFIG].max_body_bytes} bytes")
    try:
        secret = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The credential must be UTF-8 text", field="body") from None
    # A secret sent from a file (curl --data-binary @file) ends with a newline that is not part of it.
    secret = secret.rstrip("\r\n")
    await request.app[CREDENTIALS].set(request.match_info["key"], secret)
    return json_response({"ok": True})
