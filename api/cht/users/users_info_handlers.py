"""``GET /api/v1/users-info`` (what an offline user would replicate) and ``/api/v1/users-doc-count``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api import jsonparse
from api.auth import Principal
from api.cht.replication import limit as replication_limit
from api.cht.replication import scope as replication_scope
from api.cht.visibility import Scope, depths, scope_for
from api.errors import BadRequest
from api.permissions import has_permission, is_offline, require_admin
from api.web import CONFIG, COUCH, json_response, medic, require, settings, user

routes = web.RouteTableDef()

MISSING = "Missing required query params: role and/or facility_id"


def _roles(raw: str) -> list[str]:
    """``role``: one role, or a JSON array of roles (CHT's convention)."""
    try:
        value = jsonparse.loads(raw)
    except ValueError:
        return [raw]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise BadRequest("Role parameter must be either a string or a JSON encoded array", field="role")
    if any(not isinstance(r, str) or not r for r in value):
        raise BadRequest("All roles should be strings", field="role")
    return value


def _requested_scope(request: web.Request, current: dict[str, Any]) -> Scope:
    """The scope an offline user with these query parameters would have (for online callers)."""
    role, facilities = request.query.get("role"), [f for f in request.query.getall("facility_id", []) if f]
    if not role or not facilities:
        raise BadRequest(MISSING, body={"code": 400, "error": MISSING})
    roles = _roles(role)
    configured = current.get("roles") if isinstance(current.get("roles"), dict) else {}
    if not any(isinstance(configured.get(r), dict) and configured[r].get("offline") for r in roles):
        raise BadRequest("Provided role is not offline", field="role")
    who = Principal("-", tuple(roles))
    depth, report_depth = depths(roles, current)
    unassigned = bool(current.get("district_admins_access_unallocated_messages")) and \
        has_permission(who, "can_view_unallocated_data_records", current)
    return Scope(restricted=True, facility_ids=tuple(dict.fromkeys(facilities)),
                 contact_id=request.query.get("contact_id") or None, depth=depth, report_depth=report_depth,
                 unassigned=unassigned)


@routes.get("/api/v1/users-info")
async def users_info(request: web.Request) -> web.Response:
    principal = user(request)
    assert principal is not None
    current = await settings(request)
    if is_offline(principal, current):
        scope = scope_for(principal, current)
    else:
        await require(request, "can_update_users")
        scope = _requested_scope(request, current)
    counts = await replication_scope.count(medic(request), scope)
    return json_response(counts.as_json())


@routes.get("/api/v1/users-doc-count")
async def users_doc_count(request: web.Request) -> web.Response:
    require_admin(user(request))
    db = request.app[COUCH].db(request.app[CONFIG].db_logs)
    name = request.query.get("user")
    found: Any = await replication_limit.get_one(db, name) if name else await replication_limit.get_all(db)
    return json_response({"limit": replication_scope.WARN_LIMIT, "users": found})
