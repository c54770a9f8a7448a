"""Which docs a user may see: their place in the hierarchy, as CHT's replication computes it.

Online users (and admins, and machine callers) see every doc their
permissions allow. An *offline* user sees the part of the hierarchy under
their ``facility_id`` (the place itself and its descendants), down to the
``depth`` of the ``replication_depth`` setting for their roles; reports are
seen through their subject (the patient or place they are about, else their
submitter), optionally limited to a shallower ``report_depth`` unless the user
submitted them. As in CHT, reports about the user themselves or their own
place submitted by someone outside their area are hidden ("sensitive").
Tasks are seen by the user they are for, targets through their owner
contact, and every offline user gets ``_design/medic-client`` and their own
``user-settings`` doc.

Everything here is pure: callers pass the docs (with the minified lineage
every contact and report carries) and, for reports, the subject contacts they
looked up. ``api.cht.replication.scope`` computes the same rules for a whole
area from the views (tests check the two agree on generated hierarchies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from api.auth import Principal
from api.permissions import has_permission, is_offline

from .contact_types import CONTACT_DOC_TYPES
from .lineage import lineage_ids

ALL_KEY = "_all"
UNASSIGNED_KEY = "_unassigned"

# Docs every user replicates (the medic/docs_by_replication_key view emits "_all" for them).
GLOBAL_DOC_IDS = frozenset({"resources", "branding", "partners", "service-worker-meta", "zscore-charts",
                            "settings", "privacy-policies"})
GLOBAL_DOC_TYPES = frozenset({"form", "translations"})
CLIENT_DDOC_ID = "_design/medic-client"
USER_SETTINGS_PREFIX = "org.couchdb.user:"


@dataclass(frozen=True)
class Scope:
    """What part of the hierarchy a caller sees. ``restricted`` False: everything."""

    restricted: bool
    facility_ids: tuple[str, ...] = ()
    contact_id: str | None = None
    depth: int = -1          # levels below the facility; -1: no limit
    report_depth: int = -1   # levels below the facility for others' reports; -1: no limit
    unassigned: bool = False  # may see reports with no known subject
    user: str | None = None  # the user's name: their tasks and user-settings doc


def user_keys(name: str | None) -> tuple[str, ...]:
    """The replication keys of a user's tasks: ``task.user`` is the name or, as in CHT, the ``_users`` id."""
    return (name, USER_SETTINGS_PREFIX + name) if name else ()


def always_ids(scope: Scope) -> tuple[str, ...]:
    """Docs every offline user gets whatever their place: the client ddoc and their own user-settings."""
    return (CLIENT_DDOC_ID, USER_SETTINGS_PREFIX + scope.user) if scope.user else (CLIENT_DDOC_ID,)


UNRESTRICTED = Scope(restricted=False)


def depths(roles: tuple[str, ...] | list[str], settings: Mapping[str, Any]) -> tuple[int, int]:
    """(depth, report_depth) for these roles: the deepest configured entry wins; -1 means no limit."""
    depth, report_depth = -1, -1
    entries = settings.get("replication_depth")
    if not isinstance(entries, list):
        return depth, report_depth
    best: Mapping[str, Any] | None = None
    for role in roles:
        for entry in entries:
            if not isinstance(entry, Mapping) or entry.get("role") != role:
                continue
            value = _int(entry.get("depth"))
            if value is not None and value > depth:
                depth, best = value, entry
    if best is not None:
        value = _int(best.get("report_depth"))
        if value is not None and value >= 0:
            report_depth = value
    return depth, report_depth


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def scope_for(principal: Principal | None, settings: Mapping[str, Any]) -> Scope:
    if principal is None:
        return Scope(restricted=True)
    if not is_offline(principal, settings):
        return UNRESTRICTED
    depth, report_depth = depths(principal.roles, settings)
    unassigned = bool(settings.get("district_admins_access_unallocated_messages")) and \
        has_permission(principal, "can_view_unallocated_data_records", settings)
    return Scope(restricted=True, facility_ids=principal.facility_ids, contact_id=principal.contact_id,
                 depth=depth, report_depth=report_depth, unassigned=unassigned, user=principal.name)


def depth_in_scope(scope: Scope, doc: Mapping[str, Any] | None) -> int | None:
    """Levels between the user's facility and this contact (0: the facility), None when outside.

    Read from the contact's own id and its minified lineage; "outside" also
    means deeper than the user's replication depth.
    """
    if not isinstance(doc, Mapping) or not scope.facility_ids:
        return None
    chain = lineage_ids(doc)
    found = [chain.index(f) for f in scope.facility_ids if f in chain]
    if not found:
        return None
    level = min(found)
    if scope.depth >= 0 and level > scope.depth:
        return None
    return level


def contact_visible(scope: Scope, doc: Mapping[str, Any] | None) -> bool:
    if not scope.restricted:
        return True
    return depth_in_scope(scope, doc) is not None


def replication_keys(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (key, value) rows ``medic/docs_by_replication_key`` emits for a doc, computed in Python."""
    doc_id = doc.get("_id")
    kind = doc.get("type")
    if doc_id in GLOBAL_DOC_IDS or kind in GLOBAL_DOC_TYPES:
        return [(ALL_KEY, {})]
    if kind in CONTACT_DOC_TYPES:
        return [(doc_id, {"type": kind})] if isinstance(doc_id, str) else []
    if kind == "task":
        user = doc.get("user")
        return [(user, {"type": kind})] if isinstance(user, str) and user else []
    if kind == "target":
        owner = doc.get("owner")
        return [(owner, {"type": kind})] if isinstance(owner, str) and owner else []
    if kind != "data_record":
        return []
    value: dict[str, Any] = {"type": kind, "subject": _report_subject(doc) or UNASSIGNED_KEY}
    contact = doc.get("contact") if isinstance(doc.get("contact"), Mapping) else None
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    if doc.get("form") and contact and contact.get("_id"):
        value["submitter"] = contact["_id"]
    if fields.get("private"):
        value["private"] = True
    rows = [(value["subject"], value)]
    if fields.get("needs_signoff") and contact:
        signoff = {**value, "needs_signoff": True}
        rows = [(value["subject"], signoff)]
        for ancestor_id in lineage_ids(contact):
            if ancestor_id != value["subject"]:
                rows.append((ancestor_id, signoff))
    return rows


def _report_subject(doc: Mapping[str, Any]) -> str | None:
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    contact = doc.get("contact") if isinstance(doc.get("contact"), Mapping) else {}
    if doc.get("form"):
        errors = doc.get("errors") if isinstance(doc.get("errors"), list) else []
        if contact.get("_id") and any(isinstance(e, Mapping) and e.get("code") in
                                      ("registration_not_found", "invalid_patient_id") for e in errors):
            return str(contact["_id"])
        for value in (doc.get("patient_id"), fields.get("patient_id"), doc.get("place_id"),
                      fields.get("place_id"), fields.get("patient_uuid"), contact.get("_id")):
            if value not in (None, "") and not isinstance(value, (bool, dict, list)):
                return str(value)
        return None
    if doc.get("sms_message"):
        return contact.get("_id") or None
    if doc.get("kujua_message"):
        try:
            return doc["tasks"][0]["messages"][0]["contact"]["_id"] or None
        except (KeyError, IndexError, TypeError):
            return None
    return None


def report_subject_key(doc: Mapping[str, Any]) -> str | None:
    """The key a report is replicated by: its patient/place (id or short id), else its submitter."""
    return _report_subject(doc)


def _subject_depth(scope: Scope, key: str, subjects: Mapping[str, Mapping[str, Any]],
                   report: Mapping[str, Any]) -> int | None:
    """Depth of a replication key's contact within the scope; None when outside.

    The key is a contact id or short id; ``subjects`` maps such keys to the
    contact docs the caller looked up. A key that is an ancestor in the
    submitter's lineage (the ``needs_signoff`` rows) is placed from that lineage.
    """
    subject = subjects.get(key)
    if subject is not None:
        return depth_in_scope(scope, subject)
    contact = report.get("contact") if isinstance(report.get("contact"), Mapping) else None
    chain = lineage_ids(contact) if contact is not None else []
    if key not in chain:
        return None
    tail = chain[chain.index(key):]
    found = [tail.index(f) for f in scope.facility_ids if f in tail]
    if not found or (scope.depth >= 0 and min(found) > scope.depth):
        return None
    return min(found)


def report_visible(scope: Scope, report: Mapping[str, Any],
                   subjects: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """May the caller see this report? ``subjects``: subject key (id or short id) -> contact doc."""
    if not scope.restricted:
        return True
    subjects = subjects or {}
    contact = report.get("contact") if isinstance(report.get("contact"), Mapping) else None
    submitter_ok = contact is not None and depth_in_scope(scope, contact) is not None
    for key, value in replication_keys(report):
        if key == ALL_KEY:
            return True
        if key == UNASSIGNED_KEY:
            if scope.unassigned:
                return True
            continue
        level = _subject_depth(scope, key, subjects, report)
        if level is None:
            continue
        subject_doc = subjects.get(key)
        subject_ids = {key, *(([subject_doc.get("_id")]) if subject_doc else [])}
        sensitive_ids = {scope.contact_id, *scope.facility_ids} - {None}
        if value.get("submitter") and subject_ids & sensitive_ids and not submitter_ok:
            continue
        own = scope.contact_id is not None and value.get("submitter") == scope.contact_id
        if scope.report_depth >= 0 and not own and level > scope.report_depth:
            continue
        return True
    return False


def doc_visible(scope: Scope, doc: Mapping[str, Any],
                subjects: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
    """Contacts by their lineage, reports by their subject, tasks by their user, targets by their owner,
    global docs always, anything else never. ``subjects``: contact id or short id -> contact doc."""
    if not scope.restricted:
        return True
    if doc.get("_id") in always_ids(scope):
        return True
    kind = doc.get("type")
    if kind in CONTACT_DOC_TYPES:
        return contact_visible(scope, doc)
    if kind == "data_record":
        return report_visible(scope, doc, subjects)
    keys = replication_keys(doc)
    if kind == "task":
        return any(key in user_keys(scope.user) for key, _ in keys)
    if kind == "target":
        owner = (subjects or {}).get(keys[0][0]) if keys else None
        return owner is not None and owner.get("type") in CONTACT_DOC_TYPES and contact_visible(scope, owner)
    return any(key == ALL_KEY for key, _ in keys)
