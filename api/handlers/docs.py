"""The API description: the OpenAPI document and a page that renders it for people."""

from __future__ import annotations

import base64
import hashlib

from aiohttp import web

from api import __version__, openapi
from api.errors import NotFound, ServiceUnavailable
from api.security_headers import renders
from api.web import CONFIG, json_response, public

routes = web.RouteTableDef()

ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}

INIT = 'SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#api", deepLinking: true});'
PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Jamii API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="api"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script>{INIT}</script>
</body></html>
"""
# The page runs its own scripts only (the bundle, and the one inline line by its hash); swagger-ui
# styles elements inline and draws icons as data: images; "Try it out" calls this same server.
_INIT_HASH = base64.b64encode(hashlib.sha256(INIT.encode()).digest()).decode()
PAGE_POLICY = ("default-src 'none'; script-src 'self' 'sha256-" + _INIT_HASH + "'; "
               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@routes.get("/api/openapi.json")
@public
async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document(request.app))


@routes.get("/api/docs")
@public
@renders(PAGE_POLICY)
async def get_docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.get("/api/docs/assets/{name}")
@public
@renders()
async def get_docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound("No such asset")
    path = request.app[CONFIG].node_modules / "swagger-ui-dist" / name
    if not path.exists():
        raise ServiceUnavailable("The API docs assets are not installed: run `npm ci` (make run does)")
    return web.FileResponse(path, headers={"Content-Type": ASSETS[name], "Cache-Control": "max-age=3600"})


@routes.get("/api/info")
@public
async def get_info(request: web.Request) -> web.Response:
    return json_response({"version": __version__})
