"""The reports export (CSV), as cht-core's ``report-mapper``: fixed columns, then one column per field path
(``a.b``) of one report of each form (the first in ``reports_by_form``), sorted."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncGenerator, Mapping, Sequence

from api.cht.reports import search as report_search
from api.couch import Database

from .formats import (
    NameCache,
    contact_chain,
    csv_header,
    csv_lines,
    export_date,
)
from .params import Options, ReportFilters

SAMPLE_CONCURRENCY = 8


MAX_FORMS = 1000


REPORT_COLUMNS = ["_id", "form", "patient_id", "reported_date", "from", "contact.name", "contact.parent.name",
                  "contact.parent.parent.name", "contact.parent.parent.parent.name"]


def flatten(fields: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """``{"a": {"b": 1}}`` -> ``{("a", "b"): 1}``; arrays stay one value (their length varies)."""
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in fields.items():
        path = prefix + (str(key),)
        if isinstance(value, Mapping):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


async def forms_in_use(db: Database) -> list[str]:
    """The forms that have reports, one key jump each (no reduce, so the cost does not grow with reports)."""
    forms: list[str] = []
    params: dict[str, Any] = {}
    while len(forms) < MAX_FORMS:
        rows = (await db.view("medic-client", "reports_by_form", limit=1, reduce=False, **params))["rows"]
        if not rows:
            break
        key = rows[0]["key"]
        form = key[0] if isinstance(key, list) and key else None
        if not isinstance(form, str):
            break
        forms.append(form)
        params["startkey"] = [form, {}]
    return forms


async def report_field_columns(db: Database, forms: Sequence[str] | None) -> list[tuple[str, ...]]:
    """Field paths for the columns: those of the first report of each form (as cht-core, which reads one
    report per form), their union sorted."""
    codes = list(forms) if forms else await forms_in_use(db)
    paths: set[tuple[str, ...]] = set()

    async def sample(code: str) -> None:
        rows = (await db.view("medic-client", "reports_by_form", key=[code], limit=1, include_docs=True,
                              reduce=False))["rows"]
        fields = rows[0].get("doc", {}).get("fields") if rows and rows[0].get("doc") else None
        if isinstance(fields, Mapping):
            paths.update(flatten(fields))

    for start in range(0, len(codes), SAMPLE_CONCURRENCY):
        await asyncio.gather(*(sample(code) for code in codes[start:start + SAMPLE_CONCURRENCY]))
    return sorted(paths, key=lambda p: ".".join(p))


def _field(fields: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(fields, Mapping):
            return None
        fields = fields.get(part)
    return fields


async def reports_csv(db: Database, filters: ReportFilters, options: Options) -> AsyncGenerator[str, None]:
    """The reports export: a header, then one CSV row per report, a page at a time."""
    paths, plan = await asyncio.gather(report_field_columns(db, filters.forms), report_search.choose(db, filters))
    yield csv_header(REPORT_COLUMNS + [".".join(p) for p in paths])
    names = NameCache(db)
    async for docs in report_search.iter_reports(db, plan, filters):
        await names.load(i for doc in docs for i in contact_chain(doc))
        rows = []
        for doc in docs:
            chain = contact_chain(doc) + [None] * 4
            fields = doc.get("fields")
            rows.append([doc.get("_id"), doc.get("form"), doc.get("patient_id"),
                         export_date(doc.get("reported_date"), options.human_readable), doc.get("from")]
                        + [names.name(i) for i in chain[:4]]
                        + [_field(fields, tuple(".".join(p).split("."))) for p in paths])
        yield csv_lines(rows)
