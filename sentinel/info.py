"""Info docs: per document, which transitions ran at which revision.

They live in the sentinel database as ``<doc id>-info`` (CHT's naming;
other feeds than medic prefix the id with their namespace) with
``transitions: {name: {last_rev, seq, ok, run_date, attempts, next_retry}}``.
A transition is not run again on a revision it already handled.
"""

from __future__ import annotations

from typing import Any

from api.couch import Database

MAX_ATTEMPTS = 5
RETRY_BASE_MS = 60_000  # first retry after a minute, then 2, 4, 8... minutes


def info_id(doc_id: str, namespace: str = "") -> str:
    return f"{namespace}{doc_id}-info"


def new_info(doc_id: str, namespace: str = "") -> dict[str, Any]:
    return {"_id": info_id(doc_id, namespace), "type": "info", "doc_id": doc_id, "transitions": {}}


async def load(db: Database, doc_ids: list[str], namespace: str = "") -> dict[str, dict[str, Any]]:
    """Info docs for these docs (new, unsaved ones where there is none), in one request."""
    found = await db.get_many(info_id(d, namespace) for d in doc_ids)
    return {d: found.get(info_id(d, namespace)) or new_info(d, namespace) for d in doc_ids}


def has_run_on(info: dict[str, Any], name: str, rev: str) -> bool:
    record = info.get("transitions", {}).get(name)
    return bool(record) and record.get("last_rev") == rev


def has_succeeded(info: dict[str, Any], name: str) -> bool:
    """The transition ran successfully on some revision of the doc."""
    record = info.get("transitions", {}).get(name)
    return bool(record) and record.get("ok") is True


def record(info: dict[str, Any], name: str, *, rev: str, seq: Any, ok: bool, now_ms: int,
           error: str | None = None) -> None:
    """Note a run; a failed one is scheduled for a bounded number of retries with backoff."""
    previous = info.setdefault("transitions", {}).get(name) or {}
    entry: dict[str, Any] = {"last_rev": rev, "seq": seq, "ok": ok, "run_date": now_ms}
    if error:
        entry["error"] = error
    if not ok:
        attempts = previous.get("attempts", 0) + 1 if not previous.get("ok", True) else 1
        entry["attempts"] = attempts
        if attempts < MAX_ATTEMPTS:
            entry["next_retry"] = now_ms + RETRY_BASE_MS * 2 ** (attempts - 1)
    info["transitions"][name] = entry
