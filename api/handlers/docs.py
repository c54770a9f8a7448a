"""The API description: the OpenAPI document and a page that renders it for people."""

from __future__ import annotations

from aiohttp import web

from api import __version__, openapi
from api.errors import NotFound, ServiceUnavailable
from api.web import CONFIG, json_response, public

routes = web.RouteTableDef()

ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "application/javascript"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Jamii API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="api"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#api", deepLinking: true});</script>
</body></html>
"""


@routes.get("/api/openapi.json")
@public
async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document(request.app))


@routes.get("/api/docs")
@public
async def get_docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


@routes.get("/api/docs/assets/{name}")
@public
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
