"""HTTP handlers of the contacts area: reading contacts, people and places, creating and updating them,
hydrating docs, finding contacts by phone and bulk deletion.

Single reads serve offline users too, inside their area (404 outside it); the rest is for online users."""

from __future__ import annotations

from aiohttp import web

from api import jsonparse, schemas
from api.cht.phones import contacts_by_phone
from api.cht.visibility import UNRESTRICTED, scope_for
from api.errors import BadRequest, NotFound
from api.streaming import json_array, stream
from api.web import (
    json_response,
    medic,
    query_bool,
    query_int,
    read_json,
    read_json_object,
    require,
    sentinel,
    settings,
)

from . import contacts
from .bulk_delete import delete_batches
from .hydration import hydrate_ids, hydrator
from .writes import ContactWriter

routes = web.RouteTableDef()


# ``/api/v1/contact``, ``/person``, ``/place``: read contacts, list them by type, search their ids.

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


# ``POST /api/v1/people``, ``/api/v1/places`` and ``/api/v1/places/{id}``: create and update contacts.

async def _writer(request: web.Request, permission: str) -> ContactWriter:
    principal = await require(request, "can_edit", permission)
    current = await settings(request)
    return ContactWriter(medic(request), current, principal, scope_for(principal, current),
                         codes=sentinel(request))


@routes.post("/api/v1/people")
async def create_person(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_create_people")
    return json_response({"ok": True, **await writer.create_person(await read_json(request))})


@routes.post("/api/v1/places")
async def create_place(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_create_places")
    return json_response({"ok": True, **await writer.create_place(await read_json(request))})


@routes.post("/api/v1/places/{id}")
async def update_place(request: web.Request) -> web.Response:
    writer = await _writer(request, "can_update_places")
    return json_response(await writer.update_place(request.match_info["id"], await read_json(request)))


# ``GET|POST /api/v1/hydrate``: docs by id with their lineage filled in, in request order (online users).

# CHT answers these two endpoints' request errors in CouchDB's shape.
DOC_IDS_ERROR = {"error": "bad_request", "reason": "`doc_ids` parameter must be a json array."}
PHONE_ERROR = {"error": "bad_request",
               "reason": "`phone` parameter is required and must be a valid phone number"}
NO_MATCH = {"error": "not_found", "reason": "no matches found"}
MAX_IDS = 10000


def _doc_ids(value: object) -> list[str]:
    """A JSON array of ids (at most ``MAX_IDS`` non-empty strings), or CHT's 400."""
    if not isinstance(value, list) or len(value) > MAX_IDS or \
            any(not isinstance(i, str) or not i for i in value):
        raise BadRequest(DOC_IDS_ERROR["reason"], field="doc_ids", body=DOC_IDS_ERROR)
    return value


def _ids_from_query(request: web.Request) -> list[str]:
    try:
        return _doc_ids(jsonparse.loads(request.query.get("doc_ids", "")))
    except ValueError:
        raise BadRequest(DOC_IDS_ERROR["reason"], field="doc_ids", body=DOC_IDS_ERROR) from None


async def _hydrated(request: web.Request, ids: list[str]) -> web.Response:
    if not ids:
        return json_response([])
    return json_response(await hydrate_ids(medic(request), ids, UNRESTRICTED))


@routes.get("/api/v1/hydrate")
async def hydrate_get(request: web.Request) -> web.Response:
    await require(request, online=True)
    return await _hydrated(request, _ids_from_query(request))


@routes.post("/api/v1/hydrate")
async def hydrate_post(request: web.Request) -> web.Response:
    await require(request, online=True)
    if request.query.get("doc_ids"):  # the query wins, as in CHT
        return await _hydrated(request, _ids_from_query(request))
    body = await read_json(request) if request.can_read_body else {}
    return await _hydrated(request, _doc_ids(body.get("doc_ids") if isinstance(body, dict) else None))


# ``GET|POST /api/v1/contacts-by-phone``: hydrated contacts with a phone number, however written (online users).

async def _by_phone(request: web.Request, phone: object) -> web.Response:
    db = medic(request)
    try:
        docs = await contacts_by_phone(db, await settings(request), phone)
    except BadRequest:
        raise BadRequest(PHONE_ERROR["reason"], field="phone", body=PHONE_ERROR) from None
    except NotFound:
        raise NotFound(NO_MATCH["reason"], body=NO_MATCH) from None
    return json_response({"ok": True, "docs": await hydrator(db, UNRESTRICTED).hydrate(docs)})


@routes.get("/api/v1/contacts-by-phone")
async def by_phone_get(request: web.Request) -> web.Response:
    await require(request, online=True)
    return await _by_phone(request, request.query.get("phone"))


@routes.post("/api/v1/contacts-by-phone")
async def by_phone_post(request: web.Request) -> web.Response:
    await require(request, online=True)
    phone = request.query.get("phone")
    if not phone and request.can_read_body:
        body = await read_json(request)
        phone = body.get("phone") if isinstance(body, dict) else None
    return await _by_phone(request, phone if isinstance(phone, str) and len(phone) <= 64 else None)


# ``POST /api/v1/bulk-delete``: delete docs in batches of 100, streaming each batch's results as it lands.

@routes.post("/api/v1/bulk-delete")
async def bulk_delete(request: web.Request) -> web.StreamResponse:
    principal = await require(request, "can_bulk_delete_reports", online=True)
    body = await read_json_object(request)
    schemas.validate("bulk_delete_body", body)
    ids = [doc["_id"] for doc in body["docs"]]
    batches = delete_batches(medic(request), ids, principal, await settings(request))
    return await stream(request, json_array(batches, flush_bytes=0))
