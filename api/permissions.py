"""May this caller do X? The CHT permission model, used by every handler.

App settings hold ``roles`` (each with an ``offline`` flag) and
``permissions`` (permission name -> roles allowed). Admins have every
permission. JWT callers hold the permissions named in their scopes. Anything
not granted is denied. Refusals say only ``Insufficient privileges``, as CHT's
do (what was missing goes to the log).

Online or offline, as in CHT: a user holding ``mm-online`` (CHT's online
role, which user writes add to every online user) or an admin role is online.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from .auth import ADMIN_ROLES, Principal
from .errors import Forbidden, Unauthorized

log = logging.getLogger("jamii.permissions")

ONLINE_ROLE = "mm-online"
INSUFFICIENT = "Insufficient privileges"
# CHT's answer to an offline user on an online-only endpoint (always this JSON, whatever the client).
FIREWALL_BODY = {"code": 403, "error": "forbidden", "details": "Offline users are not allowed access to this endpoint"}

# A permission implied by holding another (write implies read).
IMPLIED_BY: dict[str, tuple[str, ...]] = {
    "read:foci": ("write:foci",),
    "read:datapoints": ("write:datapoints", "manage:datapoints"),
}


def is_offline(principal: Principal, settings: Mapping[str, Any]) -> bool:
    """Offline users replicate to a device and only see their part of the hierarchy.

    As in CHT: admins, holders of ``mm-online`` and machine (JWT) callers are
    online. Users written before Jamii added ``mm-online`` are judged by their
    roles' settings: offline when any of their roles is configured offline, or
    when none of their roles is configured at all (the restrictive choice).
    """
    if principal.is_admin or principal.method == "jwt" or ONLINE_ROLE in principal.roles:
        return False
    return roles_offline(principal.roles, settings)


def has_online_role(roles: Iterable[str]) -> bool:
    """CHT's ``hasOnlineRole``: an admin role or ``mm-online``."""
    return any(r in ADMIN_ROLES or r == ONLINE_ROLE for r in roles)


def roles_offline(roles: Iterable[str], settings: Mapping[str, Any]) -> bool:
    """Offline by the roles' settings: one of them is configured ``offline``, or none is configured."""
    configured = settings.get("roles") if isinstance(settings.get("roles"), Mapping) else {}
    known = [configured[r] for r in roles if isinstance(configured.get(r), Mapping)]
    if not known:
        return True
    return any(role.get("offline") for role in known)


def is_online(principal: Principal, settings: Mapping[str, Any]) -> bool:
    return not is_offline(principal, settings)


def has_permission(principal: Principal | None, permission: str, settings: Mapping[str, Any]) -> bool:
    if principal is None:
        return False
    if principal.is_admin:
        return True
    wanted = (permission, *IMPLIED_BY.get(permission, ()))
    if principal.method == "jwt":
        return any(p in principal.scopes for p in wanted)
    return roles_have(principal.roles, wanted, settings)


def roles_have(roles: Iterable[str], wanted: Iterable[str], settings: Mapping[str, Any]) -> bool:
    """Whether these roles grant one of the ``wanted`` permissions. As in CHT, only roles configured in
    ``settings.roles`` grant anything; admins hold every permission."""
    roles = set(roles)
    if roles & ADMIN_ROLES:
        return True
    configured = settings.get("roles") if isinstance(settings.get("roles"), Mapping) else {}
    roles = {r for r in roles if r in configured}
    permissions = settings.get("permissions") or {}
    return any(roles.intersection(permissions.get(p) or ()) for p in wanted)


def require(principal: Principal | None, settings: Mapping[str, Any], *permissions: str,
            online: bool = False) -> Principal:
    """Raise unless the caller holds every permission (and is online, if asked): cht-core's
    ``assertPermissions``, whose every refusal is ``Insufficient privileges``."""
    if principal is None:
        raise Unauthorized("Authentication required")
    if online and is_offline(principal, settings):
        log.info("%s is offline; the endpoint is for online users", principal.name)
        raise Forbidden(INSUFFICIENT)
    missing = [p for p in permissions if not has_permission(principal, p, settings)]
    if missing:
        log.info("%s lacks %s", principal.name, ", ".join(missing))
        raise Forbidden(INSUFFICIENT)
    return principal


def firewall(principal: Principal | None, settings: Mapping[str, Any]) -> Principal:
    """cht-core's ``offlineUserFirewall``, which some routes pass first (hydrate, contacts-by-phone,
    credentials, CouchDB endpoints it has not audited, and every path no route serves): an offline
    user gets its own 403 body there, before any permission is looked at."""
    if principal is None:
        raise Unauthorized("Authentication required")
    if is_offline(principal, settings):
        raise Forbidden(FIREWALL_BODY["details"], body=FIREWALL_BODY)
    return principal


def require_admin(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("Authentication required")
    if not principal.is_admin:
        raise Forbidden("User is not an admin")
    return principal


def require_any(principal: Principal | None, settings: Mapping[str, Any], permissions: Iterable[str]) -> Principal:
    """Raise unless the caller holds at least one of the permissions."""
    if principal is None:
        raise Unauthorized("Authentication required")
    permissions = list(permissions)
    if not any(has_permission(principal, p, settings) for p in permissions):
        log.info("%s lacks one of %s", principal.name, ", ".join(permissions))
        raise Forbidden(INSUFFICIENT)
    return principal
