"""``/api/v1/contact``, ``/person``, ``/place``: read contacts, list them by type, search their ids.

Single reads serve offline users too, inside their area (404 outside it);
lists and searches are for online users, as in CHT.
"""

from __future__ import annotations

from aiohttp import web

from api.cht.visibility import scope_for
from api.web import json_response, medic, query_bool, query_int, require, settings

from . import contacts

routes = web.RouteTableDef()

PAGE_LIMIT = 100
UUID_LIMIT = 10000


async def _one(request: web.Request, kind: str) -> web.Response:
    principal = await require(request, "can_view_contacts")
    current = await settings(request)
    doc = await contacts.get_contact(medic(request), current, scope_for(principal, current),
                                     request.match_info["uuid"], kind=kind,
                                     with_lineage=query_bool(request.query, "with_lineage"))
    return json_response(doc)


async def _page(request: web.Request, kind: str) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    limit = query_int(request.query, "limit", PAGE_LIMIT, minimum=1, maximum=UUID_LIMIT)
    result = await contacts.list_contacts(medic(request), await settings(request), kind,
                                          request.query.get("type"), request.query.get("cursor"), limit)
    return json_response(result)


@routes.get("/api/v1/contact/uuid")
async def contact_uuids(request: web.Request) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    limit = query_int(request.query, "limit", UUID_LIMIT, minimum=1, maximum=UUID_LIMIT)
    result = await contacts.contact_uuids(medic(request), await settings(request), request.query.get("type"),
                                          request.query.get("freetext"), request.query.get("cursor"), limit)
    return json_response(result)


@routes.get("/api/v1/contact/{uuid}")
async def get_contact(request: web.Request) -> web.Response:
    return await _one(request, "contact")


@routes.get("/api/v1/person/{uuid}")
async def get_person(request: web.Request) -> web.Response:
    return await _one(request, "person")


@routes.get("/api/v1/place/{uuid}")
async def get_place(request: web.Request) -> web.Response:
    return await _one(request, "place")


@routes.get("/api/v1/person")
async def list_people(request: web.Request) -> web.Response:
    return await _page(request, "person")


@routes.get("/api/v1/place")
async def list_places(request: web.Request) -> web.Response:
    return await _page(request, "place")
