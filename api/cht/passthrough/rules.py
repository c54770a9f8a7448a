"""Who may reach what of CouchDB through the pass-through, and what CouchDB answers the others.

cht-core's last route passes a request to CouchDB with the caller's credentials (``api/src/routing.js``),
after its offline-user firewall; CouchDB then applies the security a CHT install gives it on CouchDB 3:
every database is for server admins (``medic-sentinel`` also for the ``sentinel`` role), but ``medic``,
whose members are CHT's roles. A 401 from CouchDB becomes cht-core's "not logged in" answer. Jamii makes
the same decisions here, from the caller and the path alone, and denies what it has no rule for:

* a CouchDB server admin (``_admin``) has the request passed on;
* ``GET /`` asking for JSON, and ``GET /dbinfo``, give anyone logged in CouchDB's welcome;
* an offline user meets the firewall (``/medic`` is served by its own routes);
* an online user has ``_uuids`` and ``_up`` passed on and otherwise gets what CouchDB answers a user
  who is not an admin: 401 on server endpoints and admin-only database endpoints, 403 on a database
  they are not a member of, 404 on one that does not exist. ``/medic`` paths no route serves are for
  Jamii's admins of it (``_admin`` or ``admin``), as the ``/medic`` routes are.

Paths under a prefix the API routes itself (``/api``, ``/v6``...) are never passed on: CouchDB would
look for a database of that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from api.couch_guards import DB_NAME, illegal_name
from api.errors import Forbidden, JamiiError, NotFound, Unauthorized
from api.permissions import FIREWALL_BODY

# CouchDB's own reasons, as a CHT install's CouchDB gives them to a user who is not an admin.
NOT_MEMBER = "You are not allowed to access this db."
NO_DATABASE = "Database does not exist."
NOT_SERVER_ADMIN = "You are not a server admin."
# Database endpoints CouchDB keeps for server admins, before it looks at the database's members.
SERVER_ADMIN_ENDPOINTS = frozenset({"_purge", "_sync_shards", "_purged_infos_limit"})
# Server endpoints CouchDB answers any valid user.
ANY_USER = frozenset({"_uuids", "_up"})
# System databases that refuse their listing to all but server admins.
SYSTEM_DBS = frozenset({"_users", "_replicator"})
WELCOME = "/"


@dataclass(frozen=True)
class Caller:
    server_admin: bool  # CouchDB's ``_admin``
    medic_admin: bool  # Jamii's admins of the medic database: ``_admin`` or the ``admin`` role
    offline: bool


@dataclass(frozen=True)
class Forward:
    """Pass the request on to ``target`` (a database's real name, a server endpoint, or ``/``)."""

    target: str
    rest: tuple[str, ...] = ()


@dataclass(frozen=True)
class IfExists:
    """403 for an online user when this database exists, 404 when it does not (CouchDB's answers)."""

    name: str


Decision = Forward | IfExists


def method_not_allowed(allowed: str, body: Any = None) -> JamiiError:
    """CouchDB's 405 (``body``: another shape for it)."""
    error = JamiiError(f"Only {allowed} allowed", headers={"Allow": allowed.replace(",", ", ")}, body=body)
    error.status = 405
    error.couch_error = "method_not_allowed"
    return error


def firewall() -> Forbidden:
    return Forbidden(FIREWALL_BODY["details"], body=FIREWALL_BODY)


def decide(caller: Caller, method: str, parts: Sequence[str], *, databases: Mapping[str, str],
           api_prefixes: frozenset[str], accept: str | None) -> Decision:
    """What becomes of a request for ``parts`` (the path's decoded segments); raises the refusals.

    ``databases``: the logical names of Jamii's databases and their real names; ``api_prefixes``: the first
    path segments the API routes itself."""
    first, rest = parts[0], tuple(parts[1:])
    if first in ("", "dbinfo") and not rest:
        return _welcome(method, first, accept)
    if caller.offline:
        raise firewall()
    if first == "medic":
        return _medic(caller, rest, databases)
    if first.startswith("_"):
        return _server(caller, method, first, rest, databases)
    if not DB_NAME.match(first) and _is_database(rest) and method == "PUT":
        raise illegal_name(first)
    if first in api_prefixes or not DB_NAME.match(first):
        raise NotFound(NO_DATABASE)
    name = databases.get(first, first)
    if caller.server_admin:
        return Forward(name, rest)
    if (_is_database(rest) and method in ("PUT", "DELETE")) or (rest and rest[0] in SERVER_ADMIN_ENDPOINTS):
        raise Unauthorized(NOT_SERVER_ADMIN)
    if first in databases:
        raise Forbidden(NOT_MEMBER)
    return IfExists(name)


def _is_database(rest: tuple[str, ...]) -> bool:
    return rest in ((), ("",))


def _welcome(method: str, first: str, accept: str | None) -> Forward:
    """cht-core passes ``GET /`` on when the client asks for exactly ``application/json`` (older services
    reading CouchDB's welcome), and ``GET /dbinfo`` always; ``/`` is otherwise its web app, which Jamii
    does not serve."""
    if method not in ("GET", "HEAD"):
        raise method_not_allowed("GET,HEAD")
    if first == "" and accept != "application/json":
        raise NotFound("No web app is served here; ask for application/json for the database's welcome")
    return Forward(WELCOME)


def _medic(caller: Caller, rest: tuple[str, ...], databases: Mapping[str, str]) -> Forward:
    if caller.medic_admin:
        return Forward(databases["medic"], rest)
    if rest and rest[0] in SERVER_ADMIN_ENDPOINTS:
        raise Unauthorized(NOT_SERVER_ADMIN)
    raise Forbidden("Only admins may do this")


def _server(caller: Caller, method: str, first: str, rest: tuple[str, ...],
            databases: Mapping[str, str]) -> Forward:
    if caller.server_admin:
        return Forward(databases.get(first, first), rest)
    if first in SYSTEM_DBS:
        if (_is_database(rest) and method in ("PUT", "DELETE")) or rest[:1] in (("_all_docs",), ("_changes",)):
            raise Unauthorized(NOT_SERVER_ADMIN)
        raise Forbidden(NOT_MEMBER)
    if first in ANY_USER and not rest and method in ("GET", "HEAD"):
        return Forward(first)
    raise Unauthorized(NOT_SERVER_ADMIN)
