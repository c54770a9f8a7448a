"""HTTP handlers of the contacts area: reading contacts, people and places, creating and updating them,
hydrating docs, finding contacts by phone and bulk deletion.

cht-core's data endpoints (``/api/v1/contact``, ``/person``, ``/place``) are for online users only, as in CHT;
the older ``/api/v1/people`` and ``/places`` routes keep their own rules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import jsonparse, schemas
from api.cht.datasource import query_value
from api.cht.phones import contacts_by_phone
from api.cht.visibility import scope_for
from api.errors import BadRequest, NotFound
from api.permissions import require_any
from api.streaming import json_array, stream
from api.web import (
    behind_firewall,
    json_response,
    medic,
    read_json,
    read_json_object,
    require,
    sentinel,
    settings,
)

from . import contacts, datasource_writes
from .bulk_delete import delete_batches
from .hydration import hydrate_ids, hydrator
from .writes import ContactWriter

routes = web.RouteTableDef()


# ``/api/v1/contact``, ``/person``, ``/place`` (cht-core's data endpoints, online users): read contacts, page
# through them by type or ids, search their ids, create and update people and places.

def _lineage(request: web.Request) -> bool:
    return request.query.get("with_lineage") == "true"


async def _one(request: web.Request, kind: str) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    doc = await contacts.get_contact(medic(request), await settings(request), request.match_info["uuid"],
                                     kind=kind, with_lineage=_lineage(request))
    return json_response(doc)


async def _page(request: web.Request, kind: str) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    q = request.query
    page = await contacts.page_by_type(medic(request), await settings(request), kind, query_value(q, "type"),
                                       query_value(q, "cursor"), query_value(q, "limit"))
    return json_response(page.body())


@routes.get("/api/v1/contact/uuid")
async def contact_uuids(request: web.Request) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    q = request.query
    page = await contacts.contact_uuids(medic(request), await settings(request), query_value(q, "type"),
                                        query_value(q, "freetext"), query_value(q, "cursor"), query_value(q, "limit"))
    return json_response(page.body())


@routes.get("/api/v1/contact")
async def list_contacts(request: web.Request) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    q = request.query
    page = await contacts.contact_page(medic(request), await settings(request), query_value(q, "ids"),
                                       query_value(q, "type"), query_value(q, "cursor"), query_value(q, "limit"))
    return json_response(page.body())


@routes.post("/api/v1/contact/summary")
async def contact_summaries(request: web.Request) -> web.Response:
    await require(request, "can_view_contacts", online=True)
    body = await json_only_body(request)
    return json_response(await contacts.contact_summaries(medic(request), await settings(request), body))


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


async def json_only_body(request: web.Request) -> Any:
    """The JSON body of one of cht-core's JSON-only routes: ``application/json`` or a 400."""
    if request.content_type != "application/json":
        raise BadRequest("Content-Type must be application/json")
    return await read_json(request)


async def datasource_body(request: web.Request, *permissions: str) -> Any:
    """An online caller holding one of ``permissions``, and the JSON body."""
    principal = await require(request, online=True)
    require_any(principal, await settings(request), permissions)
    return await json_only_body(request)


@routes.post("/api/v1/person")
async def create_person_v1(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_create_people", "can_edit")
    return json_response(await datasource_writes.create_person(medic(request), await settings(request), body))


@routes.put("/api/v1/person/{uuid}")
async def update_person_v1(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_update_people", "can_edit")
    return json_response(await datasource_writes.update_person(medic(request), await settings(request),
                                                               request.match_info["uuid"], body))


@routes.post("/api/v1/place")
async def create_place_v1(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_create_places", "can_edit")
    return json_response(await datasource_writes.create_place(medic(request), await settings(request), body))


@routes.put("/api/v1/place/{uuid}")
async def update_place_v1(request: web.Request) -> web.Response:
    body = await datasource_body(request, "can_update_places", "can_edit")
    return json_response(await datasource_writes.update_place(medic(request), await settings(request),
                                                              request.match_info["uuid"], body))


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

NOT_AN_ARRAY = "`doc_ids` parameter must be a json array."
MAX_HYDRATE_IDS = 10000


def _bad_ids(reason: str) -> BadRequest:
    """CHT answers this endpoint's 400 in CouchDB's shape."""
    return BadRequest(reason, body={"error": "bad_request", "reason": reason})


def _query_ids(request: web.Request) -> Any:
    """``doc_ids`` from the query, read as CHT does: JSON when it parses, else the text (a repeated parameter is
    a list of its values)."""
    values = request.query.getall("doc_ids", [])
    if len(values) > 1:
        return list(values)
    if not values:
        return None
    try:
        return jsonparse.loads(values[0])
    except ValueError:
        return values[0]


def _checked_ids(ids: Any) -> list[str]:
    if not isinstance(ids, list):
        raise _bad_ids(NOT_AN_ARRAY)
    if len(ids) > MAX_HYDRATE_IDS or not all(isinstance(i, str) and i for i in ids):
        raise _bad_ids(f"`doc_ids` must be a json array of at most {MAX_HYDRATE_IDS} ids (non-empty strings).")
    return ids


@routes.get("/api/v1/hydrate")
async def hydrate_get(request: web.Request) -> web.Response:
    await behind_firewall(request)
    ids = _checked_ids(_query_ids(request))
    return json_response(await hydrate_ids(medic(request), ids))


@routes.post("/api/v1/hydrate")
async def hydrate_post(request: web.Request) -> web.Response:
    """The query's ``doc_ids`` win over the body's, as in CHT."""
    await behind_firewall(request)
    ids = _query_ids(request)
    if not _given(ids):  # an empty body has no doc_ids either: CHT's 400 names them
        body = await read_json(request) if request.can_read_body else None
        ids = body.get("doc_ids") if isinstance(body, dict) else None
    return json_response(await hydrate_ids(medic(request), _checked_ids(ids)))


def _given(value: Any) -> bool:
    """JavaScript truthiness of a parsed query value (an empty array is true)."""
    return isinstance(value, (list, dict)) or value not in (None, False, 0, "")


# ``GET|POST /api/v1/contacts-by-phone``: hydrated contacts with a phone number, however written (online users).

# CHT answers this endpoint's errors in CouchDB's shape.
PHONE_ERROR = {"error": "bad_request",
               "reason": "`phone` parameter is required and must be a valid phone number"}
NO_MATCH = {"error": "not_found", "reason": "no matches found"}
MAX_PHONE = 64


async def _by_phone(request: web.Request, phone: object) -> web.Response:
    db = medic(request)
    if not isinstance(phone, str) or len(phone) > MAX_PHONE:
        phone = None
    try:
        docs = await contacts_by_phone(db, await settings(request), phone)
    except BadRequest:
        raise BadRequest(PHONE_ERROR["reason"], field="phone", body=PHONE_ERROR) from None
    except NotFound:
        raise NotFound(NO_MATCH["reason"], body=NO_MATCH) from None
    return json_response({"ok": True, "docs": await hydrator(db).hydrate_ids([d["_id"] for d in docs])})


@routes.get("/api/v1/contacts-by-phone")
async def by_phone_get(request: web.Request) -> web.Response:
    await behind_firewall(request)
    return await _by_phone(request, request.query.get("phone"))


@routes.post("/api/v1/contacts-by-phone")
async def by_phone_post(request: web.Request) -> web.Response:
    """The query's ``phone`` wins over the body's, as in CHT."""
    await behind_firewall(request)
    phone = request.query.get("phone")
    if not phone and request.can_read_body:
        body = await read_json(request)
        phone = body.get("phone") if isinstance(body, dict) else None
    return await _by_phone(request, phone)


# ``POST /api/v1/bulk-delete``: delete docs in batches of 100, streaming each batch's results as it lands.

@routes.post("/api/v1/bulk-delete")
async def bulk_delete(request: web.Request) -> web.StreamResponse:
    principal = await require(request, "can_bulk_delete_reports", online=True)
    body = await read_json_object(request)
    schemas.validate("bulk_delete_body", body)
    ids = [doc["_id"] for doc in body["docs"]]
    batches = delete_batches(medic(request), ids, principal, await settings(request))
    return await stream(request, json_array(batches, flush_bytes=0))
