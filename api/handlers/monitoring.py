"""Monitoring: the JSON figures of the CHT spec and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web

from .. import metrics, monitoring
from ..web import CONFIG, COUCH, json_response, public, uptime

routes = web.RouteTableDef()


@routes.get("/api/v1/monitoring")
@routes.get("/api/v2/monitoring")
@public
async def get_monitoring(request: web.Request) -> web.Response:
    figures = await monitoring.collect(request.app[COUCH], request.app[CONFIG], uptime_seconds=uptime(request))
    return json_response(figures)


@routes.get("/api/v1/express-metrics")
@public
async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})
