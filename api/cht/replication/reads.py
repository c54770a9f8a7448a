"""Reads for offline users, answered from their visible set: ``_all_docs``, ``_bulk_get`` and ``_revs_diff``;
any doc outside it is "missing", exactly as if it did not exist."""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from api import jsonparse
from api.cht import visibility
from api.couch import Database
from api.errors import BadRequest

from .visible_set import VisibleSet, judged_here, previously_visible


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


async def unknown_revs(db: Database, pairs: Iterable[tuple[Any, Any]]) -> set[tuple[str, str]]:
    """The (id, rev) pairs whose rev is not in the doc's tree (one ``_revs_diff``)."""
    asked: dict[str, list[str]] = {}
    for doc_id, rev in pairs:
        if isinstance(doc_id, str) and isinstance(rev, str):
            asked.setdefault(doc_id, []).append(rev)
    if not asked:
        return set()
    _, missing, _ = await db.couch.request("POST", db.path + "/_revs_diff", json_body=asked)
    return {(doc_id, rev) for doc_id, entry in missing.items() if isinstance(entry, dict)
            for rev in entry.get("missing") or ()}


def query_without(query: Mapping[str, str], *names: str) -> str:
    return urlencode([(k, v) for k, v in query.items() if k not in names])


async def doc_query(db: Database, doc_id: str, query: Mapping[str, str], open_revs: list[str]) -> str | None:
    """The query string a doc GET is passed on with (None: the client's own).

    ``latest=true`` with a rev the doc does not have kills pouchdb-server (the embedded database). CouchDB
    answers it as documented, and the API answers the same without sending it: with ``rev``, CouchDB
    ignores the rev and opens the winning revision ("latest: forces retrieving latest leaf revision, no
    matter what rev was requested"), so the rev is dropped; with ``open_revs``, an unknown rev comes back
    as ``{"missing": rev}`` with or without ``latest``, so ``latest`` is dropped.
    """
    if "latest" not in query:
        return None
    if open_revs:
        if await unknown_revs(db, ((doc_id, rev) for rev in open_revs)):
            return query_without(query, "latest")
    elif query.get("rev") and await unknown_revs(db, [(doc_id, query["rev"])]):
        return query_without(query, "rev", "latest")
    return None


async def bulk_get_results(db: Database, query: Mapping[str, str], docs: list[dict[str, Any]],
                           unknown: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """``_bulk_get`` results, one per requested doc, in order. The ``unknown`` (id, rev) pairs are answered
    here as CouchDB answers a rev it does not have (``{"error": {..., "error": "not_found"}}``) and are not
    sent: pouchdb-server dies on ``latest=true`` with such a rev. Results are matched by id
    (pouchdb-server collapses a doc asked for twice into one result)."""
    asked = [d for d in docs if (d["id"], d.get("rev")) not in unknown]
    by_id: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    last: dict[str, dict[str, Any]] = {}
    if asked:
        _, answer, _ = await db.couch.request("POST", db.path + "/_bulk_get", params=dict(query),
                                              json_body={"docs": asked})
        for result in answer.get("results", []):
            by_id[result.get("id")].append(result)
    results = []
    for doc in docs:
        if (doc["id"], doc.get("rev")) in unknown:
            results.append(_missing(doc["id"], doc.get("rev")))
            continue
        queue = by_id.get(doc["id"])
        if queue:
            last[doc["id"]] = queue.popleft()
        results.append(last.get(doc["id"]) or _missing(doc["id"], doc.get("rev")))
    return results


async def bulk_get(db: Database, visible: VisibleSet, query: Mapping[str, str],
                   body: Mapping[str, Any]) -> dict[str, Any]:
    """``_bulk_get`` of visible docs; other ids are "missing", except the tombstones of docs the
    user could see before they were deleted (the feed announced those deletions)."""
    docs = body.get("docs")
    if not isinstance(docs, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str) for d in docs):
        raise BadRequest("docs must be an array of {id, rev}", field="docs")
    unknown = await unknown_revs(db, ((d["id"], d.get("rev")) for d in docs)) if "latest" in query else set()
    results = await bulk_get_results(db, query, docs, unknown) if docs else []
    # a doc another API process's feed sent the device, which this process's set has not caught up with
    seen = await judged_here(db, visible, [e["ok"] for r in results for e in r.get("docs", [])
                                           if isinstance(e.get("ok"), dict) and not e["ok"].get("_deleted")])
    answers: list[dict[str, Any]] = []
    for request_doc, result in zip(docs, results):
        if request_doc["id"] in visible or request_doc["id"] in seen:
            answers.append(result)
            continue
        tombstones = await _visible_tombstones(db, visible.scope, result)
        answers.append({"id": request_doc["id"], "docs": tombstones} if tombstones
                       else _missing(request_doc["id"], request_doc.get("rev")))
    return {"results": answers}


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
