"""Django-style filters (``name__startswith=Nig``) turned into CouchDB Mango selectors, and run page by page.

Every resource is read through one Mango index on ``[kind, id]``: records are
sorted by id and read in batches with *keyset* paging (each batch asks for
``id >= last + 1``), so nothing is loaded whole and deep pages cost no
``skip``. Conditions on other fields are evaluated by CouchDB while it walks the
index. Three gaps of the embedded pouchdb-server shaped how selectors are
written, in ways that are also plain, correct Mango for CouchDB 3:

* ``$gt``/``$lt`` on an indexed field with ``limit`` return too few docs there,
  so integer bounds are always sent inclusive (``id > 5`` becomes ``id >= 6``);
* a field given two lower (or two upper) bounds in one object is mis-planned,
  so the conditions on a field are merged here into at most one of each, and an
  exact value or ``__in`` list absorbs the other conditions on its field;
* there is no ``bookmark`` and ``use_index`` must name only the design doc,
  so paging is by id and ``use_index`` is ``"datapoints-find"``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Iterable, Mapping

from api.couch import CouchError, Database
from api.errors import BadRequest

from .model import BOOL, DATE, DATETIME, INT, NUMBER, ORDERED_TYPES, STRING, Field, Resource

INDEX_DDOC = "datapoints-find"
INDEX = {"index": {"fields": ["kind", "id"]}, "name": "kind-id", "ddoc": INDEX_DDOC, "type": "json"}
SORT = [{"kind": "asc"}, {"id": "asc"}]

OPERATORS = ("exact", "in", "gt", "gte", "lt", "lte", "contains", "startswith", "starts_with", "isnull")
STRING_OPERATORS = frozenset({"contains", "startswith", "starts_with"})
RANGE_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")


class FilterError(BadRequest):
    """A filter the server does not understand; ``field`` names the query parameter."""


def parse_value(fld: Field, raw: Any, param: str) -> Any:
    """A filter value (from the query string, or JSON in a delete body) as the field's type."""
    if isinstance(raw, str):
        text = raw.strip()
    else:
        text = raw
    try:
        if fld.type == INT:
            if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
                raise ValueError
            return int(text)
        if fld.type == NUMBER:
            if isinstance(text, bool):
                raise ValueError
            number = float(text)
            if not math.isfinite(number):
                raise ValueError
            return int(number) if number.is_integer() else number
        if fld.type == BOOL:
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0"):
                return False
            raise ValueError
        if fld.type == DATE:
            if not isinstance(text, str) or len(text) != 10:
                raise ValueError
            dt.date.fromisoformat(text)
            return text
        if fld.type == DATETIME:
            if not isinstance(text, str) or not _DATETIME.match(text):
                raise ValueError
            dt.date.fromisoformat(text[:10])
            return text
        if not isinstance(raw, str):
            raise ValueError
        return raw
    except (TypeError, ValueError):
        kind = {INT: "an integer", NUMBER: "a number", BOOL: "true or false", DATE: "a date (YYYY-MM-DD)",
                DATETIME: "a date or date-time (YYYY-MM-DDTHH:MM:SS)"}.get(fld.type, "text")
        raise FilterError(f"{param}: {raw!r} is not {kind}", field=param) from None


@dataclass
class Condition:
    """Everything asked of one field, merged: allowed values, bounds, text patterns, null-ness."""

    type: str
    values: frozenset[Any] | None = None
    lower: tuple[Any, bool] | None = None  # (value, inclusive)
    upper: tuple[Any, bool] | None = None
    contains: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    null: bool | None = None

    def only(self, values: Iterable[Any]) -> "Condition":
        new = frozenset(values)
        return replace(self, values=new if self.values is None else self.values & new)

    def at_least(self, value: Any, inclusive: bool) -> "Condition":
        if self.type == INT and not inclusive:
            value, inclusive = value + 1, True
        if self.lower is None or value > self.lower[0] or (value == self.lower[0] and not inclusive):
            return replace(self, lower=(value, inclusive))
        return self

    def at_most(self, value: Any, inclusive: bool) -> "Condition":
        if self.type == INT and not inclusive:
            value, inclusive = value - 1, True
        if self.upper is None or value < self.upper[0] or (value == self.upper[0] and not inclusive):
            return replace(self, upper=(value, inclusive))
        return self

    def admits(self, value: Any) -> bool:
        """Whether a known value satisfies the bounds and patterns (not ``values``)."""
        if value is None:
            return self.null is not False and self.lower is None and self.upper is None \
                and not self.contains and not self.prefixes
        if self.null is True:
            return False
        if self.lower is not None and (value < self.lower[0] or (value == self.lower[0] and not self.lower[1])):
            return False
        if self.upper is not None and (value > self.upper[0] or (value == self.upper[0] and not self.upper[1])):
            return False
        if self.contains or self.prefixes:
            if not isinstance(value, str):
                return False
            if any(c not in value for c in self.contains) or any(not value.startswith(p) for p in self.prefixes):
                return False
        return True

    def mango(self) -> dict[str, Any] | None:
        """The Mango expression, or None when nothing can match."""
        if self.values is not None:
            allowed = sorted(v for v in self.values if self.admits(v))
            if not allowed:
                return None
            return {"$eq": allowed[0]} if len(allowed) == 1 else {"$in": allowed}
        if self.null is True:
            if self.lower or self.upper or self.contains or self.prefixes:
                return None
            return {"$eq": None}
        expr: dict[str, Any] = {}
        if self.lower and self.upper:
            low, high = self.lower, self.upper
            if low[0] > high[0] or (low[0] == high[0] and not (low[1] and high[1])):
                return None
        if self.lower:
            expr["$gte" if self.lower[1] else "$gt"] = self.lower[0]
        if self.upper:
            expr["$lte" if self.upper[1] else "$lt"] = self.upper[0]
        if self.contains or self.prefixes:
            expr["$regex"] = "^" + "".join(f"(?={re.escape(p)})" for p in self.prefixes) + \
                "".join(f"(?=[\\s\\S]*?{re.escape(c)})" for c in self.contains)
        if self.null is False:
            expr["$ne"] = None
        return expr or {"$exists": True}


@dataclass
class Query:
    """A resource query: per-field conditions plus any raw selector parts (region permissions)."""

    kind: str
    conditions: dict[str, Condition] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    impossible: bool = False

    def condition(self, name: str, type_: str) -> Condition:
        return self.conditions.get(name) or Condition(type_)

    def restrict(self, name: str, type_: str, values: Iterable[Any]) -> None:
        """Only records whose ``name`` is one of ``values`` (permissions narrow a query this way)."""
        self.conditions[name] = self.condition(name, type_).only(values)

    def selector(self, after: int | None = None) -> dict[str, Any] | None:
        """The Mango selector (ids above ``after`` only), or None when nothing can match."""
        if self.impossible:
            return None
        id_cond = self.condition("id", INT)
        if after is not None:
            id_cond = id_cond.at_least(after, False)
        id_expr = id_cond.mango() if "id" in self.conditions or after is not None else {"$gt": None}
        if id_expr is None:
            return None
        selector: dict[str, Any] = {"kind": self.kind, "id": id_expr}
        for name, cond in self.conditions.items():
            if name == "id":
                continue
            expr = cond.mango()
            if expr is None:
                return None
            selector[name] = expr
        if len(self.extra) == 1:
            selector.update(self.extra[0])
        elif self.extra:
            selector["$and"] = list(self.extra)
        return selector


def lookup(res: Resource, name: str) -> Field | None:
    """A filterable field by its name, or by a reference's short name (``office`` for ``office_id``)."""
    fields = res.by_name
    fld = fields.get(name)
    if fld is not None and fld.filterable:
        return fld
    ref = fields.get(name + "_id")
    if ref is not None and ref.filterable and ref.ref:
        return ref
    return None


def names_field(res: Resource, param: str) -> bool:
    """Whether a query parameter is about a field of the resource (``field``, ``field__op``, or a
    reference's short name): such a parameter is a filter, and checked."""
    name = param.split("__", 1)[0]
    return name in res.by_name or (name + "_id") in res.by_name


def add_filter(query: Query, res: Resource, param: str, raw: Any) -> None:
    """Add one ``field[__op]=value`` filter; unknown fields and operators raise FilterError."""
    name, op = param, "exact"
    if "__" in param:
        name, _, op = param.rpartition("__")
        if op not in OPERATORS:
            raise FilterError(f"{param}: unknown operator {op!r} (use one of {', '.join(OPERATORS)})", field=param)
    fld = lookup(res, name)
    if fld is None:
        known = ", ".join(f.name for f in res.fields if f.filterable)
        raise FilterError(f"{param}: {res.name} has no field {name!r} to filter on (fields: {known})", field=param)
    if op in STRING_OPERATORS and fld.type != STRING:
        raise FilterError(f"{param}: {op} applies to text fields only", field=param)
    if op in RANGE_OPERATORS and fld.type not in ORDERED_TYPES:
        raise FilterError(f"{param}: {op} does not apply to a {fld.type} field", field=param)
    cond = query.condition(fld.name, fld.type)
    if op == "isnull":
        flag = parse_value(Field(param, BOOL), raw, param)
        if cond.null is not None and cond.null != flag:
            query.impossible = True
        cond = replace(cond, null=flag)
    elif op == "in":
        items = raw if isinstance(raw, list) else str(raw).split(",")
        if not items:
            raise FilterError(f"{param}: give at least one value", field=param)
        cond = cond.only(parse_value(fld, item, param) for item in items)
    elif op == "exact":
        cond = cond.only([parse_value(fld, raw, param)])
    else:
        value = parse_value(fld, raw, param)
        if op in ("gt", "gte"):
            cond = cond.at_least(value, op == "gte")
        elif op in ("lt", "lte"):
            cond = cond.at_most(value, op == "lte")
        elif op == "contains":
            cond = replace(cond, contains=cond.contains + (value,))
        else:
            cond = replace(cond, prefixes=cond.prefixes + (value,))
    query.conditions[fld.name] = cond


def build(res: Resource, filters: Mapping[str, Any]) -> Query:
    query = Query(res.name)
    for param, raw in filters.items():
        add_filter(query, res, param, raw)
    return query


_indexed: set[str] = set()
INDEX_SETTLE_SECONDS = (0.2, 0.5, 1.0)


async def ensure_index(db: Database) -> None:
    """Create the ``[kind, id]`` Mango index once per process (CouchDB answers "exists" when it is there)."""
    if db.name in _indexed:
        return
    await db.couch.request("POST", db.path + "/_index", json_body=INDEX)
    _indexed.add(db.name)


async def _find(db: Database, selector: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """``_find`` on the index; made again when CouchDB has none (its design doc was removed, or the
    database made again under the same name, since this process made it).

    On a cluster a node can answer from a view of the design docs a moment old (seen once in the cluster
    suite): one that does not have the new index yet, or, asked to make it, one that still lists the removed
    one and answers "exists". So the index is asked for and the query tried again after each of
    ``INDEX_SETTLE_SECONDS``, then the error stands."""
    for delay in (0.0, *INDEX_SETTLE_SECONDS):
        try:
            return await db.find(selector, **options)
        except CouchError as exc:
            if exc.error != "no_usable_index":
                raise
        await asyncio.sleep(delay)
        _indexed.discard(db.name)
        await ensure_index(db)
    return await db.find(selector, **options)


async def batches(db: Database, query: Query, *, offset: int = 0, limit: int | None = None,
                  batch: int = 500, fields: list[str] | None = None) -> AsyncIterator[list[dict[str, Any]]]:
    """Matching docs in id order, ``batch`` at a time, from ``offset``, at most ``limit`` (None: all)."""
    await ensure_index(db)
    after: int | None = None
    skip = offset
    remaining = limit
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        selector = query.selector(after)
        if selector is None:
            return
        options: dict[str, Any] = {"sort": SORT, "limit": size, "use_index": INDEX_DDOC}
        if skip:
            options["skip"] = skip
        if fields:
            options["fields"] = sorted(set(fields) | {"id"})
        docs = (await _find(db, selector, options))["docs"]
        if docs:
            yield docs
        if len(docs) < size:
            return
        after = docs[-1]["id"]
        skip = 0
        if remaining is not None:
            remaining -= len(docs)


async def count(db: Database, query: Query, after: int | None = None) -> int:
    """How many records match (above ``after``): ids only, read in large batches."""
    seen = 0
    bounded = replace(query, conditions=dict(query.conditions))
    if after is not None:
        bounded.conditions["id"] = bounded.condition("id", INT).at_least(after, False)
    async for docs in batches(db, bounded, batch=5000, fields=["id"]):
        seen += len(docs)
    return seen


async def first(db: Database, query: Query) -> dict[str, Any] | None:
    async for docs in batches(db, query, limit=1):
        return docs[0]
    return None


async def all_matching(db: Database, query: Query, fields: list[str] | None = None) -> list[dict[str, Any]]:
    """Every match, for small sets (a user's permissions, groups)."""
    out: list[dict[str, Any]] = []
    async for docs in batches(db, query, batch=1000, fields=fields):
        out.extend(docs)
    return out
