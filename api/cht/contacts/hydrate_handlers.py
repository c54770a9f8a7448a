"""``GET|POST /api/v1/hydrate``: docs by id with their lineage filled in, in request order (online users)."""

from __future__ import annotations

from aiohttp import web

from api import jsonparse, schemas
from api.cht.visibility import UNRESTRICTED
from api.errors import BadRequest
from api.web import json_response, medic, read_json_object, require

from .hydration import hydrate_ids

routes = web.RouteTableDef()


def _ids_from_query(request: web.Request) -> list[str]:
    raw = request.query.get("doc_ids")
    if not raw:
        raise BadRequest("Query parameter doc_ids is required (a JSON array of ids)", field="doc_ids")
    try:
        ids = jsonparse.loads(raw)
    except ValueError:
        raise BadRequest("doc_ids must be a JSON array of ids", field="doc_ids") from None
    schemas.validate("hydrate_body", {"doc_ids": ids})
    return ids


async def _answer(request: web.Request, ids: list[str]) -> web.Response:
    return json_response(await hydrate_ids(medic(request), ids, UNRESTRICTED))


@routes.get("/api/v1/hydrate")
async def hydrate_get(request: web.Request) -> web.Response:
    await require(request, online=True)
    return await _answer(request, _ids_from_query(request))


@routes.post("/api/v1/hydrate")
async def hydrate_post(request: web.Request) -> web.Response:
    await require(request, online=True)
    if not request.can_read_body and request.query.get("doc_ids"):
        return await _answer(request, _ids_from_query(request))
    body = await read_json_object(request)
    schemas.validate("hydrate_body", body)
    return await _answer(request, body["doc_ids"])
