"""May this caller do X? The CHT permission model, used by every handler.

App settings hold ``roles`` (each with an ``offline`` flag) and
``permissions`` (permission name -> roles allowed). Admins have every
permission. JWT callers hold the permissions named in their scopes. Anything
not granted is denied.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .auth import Principal
from .errors import Forbidden, Unauthorized

# A permission implied by holding another (write implies read).
IMPLIED_BY: dict[str, tuple[str, ...]] = {
    "read:foci": ("write:foci",),
    "read:datapoints": ("write:datapoints", "manage:datapoints"),
}


def is_offline(principal: Principal, settings: Mapping[str, Any]) -> bool:
    """Offline users replicate to a device and only see their part of the hierarchy.

    As in CHT: admins and machine (JWT) callers are online; otherwise a user is
    offline when any of their roles is configured offline, or when none of
    their roles is configured at all (the restrictive choice).
    """
    if principal.is_admin or principal.method == "jwt":
        return False
    configured = settings.get("roles") or {}
    known = [configured[r] for r in principal.roles if isinstance(configured.get(r), Mapping)]
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
    permissions = settings.get("permissions") or {}
    roles = set(principal.roles)
    return any(roles.intersection(permissions.get(p) or ()) for p in wanted)


def require(principal: Principal | None, settings: Mapping[str, Any], *permissions: str,
            online: bool = False) -> Principal:
    """Raise unless the caller holds every permission (and is online, if asked)."""
    if principal is None:
        raise Unauthorized("Authentication required")
    missing = [p for p in permissions if not has_permission(principal, p, settings)]
    if missing:
        raise Forbidden(f"Insufficient privileges: {', '.join(missing)} required")
    if online and is_offline(principal, settings):
        raise Forbidden("Insufficient privileges: only online users may do this")
    return principal


def require_admin(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("Authentication required")
    if not principal.is_admin:
        raise Forbidden("Insufficient privileges: admin only")
    return principal


def require_any(principal: Principal | None, settings: Mapping[str, Any], permissions: Iterable[str]) -> Principal:
    """Raise unless the caller holds at least one of the permissions."""
    if principal is None:
        raise Unauthorized("Authentication required")
    permissions = list(permissions)
    if not any(has_permission(principal, p, settings) for p in permissions):
        raise Forbidden(f"Insufficient privileges: one of {', '.join(permissions)} required")
    return principal
