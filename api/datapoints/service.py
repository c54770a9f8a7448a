"""What the handlers call: request parameters checked, queries run, results paged.

GET parameters besides the filters: ``limit`` (default 20; 0 means no
limit), ``offset`` (default 0), ``format`` (``json`` or ``csv``),
``uri_format`` (``id``, ``name``, ``slug`` or ``uri``: how references such as
a region's ``office`` are shown) and, where the spec has them, ``read_write``,
``depth_level`` and ``show_all``. A parameter about a field of the
resource (``name``, ``office``, ``created_at__gte``) is a filter, and a filter
the server does not understand is an error, never ignored. Any other parameter
is ignored, as RhizomeDB ignored it (its own front end sends ``uri_display``
and ``chart_uuid``), and named in ``meta.warnings`` so a typo is still seen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping
from urllib.parse import quote

from api.errors import BadRequest

from .access import Context, restrict
from .aggregate import Value, compute, objects
from .model import INT, RESOURCES, Resource
from .query import FilterError, Query, add_filter, all_matching, batches, count, names_field
from .records import URI_FORMATS, by_ids, present

DEFAULT_LIMIT = 20
COMMON = ("limit", "offset", "format", "uri_format")
MAX_PAIRS = 10000
MAX_INDICATORS = 1000
DATAPOINT_PARAMS = ("indicator__in", "region__in", "campaign__in", "campaign_start", "campaign_end", "limit",
                    "offset", "no_pivot", "format")


# Parameters RhizomeDB's /api/v1/datapoint honoured that Jamii does not: ignoring them widens the answer.
NARROWING = {
    "parent_region__in": "not supported; ignored, so it does not narrow the regions (use region__in)",
    "level": "not supported; ignored, so it does not narrow the regions (use region__in)",
}


class EnvelopeError(BadRequest):
    """A 400 answered in the spec's envelope, with every problem in ``errors``."""

    def __init__(self, errors: Mapping[str, str], meta: Mapping[str, Any]):
        field_name, message = next(iter(errors.items()))
        super().__init__(message, field=field_name, headers=ignored_header(meta.get("warnings") or {}), body={
            "meta": dict(meta), "objects": [], "errors": dict(errors),
            "code": 400, "error": message, "field": field_name})


def ignored_header(warnings: Mapping[str, str]) -> dict[str, str]:
    """``X-Ignored-Parameters: a, b`` (names URL-quoted, so no header can be smuggled in): the warnings
    where a reply has no ``meta`` (CSV)."""
    if not warnings:
        return {}
    return {"X-Ignored-Parameters": ", ".join(sorted(quote(name, safe="") for name in warnings))}


def _warn(meta: dict[str, Any], warnings: Mapping[str, str]) -> dict[str, Any]:
    if warnings:
        meta["warnings"] = dict(warnings)
    return meta


def _int(params: Mapping[str, str], name: str, default: int, errors: dict[str, str]) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = f"{name}: must be a whole number"
        return default
    if value < 0:
        errors[name] = f"{name}: must not be negative"
        return default
    return value


def _bool(params: Mapping[str, str], name: str, errors: dict[str, str]) -> bool:
    raw = (params.get(name) or "0").strip().lower()
    if raw in ("1", "true"):
        return True
    if raw not in ("0", "false", ""):
        errors[name] = f"{name}: must be 1 or 0"
    return False


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...], errors: dict[str, str]) -> str:
    value = params.get(name) or choices[0]
    if value not in choices:
        errors[name] = f"{name}: must be one of {', '.join(choices)}"
        return choices[0]
    return value


def base_meta(params: Mapping[str, str], limit: int, offset: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total_count": None, "parameters_requested": dict(params)}


@dataclass
class Listing:
    """A v2 GET: the query, how to page it, and what has been read so far (for ``total_count``)."""

    ctx: Context
    res: Resource
    query: Query
    offset: int
    limit: int | None
    uri_format: str
    format: str
    meta: dict[str, Any]
    returned: int = 0
    last_id: int | None = None
    columns: list[str] = field(default_factory=list)

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        scope = await self.ctx.scope("r") if self.res.name == "region" else None
        async for docs in batches(self.ctx.db, self.query, offset=self.offset, limit=self.limit):
            self.returned += len(docs)
            self.last_id = docs[-1]["id"]
            yield await present(self.ctx.db, self.res, docs, user_id=self.ctx.who.user_id,
                                uri_format=self.uri_format, sees=scope.admits if scope else None)

    async def total(self) -> int:
        """Matches in all: what was read, plus a count of the rest when the page was full."""
        if self.limit is not None and self.returned == self.limit and self.last_id is not None:
            return self.offset + self.returned + await count(self.ctx.db, self.query, after=self.last_id)
        if self.returned == 0 and self.offset > 0:
            return await count(self.ctx.db, self.query)
        return self.offset + self.returned


async def listing(ctx: Context, res: Resource, params: Mapping[str, str]) -> Listing:
    """Check a v2 GET's parameters (every problem reported at once) and build its query."""
    errors: dict[str, str] = {}
    limit = _int(params, "limit", DEFAULT_LIMIT, errors)
    offset = _int(params, "offset", 0, errors)
    fmt = _choice(params, "format", ("json", "csv"), errors)
    uri_format = _choice(params, "uri_format", URI_FORMATS, errors)
    read_write = _choice(params, "read_write", ("r", "w"), errors) if "read_write" in res.params else "r"
    depth_level = _int(params, "depth_level", 0, errors) if "depth_level" in res.params else 0
    show_all = _bool(params, "show_all", errors) if "show_all" in res.params else False
    query = Query(res.name)
    warnings: dict[str, str] = {}
    for name, raw in params.items():
        if name in COMMON or name in res.params:
            continue
        if not names_field(res, name):
            known = ", ".join(f.name for f in res.fields if f.filterable)
            warnings[name] = f"{name}: not a parameter or a field of {res.name}; ignored (fields: {known})"
            continue
        try:
            add_filter(query, res, name, raw)
        except FilterError as exc:
            errors[name] = exc.message
    meta = _warn(base_meta(params, limit, offset), warnings)
    if errors:
        raise EnvelopeError(errors, meta)
    await restrict(ctx, res.name, query, read_write=read_write, depth_level=depth_level, show_all=show_all)
    return Listing(ctx, res, query, offset, limit or None, uri_format, fmt, meta,
                   columns=[f.name for f in res.fields])


async def one(ctx: Context, res: Resource, record_id: int, params: Mapping[str, str]
              ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A v2 detail GET (``/api/v2/<resource>/<id>/``), with the list's visibility rules: the record
    (none or one) and the warnings about parameters that were ignored."""
    errors: dict[str, str] = {}
    uri_format = _choice(params, "uri_format", URI_FORMATS, errors)
    show_all = _bool(params, "show_all", errors) if "show_all" in res.params else False
    warnings = {name: f"{name}: not a parameter of a single {res.name} (use uri_format or show_all); ignored"
                for name in params if name not in ("uri_format", "show_all")}
    if errors:
        raise EnvelopeError(errors, _warn(base_meta(params, 1, 0), warnings))
    query = Query(res.name)
    query.restrict("id", INT, [record_id])
    await restrict(ctx, res.name, query, show_all=show_all or res.name == "document")
    docs = await all_matching(ctx.db, query)
    scope = await ctx.scope("r") if res.name == "region" else None
    found = await present(ctx.db, res, docs, user_id=ctx.who.user_id, uri_format=uri_format,
                          sees=scope.admits if scope else None)
    return found, warnings


def _ids(params: Mapping[str, str], name: str, errors: dict[str, str]) -> list[int] | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        errors[name] = f"{name}: must be a comma-separated list of ids"
        return None
    if not ids:
        errors[name] = f"{name}: give at least one id"
    return list(dict.fromkeys(ids))


@dataclass
class DatapointResult:
    meta: dict[str, Any]
    objects: list[dict[str, Any]]
    errors: dict[str, str]
    format: str
    no_pivot: bool
    regions: dict[int, Mapping[str, Any]]
    campaigns: dict[int, Mapping[str, Any]]
    indicators: list[Mapping[str, Any]]


async def datapoints(ctx: Context, params: Mapping[str, str]) -> DatapointResult:
    """``/api/v1/datapoint``: check the parameters, find what the caller may see, aggregate, page."""
    errors: dict[str, str] = {}
    warnings = {name: f"{name}: {NARROWING[name]}" if name in NARROWING else
                f"{name}: not a parameter of /api/v1/datapoint; ignored (parameters: {', '.join(DATAPOINT_PARAMS)})"
                for name in params if name not in DATAPOINT_PARAMS}
    limit = _int(params, "limit", DEFAULT_LIMIT, errors)
    offset = _int(params, "offset", 0, errors)
    fmt = _choice(params, "format", ("json", "csv"), errors)
    no_pivot = _bool(params, "no_pivot", errors)
    indicator_ids = _ids(params, "indicator__in", errors)
    region_ids = _ids(params, "region__in", errors)
    campaign_ids = _ids(params, "campaign__in", errors)
    campaigns_query = Query("campaign")
    for name, param, op in (("start_date", "campaign_start", "start_date__gte"),
                            ("end_date", "campaign_end", "end_date__lte")):
        if params.get(param):
            try:
                add_filter(campaigns_query, RESOURCES["campaign"], op, params[param])
            except FilterError:
                errors[param] = f"{param}: must be a date (YYYY-MM-DD)"
    meta = _warn(base_meta(params, limit, offset), warnings)
    if errors:
        raise EnvelopeError(errors, meta)
    notes: dict[str, str] = {}

    async def find_indicators() -> list[dict[str, Any]]:
        if indicator_ids is None:
            return await all_matching(ctx.db, Query("indicator"))
        found = await by_ids(ctx.db, "indicator", indicator_ids)
        missing = [i for i in indicator_ids if i not in found]
        if missing:
            notes["indicator__in"] = f"indicator__in: no indicators with ids {missing}"
        return [found[i] for i in indicator_ids if i in found]

    async def find_regions() -> list[dict[str, Any]]:
        if region_ids is None:
            query = Query("region")
            await restrict(ctx, "region", query)
            return await _read(query)
        found, scope = await asyncio.gather(by_ids(ctx.db, "region", region_ids), ctx.scope("r"))
        readable = [found[i] for i in region_ids if i in found and (scope is None or scope.admits(found[i]))]
        hidden = [i for i in region_ids if i not in {r["id"] for r in readable}]
        if hidden:
            notes["region__in"] = f"region__in: no regions you may read with ids {hidden}"
        return readable

    async def find_campaigns() -> list[dict[str, Any]]:
        if campaign_ids is not None:
            campaigns_query.restrict("id", INT, campaign_ids)
        await restrict(ctx, "campaign", campaigns_query)
        found = await _read(campaigns_query)
        if campaign_ids is not None:
            hidden = [i for i in campaign_ids if i not in {c["id"] for c in found}]
            if hidden:
                notes["campaign__in"] = f"campaign__in: no campaigns you may read with ids {hidden}"
        return sorted(found, key=lambda c: (c.get("start_date") or "", c["id"]))

    async def _read(query: Query) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        async for docs in batches(ctx.db, query, limit=MAX_PAIRS + 1):
            out.extend(docs)
        return out

    indicators, regions, campaigns = await asyncio.gather(find_indicators(), find_regions(), find_campaigns())
    if len(indicators) > MAX_INDICATORS:
        raise EnvelopeError({"indicator__in": f"indicator__in: at most {MAX_INDICATORS} indicators at once"}, meta)
    if len(regions) * len(campaigns) > MAX_PAIRS:
        raise EnvelopeError({"region__in": f"region__in: more than {MAX_PAIRS} region and campaign pairs; "
                                           "narrow region__in, campaign__in or the campaign dates"}, meta)
    values: dict[tuple[int, int], dict[int, Value]] = {}
    if regions and campaigns and indicators:
        values = await compute(ctx.db, regions, campaigns, indicators)
    found_objects = objects(regions, campaigns, indicators, values, no_pivot)
    meta["total_count"] = len(found_objects)
    page = found_objects[offset:offset + limit] if limit else found_objects[offset:]
    return DatapointResult(meta, page, notes, fmt, no_pivot, {r["id"]: r for r in regions},
                           {c["id"]: c for c in campaigns}, indicators)
