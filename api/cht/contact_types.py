"""Contact types from the app settings: which docs are contacts, people or places, and who may parent whom.

Settings ``contact_types`` list the hierarchy, e.g. district_hospital >
health_center > clinic > person, each with its allowed ``parents`` and a
``person`` flag. Four ids are "hardcoded" as in CHT: their docs carry the id in
``type`` (``{"type": "clinic"}``); any other configured type is stored as
``{"type": "contact", "contact_type": "<id>"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.errors import BadRequest

HARDCODED_TYPES = ("district_hospital", "health_center", "clinic", "person")
# Types that CHT knows as contacts even without settings (the contact views use the same list).
CONTACT_DOC_TYPES = frozenset({"contact", *HARDCODED_TYPES})

# Display names used in CHT's hierarchy error messages ("Health Centers should have ...").
_PLURAL_NAMES = {
    "district_hospital": "District Hospitals",
    "health_center": "Health Centers",
    "clinic": "Clinics",
    "national_office": "National Offices",
    "person": "People",
}


def type_of(doc: Mapping[str, Any] | None) -> str | None:
    """The contact type id of a doc (``contact_type`` for ``type: "contact"``), None if it has none."""
    if not isinstance(doc, Mapping):
        return None
    kind = doc.get("type")
    if kind == "contact":
        value = doc.get("contact_type")
        return value if isinstance(value, str) and value else None
    return kind if isinstance(kind, str) and kind else None


def configured(settings: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    types = settings.get("contact_types")
    if not isinstance(types, list):
        return []
    return [t for t in types if isinstance(t, Mapping) and isinstance(t.get("id"), str)]


def get(settings: Mapping[str, Any], type_id: str | None) -> Mapping[str, Any] | None:
    if not type_id:
        return None
    for contact_type in configured(settings):
        if contact_type["id"] == type_id:
            return contact_type
    return None


def is_person_type(settings: Mapping[str, Any], type_id: str | None) -> bool:
    contact_type = get(settings, type_id)
    return bool(contact_type and contact_type.get("person"))


def is_place_type(settings: Mapping[str, Any], type_id: str | None) -> bool:
    contact_type = get(settings, type_id)
    return bool(contact_type and not contact_type.get("person"))


def is_contact(settings: Mapping[str, Any], doc: Mapping[str, Any] | None) -> bool:
    """A doc of a configured contact type (classic ``type`` or ``type: "contact"``)."""
    return isinstance(doc, Mapping) and doc.get("type") in CONTACT_DOC_TYPES and \
        get(settings, type_of(doc)) is not None


def is_person(settings: Mapping[str, Any], doc: Mapping[str, Any] | None) -> bool:
    return is_contact(settings, doc) and is_person_type(settings, type_of(doc))


def is_place(settings: Mapping[str, Any], doc: Mapping[str, Any] | None) -> bool:
    return is_contact(settings, doc) and is_place_type(settings, type_of(doc))


def type_fields(type_id: str) -> dict[str, str]:
    """How a doc of this type says so: ``{"type": id}`` for the hardcoded four, else ``type: contact``."""
    if type_id in HARDCODED_TYPES:
        return {"type": type_id}
    return {"type": "contact", "contact_type": type_id}


def parent_types(settings: Mapping[str, Any], type_id: str) -> list[str]:
    contact_type = get(settings, type_id) or {}
    parents = contact_type.get("parents")
    return [p for p in parents if isinstance(p, str)] if isinstance(parents, list) else []


def plural_name(type_id: str) -> str:
    return _PLURAL_NAMES.get(type_id, type_id)


def check_parent(settings: Mapping[str, Any], type_id: str, parent_type: str | None, *,
                 field: str = "parent") -> None:
    """Refuse a parent of the wrong type with CHT's message, or a missing one where one is required.

    A type without configured ``parents`` is top level: it takes no parent.
    A person type may stand without a parent (CHT allows it); a place type
    with configured parents needs one.
    """
    allowed = parent_types(settings, type_id)
    name = plural_name(type_id)
    if not allowed:
        if parent_type is not None:
            raise BadRequest(f"{name} should not have a parent.", field=field)
        return
    if parent_type is None:
        if is_person_type(settings, type_id):
            return
        raise BadRequest(f"{name} should have {_quoted(allowed)} parent type.", field=field)
    if parent_type not in allowed:
        raise BadRequest(f"{name} should have {_quoted(allowed)} parent type.", field=field)


def _quoted(names: list[str]) -> str:
    return " or ".join(f'"{n}"' for n in names)
