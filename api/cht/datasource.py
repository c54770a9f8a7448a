"""CHT's data endpoints (``cht-datasource``): their query parameters, pages and kinds, as cht-core has them.

``/api/v1/contact``, ``/person``, ``/place`` and ``/report`` (pages of ids or docs, single reads, creates and
updates) answer as cht-core's own: the same checks in the same order with the same messages, and the same
pages. A page is ``{"data": [...], "cursor": "<skip>" | null}``: the cursor is the number of view rows (or
ids) to skip, written as a decimal string, and ``null`` only when the source ran out while the page was
filled, so an exactly full last page is followed by an empty one (``{"data": [], "cursor": null}``).

The messages quote values as JavaScript's ``JSON.stringify`` writes them (``[\\"-1\\"]``), an absent value
as ``undefined``; numbers in parameters are read with JavaScript's ``Number()``.
"""

from __future__ import annotations

import json
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from api import timestamps
from api.errors import BadRequest

DOCS_PAGE_LIMIT = 100
IDS_PAGE_LIMIT = 10000
READ_CAP = 10000  # rows read from CouchDB at once, whatever the page's limit
END = "\ufff0"
HARDCODED_TYPES = ("district_hospital", "health_center", "clinic", "person")
DEFAULT_PLACE_PARENTS: dict[str, list[str]] = {"district_hospital": [], "health_center": ["district_hospital"],
                                               "clinic": ["health_center"]}
DEFAULT_PERSON_PARENTS = ["district_hospital", "health_center", "clinic"]


class Undefined:
    """A query parameter that was not given (JavaScript's ``undefined``)."""

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = Undefined()
Raw = Any  # a query value: UNDEFINED, a string, or a list of strings (a repeated parameter)


def js_json(value: Raw) -> str:
    """``JSON.stringify(value)``: compact, non-ASCII kept; ``undefined`` for an absent value."""
    if value is UNDEFINED:
        return "undefined"
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def query_value(query: Any, name: str) -> Raw:
    """A query parameter as express reads it: absent, one string, or a list when it is repeated."""
    values = query.getall(name, [])
    if not values:
        return UNDEFINED
    return values[0] if len(values) == 1 else list(values)


# JavaScript's StrWhiteSpaceChar: what Number() and String.prototype.trim() strip.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000\ufeff"
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def js_number(value: Raw) -> float:
    """``Number(value)`` for a query value; NaN where JavaScript gives NaN."""
    if value is UNDEFINED:
        return math.nan
    if isinstance(value, list):
        return js_number(value[0]) if len(value) == 1 else (0.0 if not value else math.nan)
    text = value.strip(_JS_SPACE)
    if not text:
        return 0.0
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    if _RADIX.fullmatch(text):
        return float(int(text, 0))
    if _DECIMAL.fullmatch(text):
        return float(text)
    return math.nan


def _is_integer(number: float) -> bool:
    return math.isfinite(number) and number == int(number)


def limit_of(raw: Raw, default: int) -> int:
    """The page size: absent means ``default``; otherwise a positive integer, however written."""
    if raw is UNDEFINED:
        return default
    number = js_number(raw)
    if not _is_integer(number) or number <= 0:
        raise BadRequest(f"The limit must be a positive integer: [{js_json(raw)}].")
    return int(number)


def check_cursor(raw: Raw) -> None:
    """A cursor is absent (the first page) or a non-empty string (``assertCursor``)."""
    if raw is not UNDEFINED and (not isinstance(raw, str) or not raw):
        raise BadRequest(f"The cursor must be a string or null for first page: [{js_json(raw)}].")


def skip_of(raw: Raw) -> int:
    """The rows to skip that a cursor names (``validateCursor``): a non-negative integer."""
    if raw is UNDEFINED:
        return 0
    number = js_number(raw)
    if not _is_integer(number) or number < 0:
        raise BadRequest(f"The cursor must be a string or null for first page: [{js_json(raw)}].")
    return int(number)


def _js_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def is_freetext(raw: Raw) -> bool:
    """At least 3 characters; whitespace only in a ``key:value`` term."""
    return isinstance(raw, str) and _js_length(raw) >= 3 and (":" in raw or not re.search(r"\s", raw))


def freetext_of(raw: Raw) -> str:
    """A freetext term, normalised as CHT searches it (trimmed, lower case, Devanagari digits as 0-9)."""
    if not is_freetext(raw):
        raise BadRequest(f"Invalid freetext [{js_json(raw)}].")
    text = raw.strip(_JS_SPACE).lower()
    return "".join(chr(ord(c) - 0x0966 + 0x30) if "\u0966" <= c <= "\u096f" else c for c in text)


def contact_type_qualifier(raw: Raw) -> str:
    """``Qualifier.byContactType``: a non-empty string."""
    if not isinstance(raw, str) or not raw:
        raise BadRequest(f"Invalid contact type [{js_json(raw)}].")
    return raw


def _split(raw: Raw) -> list[str]:
    return [v for v in (raw if isinstance(raw, list) else raw.split(",")) if v]


def ids_of(raw: Raw) -> list[str]:
    """``ids=a,b`` or ``ids=a&ids=b``: empty ones dropped, the rest de-duplicated in order."""
    ids = _split(raw)
    if not ids:
        raise BadRequest(f"Invalid ids [{js_json(raw)}].")
    return list(dict.fromkeys(ids))


def forms_of(raw: Raw) -> list[str]:
    """``form=a,b`` or ``form=a&form=b``: non-blank codes without surrounding spaces, de-duplicated."""
    forms = _split(raw)
    if not forms or any(not f.strip() or f != f.strip() for f in forms):
        raise BadRequest(f"Invalid forms [{js_json(forms)}].")
    return list(dict.fromkeys(forms))


def given(value: Raw) -> bool:
    """What CHT's controllers take as given (``!!req.query.x``): present and not empty."""
    return value is not UNDEFINED and value != ""


# -- kinds of docs, as cht-core's contact-types-utils decides them ------------------------------------


def type_id(doc: Any) -> Any:
    """``contact_type`` of a ``type: contact`` doc, else its ``type``."""
    if not isinstance(doc, Mapping):
        return None
    return doc.get("contact_type") if doc.get("type") == "contact" else doc.get("type")


def configured_types(settings: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    types = settings.get("contact_types")
    return [t for t in types if isinstance(t, Mapping)] if isinstance(types, list) else []


def type_by_id(settings: Mapping[str, Any], type_id_: Any) -> Mapping[str, Any] | None:
    return next((t for t in configured_types(settings) if t.get("id") == type_id_), None)


def is_person_type(contact_type: Mapping[str, Any] | None) -> bool:
    return bool(contact_type) and bool(contact_type.get("person") or contact_type.get("id") == "person")


def is_place_type(contact_type: Mapping[str, Any] | None) -> bool:
    return bool(contact_type) and not contact_type.get("person") and contact_type.get("id") != "person"


def contact_type_ids(settings: Mapping[str, Any]) -> list[str]:
    ids = [t.get("id") for t in configured_types(settings)]
    return ids if ids else list(HARDCODED_TYPES)


def person_type_ids(settings: Mapping[str, Any]) -> list[str]:
    return [t.get("id") for t in configured_types(settings) if is_person_type(t)]


def place_type_ids(settings: Mapping[str, Any]) -> list[str]:
    return [t.get("id") for t in configured_types(settings) if is_place_type(t)]


def is_doc(doc: Any) -> bool:
    """A stored doc: an object with a non-blank ``_id`` and ``_rev``."""
    return isinstance(doc, Mapping) and all(isinstance(doc.get(k), str) and doc[k].strip() for k in ("_id", "_rev"))


def is_person(settings: Mapping[str, Any], doc: Any) -> bool:
    """A person: its type is a configured person type, or is ``person`` (configured or not)."""
    if not is_doc(doc):
        return False
    kind = type_id(doc)
    return is_person_type(type_by_id(settings, kind) or {"id": kind})


def is_place(settings: Mapping[str, Any], doc: Any) -> bool:
    return is_doc(doc) and is_place_type(type_by_id(settings, type_id(doc)))


def is_contact(settings: Mapping[str, Any], doc: Any) -> bool:
    return is_person(settings, doc) or is_place(settings, doc)


def is_report(doc: Any) -> bool:
    return is_doc(doc) and doc.get("type") == "data_record" and isinstance(doc.get("form"), str) and \
        bool(doc["form"].strip())


# -- pages ---------------------------------------------------------------------------------------------

Read = Callable[[int, int], Awaitable[Sequence[Any]]]  # (limit, skip) -> up to limit items from the source


@dataclass(frozen=True)
class Page:
    data: list[Any]
    cursor: str | None

    def body(self) -> dict[str, Any]:
        return {"data": self.data, "cursor": self.cursor}


async def fetch_and_filter(read: Read, keep: Callable[[Any], Any], limit: int, skip: int) -> Page:
    """Up to ``limit`` kept items from ``skip`` on, and the cursor of the next page (cht-core's
    ``fetchAndFilter``).

    ``keep(item)`` returns the value to put on the page, or None to leave the item out. When items are
    left out the source is read again (twice as many as are missing) until the page is full or the source
    runs out. The cursor is the position just after the last item put on the page, so an item is never
    both on this page and the next.
    """
    data: list[Any] = []
    position, size, after_last = skip, limit, skip
    while True:
        got, kept, exhausted = 0, 0, False
        while got < size:  # one read of ``size`` items, asked for in pieces of at most READ_CAP
            asked = min(size - got, READ_CAP)
            items = await read(asked, position + got)
            for offset, item in enumerate(items):
                value = keep(item)
                if value is None:
                    continue
                kept += 1
                if len(data) < limit:
                    data.append(value)
                    after_last = position + got + offset + 1
            got += len(items)
            if len(items) < asked:
                exhausted = True
                break
            if len(data) == limit and got < size:
                # the page is full: whether the read would have come back short is all that is left to know
                exhausted = not await read(1, position + size - 1)
                break
        if exhausted:
            return Page(data, None)
        if len(data) == limit:
            return Page(data, str(after_last))
        position, size = position + size, (size - kept) * 2


def distinct(keep: Callable[[Any], Any] = lambda item: item) -> Callable[[Any], Any]:
    """``keep`` that also leaves out values already on the page (cht-core's ``fetchAndFilterIds``)."""
    seen: set[Any] = set()

    def one(item: Any) -> Any:
        value = keep(item)
        if value is None or value in seen:
            return None
        seen.add(value)
        return value

    return one


# -- freetext: one row per doc ---------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case without accents: what ICU's collation places inside a prefix range besides exact prefixes."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def freetext_range(term: str, prefix: list[Any]) -> tuple[list[Any], list[Any]]:
    """The view range of a term: a ``key:value`` term exactly, a word as a prefix."""
    if ":" in term:
        return prefix + [term], prefix + [term]
    return prefix + [term], prefix + [term + END]


def first_row_word(term: str, words: set[str]) -> str | None:
    """Of a doc's indexed words in the term's range, the one whose row stands for the doc.

    A doc indexed under several words of a prefix range has several rows there; keeping only one of them
    (the smallest word, a choice that does not depend on where a page starts) makes every doc appear once
    across all the pages of a search.
    """
    if ":" in term:
        return term if term in words else None
    exact = [w for w in words if w.startswith(term)]
    if exact:
        return min(exact)
    folded = fold(term)
    near = [w for w in words if fold(w).startswith(folded)]
    return min(near) if near else None


# -- writes ----------------------------------------------------------------------------------------------

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


def has_string(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name)
    return isinstance(value, str) and bool(value.strip())


def require_string(data: Mapping[str, Any], name: str) -> None:
    if not has_string(data, name):
        raise BadRequest(f"The [{name}] field must have a [string] value.")


def optional_string(data: Mapping[str, Any], name: str) -> None:
    if name in data and not isinstance(data[name], str):
        raise BadRequest(f"The [{name}] field must have the type [string].")


def must_not_have(data: Mapping[str, Any], name: str) -> None:
    if data.get(name) is not None:
        raise BadRequest(f"The [{name}] field must not be set.")


def check_reported_date(data: Mapping[str, Any]) -> None:
    value = data.get("reported_date")
    if not value:
        return
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())
                                       or (isinstance(value, str) and ISO_8601.match(value))):
        raise BadRequest("Invalid reported_date. Expected format to be 'YYYY-MM-DDTHH:mm:ssZ', "
                         "'YYYY-MM-DDTHH:mm:ss.SSSZ', or a Unix epoch.")


def reported_date_ms(value: Any) -> int:
    """A checked ``reported_date`` (epoch ms, or ISO 8601 in UTC) in ms; now when none is given."""
    if not value:
        return int(time.time() * 1000)
    if isinstance(value, str):
        return timestamps.to_ms(value, "reported_date")
    return int(value)


def check_fields_unchanged(original: Mapping[str, Any], updated: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Fields that must be sent back exactly as stored (a missing one counts as changed)."""
    changed = [k for k in keys if not _same_value(original.get(k, UNDEFINED), updated.get(k, UNDEFINED))]
    if changed:
        raise BadRequest(f"The [{','.join(changed)}] fields must not be changed.")


def _same_value(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` for the scalar fields compared (objects are never equal by value)."""
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b and type(a) in (type(b), int, float) and type(b) in (type(a), int, float)


def same_lineage(a: Any, b: Any) -> bool:
    """Two ``parent`` chains name the same ids at every level (hydrated or minified alike)."""
    while isinstance(a, Mapping) and isinstance(b, Mapping):
        if a.get("_id") != b.get("_id"):
            return False
        a, b = a.get("parent", UNDEFINED), b.get("parent", UNDEFINED)
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return False
    return a is b or a == b


def updated_contact(settings: Mapping[str, Any], original: Mapping[str, Any], updated: Mapping[str, Any],
                    contact_doc: Mapping[str, Any] | None, minify: Callable[[Mapping[str, Any]], Any]) -> Any:
    """The ``contact`` to store on an update: removed, kept as stored, or the new contact minified.

    Returns UNDEFINED when the update has no contact.
    """
    given = updated.get("contact")
    if not given:
        return UNDEFINED
    if given == original.get("contact"):
        return original.get("contact")
    if contact_doc is None or not is_contact(settings, contact_doc):
        contact_id = given if isinstance(given, str) else given.get("_id") if isinstance(given, Mapping) else None
        raise BadRequest(f"No valid contact found for [{'undefined' if contact_id is None else contact_id}].")
    if isinstance(given, str):
        return minify(contact_doc)
    if not same_lineage(contact_doc, given):
        raise BadRequest("The given contact lineage does not match the current lineage for that contact.")
    return given


def contact_id_for_update(updated: Mapping[str, Any]) -> str | None:
    given = updated.get("contact")
    if isinstance(given, str):
        return given
    if isinstance(given, Mapping) and isinstance(given.get("_id"), str):
        return given["_id"]
    return None


# -- summaries (cht-core's @medic/summaries, POST /api/v1/contact/summary and /report/summary) -------------

_MISSING = object()
_SUBJECT_FIELDS = {"patient_id", "patient_uuid", "patient_name", "place_id"}


def ids_qualifier(body: Any) -> list[str]:
    """``Qualifier.byIds(body.ids)``: an array (possibly empty) of non-empty strings, de-duplicated."""
    ids = body.get("ids", UNDEFINED) if isinstance(body, Mapping) else UNDEFINED
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise BadRequest(f"Invalid identifiers [{js_json(ids)}].")
    return list(dict.fromkeys(ids))


def _get(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, Mapping) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _first(*values: Any) -> Any:
    """JavaScript's ``a ?? b``: the first value that is neither missing nor null."""
    return next((v for v in values if v is not _MISSING and v is not None), values[-1])


def _lineage_of(node: Any) -> list[str]:
    ids: list[str] = []
    while isinstance(node, Mapping) and len(ids) < 64:
        if node.get("_id"):
            ids.append(node["_id"])
        node = node.get("parent")
    return ids


def _subject(doc: Mapping[str, Any]) -> dict[str, Any]:
    reference = _first(_get(doc, "patient_id"), _get(doc, "fields", "patient_id"), _get(doc, "fields", "patient_uuid"),
                       _get(doc, "place_id"), _get(doc, "fields", "place_id"))
    name = _get(doc, "fields", "patient_name")
    subject: dict[str, Any] = {}
    if name is not _MISSING and name:
        subject["name"] = name
    errors = doc.get("errors") if isinstance(doc.get("errors"), list) else []
    if reference is not _MISSING and reference:
        subject.update(value=reference, type="reference")
    elif name is not _MISSING and name:
        subject.update(value=name, type="name")
    elif any(isinstance(e, Mapping) and e.get("code") == "sys.missing_fields" and isinstance(e.get("fields"), list)
             and _SUBJECT_FIELDS.intersection(f for f in e["fields"] if isinstance(f, str)) for e in errors):
        subject["type"] = "unknown"
    return subject


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not _MISSING}


def summarise_contact(doc: Mapping[str, Any]) -> dict[str, Any]:
    return _present(_id=_get(doc, "_id"), _rev=_get(doc, "_rev"), name=_first(_get(doc, "name"), _get(doc, "phone")),
                    phone=_get(doc, "phone"), type=_get(doc, "type"), contact_type=_get(doc, "contact_type"),
                    contact=_get(doc, "contact", "_id"), lineage=_lineage_of(doc.get("parent")),
                    date_of_death=_get(doc, "date_of_death"), muted=_get(doc, "muted"))


def summarise_report(doc: Mapping[str, Any]) -> dict[str, Any]:
    errors = doc.get("errors")
    return _present(_id=_get(doc, "_id"), _rev=_get(doc, "_rev"), **{"from": _first(_get(doc, "from"),
                                                                                    _get(doc, "sent_by"))},
                    phone=_get(doc, "contact", "phone"), form=_get(doc, "form"), read=_get(doc, "read"),
                    valid=not (isinstance(errors, (list, str)) and len(errors)), verified=_get(doc, "verified"),
                    reported_date=_get(doc, "reported_date"), contact=_get(doc, "contact", "_id"),
                    lineage=_lineage_of(_get(doc, "contact", "parent")), subject=_subject(doc),
                    case_id=_first(_get(doc, "case_id"), _get(doc, "fields", "case_id")))
