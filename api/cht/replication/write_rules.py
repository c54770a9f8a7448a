"""Who may write which document through the CouchDB protocol (``/medic``).

The Python twin of ``ddocs/medic/medic-client/validate_doc_update.js``: the API
writes to CouchDB as admin, so CouchDB's own validation cannot see the real
user and the same rules are applied here first. They are cht-core's (its
``medic`` and ``medic-client`` ``validate_doc_update``): no purged docs; the
docs every user replicates (settings, forms, translations, resources, UI
extensions...) and design docs are admins' only; a ``user-settings`` doc can be
edited, not created, and its roles stay as they are. Jamii adds: users change
only their own ``user-settings`` doc, and need ``can_edit``. Offline users are
further limited to their part of the hierarchy by ``api/cht/replication/writes.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.cht.visibility import js_truthy
from api.permissions import has_permission

CONFIG_IDS = frozenset({"settings", "resources", "branding", "partners", "privacy-policies",
                        "service-worker-meta", "zscore-charts", "extension-libs", "migration-log"})
CONFIG_TYPES = frozenset({"form", "translations", "token_login", "ui-extension"})
USER_SETTINGS_PREFIX = "org.couchdb.user:"

PURGED = "Purged documents should not be written to CouchDB!"
ADMIN_ONLY = "You are not authorized to edit admin only docs"
NOT_YOURS = "Users may only change their own settings"
NO_CREATE = "You are not authorized to create user-settings"
ROLES = "You are not authorized to edit roles"


def refusal(principal: Principal, settings: Mapping[str, Any], doc_id: str, new: Mapping[str, Any] | None,
            old: Mapping[str, Any] | None) -> str | None:
    """Why this write is refused, or None when it is allowed.

    ``new`` is the doc as written (a deletion is ``{"_deleted": true, ...}``),
    ``old`` the stored doc (None when there is none).
    """
    if new and js_truthy(new.get("purged")):
        return PURGED  # even for admins, as cht-core: purging happens on the device only
    if principal.is_admin:
        return None
    kinds = {d.get("type") for d in (new, old) if d}
    if doc_id.startswith("_design/") or doc_id in CONFIG_IDS or doc_id.startswith("messages-") \
            or kinds & CONFIG_TYPES:
        return ADMIN_ONLY
    if doc_id.startswith(USER_SETTINGS_PREFIX) or "user-settings" in kinds:
        return _user_settings(principal, doc_id, new, old)
    if not has_permission(principal, "can_edit", settings):
        return "Insufficient privileges: can_edit required"
    return None


def _user_settings(principal: Principal, doc_id: str, new: Mapping[str, Any] | None,
                   old: Mapping[str, Any] | None) -> str | None:
    owner = doc_id[len(USER_SETTINGS_PREFIX):] if doc_id.startswith(USER_SETTINGS_PREFIX) else principal.name
    names = {owner, *(d["name"] for d in (new, old) if d and "name" in d)}
    if names != {principal.name}:
        return NOT_YOURS
    if not new or new.get("type") != "user-settings":
        return None  # a deletion, or a doc that is not (or no longer) user-settings
    if "known" in new and not isinstance(new["known"], bool):
        return "known is not a boolean."
    if old is None:
        return NO_CREATE
    if not isinstance(new.get("roles"), list) or not isinstance(old.get("roles"), list) \
            or new["roles"] != old["roles"]:
        return ROLES
    return None
