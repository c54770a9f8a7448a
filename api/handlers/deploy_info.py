"""``/api/deploy-info``: the CHT version Jamii answers as, and when it was deployed."""

from __future__ import annotations

from aiohttp import web

from api import deploy_info
from api.web import json_response, medic, require

routes = web.RouteTableDef()


@routes.get("/api/deploy-info")
async def get_deploy_info(request: web.Request) -> web.Response:
    await require(request)
    return json_response(await deploy_info.read(medic(request)))
