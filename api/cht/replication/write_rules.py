"""Who may write which document through the CouchDB protocol (``/medic``).

CHT's ``validate_doc_update`` rules, applied by the API: it writes to CouchDB as
admin (every database is locked to admins), so a validation function in the
database could never see the real user, and it is not installed there (CouchDB
would run it in ``couchjs`` for every doc written: docs/sentinel.md). Offline
users are further limited to their part of the hierarchy by
``api/cht/replication/writes.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.permissions import has_permission

CONFIG_IDS = frozenset({"settings", "resources", "branding", "partners", "privacy-policies",
                        "service-worker-meta", "zscore-charts"})
CONFIG_TYPES = frozenset({"form", "translations"})
USER_SETTINGS_PREFIX = "org.couchdb.user:"


def refusal(principal: Principal, settings: Mapping[str, Any], doc_id: str, new: Mapping[str, Any] | None,
            old: Mapping[str, Any] | None) -> str | None:
    """Why this write is refused, or None when it is allowed.

    ``new`` is the doc as written (a deletion is ``{"_deleted": true, ...}``),
    ``old`` the stored doc (None when there is none).
    """
    if principal.is_admin:
        return None
    if doc_id.startswith("_design/"):
        return "Only admins may change design documents"
    kinds = {d.get("type") for d in (new, old) if d}
    if doc_id in CONFIG_IDS or doc_id.startswith("messages-") or kinds & CONFIG_TYPES:
        return "Only admins may change configuration documents"
    if doc_id.startswith(USER_SETTINGS_PREFIX) or "user-settings" in kinds:
        owner = doc_id[len(USER_SETTINGS_PREFIX):] if doc_id.startswith(USER_SETTINGS_PREFIX) else principal.name
        names = {owner, *(d["name"] for d in (new, old) if d and "name" in d)}
        if names != {principal.name}:
            return "Users may only change their own settings"
        return None
    if not has_permission(principal, "can_edit", settings):
        return "Insufficient privileges: can_edit required"
    return None
