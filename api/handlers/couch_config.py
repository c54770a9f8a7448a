"""``/api/couch-config-attachments``: CouchDB's attachments config, for admins (as in CHT)."""

from __future__ import annotations

from aiohttp import web

from api import couch_config
from api.permissions import require_admin
from api.web import COUCH, json_response, user

routes = web.RouteTableDef()


@routes.get("/api/couch-config-attachments")
async def get_attachments(request: web.Request) -> web.Response:
    require_admin(user(request))
    return json_response(await couch_config.attachments(request.app[COUCH]))
