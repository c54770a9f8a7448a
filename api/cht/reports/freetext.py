"""The words CHT's freetext views index, computed in Python.

``medic-client/reports_by_freetext`` and ``contacts_by_freetext`` emit, for
each string or number property (of the doc, and of a report's ``fields``),
its words and a ``key:value`` term, lower-cased, 3 characters or more. A
search reads one word's rows from the view and checks the other words here,
while streaming, instead of intersecting id sets in memory. The tests check
these functions against the views on the same docs.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

_SPACE = re.compile(r"\s+")
_DATE_KEY = re.compile(r"_date$")
REPORT_SKIP = frozenset({"_id", "_rev", "type", "refid", "content"})
CONTACT_SKIP = frozenset({"_id", "_rev", "type", "refid", "geolocation"})
CLASSIC_CONTACT_TYPES = ("district_hospital", "health_center", "clinic", "person")
END = "\ufff0"


def js_string(value: Any) -> str:
    """``String(value)`` as JavaScript writes a string or a number."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _index(obj: Mapping[str, Any], skip: frozenset[str], words: set[str]) -> None:
    for key, value in obj.items():
        lower = key.lower()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not value:
            continue
        if lower in skip or _DATE_KEY.search(lower):
            continue
        if isinstance(value, str):
            words.update(w for w in _SPACE.split(value.lower()) if len(w) > 2)
        term = lower + ":" + js_string(value).lower()
        if len(term) > 2:
            words.add(term)


def report_words(doc: Mapping[str, Any]) -> set[str]:
    """The keys ``reports_by_freetext`` emits for a doc (empty for anything but a form report)."""
    if doc.get("type") != "data_record" or not doc.get("form"):
        return set()
    words: set[str] = set()
    _index(doc, REPORT_SKIP, words)
    fields = doc.get("fields")
    if isinstance(fields, Mapping):
        _index(fields, REPORT_SKIP, words)
    contact = doc.get("contact")
    if isinstance(contact, Mapping) and contact.get("_id"):
        words.add("contact:" + js_string(contact["_id"]).lower())
    return words


def contact_type_of(doc: Mapping[str, Any]) -> str | None:
    kind = doc.get("type")
    if kind == "contact":
        return doc.get("contact_type") or None
    return kind if kind in CLASSIC_CONTACT_TYPES else None


def contact_words(doc: Mapping[str, Any]) -> set[str]:
    """The keys ``contacts_by_freetext`` emits for a doc (empty for anything but a contact)."""
    kind = contact_type_of(doc)
    if not kind:
        return set()
    words: set[str] = set()
    _index(doc, CONTACT_SKIP, words)
    if len(kind) > 2:
        words.add(kind)
    return words


def word_range(word: str) -> tuple[str, str]:
    """A ``key:value`` term matches exactly; a word matches as a prefix (``abc`` finds ``abcd``)."""
    return (word, word) if ":" in word else (word, word + END)


def matches(word: str, words: Iterable[str]) -> bool:
    if ":" in word:
        return word in words
    return any(w.startswith(word) for w in words)


def first_match(word: str, words: Iterable[str]) -> str | None:
    """The smallest of a doc's indexed words that ``word`` matches: the one row of that doc to keep when a
    prefix range lists it under several words."""
    found = [w for w in words if (w == word if ":" in word else w.startswith(word))]
    return min(found) if found else None
