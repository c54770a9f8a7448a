"""Reads for offline users, answered from their visible set: ``_all_docs``, ``_bulk_get`` and ``_revs_diff``;
any doc outside it is "missing", exactly as if it did not exist."""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode

from api import jsonparse
from api.cht import visibility
from api.couch import Database
from api.errors import BadRequest

from .visible_set import VisibleSet, previously_visible


def json_param(query: Mapping[str, str], body: Mapping[str, Any], name: str) -> Any:
    if name in body:
        return body[name]
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return jsonparse.loads(raw)
    except ValueError:
        raise BadRequest(f"{name} must be JSON", field=name) from None


def flag(query: Mapping[str, str], body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, query.get(name))
    return value is True or value == "true"


async def all_docs(db: Database, visible: VisibleSet, query: Mapping[str, str],
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """``_all_docs`` over the visible set: rows for visible ids, ``not_found`` for any other key."""
    options = {k: v for k, v in (("include_docs", flag(query, body, "include_docs")),
                                 ("conflicts", flag(query, body, "conflicts"))) if v}
    keys = json_param(query, body, "keys")
    if keys is not None:
        if not isinstance(keys, list):
            raise BadRequest("keys must be an array", field="keys")
        wanted = [k for k in keys if isinstance(k, str) and k in visible]
        found = {row["key"]: row for row in (await db.all_docs(wanted, **options))["rows"]} if wanted else {}
        rows = [found.get(k) or {"key": k, "error": "not_found"} for k in keys]
        return {"total_rows": len(visible.ids), "offset": 0, "rows": rows}
    ids = sorted(visible.ids, reverse=flag(query, body, "descending"))
    start = json_param(query, body, "startkey") or json_param(query, body, "start_key")
    end = json_param(query, body, "endkey") or json_param(query, body, "end_key")
    inclusive = body.get("inclusive_end", query.get("inclusive_end", "true")) not in (False, "false")
    descending = flag(query, body, "descending")
    for name, key in (("startkey", start), ("endkey", end)):
        if key is not None and not isinstance(key, str):
            raise BadRequest(f"{name} must be a document id (a JSON string)", field=name)
    if start is not None:
        ids = [i for i in ids if (i <= start if descending else i >= start)]
    if end is not None:
        ids = [i for i in ids if (i > end if descending else i < end) or (inclusive and i == end)]
    skip = _count(body.get("skip", query.get("skip")), "skip") or 0
    limit = _count(body.get("limit", query.get("limit")), "limit")
    page = ids[skip:] if limit is None else ids[skip:skip + limit]
    rows = (await db.all_docs(page, **options))["rows"] if page else []
    return {"total_rows": len(visible.ids), "offset": skip, "rows": [r for r in rows if "error" not in r]}


def _count(value: Any, name: str) -> int | None:
    """A non-negative integer parameter (``skip``, ``limit``), given as a number or a string of digits."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise BadRequest(f"{name} must be a non-negative integer", field=name)


def _missing(doc_id: str, rev: Any) -> dict[str, Any]:
    return {"id": doc_id, "docs": [{"error": {"id": doc_id, "rev": rev or "undefined", "error": "not_found",
                                              "reason": "missing"}}]}


async def without_latest_for_unknown_revs(db: Database, query: Mapping[str, str],
                                          wanted: Iterable[tuple[Any, Any]]) -> str | None:
    """The query string without ``latest`` when a requested rev is not in its doc's tree, else None.

    pouchdb-server (the embedded database) dies on ``latest=true`` with a rev it does not
    have. CouchDB answers a rev it does not have as missing with or without ``latest``, so
    dropping it for such a request only changes revs that exist but are not leaves (they come
    back as asked instead of as their leaf). One ``_revs_diff`` tells which revs are unknown.
    """
    pairs = [(doc_id, rev) for doc_id, rev in wanted if rev is not None]
    if "latest" not in query or not pairs:
        return None
    if all(isinstance(doc_id, str) and isinstance(rev, str) for doc_id, rev in pairs):
        asked: dict[str, list[str]] = {}
        for doc_id, rev in pairs:
            asked.setdefault(doc_id, []).append(rev)
        _, missing, _ = await db.couch.request("POST", db.path + "/_revs_diff", json_body=asked)
        if not any(missing.values()):
            return None
    return urlencode([(k, v) for k, v in query.items() if k != "latest"])


async def bulk_get(db: Database, visible: VisibleSet, query: Mapping[str, str],
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """``_bulk_get`` of visible docs; other ids are "missing", except the tombstones of docs the
    user could see before they were deleted (the feed announced those deletions)."""
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in docs):
        raise BadRequest("docs must be an array of {id, rev}", field="docs")
    answers: dict[int, dict[str, Any]] = {}
    if docs:
        query_string = await without_latest_for_unknown_revs(db, query, ((d["id"], d.get("rev")) for d in docs))
        params = dict(query) if query_string is None else dict(parse_qsl(query_string))
        _, answer, _ = await db.couch.request("POST", db.path + "/_bulk_get", params=params,
                                              json_body={"docs": docs})
        by_id = {r.get("id"): r for r in answer.get("results", [])}  # pouchdb-server collapses duplicates
        for index, request_doc in enumerate(docs):
            result = by_id.get(request_doc["id"])
            if result is None:
                continue
            if request_doc["id"] in visible:
                answers[index] = result
            else:
                tombstones = await _visible_tombstones(db, visible.scope, result)
                if tombstones:
                    answers[index] = {"id": request_doc["id"], "docs": tombstones}
    return {"results": [answers.get(i) or _missing(d["id"], d.get("rev")) for i, d in enumerate(docs)]}


async def _visible_tombstones(db: Database, scope: visibility.Scope, result: Mapping[str, Any]) -> list[Any]:
    """The deletion revisions in a ``_bulk_get`` result that the user may receive, bodies stripped."""
    kept = []
    for entry in result.get("docs", []):
        doc = entry.get("ok")
        if not isinstance(doc, dict) or not doc.get("_deleted"):
            continue
        change = {"id": doc["_id"], "changes": [{"rev": doc["_rev"]}]}
        if await previously_visible(db, scope, change):
            stripped = {k: doc[k] for k in ("_id", "_rev", "_deleted", "_revisions") if k in doc}
            kept.append({"ok": stripped})
    return kept


async def revs_diff(db: Database, visible: VisibleSet, body: Mapping[str, Any]) -> dict[str, Any]:
    """Visible docs as CouchDB answers; any other id as if the server had never seen it."""
    if not all(isinstance(revs, list) for revs in body.values()):
        raise BadRequest("each id must map to an array of revisions", field="body")
    known = {doc_id: revs for doc_id, revs in body.items() if doc_id in visible}
    answer: dict[str, Any] = {}
    if known:
        _, answer, _ = await db.couch.request("POST", db.path + "/_revs_diff", json_body=known)
    for doc_id, revs in body.items():
        if doc_id not in visible:
            answer[doc_id] = {"missing": revs}
    return answer
