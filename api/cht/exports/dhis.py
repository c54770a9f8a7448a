"""Targets aggregated into a DHIS2 ``dataValueSet`` for one data set and month.

Configuration, as in CHT:

* settings ``dhis_data_sets: [{id, translation_key}]`` name the data sets;
* a target in settings ``tasks.targets.items[]`` feeds DHIS2 when it has
  ``dhis: {dataElement, dataSet?, categoryOptionCombo?, attributeOptionCombo?}``
  (or a list of them); without ``dataSet`` it feeds every data set;
* a contact with ``dhis: {orgUnit, dataSet?}`` (or a list) is an
  organisation unit; every target owner at or below it counts towards it.

Target docs (``target~<YYYY-MM>~<owner contact>~<user>``, written by the
devices) hold ``targets: [{id, value: {pass, total}}]``; each configured
target's ``value.total`` is summed per organisation unit and data element,
as CHT does. Every unit gets a value for every data element (0 when nothing
was reported). Target docs are read a page at a time and owners' lineages
are cached with a bound, so the work stays flat however many users report.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Mapping

from api.cht.lineage import lineage_ids
from api.cht.reports.freetext import js_string
from api.couch import Database
from api.errors import BadRequest
from api.paging import page

from .params import DhisFilters, Options

PAGE_SIZE = 500
OWNER_CACHE_SIZE = 20000
# dataValue properties a target's dhis config may carry over (DHIS2's dataValue fields).
CARRIED = ("categoryOptionCombo", "attributeOptionCombo", "comment", "followup")


def _configs(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, Mapping)]


def data_set_config(settings: Mapping[str, Any], data_set: str) -> Mapping[str, Any]:
    for entry in settings.get("dhis_data_sets") or []:
        if isinstance(entry, Mapping) and entry.get("id") == data_set:
            return entry
    raise BadRequest(f'dataSet "{data_set}" is not defined', field="filters.dataSet")


def target_definitions(settings: Mapping[str, Any], data_set: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(target id, dhis config) of every configured target that feeds this data set."""
    tasks = settings.get("tasks") if isinstance(settings.get("tasks"), Mapping) else {}
    targets = tasks.get("targets") if isinstance(tasks.get("targets"), Mapping) else {}
    found = []
    for item in targets.get("items") or []:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        for config in _configs(item.get("dhis")):
            element = config.get("dataElement")
            if isinstance(element, str) and element and config.get("dataSet") in (None, "", data_set):
                found.append((item["id"], config))
    return found


def month_of(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


async def org_units(db: Database, data_set: str, org_unit: str | None) -> tuple[dict[str, list[str]],
                                                                                 dict[str, str]]:
    """Contact id -> its organisation units (for this data set), and unit -> contact name."""
    by_contact: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    params = {"startkey": org_unit, "endkey": org_unit} if org_unit else {"startkey": None, "endkey": None}
    after = None
    while True:
        rows, after = await page(db, "medic", "contacts_by_dhis_orgunit", after=after, limit=PAGE_SIZE,
                                 include_docs=True, **params)
        for row in rows:
            doc = row.get("doc") or {}
            for config in _configs(doc.get("dhis")):
                unit = config.get("orgUnit")
                if unit != row["key"] or config.get("dataSet") not in (None, "", data_set):
                    continue
                units = by_contact.setdefault(doc["_id"], [])
                if unit not in units:
                    units.append(unit)
                names.setdefault(unit, doc.get("name") or unit)
        if after is None:
            return by_contact, names


class OwnerUnits:
    """Organisation units a target owner counts towards: its own and its ancestors' (cached, bounded)."""

    def __init__(self, db: Database, by_contact: Mapping[str, list[str]]):
        self._db = db
        self._by_contact = by_contact
        self._cache: OrderedDict[str, list[str]] = OrderedDict()

    async def load(self, owners: list[str]) -> None:
        missing = [o for o in dict.fromkeys(owners) if o not in self._cache]
        if not missing:
            return
        docs = await self._db.get_many(missing)
        for owner in missing:
            doc = docs.get(owner)
            chain = lineage_ids(doc) if doc else [owner]
            units: list[str] = []
            for contact_id in chain:
                for unit in self._by_contact.get(contact_id, []):
                    if unit not in units:
                        units.append(unit)
            self._cache[owner] = units
        while len(self._cache) > OWNER_CACHE_SIZE:
            self._cache.popitem(last=False)

    def units(self, owner: str) -> list[str]:
        return self._cache.get(owner, [])


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return value


async def data_value_set(db: Database, settings: Mapping[str, Any], filters: DhisFilters, options: Options,
                         translate: Mapping[str, str], now: float | None = None) -> dict[str, Any]:
    config = data_set_config(settings, filters.data_set)
    definitions = target_definitions(settings, filters.data_set)
    if not definitions:
        raise BadRequest(f'dataSet "{filters.data_set}" has no dataElements', field="filters.dataSet")
    month = month_of(filters.month_of)
    by_contact, unit_names = await org_units(db, filters.data_set, filters.org_unit)
    units = sorted({u for us in by_contact.values() for u in us})
    slots: dict[tuple[str, int], float] = {(u, i): 0 for u in units for i in range(len(definitions))}
    by_target: dict[str, list[int]] = {}
    for i, (target_id, _) in enumerate(definitions):
        by_target.setdefault(target_id, []).append(i)
    owners = OwnerUnits(db, by_contact)
    prefix = f"target~{month:%Y-%m}~"
    after = None
    while True:
        rows, after = await _target_page(db, prefix, after)
        docs = [row["doc"] for row in rows if row.get("doc")]
        await owners.load([d["owner"] for d in docs if isinstance(d.get("owner"), str)])
        for doc in docs:
            owner_units = owners.units(doc.get("owner")) if isinstance(doc.get("owner"), str) else []
            for target in doc.get("targets") or []:
                if not isinstance(target, Mapping) or target.get("id") not in by_target:
                    continue
                value = target.get("value") if isinstance(target.get("value"), Mapping) else {}
                for unit in owner_units:
                    for i in by_target[target["id"]]:
                        slots[(unit, i)] += _number(value.get("total"))
        if after is None:
            break
    human = options.human_readable
    values = []
    for unit in units:
        for i, (target_id, dhis) in enumerate(definitions):
            value = {"dataElement": target_id if human else dhis["dataElement"],
                     "orgUnit": unit_names.get(unit, unit) if human else unit,
                     "value": js_string(slots[(unit, i)])}
            value.update({k: dhis[k] for k in CARRIED if k in dhis and dhis[k] not in (None, "")})
            values.append(value)
    key = config.get("translation_key")
    result: dict[str, Any] = {
        "dataSet": (translate.get(key, key) if isinstance(key, str) and key else filters.data_set)
        if human else filters.data_set,
        "completeDate": time.strftime("%Y-%m-%d", time.gmtime(now if now is not None else time.time())),
        "period": f"{month:%Y%m}",
    }
    if filters.org_unit:
        result["orgUnit"] = unit_names.get(filters.org_unit, filters.org_unit) if human else filters.org_unit
    result["dataValues"] = values
    return result


async def _target_page(db: Database, prefix: str, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the month's target docs from ``_all_docs`` (ids are unique, so a page starts after the
    last id)."""
    params: dict[str, Any] = {"endkey": prefix + "\ufff0", "include_docs": True, "limit": PAGE_SIZE}
    if after is None:
        params["startkey"] = prefix
    else:
        params["startkey"] = after
        params["skip"] = 1
    rows = (await db.all_docs(**params))["rows"]
    return rows, (rows[-1]["id"] if len(rows) == PAGE_SIZE else None)
