"""The spatial units API: organizations, projects, members and spatial units (GeoJSON Features).

Paths are the spec's (``/organizations/{org}/projects/{project}/spatial/...``); each is
served with and without its trailing slash, and the unit paths also under ``/api/v1``, where
the original platform served them. Errors have the spec's shapes (see ``_errors``), the
authentication middleware's 401 included.
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

from api.auth import Principal
from api.couch import Database
from api.errors import BadRequest, Forbidden, JamiiError, NotFound, Unauthorized
from api.streaming import json_array, stream
from api.web import CONFIG, COUCH, Handler, error_body, json_response, query_int, read_json, settings, user

from . import organizations as spatial
from . import units as spatial_units
from .organizations import ORG_ROLES, PROJECT_ROLES, ProjectAccess

routes = web.RouteTableDef()

SIGN_IN = "Please sign in."
MAX_LIMIT = 1000
PLATFORM_PREFIX = "/api/v1"  # where the platform served the unit paths
UNIT_NOT_FOUND = "SpatialUnit not found"  # GET: a 400, as the spec shows
# PATCH, PUT and DELETE of a unit that is not there: a 404 with the spec's text (its DELETE) under
# "error" and the platform's under "detail".
UNIT_MISSING = {"error": "SpatialUnit does not exist", "detail": "SpatialUnit not found."}
REFUSED = {
    "list": "You don't have permission to view spatial units in this project.",
    "create": "You don't have permission to add spatial units to this project.",
    "view": "You don't have permission to access this spatial unit.",
    "update": "You don't have permission to edit spatial units of this project",
    "delete": "You are not allowed to remove spatial units from the project.",
}


def _anonymous(request: web.Request) -> bool:
    return not request.headers.get("Authorization") and not request.cookies.get("AuthSession")


def _errors(*, both_keys: Callable[[JamiiError], bool]) -> Callable[[web.Request, JamiiError], Any]:
    """``{"detail": m}`` (DRF's key, the platform's), or ``{"error": m, "detail": m}`` where the spec
    names the key ``error``; ``{"<field>": m}`` for bad input."""

    def shape(request: web.Request, exc: JamiiError) -> Any:
        if exc.body is not None:
            return exc.body
        if exc.field and not isinstance(exc, Unauthorized):
            return {exc.field: exc.message}
        message = SIGN_IN if isinstance(exc, Unauthorized) and _anonymous(request) else exc.message
        return {"error": message, "detail": message} if both_keys(exc) else {"detail": message}

    return shape


# Organizations, projects, members: DRF's {"detail": ...}. Units: the spec's 403 bodies name the key
# "error" (kept with "detail" beside it); on DELETE every error body does.
detail_errors = _errors(both_keys=lambda exc: False)
unit_errors = _errors(both_keys=lambda exc: isinstance(exc, Forbidden))
delete_errors = _errors(both_keys=lambda exc: True)


def _route(method: str, path: str, errors: Callable[[web.Request, JamiiError], Any] = detail_errors,
           prefixes: tuple[str, ...] = ("",)) -> Callable[[Handler], Handler]:
    """Serve ``path`` (written with its trailing slash) also without it, under each prefix, with the
    spec's error shapes."""

    def register(handler: Handler) -> Handler:
        handler = error_body(errors)(handler)
        for prefix in prefixes:
            routes.route(method, prefix + path)(handler)
            routes.route(method, prefix + path.rstrip("/"))(handler)
        return handler

    return register


def _unit_route(method: str, path: str, errors: Callable[[web.Request, JamiiError], Any] = unit_errors
                ) -> Callable[[Handler], Handler]:
    """A unit route: at the spec's path and at the platform's (under ``/api/v1``)."""
    return _route(method, path, errors, prefixes=("", PLATFORM_PREFIX))


def _db(request: web.Request) -> Database:
    return request.app[COUCH].db(request.app[CONFIG].db_spatial)


def _users(request: web.Request) -> Database:
    return request.app[COUCH].db(request.app[CONFIG].db_users)


def _caller(request: web.Request) -> Principal:
    principal = user(request)
    if principal is None:
        raise Unauthorized(SIGN_IN)
    return principal


async def _org(request: web.Request) -> spatial.OrgAccess:
    return await spatial.organization_access(_db(request), _caller(request), await settings(request),
                                             request.match_info["org"])


async def _project(request: web.Request, *, reveal_existence: bool = False) -> ProjectAccess:
    return await spatial.project_access(_db(request), _caller(request), await settings(request),
                                        request.match_info["org"], request.match_info["project"],
                                        reveal_existence=reveal_existence)


async def _body(request: web.Request) -> Any:
    """The JSON body; a 400 in the spec's shape when it is not JSON."""
    try:
        return await read_json(request)
    except BadRequest as exc:
        raise BadRequest(exc.message) from None


def _require_org_admin(access: spatial.OrgAccess, what: str) -> None:
    if not access.is_admin:
        raise Forbidden(what)


# -- organizations ------------------------------------------------------------------------------

@_route("POST", "/organizations/")
async def create_organization(request: web.Request) -> web.Response:
    principal = _caller(request)
    if not spatial.is_global_manager(principal, await settings(request)):
        message = "You don't have permission to create organizations."
        raise Forbidden(message)
    org = await spatial.create_organization(_db(request), await _body(request), principal.name)
    return json_response(spatial.organization_body(org), status=201)


@_route("GET", "/organizations/")
async def list_organizations(request: web.Request) -> web.Response:
    orgs = await spatial.list_organizations(_db(request), _caller(request), await settings(request))
    return json_response([spatial.organization_body(o) for o in orgs])


@_route("GET", "/organizations/{org}/")
async def get_organization(request: web.Request) -> web.Response:
    access = await _org(request)
    return json_response(spatial.organization_body(access.organization))


@_route("GET", "/organizations/{org}/members/")
async def list_organization_members(request: web.Request) -> web.Response:
    access = await _org(request)
    _require_org_admin(access, "You don't have permission to view the members of this organization.")
    return json_response(spatial.members_body(access.organization))


@_route("PUT", "/organizations/{org}/members/{username}/")
async def set_organization_member(request: web.Request) -> web.Response:
    access = await _org(request)
    _require_org_admin(access, "You don't have permission to change the members of this organization.")
    username = request.match_info["username"]
    doc = await spatial.set_member(_db(request), _users(request), access.organization["_id"], username,
                                   await _body(request), ORG_ROLES)
    return json_response({"username": username, "role": doc["members"][username]})


@_route("DELETE", "/organizations/{org}/members/{username}/")
async def remove_organization_member(request: web.Request) -> web.Response:
    access = await _org(request)
    _require_org_admin(access, "You don't have permission to change the members of this organization.")
    if not await spatial.remove_member(_db(request), access.organization["_id"], request.match_info["username"]):
        raise NotFound("Not found.")
    return web.Response(status=204)


# -- projects -----------------------------------------------------------------------------------

@_route("POST", "/organizations/{org}/projects/")
async def create_project(request: web.Request) -> web.Response:
    access = await _org(request)
    _require_org_admin(access, "You don't have permission to add projects to this organization.")
    project = await spatial.create_project(_db(request), access.organization, await _body(request),
                                           _caller(request).name)
    return json_response(spatial.project_body(project, access.organization), status=201)


@_route("GET", "/organizations/{org}/projects/")
async def list_projects(request: web.Request) -> web.Response:
    access = await _org(request)
    projects = await spatial.list_projects(_db(request), access, _caller(request))
    return json_response([spatial.project_body(p, access.organization) for p in projects])


@_route("GET", "/organizations/{org}/projects/{project}/")
async def get_project(request: web.Request) -> web.Response:
    access = await _project(request)
    return json_response(spatial.project_body(access.project, access.organization))


def _require_project_manager(access: ProjectAccess, what: str) -> None:
    if "manage_members" not in access.actions:
        raise Forbidden(what)


@_route("GET", "/organizations/{org}/projects/{project}/members/")
async def list_project_members(request: web.Request) -> web.Response:
    access = await _project(request)
    _require_project_manager(access, "You don't have permission to view the members of this project.")
    return json_response(spatial.members_body(access.project))


@_route("PUT", "/organizations/{org}/projects/{project}/members/{username}/")
async def set_project_member(request: web.Request) -> web.Response:
    access = await _project(request)
    _require_project_manager(access, "You don't have permission to change the members of this project.")
    username = request.match_info["username"]
    doc = await spatial.set_member(_db(request), _users(request), access.project["_id"], username,
                                   await _body(request), PROJECT_ROLES)
    return json_response({"username": username, "role": doc["members"][username]})


@_route("DELETE", "/organizations/{org}/projects/{project}/members/{username}/")
async def remove_project_member(request: web.Request) -> web.Response:
    access = await _project(request)
    _require_project_manager(access, "You don't have permission to change the members of this project.")
    if not await spatial.remove_member(_db(request), access.project["_id"], request.match_info["username"]):
        raise NotFound("Not found.")
    return web.Response(status=204)


# -- spatial units ------------------------------------------------------------------------------

UNITS = "/organizations/{org}/projects/{project}/spatial/"
UNIT = "/organizations/{org}/projects/{project}/spatial/{unit_id}/"


def _list_options(request: web.Request) -> dict[str, Any]:
    query = request.query
    ordering = query.get("ordering") or "name"
    if ordering not in spatial_units.ORDERINGS:
        raise BadRequest("Must be one of: " + ", ".join(spatial_units.ORDERINGS), field="ordering")
    search = (query.get("search") or "").strip()
    if len(search) > 200:
        raise BadRequest("Ensure this field has no more than 200 characters.", field="search")
    limit = query_int(query, "limit", 0, minimum=1, maximum=MAX_LIMIT) if query.get("limit") else None
    return {"unit_type": query.get("type") or None, "ordering": ordering, "search": search or None,
            "offset": query_int(query, "offset", 0, minimum=0), "limit": limit}


@_unit_route("GET", UNITS)
async def list_units(request: web.Request) -> web.StreamResponse:
    """The spec's plain array. With ``limit`` the page is read whole (at most 1000 units) and a
    ``Link: <...>; rel="next"`` header says where the next page starts."""
    access = await _project(request)
    access.require("list", REFUSED["list"])
    options = _list_options(request)
    db, project_id = _db(request), access.project["id"]
    limit = options.pop("limit")
    if limit is None:
        features = (spatial_units.feature(doc) async for doc in spatial_units.iter_units(db, project_id, **options))
        return await stream(request, json_array(features))
    docs = [doc async for doc in spatial_units.iter_units(db, project_id, limit=limit + 1, **options)]
    headers = {}
    if len(docs) > limit:
        docs = docs[:limit]
        following = request.url.update_query(offset=str(options["offset"] + limit), limit=str(limit))
        headers["Link"] = f'<{following.path_qs}>; rel="next"'
    return json_response([spatial_units.feature(d) for d in docs], headers=headers)


@_unit_route("POST", UNITS)
async def create_unit(request: web.Request) -> web.Response:
    access = await _project(request)
    access.require("create", REFUSED["create"])
    doc = await spatial_units.create_unit(_db(request), access, await _body(request), _caller(request).name)
    return json_response(spatial_units.feature(doc, spatial.project_ref(access.project, access.organization)),
                         status=201)


@_unit_route("GET", UNIT)
async def get_unit(request: web.Request) -> web.Response:
    access = await _project(request)
    access.require("view", REFUSED["view"])
    doc = await spatial_units.get_unit(_db(request), access.project["id"], request.match_info["unit_id"])
    if doc is None:
        raise BadRequest(UNIT_NOT_FOUND)
    return json_response(spatial_units.feature(doc, spatial.project_ref(access.project, access.organization)))


async def _update(request: web.Request, *, replace: bool) -> web.Response:
    """PATCH and PUT, in the platform's order: the project (404), the caller's right to update
    (403, also for a signed-in caller with no role in the organization), the unit (404), and only
    then the body (400)."""
    access = await _project(request, reveal_existence=True)
    access.require("update", REFUSED["update"])
    db, project_id, unit_id = _db(request), access.project["id"], request.match_info["unit_id"]
    if await spatial_units.get_unit(db, project_id, unit_id) is None:
        raise NotFound(UNIT_MISSING["detail"], body=UNIT_MISSING)
    doc = await spatial_units.update_unit(db, project_id, unit_id, await _body(request), _caller(request).name,
                                          replace=replace)
    if doc is None:
        raise NotFound(UNIT_MISSING["detail"], body=UNIT_MISSING)
    return json_response(spatial_units.feature(doc, spatial.project_ref(access.project, access.organization)))


@_unit_route("PATCH", UNIT)
async def update_unit(request: web.Request) -> web.Response:
    return await _update(request, replace=False)


@_unit_route("PUT", UNIT)
async def replace_unit(request: web.Request) -> web.Response:
    """The platform's full update: name and geometry required, given properties replace the stored ones."""
    return await _update(request, replace=True)


@_unit_route("DELETE", UNIT, errors=delete_errors)
async def delete_unit(request: web.Request) -> web.Response:
    access = await _project(request)
    access.require("delete", REFUSED["delete"])
    if not await spatial_units.delete_unit(_db(request), access.project["id"], request.match_info["unit_id"]):
        raise NotFound(UNIT_MISSING["detail"], body=UNIT_MISSING)
    return web.Response(status=204)
