"""Writes by offline users: each doc is checked against the visible set and the write rules; refused docs
come back as ``{"id", "error": "forbidden"}`` in request order while the others are written."""

from __future__ import annotations

from typing import Any, Mapping

from api.auth import Principal
from api.couch import CouchError, Database, new_id
from api.errors import BadRequest, Forbidden, InvalidDocument, NotFound

from . import write_rules
from .visible_set import ScopeCache, judge, own_ids

SPECIAL_MEMBERS = frozenset({"_id", "_rev", "_deleted", "_attachments", "_revisions", "_revs_info", "_conflicts",
                             "_deleted_conflicts", "_local_seq"})


async def write_docs(db: Database, principal: Principal, settings: Mapping[str, Any],
                     docs: list[dict[str, Any]], *, new_edits: bool,
                     scopes: ScopeCache | None) -> list[dict[str, Any]]:
    """Write the docs this user may write; the others come back ``forbidden``, in request order.

    ``scopes`` is given for offline users, whose writes must stay inside what they may see.
    """
    for doc in docs:
        if "_id" not in doc:
            doc["_id"] = new_id()
        elif not isinstance(doc["_id"], str) or not doc["_id"]:
            raise BadRequest("_id must be a non-empty string", field="_id")
        special = next((k for k in doc if k.startswith("_") and k not in SPECIAL_MEMBERS), None)
        if special is not None:  # CouchDB's 400 doc_validation (pouchdb-server answers 500)
            raise InvalidDocument(f"Bad special document member: {special}", field=special)
    stored = await db.get_many(d["_id"] for d in docs)
    refused: dict[int, str] = {}
    visible = await scopes.get(principal, settings) if scopes is not None else None
    kept = [i for i, d in enumerate(docs) if not d.get("_deleted")]
    verdicts = dict(zip(kept, await judge(db, visible.scope, [docs[i] for i in kept]))) \
        if visible is not None else {}
    for index, doc in enumerate(docs):
        old = stored.get(doc["_id"])
        reason = write_rules.refusal(principal, settings, doc["_id"], doc, old)
        if reason is None and visible is not None and doc["_id"] not in own_ids(principal):
            if old is not None and not visible.in_area(doc["_id"]):
                reason = "You may not change a document outside your place"
            elif not doc.get("_deleted") and not verdicts[index]:
                reason = "The document would be outside your place"
        if reason is not None:
            refused[index] = reason
    allowed = [d for i, d in enumerate(docs) if i not in refused]
    try:
        written = await db.bulk_docs(allowed, new_edits=new_edits) if allowed else []
    except CouchError as exc:
        if exc.couch_status != 400:
            raise
        # Only what the client sent makes CouchDB refuse a whole _bulk_docs (a malformed _rev, _id...).
        raise BadRequest(exc.reason or exc.error, field="_rev" if "rev" in exc.reason else None) from None
    by_id = {r.get("id"): r for r in written}
    results = []
    for index, doc in enumerate(docs):
        if index in refused:
            results.append({"id": doc["_id"], "error": "forbidden", "reason": refused[index]})
        elif doc["_id"] in by_id:
            results.append(by_id[doc["_id"]])
        elif new_edits:
            results.append({"id": doc["_id"], "error": "unknown_error", "reason": "no result from CouchDB"})
    if not new_edits:  # CouchDB answers replicated writes with their errors only
        return [r for r in results if "error" in r]
    return results


async def check_attachment_write(db: Database, scopes: ScopeCache | None, principal: Principal,
                                 settings: Mapping[str, Any], doc_id: str) -> None:
    old = await db.get_or_none(doc_id)
    reason = write_rules.refusal(principal, settings, doc_id, old or {}, old)
    if reason is None and scopes is not None and old is not None and doc_id not in own_ids(principal):
        if not (await scopes.get(principal, settings)).in_area(doc_id):
            raise NotFound("missing")
    if reason is not None:
        raise Forbidden(reason)
