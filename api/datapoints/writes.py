"""Insert, update and delete through ``POST /api/v2/<resource>``, as the spec defines them.

* no ``id``: insert, answered ``{"objects": {"new_id": n}, "meta": null, "error": null}``;
* ``id`` a record id: update of the fields given, ``{"objects": {"updated_id": n}, ...}``;
* ``id`` empty (``""`` or null): delete the records the other fields select
  (``{"id": "", "user_id": 1, "group_id": 7}``; filter syntax such as
  ``"id__in": [4, 5]`` works too), ``{"objects": {"deleted_ids": [...]}, ...}``.

Values may come as strings, as in the spec's examples (``"office_id": "2"``,
``"is_reported": "0"``); they are converted to the field's type, then the
whole record is validated against ``schemas/datapoints/<resource>.json``.
Every check runs before anything is written.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Mapping

from api import jsonparse, schemas
from api.auth import ADMIN_ROLES, USER_PREFIX
from api.errors import BadRequest, Conflict, Forbidden, NotFound

from .access import Context, create_profile, restrict
from .entry import repair_region
from .model import (
    BOOL,
    DEFAULTS,
    INT,
    JSON,
    MANAGE,
    NUMBER,
    REVIEW_MODELS,
    Resource,
    check_finite,
    doc_id,
    now_iso,
    slugify,
    user_doc_id,
)
from .query import Query, add_filter, all_matching, batches, first
from .records import DDOC, allocate, by_ids, references_to, users_by_ids

_INT = re.compile(r"^\s*-?\d+\s*$")
UNIQUE: dict[str, tuple[tuple[str, ...], ...]] = {
    "region": (("slug",),),
    "indicator": (("slug",),),
    "campaign": (("slug",),),
    "user_group": (("user_id", "group_id"),),
    "group_permission": (("group_id", "indicator_id"),),
    "region_permission": (("user_id", "region_id"),),
    "custom_dashboard": (("title",),),  # RhizomeDB's CustomDashboard.title is unique
}
PARSED_JSON = frozenset({"bound_json", "tag_json", "calculation"})


def coerce(res: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
    """Body values as their fields' types; unknown and server-set fields are refused."""
    fields = res.by_name
    out: dict[str, Any] = {}
    for name, value in body.items():
        fld = fields.get(name)
        if fld is None or not fld.stored:
            raise BadRequest(f"{name}: {res.name} has no such field", field=name)
        if not fld.writable:
            raise BadRequest(f"{name}: is set by the server and cannot be written", field=name)
        check_finite(value, name)
        out[name] = _convert(fld.type, name, value)
        check_finite(out[name], name)
    return out



def _convert(type_: str, name: str, value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if type_ in (INT, NUMBER) and text == "":
            return None
        if type_ == INT and _INT.match(text):
            return int(text)
        if type_ == NUMBER:
            try:
                number = float(text)
                return int(number) if number.is_integer() else number
            except ValueError:
                return value
        if type_ == BOOL and text.lower() in ("0", "1", "true", "false"):
            return text.lower() in ("1", "true")
        if type_ == JSON and name in PARSED_JSON and text:
            try:
                return jsonparse.loads(text)
            except ValueError:
                raise BadRequest(f"{name}: is not valid JSON", field=name) from None
    if type_ == BOOL and value in (0, 1) and not isinstance(value, bool):
        return bool(value)
    return value


async def post(ctx: Context, res: Resource, body: Mapping[str, Any]) -> dict[str, Any]:
    """One POST: insert, update or delete, as the body says."""
    if "id" not in body:
        return {"new_id": await insert(ctx, res, body)}
    record_id = body["id"]
    rest = {k: v for k, v in body.items() if k != "id"}
    if record_id is None or (isinstance(record_id, str) and record_id.strip() == ""):
        return {"deleted_ids": await delete(ctx, res, rest)}
    if isinstance(record_id, str) and _INT.match(record_id):
        record_id = int(record_id)
    if not isinstance(record_id, int) or isinstance(record_id, bool) or record_id < 1:
        raise BadRequest("id: must be a record id to update, or empty to delete", field="id")
    return {"updated_id": await update(ctx, res, record_id, rest)}


def _may_write(ctx: Context, res: Resource) -> None:
    who = ctx.who
    if who.is_admin or who.can_manage:
        return
    if res.write == MANAGE:
        raise Forbidden(f"Insufficient privileges: manage:datapoints required to change {res.name} records")
    if not who.can_write:
        raise Forbidden(f"Insufficient privileges: write:datapoints required to change {res.name} records")


def _check_owner(ctx: Context, res: Resource, doc: Mapping[str, Any]) -> None:
    if res.owner_only and not ctx.manager and doc.get(res.owner_field or "") != ctx.who.user_id:
        raise Forbidden(f"Only the owner of {res.name} {doc['id']} (or a manager) may change it")


def _derive(res: Resource, data: dict[str, Any]) -> None:
    """Fields made from others when not given (slug from name, campaign name from slug, ...)."""
    if res.slug_from and not data.get("slug") and isinstance(data.get(res.slug_from), str):
        data["slug"] = slugify(data[res.slug_from])
    if res.name == "campaign" and not data.get("name") and isinstance(data.get("slug"), str):
        data["name"] = data["slug"]
    if res.name == "indicator" and not data.get("short_name") and isinstance(data.get("name"), str):
        data["short_name"] = data["name"]
    if res.name == "document" and not data.get("guid"):
        data["guid"] = uuid.uuid4().hex


def _validate(res: Resource, data: Mapping[str, Any], given: set[str]) -> None:
    """Validate against the resource's schema; a problem with a field the client sent is named first."""
    problems = schemas.errors(res.schema_name(), data)
    if not problems:
        return
    field, message = next(((f, m) for f, m in problems if f.split(".")[0] in given), problems[0])
    raise BadRequest(f"{field}: {message}" if field else message, field=field or None)


async def insert(ctx: Context, res: Resource, body: Mapping[str, Any]) -> int:
    _may_write(ctx, res)
    data = {**DEFAULTS.get(res.name, {}), **coerce(res, body)}
    _derive(res, data)
    _validate(res, data, set(body))
    if res.name == "user":
        return await _insert_user(ctx, data)
    extra = await _check(ctx, res, data, None)
    if res.owner_field:
        data[res.owner_field] = ctx.who.user_id
    stamp = now_iso()

    def build(n: int) -> dict[str, Any]:
        doc = {"_id": doc_id(res.name, n), "kind": res.name, "id": n, **data, "created_at": stamp}
        if res.name == "region":
            doc["path"] = extra["parent_path"] + [n]
            doc["depth"] = len(extra["parent_path"])
        return doc

    return (await allocate(ctx.db, res.name, build))["id"]


async def _insert_user(ctx: Context, data: dict[str, Any]) -> int:
    name = data.pop("username")
    account = await ctx.users.get_or_none(USER_PREFIX + name)
    if account is None:
        raise BadRequest(f"username: {name!r} is not a user of this server", field="username")
    if await ctx.db.get_or_none(user_doc_id(name)) is not None:
        raise Conflict(f"username: {name!r} already has a datapoints profile", field="username")
    profile = await create_profile(ctx.db, name, account, is_superuser=bool(ADMIN_ROLES.intersection(account.get("roles") or [])),
                                   fields={**data, "last_login": None})
    return profile["id"]


async def visible_record(ctx: Context, res: Resource, record_id: int) -> dict[str, Any]:
    """A record the caller may see, or 404 (what they may not see does not exist for them)."""
    query = Query(res.name)
    query.restrict("id", INT, [record_id])
    await restrict(ctx, res.name, query, show_all=True)
    doc = await first(ctx.db, query)
    if doc is None:
        raise NotFound(f"No {res.name} with id {record_id}", field="id")
    return doc


async def update(ctx: Context, res: Resource, record_id: int, body: Mapping[str, Any]) -> int:
    _may_write(ctx, res)
    changes = coerce(res, body)
    if res.name == "user" and "username" in changes:
        raise BadRequest("username: cannot be changed; it is the CouchDB user name", field="username")
    for attempt in range(5):
        doc = await visible_record(ctx, res, record_id)
        _check_owner(ctx, res, doc)
        current = {f.name: doc.get(f.name) for f in res.writable_fields}
        merged = {**current, **changes}
        _validate(res, merged, set(changes))
        extra = await _check(ctx, res, merged, doc)
        new = {**doc, **changes, "updated_at": now_iso()}
        moved = res.name == "region" and "parent_region_id" in changes
        if moved:
            new["path"] = extra["parent_path"] + [record_id]
            new["depth"] = len(extra["parent_path"])
        try:
            await ctx.db.put(new)
        except Conflict:
            continue
        if moved:
            await repair_region(ctx.db, new)
        return record_id
    raise Conflict(f"{res.name} {record_id} kept changing while it was being updated; try again")


async def _check(ctx: Context, res: Resource, data: dict[str, Any], existing: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    """Rules a schema cannot say: references exist, permissions on regions, uniqueness, no cycles."""
    extra: dict[str, Any] = {}
    fields = res.by_name
    for fld in res.writable_fields:
        value = data.get(fld.name)
        if fld.ref and value is not None:
            await _must_exist(ctx, fld.ref, value, fld.name)
    if res.name in ("region_map", "indicator_map", "campaign_map"):
        await _must_exist(ctx, fields["master_object_id"].ref or "", data["master_object_id"], "master_object_id")
    if res.name == "document_review" and data.get("master_object_id") is not None:
        if data["db_model"] not in REVIEW_MODELS:
            raise BadRequest("db_model: unknown model", field="db_model")
        await _must_exist(ctx, data["db_model"], data["master_object_id"], "master_object_id")
    if res.name == "region":
        extra["parent_path"] = await _region_parent(ctx, data, existing)
    if res.name == "region_permission" and not ctx.who.is_admin:
        scope = await ctx.scope("w")
        region = (await by_ids(ctx.db, "region", [data["region_id"]]))[data["region_id"]]
        await _must_see_region(ctx, region, "region_id")
        if scope is None or not scope.admits(region):
            raise Forbidden("region_id: you may grant permissions only on regions you may write", field="region_id")
    if res.name == "campaign":
        if data["end_date"] < data["start_date"]:
            raise BadRequest("end_date: must not be before start_date", field="end_date")
        offices = await ctx.offices()
        if offices is not None and data["office_id"] not in offices:
            raise Forbidden("office_id: you may only manage campaigns of your regions' offices", field="office_id")
    if res.name == "indicator":
        await _check_indicator(ctx, data, existing)
    if res.name == "indicator_tag" and data.get("parent_tag_id") is not None and existing is not None:
        await _no_tag_cycle(ctx, existing["id"], data["parent_tag_id"])
    for group in UNIQUE.get(res.name, ()):
        if existing is not None and all(existing.get(name) == data[name] for name in group):
            continue  # unchanged: records that shared a value before a rule was added can still be edited
        query = Query(res.name)
        for name in group:
            query.restrict(name, fields[name].type, [data[name]])
        clash = await _other(ctx, query, existing)
        if clash is not None:
            names = " and ".join(group)
            raise Conflict(f"{names}: {res.name} {clash['id']} already has this {names}", field=group[-1])
    return extra


async def _other(ctx: Context, query: Query, existing: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The first match that is not the record being updated."""
    async for docs in batches(ctx.db, query, limit=2):
        for doc in docs:
            if existing is None or doc["id"] != existing["id"]:
                return doc
    return None


async def _must_exist(ctx: Context, kind: str, value: int, field: str) -> None:
    if kind == "user":
        found = await users_by_ids(ctx.db, [value])
    else:
        found = await by_ids(ctx.db, kind, [value])
    if value not in found:
        raise BadRequest(f"{field}: no {kind} with id {value}", field=field)


async def _must_see_region(ctx: Context, region: Mapping[str, Any], field: str) -> None:
    """A region outside the caller's tree does not exist for them (400 as for a missing one, not 403)."""
    scope = await ctx.scope("r")
    if scope is not None and not scope.admits(region):
        raise BadRequest(f"{field}: no region with id {region['id']}", field=field)


async def _region_parent(ctx: Context, data: Mapping[str, Any], existing: Mapping[str, Any] | None) -> list[int]:
    """The new region's parent path, after checking the caller may write there (and no cycle)."""
    scope = await ctx.scope("w")
    parent_id = data.get("parent_region_id")
    if existing is not None and scope is not None and not scope.admits(existing):
        raise Forbidden(f"You may not change region {existing['id']}")
    if parent_id is None and existing is not None and existing.get("parent_region_id") is None:
        return []
    if parent_id is None:
        if scope is not None:
            raise Forbidden("parent_region_id: only admins may add or move regions at the top of the tree",
                            field="parent_region_id")
        return []
    parent = (await by_ids(ctx.db, "region", [parent_id]))[parent_id]
    await _must_see_region(ctx, parent, "parent_region_id")
    if existing is not None and existing["id"] in (parent.get("path") or []):
        raise BadRequest("parent_region_id: a region cannot be placed under itself or its sub-regions",
                         field="parent_region_id")
    if scope is not None and not scope.admits(parent):
        raise Forbidden(f"parent_region_id: you may not write region {parent_id}", field="parent_region_id")
    return list(parent.get("path") or [parent_id])


async def _check_indicator(ctx: Context, data: Mapping[str, Any], existing: Mapping[str, Any] | None) -> None:
    tags = data.get("tag_json") or []
    if tags:
        found = await by_ids(ctx.db, "indicator_tag", tags)
        missing = [t for t in tags if t not in found]
        if missing:
            raise BadRequest(f"tag_json: no indicator_tag with id {missing[0]}", field="tag_json")
    calc = data.get("calculation")
    if calc:
        parts = await by_ids(ctx.db, "indicator", [calc["part"], calc["whole"]])
        for name in ("part", "whole"):
            component = parts.get(calc[name])
            if component is None:
                raise BadRequest(f"calculation.{name}: no indicator with id {calc[name]}", field=f"calculation.{name}")
            if component.get("calculation") or (existing is not None and component["id"] == existing["id"]):
                raise BadRequest(f"calculation.{name}: must be a stored (not calculated) indicator",
                                 field=f"calculation.{name}")
    if existing is not None and calc:
        users = Query("indicator")
        users.extra.append({"$or": [{"calculation.part": existing["id"]}, {"calculation.whole": existing["id"]}]})
        if await first(ctx.db, users) is not None:
            raise BadRequest("calculation: this indicator is a component of a calculated indicator",
                             field="calculation")


async def _no_tag_cycle(ctx: Context, tag_id: int, parent_id: int) -> None:
    seen = {tag_id}
    current: int | None = parent_id
    while current is not None:
        if current in seen:
            raise BadRequest("parent_tag_id: would make a cycle of tags", field="parent_tag_id")
        seen.add(current)
        tag = (await by_ids(ctx.db, "indicator_tag", [current])).get(current)
        current = tag.get("parent_tag_id") if tag else None


async def delete(ctx: Context, res: Resource, selection: Mapping[str, Any]) -> list[int]:
    """Delete the visible records the other fields select; each is checked before any is deleted."""
    _may_write(ctx, res)
    if res.name == "user":
        raise BadRequest("id: users are not deleted; set is_active to false instead", field="id")
    if not selection:
        raise BadRequest("id: give the fields that select the records to delete along with an empty id",
                         field="id")
    query = Query(res.name)
    for param, value in selection.items():
        add_filter(query, res, param, value)
    await restrict(ctx, res.name, query, show_all=True)
    docs = await all_matching(ctx.db, query)
    for doc in docs:
        _check_owner(ctx, res, doc)
        await _deletable(ctx, res, doc)
    stamp = now_iso()
    tombstones = [{"_id": d["_id"], "_rev": d["_rev"], "reserves": res.name, "id": d["id"],
                   "deleted_at": stamp, "deleted_by_id": ctx.who.user_id} for d in docs]
    results = await ctx.db.bulk_docs(tombstones)
    failed = [t["id"] for t, r in zip(tombstones, results) if r.get("error")]
    if failed:
        raise Conflict(f"{res.name} {failed} changed while being deleted; the others were deleted")
    return [d["id"] for d in docs]


async def _deletable(ctx: Context, res: Resource, doc: Mapping[str, Any]) -> None:
    record_id = doc["id"]
    if res.name == "region":
        scope = await ctx.scope("w")
        if scope is not None and not scope.admits(doc):
            raise Forbidden(f"You may not delete region {record_id}")
        rows = (await ctx.db.view(DDOC, "buckets_by_region", key=record_id, limit=1))["rows"]
        if rows:
            raise Conflict(f"region {record_id} or its sub-regions have datapoints")
    if res.name == "region_permission" and not ctx.who.is_admin:
        scope = await ctx.scope("w")
        region = (await by_ids(ctx.db, "region", [doc["region_id"]])).get(doc["region_id"])
        if scope is None or region is None or not scope.admits(region):
            raise Forbidden(f"You may not remove permissions on region {doc['region_id']}")
    if res.name == "campaign":
        rows = (await ctx.db.all_docs(startkey=f"dp:{record_id}:", endkey=f"dp:{record_id}:\ufff0", limit=1))["rows"]
        if rows:
            raise Conflict(f"campaign {record_id} has datapoints")
    for other, field in references_to(res.name):
        query = Query(other.name)
        query.restrict(field, INT, [record_id])
        found = await first(ctx.db, query)
        if found is not None:
            raise Conflict(f"{res.name} {record_id} is still used by {other.name} {found['id']} ({field})")
    if res.name == "indicator_tag":
        query = Query("indicator")
        query.extra.append({"tag_json": {"$elemMatch": {"$eq": record_id}}})
        if (found := await first(ctx.db, query)) is not None:
            raise Conflict(f"indicator_tag {record_id} is still used by indicator {found['id']}")
    if res.name == "indicator":
        query = Query("indicator")
        query.extra.append({"$or": [{"calculation.part": record_id}, {"calculation.whole": record_id}]})
        if (found := await first(ctx.db, query)) is not None:
            raise Conflict(f"indicator {record_id} is a component of indicator {found['id']}")
