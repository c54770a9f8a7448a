"""CHT's initial-sync endpoints for offline users: ``get-ids`` and ``get-deletes``."""

from __future__ import annotations

from aiohttp import web

from api.errors import BadRequest
from api.permissions import is_offline
from api.web import json_response, medic, read_json_object, settings, user

from . import replication
from .handlers import SCOPES

routes = web.RouteTableDef()


async def _offline_caller(request: web.Request):  # noqa: ANN202 - (principal, settings)
    principal, app_settings = user(request), await settings(request)
    if principal is None or not is_offline(principal, app_settings):
        raise BadRequest("Only offline users replicate; this endpoint is for them", field="user")
    return principal, app_settings


@routes.get("/api/v1/replication/get-ids")
async def get_ids(request: web.Request) -> web.Response:
    principal, app_settings = await _offline_caller(request)
    return json_response(await replication.doc_ids_revs(medic(request), request.app[SCOPES], principal,
                                                        app_settings))


@routes.post("/api/v1/replication/get-deletes")
async def get_deletes(request: web.Request) -> web.Response:
    principal, app_settings = await _offline_caller(request)
    body = await read_json_object(request)
    doc_ids = body.get("doc_ids")
    if not isinstance(doc_ids, list) or not all(isinstance(i, str) for i in doc_ids):
        raise BadRequest("doc_ids must be an array of document ids", field="doc_ids")
    gone = await replication.deleted_or_gone(medic(request), request.app[SCOPES], principal, app_settings, doc_ids)
    return json_response({"doc_ids": gone})
