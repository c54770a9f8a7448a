"""Which docs a user may see: their place in the hierarchy, as CHT's replication computes it.

Online users (and admins, and machine callers) see every doc their
permissions allow. An *offline* user sees what cht-core's replication
authorization gives them (``api/src/services/replication/authorization.js``;
``docs/replication.md`` compares the two rule by rule). Every doc has
replication *keys* (``replication_keys``, the ``medic/docs_by_replication_key``
view) and the user has *subjects*: ``_all``, ``org.couchdb.user:<name>``, the
ids and short ids of the contacts under their ``facility_id`` down to the
``depth`` of the ``replication_depth`` entry of their roles, with
``replicate_primary_contacts`` the primary contacts of those contacts wherever
they live, and ``_unassigned`` when they may see unallocated reports. A doc is
visible when one of its keys is a subject, except that:

* a report (``data_record``) must also be shallow enough: one of its keys at
  most ``report_depth`` levels below the user's facility, unless the user
  submitted it (a primary contact counts at the level of its highest place);
* a *private* report (``fields.private``) about the user's own contact or
  place submitted by someone who is not a subject is hidden ("sensitive").

Every offline user also gets ``_design/medic-client`` and their own
``user-settings`` doc.

Everything here is pure: callers pass the docs and what judging them needs
beyond the doc (``subjects``: the contacts the doc's keys and submitter name,
by id or short id; ``primary_of``: contact id -> the contacts naming it as
primary contact). ``api.cht.replication.scope`` computes the same rules for a
whole area from the views (tests check the two agree on generated hierarchies).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from api.auth import Principal
from api.permissions import has_permission, is_offline

from .contact_types import CONTACT_DOC_TYPES
from .lineage import lineage_ids

ALL_KEY = "_all"
UNASSIGNED_KEY = "_unassigned"

# Docs every user replicates (the medic/docs_by_replication_key view emits "_all" for them).
GLOBAL_DOC_IDS = frozenset({"resources", "branding", "partners", "service-worker-meta", "zscore-charts",
                            "settings", "privacy-policies", "extension-libs"})
GLOBAL_DOC_TYPES = frozenset({"form", "translations", "ui-extension"})
CLIENT_DDOC_ID = "_design/medic-client"
USER_SETTINGS_PREFIX = "org.couchdb.user:"

PrimaryOf = Mapping[str, Sequence[Mapping[str, Any]]]


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
    primary_contacts: bool = False  # replicate_primary_contacts: the primary contacts of the area's places too


UNRESTRICTED = Scope(restricted=False)


@dataclass(frozen=True)
class ReplicationDepth:
    depth: int = -1
    report_depth: int = -1
    primary_contacts: bool = False


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (CHT tests settings and doc fields this way)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True  # objects and arrays, even empty


def js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for the JSON values a replication key can be made of."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        if 1e-6 <= abs(value) < 1e21:
            return format(Decimal(repr(value)), "f")
        return repr(value).replace("e+0", "e+").replace("e-0", "e-")
    if value is None:
        return "null"
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"


_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def js_parse_int(value: Any) -> int | None:
    """``Number.parseInt(value, 10)``: the leading integer of the value as a string (``"2.5"`` -> 2); None for NaN."""
    match = _LEADING_INT.match(js_string(value))
    return int(match.group(1)) if match else None


def replication_depth(roles: Iterable[str], settings: Mapping[str, Any]) -> ReplicationDepth:
    """The ``replication_depth`` entry that applies to these roles, as CHT picks it.

    For each role, the first entry naming it (an unparsable ``depth`` drops the
    role). The deepest wins with its ``report_depth`` (unparsable: no limit) and
    ``replicate_primary_contacts``; among equally deep entries the report depth is
    the largest and primary contacts are replicated if any of them says so.
    """
    entries = settings.get("replication_depth")
    depth, report_depth, primary = -1, -1, False
    if not isinstance(entries, list):
        return ReplicationDepth()
    for role in roles:
        entry = next((e for e in entries if isinstance(e, Mapping) and e.get("role") == role), None)
        if entry is None:
            continue
        value = js_parse_int(entry.get("depth"))
        if value is None:
            continue
        entry_report_depth = js_parse_int(entry.get("report_depth"))
        entry_report_depth = -1 if entry_report_depth is None else entry_report_depth
        entry_primary = js_truthy(entry.get("replicate_primary_contacts"))
        if value > depth:
            depth, report_depth, primary = value, entry_report_depth, entry_primary
        elif value == depth:
            report_depth = max(report_depth, entry_report_depth)
            primary = primary or entry_primary
    return ReplicationDepth(depth, report_depth, primary)


def depths(roles: tuple[str, ...] | list[str], settings: Mapping[str, Any]) -> tuple[int, int]:
    """(depth, report_depth) for these roles; -1 means no limit."""
    found = replication_depth(roles, settings)
    return found.depth, found.report_depth


def offline_scope(principal: Principal, settings: Mapping[str, Any]) -> Scope:
    """The scope of an offline user with this principal's roles, facilities and contact."""
    found = replication_depth(principal.roles, settings)
    unassigned = js_truthy(settings.get("district_admins_access_unallocated_messages")) and \
        has_permission(principal, "can_view_unallocated_data_records", settings)
    return Scope(restricted=True, facility_ids=tuple(dict.fromkeys(principal.facility_ids)),
                 contact_id=principal.contact_id, depth=found.depth, report_depth=found.report_depth,
                 unassigned=unassigned, user=principal.name, primary_contacts=found.primary_contacts)


def scope_for(principal: Principal | None, settings: Mapping[str, Any]) -> Scope:
    if principal is None:
        return Scope(restricted=True)
    if not is_offline(principal, settings):
        return UNRESTRICTED
    return offline_scope(principal, settings)


def user_key(name: str) -> str:
    """A user's own subject: their ``user-settings`` id, which their tasks name as ``task.user``."""
    return USER_SETTINGS_PREFIX + name


def user_keys(name: str | None) -> tuple[str, ...]:
    return (user_key(name),) if name else ()


def always_ids(scope: Scope) -> tuple[str, ...]:
    """Docs every offline user gets whatever their place: the client ddoc and their own user-settings."""
    return (CLIENT_DDOC_ID, user_key(scope.user)) if scope.user else (CLIENT_DDOC_ID,)


def fixed_subjects(scope: Scope) -> tuple[str, ...]:
    """The subjects a user has whatever their place: ``_all``, their own key, ``_unassigned`` if allowed."""
    return (ALL_KEY, *user_keys(scope.user), *((UNASSIGNED_KEY,) if scope.unassigned else ()))


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


def _primary_levels(scope: Scope, contact_id: Any, primary_of: PrimaryOf | None) -> list[int]:
    """Levels of the area's contacts that name this contact as their primary contact."""
    if not scope.primary_contacts or not primary_of or not isinstance(contact_id, str):
        return []
    levels = (depth_in_scope(scope, place) for place in primary_of.get(contact_id, ()))
    return [level for level in levels if level is not None]


def subject_level(scope: Scope, contact: Mapping[str, Any] | None,
                  primary_of: PrimaryOf | None = None) -> tuple[bool, int | None]:
    """Is this contact a subject of the scope, and at which level (for ``report_depth``)?

    A primary contact of the area's places counts at the level of the highest
    of them, wherever it lives. Without a depth limit CHT places no contact at
    any level (its ``contacts_by_depth`` query has no depths then), so a
    ``report_depth`` then lets only the user's own reports through.
    """
    if not isinstance(contact, Mapping) or contact.get("type") not in CONTACT_DOC_TYPES:
        return False, None
    own = depth_in_scope(scope, contact)
    as_primary = _primary_levels(scope, contact.get("_id"), primary_of)
    if own is None and not as_primary:
        return False, None
    if scope.depth < 0:
        return True, None
    return True, min(as_primary) if as_primary else own


def contact_visible(scope: Scope, doc: Mapping[str, Any] | None, primary_of: PrimaryOf | None = None) -> bool:
    if not scope.restricted:
        return True
    return subject_level(scope, doc, primary_of)[0]


def is_global(doc: Mapping[str, Any]) -> bool:
    return doc.get("_id") in GLOBAL_DOC_IDS or doc.get("type") in GLOBAL_DOC_TYPES


def _key(value: Any) -> str | None:
    """A replication key made of a doc field, as CHT indexes it: any truthy value, as a string."""
    return js_string(value) if js_truthy(value) else None


def _strictly_true(value: Any) -> bool:
    return value is True or value == "true"


def replication_keys(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The (key, value) rows ``medic/docs_by_replication_key`` emits for a doc, computed in Python."""
    if is_global(doc):
        return [(ALL_KEY, {})]
    kind = doc.get("type")
    if kind in CONTACT_DOC_TYPES:
        key = _key(doc.get("_id"))
        return [(key, {"type": kind})] if key else []
    if kind == "task":
        key = _key(doc.get("user"))
        return [(key, {"type": kind})] if key else []
    if kind == "target":
        key = _key(doc.get("owner"))
        return [(key, {"type": kind})] if key else []
    if kind != "data_record":
        return []
    value: dict[str, Any] = {"type": kind, "subject": _report_subject(doc) or UNASSIGNED_KEY}
    contact = doc.get("contact")
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    if js_truthy(doc.get("form")) and isinstance(contact, Mapping) and _key(contact.get("_id")):
        value["submitter"] = _key(contact.get("_id"))
    if _strictly_true(fields.get("private")):
        value["private"] = True
    if not (_strictly_true(fields.get("needs_signoff")) and js_truthy(contact)):
        return [(value["subject"], value)]
    value["needs_signoff"] = True
    rows = [(value["subject"], value)]
    node = contact
    for _ in range(64):
        if not isinstance(node, Mapping):
            break
        ancestor = _key(node.get("_id"))
        if ancestor and ancestor != value["subject"]:
            rows.append((ancestor, value))
        node = node.get("parent")
    return rows


def _report_subject(doc: Mapping[str, Any]) -> str | None:
    """Who a report is about, as CHT's view finds it (JavaScript truthiness, keys as strings)."""
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    contact = doc.get("contact") if isinstance(doc.get("contact"), Mapping) else {}
    if js_truthy(doc.get("form")):
        errors = doc.get("errors") if isinstance(doc.get("errors"), list) else []
        if js_truthy(doc.get("contact")) and any(isinstance(e, Mapping) and e.get("code") in
                           ("registration_not_found", "invalid_patient_id") for e in errors):
            return _key(contact.get("_id"))
        for value in (doc.get("patient_id"), fields.get("patient_id"), doc.get("place_id"),
                      fields.get("place_id"), fields.get("patient_uuid"), contact.get("_id")):
            if js_truthy(value):
                return _key(value)
        return None
    if js_truthy(doc.get("sms_message")):
        return _key(contact.get("_id"))
    if js_truthy(doc.get("kujua_message")):
        try:
            return _key(doc["tasks"][0]["messages"][0]["contact"]["_id"])
        except (KeyError, IndexError, TypeError):
            return None
    return None


def report_subject_key(doc: Mapping[str, Any]) -> str | None:
    """The key a report is replicated by: its patient/place (id or short id), else its submitter."""
    return _report_subject(doc)


def _subject(scope: Scope, key: str, subjects: Mapping[str, Mapping[str, Any]],
             primary_of: PrimaryOf | None) -> tuple[bool, int | None]:
    """Is this replication key one of the user's subjects, and at which level?"""
    if key == UNASSIGNED_KEY:
        return scope.unassigned, 0
    if key in fixed_subjects(scope):
        return True, None
    return subject_level(scope, subjects.get(key), primary_of)


def _sensitive(scope: Scope, value: Mapping[str, Any], subjects: Mapping[str, Mapping[str, Any]],
               primary_of: PrimaryOf | None) -> bool:
    """A private report about the user's own contact or place, by a submitter who is not a subject."""
    subject, submitter = value.get("subject"), value.get("submitter")
    if not (value.get("private") and subject and submitter):
        return False
    own = {scope.contact_id, *scope.facility_ids} - {None}
    subject_doc = subjects.get(subject)
    if subject not in own and not (subject_doc is not None and subject_doc.get("_id") in own):
        return False
    return not _subject(scope, submitter, subjects, primary_of)[0]


def report_visible(scope: Scope, report: Mapping[str, Any],
                   subjects: Mapping[str, Mapping[str, Any]] | None = None,
                   primary_of: PrimaryOf | None = None) -> bool:
    """May the caller see this report? ``subjects``: key or submitter (id or short id) -> contact doc."""
    if not scope.restricted:
        return True
    subjects = subjects or {}
    rows = replication_keys(report)
    if not rows:
        return False
    value = rows[0][1]
    found = [_subject(scope, key, subjects, primary_of) for key, _ in rows]
    levels = [level for member, level in found if member]
    if len(levels) == 0 or _sensitive(scope, value, subjects, primary_of):
        return False
    if scope.report_depth < 0 or value.get("type") != "data_record" or value.get("submitter") == scope.contact_id:
        return True
    return any(level is not None and level <= scope.report_depth for level in levels)


def doc_visible(scope: Scope, doc: Mapping[str, Any], subjects: Mapping[str, Mapping[str, Any]] | None = None,
                primary_of: PrimaryOf | None = None) -> bool:
    """Global docs always; contacts in the area (or primary contacts of it); reports by their keys; tasks and
    targets when their key (user, owner) is a subject; anything else never.

    ``subjects``: the contacts the doc's keys and submitter name (by id or short
    id); ``primary_of``: contact id -> contacts naming it as primary contact
    (needed with ``replicate_primary_contacts`` only).
    """
    if not scope.restricted:
        return True
    if doc.get("_id") in always_ids(scope) or is_global(doc):
        return True
    kind = doc.get("type")
    if kind in CONTACT_DOC_TYPES:
        return contact_visible(scope, doc, primary_of)
    if kind == "data_record":
        return report_visible(scope, doc, subjects, primary_of)
    return any(_subject(scope, key, subjects or {}, primary_of)[0] for key, _ in replication_keys(doc))


def lookup_keys(doc: Mapping[str, Any]) -> list[str]:
    """What ``subjects`` must hold to judge this doc: its replication keys and its submitter."""
    rows = replication_keys(doc)
    keys = [key for key, _ in rows if key not in (ALL_KEY, UNASSIGNED_KEY)]
    submitter = rows[0][1].get("submitter") if rows else None
    return keys + [submitter] if submitter else keys
