"""``/api/v1/settings``: read and update the app settings."""

from __future__ import annotations

from aiohttp import web

from ..web import SETTINGS, json_response, query_bool, read_json, require, settings

routes = web.RouteTableDef()


@routes.get("/api/v1/settings")
async def get_settings(request: web.Request) -> web.Response:
    return json_response(await settings(request))


@routes.put("/api/v1/settings")
async def put_settings(request: web.Request) -> web.Response:
    await require(request, "can_configure")
    replace = query_bool(request.query, "replace")
    overwrite = query_bool(request.query, "overwrite")
    body = await read_json(request)
    changed = await request.app[SETTINGS].update(body, replace=replace, overwrite=overwrite)
    return json_response({"success": True, "upgraded": changed})
