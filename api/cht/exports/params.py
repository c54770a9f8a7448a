"""What an export was asked for: form-style query parameters or a JSON body, made into checked filters.

CHT's exports take the JS objects of its search library, as a JSON body
(``POST``) or as form-style parameters (``GET``,
``filters[forms][selected][0][code]=P&options[humanReadable]=true``, the
``qs`` syntax express parses). Both become the same nested structure here;
values from a query string are strings, so every filter accepts the typed
JSON value and its string form (``true``, ``1467383343484``, an ISO date).

Anything unknown or malformed is a 400 naming the parameter by its path
(``filters.date.from``), so an export is never silently wider than asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from api.errors import BadRequest
from api.timestamps import to_ms

MAX_DEPTH = 8
MAX_INDEX = 10000
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_FREETEXT_MIN = 3


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest form-style names: ``a[b][0][c]=v``, ``a[]=v`` (append) and ``a.b=v`` (as ``a[b]``).

    Objects whose keys are all indexes become lists in index order; a name
    given twice becomes a list of its values.
    """
    root: dict[str, Any] = {}
    for name, value in pairs:
        path = _path(name)
        node = root
        for i, segment in enumerate(path[:-1]):
            if segment == "":
                segment = str(len(node))
            child = node.get(segment)
            if child is None:
                child = node[segment] = {}
            elif not isinstance(child, dict):
                raise BadRequest(f"Parameter {name} conflicts with {'.'.join(path[:i + 1])}", field=name)
            node = child
        last = path[-1]
        if last == "":
            last = str(len(node))
        if isinstance(node.get(last), dict):
            raise BadRequest(f"Parameter {name} conflicts with another parameter", field=name)
        if last in node:
            previous = node[last]
            node[last] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            node[last] = value
    return _lists(root)


def _path(name: str) -> list[str]:
    head, _, rest = name.partition("[")
    rest = "[" + rest if rest else ""
    segments = head.split(".") if head else []
    consumed = 0
    for match in _SEGMENT.finditer(rest):
        if match.start() != consumed:
            break
        segments.append(match.group(1))
        consumed = match.end()
    if consumed != len(rest) or not head or "]" in head or "" in head.split(".") or len(segments) > MAX_DEPTH:
        raise BadRequest(f"Malformed parameter name {name!r}", field=name)
    return segments


def _lists(node: Any) -> Any:
    if isinstance(node, list):
        return [_lists(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdecimal() and int(k) <= MAX_INDEX for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


# -- typed values ---------------------------------------------------------------


def as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadRequest(f"{field} must be true or false", field=field)


def as_object(value: Any, field: str) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{field} must be an object", field=field)
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def as_text(value: Any, field: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string", field=field)
    return value


def check_keys(obj: Mapping[str, Any], allowed: Iterable[str], prefix: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise BadRequest(f"Unknown {prefix} {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
                         field=f"{prefix}.{unknown[0]}")


def timestamp(value: Any, field: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_ms(value, field)


# -- requests -------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    human_readable: bool = False


def options(raw: Mapping[str, Any]) -> Options:
    opts = as_object(raw.get("options"), "options")
    check_keys(opts, ("humanReadable",), "options")
    human = opts.get("humanReadable")
    return Options(human_readable=False if human in (None, "") else as_bool(human, "options.humanReadable"))


def filters_of(raw: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    filters = as_object(raw.get("filters"), "filters")
    check_keys(filters, allowed, "filters")
    return filters


@dataclass(frozen=True)
class DateRange:
    start: int | None = None
    end: int | None = None

    @property
    def given(self) -> bool:
        return self.start is not None or self.end is not None

    def contains(self, value: Any) -> bool:
        if not self.given:
            return True
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return (self.start is None or value >= self.start) and (self.end is None or value <= self.end)


def date_range(filters: Mapping[str, Any], now: int) -> DateRange:
    """``date: {from, to}`` as CHT's search reads it: ``from`` alone runs to now, ``to`` alone from 0."""
    raw = as_object(filters.get("date"), "filters.date")
    check_keys(raw, ("from", "to"), "filters.date")
    start = timestamp(raw.get("from"), "filters.date.from")
    end = timestamp(raw.get("to"), "filters.date.to")
    if start is None and end is None:
        return DateRange()
    start = 0 if start is None else start
    end = now if end is None else end
    if start > end:
        raise BadRequest("filters.date.from must not be after filters.date.to", field="filters.date.from")
    return DateRange(start, end)


def multi_select(filters: Mapping[str, Any], name: str, item_key: str | None = None) -> tuple[str, ...] | None:
    """A ``{selected: [...], options: [...]}`` filter: None when nothing (or everything) is selected."""
    raw = as_object(filters.get(name), f"filters.{name}")
    check_keys(raw, ("selected", "options"), f"filters.{name}")
    selected = as_list(raw.get("selected"))
    values: list[str] = []
    for i, item in enumerate(selected):
        field = f"filters.{name}.selected.{i}"
        if item_key is not None and isinstance(item, dict):
            item = item.get(item_key)
            field += f".{item_key}"
        if item is None or item == "" or isinstance(item, (dict, list, bool)):
            raise BadRequest(f"{field} must be a non-empty string", field=field)
        values.append(as_text(item, field))
    if not values:
        return None
    options_given = raw.get("options")
    if isinstance(options_given, list) and len(options_given) == len(values):
        return None
    return tuple(dict.fromkeys(values))


def search_words(filters: Mapping[str, Any]) -> tuple[str, ...]:
    """Freetext words as CHT's search splits them; words shorter than 3 letters are dropped (unless ``key:value``)."""
    text = filters.get("search")
    if text is None:
        return ()
    text = as_text(text, "filters.search")
    words = [w for w in text.strip().lower().split() if ":" in w or len(w) >= _FREETEXT_MIN]
    return tuple(dict.fromkeys(words))


def _verified(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
        if text in ("", "null"):
            return None
    raise BadRequest(f"{field} must be true, false or empty (not verified)", field=field)


@dataclass(frozen=True)
class ReportFilters:
    forms: tuple[str, ...] | None = None
    date: DateRange = DateRange()
    facilities: tuple[str, ...] | None = None
    valid: bool | None = None
    verified: frozenset[bool | None] | None = None
    words: tuple[str, ...] = ()


REPORT_FILTERS = ("forms", "date", "facilities", "valid", "verified", "search")


def report_filters(raw: Mapping[str, Any], now: int) -> ReportFilters:
    filters = filters_of(raw, REPORT_FILTERS)
    valid = filters.get("valid")
    verified: frozenset[bool | None] | None = None
    if "verified" in filters:
        values = filters["verified"] if isinstance(filters["verified"], list) else [filters["verified"]]
        verified = frozenset(_verified(v, f"filters.verified.{i}") for i, v in enumerate(values))
    return ReportFilters(
        forms=multi_select(filters, "forms", "code"),
        date=date_range(filters, now),
        facilities=multi_select(filters, "facilities"),
        valid=None if valid in (None, "") else as_bool(valid, "filters.valid"),
        verified=verified,
        words=search_words(filters),
    )


@dataclass(frozen=True)
class ContactFilters:
    words: tuple[str, ...] = ()
    types: tuple[str, ...] | None = None


def contact_filters(raw: Mapping[str, Any]) -> ContactFilters:
    filters = filters_of(raw, ("search", "types"))
    return ContactFilters(words=search_words(filters), types=multi_select(filters, "types"))


def message_filters(raw: Mapping[str, Any], now: int) -> DateRange:
    return date_range(filters_of(raw, ("date",)), now)


@dataclass(frozen=True)
class DhisFilters:
    data_set: str
    month_of: int
    org_unit: str | None


def dhis_filters(raw: Mapping[str, Any]) -> DhisFilters:
    """``filters: {dataSet, date: {from}, orgUnit}``; the spec's table names them ``dataSet``, ``date.from``,
    ``orgUnit``, so those are also read from the top level."""
    filters = filters_of(raw, ("dataSet", "date", "orgUnit"))
    merged = {k: raw[k] for k in ("dataSet", "date", "orgUnit") if k in raw}
    merged.update(filters)
    data_set = merged.get("dataSet")
    if data_set in (None, ""):
        raise BadRequest('filter "dataSet" is required', field="filters.dataSet")
    data_set = as_text(data_set, "filters.dataSet")
    date = as_object(merged.get("date"), "filters.date")
    check_keys(date, ("from", "to"), "filters.date")
    month_of = timestamp(date.get("from"), "filters.date.from")
    if month_of is None:
        raise BadRequest('filter "date.from" is required', field="filters.date.from")
    org_unit = merged.get("orgUnit")
    org_unit = None if org_unit in (None, "") else as_text(org_unit, "filters.orgUnit")
    return DhisFilters(data_set, month_of, org_unit)


def feedback_params(raw: Mapping[str, Any]) -> tuple[str, str | None, int | None, bool]:
    """(format, locale, tz minutes, with header row) of the feedback export; without them it is cht-core's CSV
    (locale None: the column names as they are; tz None: dates as stored)."""
    fmt = raw.get("format") or "csv"
    if fmt not in ("csv", "xml"):
        raise BadRequest("format must be csv or xml", field="format")
    locale = raw.get("locale") or None
    if locale is not None and (not isinstance(locale, str) or not locale.replace("-", "").replace("_", "").isalnum()
                               or len(locale) > 20):
        raise BadRequest("locale must be a language code such as en or fr", field="locale")
    tz = raw.get("tz")
    try:
        tz_minutes = None if tz in (None, "") else int(tz)
    except (TypeError, ValueError):
        raise BadRequest("tz must be a whole number of minutes, for example -120", field="tz") from None
    if isinstance(tz, bool) or (tz_minutes is not None and not -24 * 60 < tz_minutes < 24 * 60):
        raise BadRequest("tz must be between -1439 and 1439 minutes", field="tz")
    skip = raw.get("skip_header_row")
    return fmt, locale, tz_minutes, skip in (None, "") or not as_bool(skip, "skip_header_row")
