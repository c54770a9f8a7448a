"""Deleting many docs in batches of 100, one batch at a time, for a streamed reply.

Each batch is fetched with one ``_all_docs?keys`` and deleted with one
``_bulk_docs`` of the docs marked ``_deleted`` (bodies kept, as CHT does, so
whoever follows ``_changes`` still sees what was deleted). The next batch is
only sent once the previous one has returned.

What may be deleted: reports with ``can_delete_reports``, contacts with
``can_delete_contacts``, other docs by admins only; design docs and
configuration docs (settings, forms, translations, ...) never through here.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Mapping

from api.auth import Principal
from api.cht import contact_types
from api.couch import Database
from api.permissions import has_permission

BATCH_SIZE = 100
CONFIG_IDS = frozenset({"settings", "resources", "branding", "partners", "privacy-policies", "zscore-charts",
                        "service-worker-meta"})
CONFIG_TYPES = frozenset({"form", "translations"})


def refusal(doc: Mapping[str, Any], principal: Principal, settings: Mapping[str, Any]) -> str | None:
    """Why this caller may not delete this doc, or None."""
    doc_id = doc.get("_id", "")
    if doc_id.startswith("_design/") or doc_id in CONFIG_IDS or doc_id.startswith("messages-") or \
            doc.get("type") in CONFIG_TYPES:
        return "configuration documents cannot be deleted here"
    if doc.get("type") == "data_record":
        permission = "can_delete_reports"
    elif doc.get("type") in contact_types.CONTACT_DOC_TYPES:
        permission = "can_delete_contacts"
    else:
        return None if principal.is_admin else "only admins may delete this kind of document"
    return None if has_permission(principal, permission, settings) else f"{permission} required"


async def delete_batches(db: Database, ids: list[str], principal: Principal,
                         settings: Mapping[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """One list of results per batch, in request order: ``{ok, id, rev}`` or ``{id, error, reason}``."""
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start:start + BATCH_SIZE]
        found = await db.get_many(chunk)
        outcome: dict[str, dict[str, Any]] = {}
        doomed: list[dict[str, Any]] = []
        for doc_id in dict.fromkeys(chunk):
            doc = found.get(doc_id)
            if doc is None:
                outcome[doc_id] = {"id": doc_id, "error": "not_found", "reason": "missing"}
                continue
            reason = refusal(doc, principal, settings)
            if reason:
                outcome[doc_id] = {"id": doc_id, "error": "forbidden", "reason": reason}
                continue
            doomed.append({**doc, "_deleted": True})
        for doc, result in zip(doomed, await db.bulk_docs(doomed)):
            if result.get("error"):
                outcome[doc["_id"]] = {"id": doc["_id"], "error": result["error"], "reason": result.get("reason", "")}
            else:
                outcome[doc["_id"]] = {"ok": True, "id": doc["_id"], "rev": result["rev"]}
        yield [outcome[doc_id] for doc_id in chunk]
