"""Stored datapoint values: ``POST /api/v1/dataentry``, and keeping them in place when regions move.

Values are kept in *buckets*: one doc per (campaign, block of 64 region ids)
holding ``values[region][indicator] = number`` and each region's path. The
``agg`` view emits a bucket's values summed once per ancestor, so a region's
total over a whole subtree is reduced from one row per bucket and indicator
instead of one per datapoint (pouchdb-server reduces on every query; CouchDB
keeps the reductions in the index). Regions made together get neighbouring
ids, so a subtree spans few buckets. Writes are read-modify-write with the doc's revision, retried on
conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from api import schemas
from api.couch import Database
from api.errors import BadRequest, Conflict, Forbidden

from .access import Context, writable_indicators
from .model import check_finite, now_iso
from .query import Query, batches
from .records import DDOC, by_ids

CHUNK = 64
MAX_ITEMS = 5000
ATTEMPTS = 10


def bucket_id(campaign_id: int, region_id: int) -> str:
    return f"dp:{campaign_id}:{region_id // CHUNK}"


def new_bucket(campaign_id: int, region_id: int) -> dict[str, Any]:
    return {"_id": bucket_id(campaign_id, region_id), "kind": "datapoint_bucket", "campaign_id": campaign_id,
            "block": region_id // CHUNK, "values": {}, "paths": {}, "changes": {}}


def set_value(bucket: dict[str, Any], region: Mapping[str, Any], indicator_id: int, value: float | int | None,
              change: Mapping[str, Any]) -> None:
    """Store (or, with None, remove) one value of a region in its bucket."""
    key, indicator = str(region["id"]), str(indicator_id)
    values = bucket.setdefault("values", {})
    changes = bucket.setdefault("changes", {})
    paths = bucket.setdefault("paths", {})
    if value is None:
        values.get(key, {}).pop(indicator, None)
        changes.get(key, {}).pop(indicator, None)
        if not values.get(key):
            for table in (values, changes, paths):
                table.pop(key, None)
        return
    values.setdefault(key, {})[indicator] = value
    changes.setdefault(key, {})[indicator] = dict(change)
    paths[key] = list(region["path"])


async def modify(db: Database, edits: Mapping[str, Callable[[dict[str, Any]], None]],
                 templates: Mapping[str, Callable[[], dict[str, Any]]]) -> None:
    """Apply edits to bucket docs (made from a template when missing), retrying the ones that conflict.

    A bucket left without values is deleted.
    """
    pending = dict(edits)
    for _ in range(ATTEMPTS):
        if not pending:
            return
        current = await db.get_many(pending)
        writes = []
        for bucket_id_, edit in pending.items():
            doc = current.get(bucket_id_)
            if doc is None:
                doc = templates[bucket_id_]()
            edit(doc)
            if not doc.get("values"):
                if "_rev" not in doc:
                    continue
                doc = {"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}
            writes.append(doc)
        results = await db.bulk_docs(writes)
        pending = {w["_id"]: pending[w["_id"]] for w, r in zip(writes, results) if r.get("error") == "conflict"}
        failed = [r for r in results if r.get("error") and r.get("error") != "conflict"]
        if failed:
            raise Conflict(f"Could not store values: {failed[0].get('reason') or failed[0]['error']}")
    if pending:
        raise Conflict("Values kept changing while being stored; try again")


def _items(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("objects"), list) and set(body) == {"objects"}:
        return body["objects"]
    if isinstance(body, dict):
        return [body]
    raise BadRequest("body: expected a datapoint object, a list of them, or {\"objects\": [...]}", field="body")


def _coerce(item: Any) -> Any:
    if not isinstance(item, dict):
        return item
    out = dict(item)
    for name in ("region_id", "campaign_id", "indicator_id", "document_id"):
        value = out.get(name)
        if isinstance(value, str) and value.strip().lstrip("-").isdecimal():
            out[name] = int(value)
        elif isinstance(value, str) and value.strip() == "" and name == "document_id":
            out[name] = None
    value = out.get("value")
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            out["value"] = None
        else:
            try:
                number = float(text)
                out["value"] = int(number) if number.is_integer() else number
            except ValueError:
                pass
    return out


@dataclass(frozen=True)
class Entered:
    """What ``enter`` stored, and whether any value was new (none was stored for its region,
    campaign and indicator): the reply's 201 Created rather than 200."""

    objects: list[dict[str, Any]]
    created: bool


async def enter(ctx: Context, body: Any) -> Entered:
    """Store the values in the body, after checking every one; returns what was stored."""
    who = ctx.who
    if not (who.is_admin or who.can_write):
        raise Forbidden("Insufficient privileges: write:datapoints required")
    items = [_coerce(i) for i in _items(body)]
    if not items:
        raise BadRequest("body: no datapoints given", field="body")
    if len(items) > MAX_ITEMS:
        raise BadRequest(f"body: at most {MAX_ITEMS} datapoints per request", field="body")
    for n, item in enumerate(items):
        if isinstance(item, dict):
            check_finite(item.get("value"), f"{n}.value" if len(items) > 1 else "value")
        problems = schemas.errors("datapoints/dataentry", item)
        if problems:
            field, message = problems[0]
            where = f"{n}.{field}" if len(items) > 1 else field
            raise BadRequest(f"{where}: {message}" if field else f"{n}: {message}", field=where or str(n))
    regions = await by_ids(ctx.db, "region", {i["region_id"] for i in items})
    campaigns = await by_ids(ctx.db, "campaign", {i["campaign_id"] for i in items})
    indicators = await by_ids(ctx.db, "indicator", {i["indicator_id"] for i in items})
    documents = await by_ids(ctx.db, "document", {i["document_id"] for i in items if i.get("document_id")})
    scope = await ctx.scope("w")
    offices = await ctx.offices()
    writable = await writable_indicators(ctx.db, who)
    for item in items:
        region = regions.get(item["region_id"])
        campaign = campaigns.get(item["campaign_id"])
        readable = await ctx.scope("r")
        if region is None or (readable is not None and not readable.admits(region)):
            raise BadRequest(f"region_id: no region with id {item['region_id']}", field="region_id")
        if scope is not None and not scope.admits(region):
            raise Forbidden(f"region_id: you may not write data for region {region['id']}", field="region_id")
        if campaign is None or (offices is not None and campaign.get("office_id") not in offices):
            raise BadRequest(f"campaign_id: no campaign with id {item['campaign_id']}", field="campaign_id")
        if item["indicator_id"] not in indicators:
            raise BadRequest(f"indicator_id: no indicator with id {item['indicator_id']}", field="indicator_id")
        if writable is not None and item["indicator_id"] not in writable:
            raise Forbidden(f"indicator_id: none of your groups may write indicator {item['indicator_id']}",
                            field="indicator_id")
        if item.get("document_id") and item["document_id"] not in documents:
            raise BadRequest(f"document_id: no document with id {item['document_id']}", field="document_id")
    stamp = now_iso()
    by_bucket: dict[str, list[dict[str, Any]]] = {}
    templates: dict[str, Callable[[], dict[str, Any]]] = {}
    for item in items:
        region = regions[item["region_id"]]
        key = bucket_id(item["campaign_id"], region["id"])
        by_bucket.setdefault(key, []).append(item)
        templates[key] = (lambda c=item["campaign_id"], r=region["id"]: new_bucket(c, r))

    created: dict[str, bool] = {}

    def editor(key: str) -> Callable[[dict[str, Any]], None]:
        def edit(doc: dict[str, Any]) -> None:
            # Re-run on a fresh doc after a conflict, so the flag is set anew each time, never added to.
            new = False
            for item in by_bucket[key]:
                stored = (doc.get("values") or {}).get(str(item["region_id"]), {})
                new = new or (item["value"] is not None and str(item["indicator_id"]) not in stored)
                change = {"by": who.user_id, "at": stamp}
                if item.get("document_id"):
                    change["document_id"] = item["document_id"]
                set_value(doc, regions[item["region_id"]], item["indicator_id"], item["value"], change)
            created[key] = new
        return edit

    await modify(ctx.db, {key: editor(key) for key in by_bucket}, templates)
    stored = [{"region_id": i["region_id"], "campaign_id": i["campaign_id"], "indicator_id": i["indicator_id"],
               "value": i["value"], "changed_by_id": who.user_id, "updated_at": stamp} for i in items]
    return Entered(stored, any(created.values()))


async def repair_region(db: Database, region: Mapping[str, Any]) -> None:
    """After a region moved: new paths for its subtree, in the region docs and in the value buckets.

    Idempotent: running it again (posting the same ``parent_region_id``)
    finishes a move that was interrupted.
    """
    region_id = region["id"]
    base = list(region["path"])
    new_paths: dict[str, list[int]] = {str(region_id): base}
    query = Query("region")
    query.extra.append({"path": {"$elemMatch": {"$eq": region_id}}})
    async for docs in batches(db, query, batch=500):
        updates = []
        for doc in docs:
            old = doc.get("path") or []
            path = base + old[old.index(region_id) + 1:] if region_id in old else base
            new_paths[str(doc["id"])] = path
            if doc["id"] != region_id and (old != path or doc.get("depth") != len(path) - 1):
                updates.append({**doc, "path": path, "depth": len(path) - 1})
        if updates:
            failed = [r["id"] for r in await db.bulk_docs(updates) if r.get("error")]
            if failed:
                raise Conflict(f"regions {failed} changed while moving; post the move again to finish it")
    bucket_ids = set()
    async for row in db.iter_view(DDOC, "buckets_by_region", startkey=region_id, endkey=region_id):
        bucket_ids.add(row["id"])

    def repath(doc: dict[str, Any]) -> None:
        paths = doc.setdefault("paths", {})
        for key in paths:
            if key in new_paths:
                paths[key] = list(new_paths[key])

    await modify(db, {bucket: repath for bucket in bucket_ids}, {})
