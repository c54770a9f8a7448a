"""Monitoring: the JSON figures of the CHT spec and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web

from api import metrics
from api.web import CONFIG, COUCH, json_response, public, query_int, uptime

from . import monitoring

routes = web.RouteTableDef()


async def _monitoring(request: web.Request, version: int) -> web.Response:
    interval = query_int(request.query, "connected_user_interval", 7, minimum=1, maximum=3650)
    figures = await monitoring.collect(request.app[COUCH], request.app[CONFIG], uptime_seconds=uptime(request),
                                       version=version, connected_user_interval=interval)
    return json_response(figures)


@routes.get("/api/v1/monitoring")
@public
async def get_monitoring_v1(request: web.Request) -> web.Response:
    return await _monitoring(request, 1)


@routes.get("/api/v2/monitoring")
@public
async def get_monitoring_v2(request: web.Request) -> web.Response:
    return await _monitoring(request, 2)


@routes.get("/api/v1/express-metrics")
@public
async def get_metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition; the sentinel's figures are read from CouchDB at each scrape."""
    couch, config = request.app[COUCH], request.app[CONFIG]
    metrics.SENTINEL_BACKLOG.set(await monitoring.safe("sentinel backlog",
                                                        lambda: monitoring.sentinel_backlog(couch, config), -1))
    counts = await monitoring.safe("transition counts", lambda: monitoring.transition_counts(couch, config), {})
    for (name, outcome), value in counts.items():
        metrics.TRANSITIONS.labels(name, outcome).set(value)
    return web.Response(body=metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})
