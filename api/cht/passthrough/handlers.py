"""The catch-all route: what no other route serves is passed on to CouchDB or answered as ``rules`` says.

A path another route serves with other methods keeps its 405 (offline users meet the firewall first,
as on any path); ``/medic`` paths go to ``rules`` whatever the method, as cht-core sends them to CouchDB.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from api.cht.replication.proxy import passthrough
from api.couch_guards import segments
from api.errors import Forbidden, NotFound
from api.permissions import is_offline
from api.web import CONFIG, COUCH, couch_errors, settings, user

from . import rules

routes = web.RouteTableDef()
API_PREFIXES = web.AppKey("api_prefixes", frozenset)
METHOD_NOT_ALLOWED = {"code": 405, "error": "Method not allowed"}  # the API's own answer, as before


def setup(app: web.Application) -> None:
    async def start(app: web.Application) -> None:
        app[API_PREFIXES] = frozenset(_api_prefixes(app))

    app.on_startup.append(start)


def _api_prefixes(app: web.Application) -> set[str]:
    """The first segments of the paths the API's own routes serve (``api``, ``v6``, ``medic``...)."""
    found = set()
    for resource in app.router.resources():
        first = resource.canonical.lstrip("/").split("/", 1)[0]
        if not _is_catch_all(resource) and first and "{" not in first:
            found.add(first)
    return found


def _is_catch_all(resource: web.AbstractResource) -> bool:
    return any(route.handler is pass_through for route in resource)


async def _allowed_elsewhere(request: web.Request) -> set[str]:
    """The methods other routes serve for this path (none: no other route has it)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if not _is_catch_all(resource):
            _, methods = await resource.resolve(request)
            allowed |= methods
    return allowed


@routes.route("*", "/{path:.*}")
@couch_errors
async def pass_through(request: web.Request) -> web.StreamResponse:
    principal = user(request)
    if principal is None:  # the authentication middleware refuses anonymous callers first
        raise Forbidden("Authentication required")
    offline = is_offline(principal, await settings(request))
    parts = segments(request.raw_path)
    if parts[0] != "medic":
        allowed = await _allowed_elsewhere(request)
        if allowed:
            raise rules.firewall() if offline else rules.method_not_allowed(",".join(sorted(allowed)),
                                                                             body=METHOD_NOT_ALLOWED)
    caller = rules.Caller(server_admin="_admin" in principal.roles, medic_admin=principal.is_admin, offline=offline)
    decision = rules.decide(caller, request.method, parts, databases=request.app[CONFIG].databases,
                            api_prefixes=request.app[API_PREFIXES], accept=request.headers.get("Accept"))
    if isinstance(decision, rules.IfExists):
        if await request.app[COUCH].db(decision.name).exists():
            raise Forbidden(rules.NOT_MEMBER)
        raise NotFound(rules.NO_DATABASE)
    return await _forward(request, decision, public=parts[0])


async def _forward(request: web.Request, decision: rules.Forward, public: str) -> web.StreamResponse:
    if decision.target == rules.WELCOME:
        return await passthrough(request, "/", db_path="", public_path="/")
    suffix = "".join("/" + quote(part, safe="") for part in decision.rest)
    name = _attachment(request.method, decision.target, decision.rest)
    return await passthrough(request, suffix, db_path="/" + quote(decision.target, safe=""),
                             public_path="/" + quote(public, safe=""), raw=name is not None, attachment=name,
                             raw_body=True)


def _attachment(method: str, target: str, rest: tuple[str, ...]) -> str | None:
    """The name of the attachment a request reads (served inert, as ``/medic``'s are), or None."""
    if method not in ("GET", "HEAD") or (target.startswith("_") and target not in rules.SYSTEM_DBS):
        return None
    if len(rest) >= 2 and rest[0] and not rest[0].startswith("_"):
        return "/".join(rest[1:])
    if len(rest) >= 3 and rest[0] == "_design" and not rest[2].startswith("_"):
        return "/".join(rest[2:])
    return None
