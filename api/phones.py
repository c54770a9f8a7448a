"""Phone numbers in one format (E.164), with Google's rules (``phonenumbers``).

Settings give the country of numbers written without one (``default_country_code``,
a calling code such as 254) and how strict to be (``phone_validation``, as in CHT:
``full`` a valid number, ``partial`` (default) a possible one, ``none`` anything
that parses).
"""

from __future__ import annotations

from typing import Any, Mapping

import phonenumbers


def default_region(settings: Mapping[str, Any]) -> str | None:
    """The region (``KE``) of the settings' calling code (254), or None."""
    raw = settings.get("default_country_code")
    try:
        code = int(str(raw).strip().lstrip("+"))
    except (TypeError, ValueError):
        return None
    region = phonenumbers.region_code_for_country_code(code)
    return None if region == phonenumbers.UNKNOWN_REGION else region


def normalize(raw: Any, settings: Mapping[str, Any]) -> str | None:
    """The number in E.164 (``+254712345678``), or None when it is not a phone number."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw.strip(), default_region(settings))
    except phonenumbers.NumberParseException:
        return None
    validation = settings.get("phone_validation") or "partial"
    if validation == "full" and not phonenumbers.is_valid_number(number):
        return None
    if validation != "none" and not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
