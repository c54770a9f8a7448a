"""``/purging``, ``/purging/changes``, ``/purging/checkpoint`` (and the alias ``/purging/changes/checkpoint``):
CHT 3.7-4.2's purge download, for offline users.

An online caller (admins included) gets what CHT gives them: CHT passes the
request on to CouchDB, which has no database called ``purging`` (404).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.auth import Principal
from api.cht.replication.handlers import SCOPES
from api.couch import Database
from api.errors import BadRequest, NotFound
from api.permissions import is_offline
from api.web import CONFIG, COUCH, json_response, settings, user

from . import legacy

routes = web.RouteTableDef()

REPLICATION_HEADER = "medic-replication-id"
NO_DATABASE = {"error": "not_found", "reason": "Database does not exist."}


async def _offline(request: web.Request) -> tuple[Principal, dict[str, Any]]:
    principal, app_settings = user(request), await settings(request)
    if principal is None or not is_offline(principal, app_settings):
        raise NotFound(NO_DATABASE["reason"], body=NO_DATABASE)
    return principal, app_settings


def _db(request: web.Request, principal: Principal) -> Database:
    return legacy.purge_db(request.app[COUCH], request.app[CONFIG].db_medic, principal.roles)


@routes.get("/purging")
async def purging_info(request: web.Request) -> web.Response:
    principal, _ = await _offline(request)
    return json_response(await legacy.info(_db(request, principal)))


@routes.get("/purging/changes")
async def purging_changes(request: web.Request) -> web.Response:
    principal, app_settings = await _offline(request)
    limit = legacy.limit_of(request.query.get("limit"))
    device = legacy.replication_id(request.headers.get(REPLICATION_HEADER))
    visible = await request.app[SCOPES].get(principal, app_settings)
    area = visible.ids | visible.purged
    return json_response(await legacy.changes(_db(request, principal), principal.name, area, device, limit))


@routes.get("/purging/checkpoint")
@routes.get("/purging/changes/checkpoint")
async def purging_checkpoint(request: web.Request) -> web.Response:
    principal, _ = await _offline(request)
    device = legacy.required_replication_id(request.headers.get(REPLICATION_HEADER))
    seq = request.query.get("seq")
    if not seq:
        raise BadRequest("Missing required parameter seq", field="seq")
    return json_response(await legacy.checkpoint(_db(request, principal), principal.name, device, seq))
