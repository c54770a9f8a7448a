"""Phone numbers: parsed and compared with ``phonenumbers`` (Google's libphonenumber), and contacts by phone.

A number is read in the settings' ``default_country_code`` (a calling code,
e.g. 254) when it has no ``+``; ``phone_validation`` says how strict to be
(``full``: a valid number for its region; ``partial``, the default: a possible
length; ``none``: anything that parses). Two numbers match when their E.164
forms are equal, however they were written.

``medic-client/contacts_by_phone`` keys each contact's ``phone`` and
``phone_alternate`` by its digits (a leading ``+`` kept). A lookup asks that
view for every way the same number may have been typed (``+254712345678``,
``254712345678``, ``00254712345678``, ``0712345678``, ``712345678``), then
keeps the contacts whose stored number really is the same one.
"""

from __future__ import annotations

from typing import Any, Mapping

import phonenumbers

from api.couch import Database
from api.errors import BadRequest, NotFound

from . import contact_types

FIELDS = ("phone", "phone_alternate")


def default_region(settings: Mapping[str, Any]) -> str | None:
    code = settings.get("default_country_code")
    try:
        region = phonenumbers.region_code_for_country_code(int(str(code).lstrip("+")))
    except (TypeError, ValueError):
        return None
    return None if region == phonenumbers.UNKNOWN_REGION else region


def parse(settings: Mapping[str, Any], raw: Any) -> phonenumbers.PhoneNumber | None:
    """The number, or None when it is not one (per the settings' ``phone_validation``)."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    text = str(raw).strip().strip('"').strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, default_region(settings))
    except phonenumbers.NumberParseException:
        return None
    strictness = settings.get("phone_validation", "partial")
    if strictness == "full" and not phonenumbers.is_valid_number(number):
        return None
    if strictness not in ("none", "full") and not phonenumbers.is_possible_number(number):
        return None
    return number


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def view_keys(number: phonenumbers.PhoneNumber) -> list[str]:
    """The ``contacts_by_phone`` keys under which this number may have been stored."""
    full = e164(number)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    keys = [full, full[1:], "00" + full[1:], "".join(c for c in national if c.isdigit()),
            phonenumbers.national_significant_number(number)]
    return [k for k in dict.fromkeys(keys) if k]


def same_number(settings: Mapping[str, Any], stored: Any, wanted: str) -> bool:
    if isinstance(stored, bool) or not isinstance(stored, (str, int)):
        return False
    try:
        number = phonenumbers.parse(str(stored), default_region(settings))
    except phonenumbers.NumberParseException:
        return False
    return e164(number) == wanted


async def contacts_by_phone(db: Database, settings: Mapping[str, Any], raw: Any) -> list[dict[str, Any]]:
    """Every contact with this number in ``phone`` or ``phone_alternate``, in id order."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise BadRequest("A phone number is required", field="phone")
    number = parse(settings, raw)
    if number is None:
        raise BadRequest("Provided phone number is not valid", field="phone")
    wanted = e164(number)
    body = await db.view("medic-client", "contacts_by_phone", keys=view_keys(number), include_docs=True)
    found: dict[str, dict[str, Any]] = {}
    for row in body["rows"]:
        doc = row.get("doc")
        if doc and contact_types.is_contact(settings, doc) and \
                any(same_number(settings, doc.get(name), wanted) for name in FIELDS):
            found[doc["_id"]] = doc
    if not found:
        raise NotFound("No contact has this phone number")
    return [found[doc_id] for doc_id in sorted(found)]


def normalize(raw: Any, settings: Mapping[str, Any]) -> str | None:
    """The number in E.164 (``+254712345678``), or None when it is not a phone number."""
    number = parse(settings, raw)
    return e164(number) if number is not None else None
