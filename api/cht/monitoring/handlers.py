"""Monitoring: cht-core's JSON figures and the Prometheus exposition; and the capture of replication failures
that ``replication_failure`` counts."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time

from aiohttp import web

from api import metrics
from api.errors import JamiiError
from api.web import CONFIG, COUCH, Handler, json_response, public, uptime, user

from . import monitoring, replication_failures

routes = web.RouteTableDef()
log = logging.getLogger("jamii.monitoring")
DEFAULT_INTERVAL = 7
_CAPTURES: set[asyncio.Task[None]] = set()


def _interval(raw: str | None) -> float:
    """``connected_user_interval`` as cht-core takes it: never refused; what is not a number of days is 7."""
    try:
        days = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return days if math.isfinite(days) and 0 <= days <= 36500 else DEFAULT_INTERVAL


async def _monitoring(request: web.Request, version: int) -> web.Response:
    figures = await monitoring.collect(request.app[COUCH], request.app[CONFIG], uptime_seconds=uptime(request),
                                       version=version,
                                       connected_user_interval=_interval(request.query.get("connected_user_interval")))
    return json_response(figures)


def capture_replication_failures(handler: Handler) -> Handler:
    """Log the route's failures (an answer of 400 or more, or a request the client gave up: status 0) in the
    caller's replication failure log, as cht-core does for ``get-ids``; in the background, so the answer is
    not held up."""

    def note(request: web.Request, status: int, started: float) -> None:
        principal = user(request)
        if principal is None:
            return
        logs = request.app[COUCH].db(request.app[CONFIG].db_logs)
        task = asyncio.ensure_future(replication_failures.capture(
            logs, principal.name, principal.roles, status, int((time.monotonic() - started) * 1000)))
        _CAPTURES.add(task)
        task.add_done_callback(_done)

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            note(request, 0, started)
            raise
        except (JamiiError, web.HTTPException) as exc:
            if exc.status >= 400:
                note(request, exc.status, started)
            raise
        except Exception:
            note(request, 500, started)
            raise
        if response.status >= 400:
            note(request, response.status, started)
        return response

    return wrapper


def _done(task: asyncio.Task[None]) -> None:
    _CAPTURES.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("replication failure not logged: %s", task.exception())


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
