"""``POST /api/v1/people``, ``/api/v1/places`` and ``/api/v1/places/{id}``: create and update contacts."""

from __future__ import annotations

from aiohttp import web

from api.cht.visibility import scope_for
from api.web import json_response, medic, read_json, require, sentinel, settings

from .writes import ContactWriter

routes = web.RouteTableDef()


async def _writer(request: web.Request, permission: str) -> ContactWriter:
    principal = await require(request, permission)
    current = await settings(request)
    return ContactWriter(medic(request), current, principal, scope_for(principal, current),
                         codes=sentinel(request))


@routes.post("/api/v1/people")
async def create_person(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_create_people")
    return json_response(await writer.create_person(await read_json(request)))


@routes.post("/api/v1/places")
async def create_place(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_create_places")
    return json_response(await writer.create_place(await read_json(request)))


@routes.post("/api/v1/places/{id}")
async def update_place(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_update_places")
    return json_response(await writer.update_place(request.match_info["id"], await read_json(request)))
