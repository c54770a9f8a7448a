"""``GET|POST /api/v1/contacts-by-phone``: hydrated contacts with a phone number, however written (online users)."""

from __future__ import annotations

from aiohttp import web

from api import schemas
from api.cht.phones import contacts_by_phone
from api.cht.visibility import UNRESTRICTED
from api.web import json_response, medic, read_json_object, require, settings

from .hydration import hydrator

routes = web.RouteTableDef()


async def _answer(request: web.Request, phone: object) -> web.Response:
    db = medic(request)
    docs = await contacts_by_phone(db, await settings(request), phone)
    return json_response({"ok": True, "docs": await hydrator(db, UNRESTRICTED).hydrate(docs)})


@routes.get("/api/v1/contacts-by-phone")
async def by_phone_get(request: web.Request) -> web.Response:
    await require(request, online=True)
    return await _answer(request, request.query.get("phone"))


@routes.post("/api/v1/contacts-by-phone")
async def by_phone_post(request: web.Request) -> web.Response:
    await require(request, online=True)
    body = await read_json_object(request)
    schemas.validate("contacts_by_phone_body", body)
    return await _answer(request, body["phone"])
