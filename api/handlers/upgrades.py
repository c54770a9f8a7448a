"""``/api/v1/upgrade``: stage, complete, or both, a release's design docs (``can_configure``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from api.upgrades import Upgrader, parse_build
from api.web import CONFIG, COUCH, json_response, read_json, require

routes = web.RouteTableDef()
UPGRADER = web.AppKey("upgrader", Upgrader)


async def _start(app: web.Application) -> None:
    app[UPGRADER] = Upgrader(app[COUCH], app[CONFIG])
    await app[UPGRADER].resume()


async def _stop(app: web.Application) -> None:
    task = app[UPGRADER].task
    if task is not None and not task.done():
        task.cancel()  # the horti-upgrade doc stays in progress: the next start resumes it
        await asyncio.gather(task, return_exceptions=True)


def setup(app: web.Application) -> None:
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)


async def _begin(request: web.Request, *, complete: bool) -> web.Response:
    principal = await require(request, "can_configure")
    build = parse_build(await read_json(request))
    await request.app[UPGRADER].start(build, principal.name, complete=complete)
    return json_response({"ok": True})


@routes.post("/api/v1/upgrade")
async def upgrade(request: web.Request) -> web.Response:
    return await _begin(request, complete=True)


@routes.post("/api/v1/upgrade/stage")
async def stage(request: web.Request) -> web.Response:
    return await _begin(request, complete=False)


@routes.post("/api/v1/upgrade/complete")
async def complete(request: web.Request) -> web.Response:
    await require(request, "can_configure")
    result = await request.app[UPGRADER].complete()
    return json_response({"ok": True, **result})


@routes.get("/api/v1/upgrade")
async def status(request: web.Request) -> web.Response:
    await require(request, "can_configure")
    doc = await request.app[UPGRADER].status()
    return json_response({"upgradeDoc": doc})
