"""The retry job: transitions that failed run again, with backoff, a bounded number of times."""

from __future__ import annotations

import time
from collections import defaultdict

from api.couch import Database

from .engine import Engine
from .info import info_id


async def retry_due(engine: Engine, sentinel: Database, limit: int = 500) -> int:
    """Re-run the failed transitions whose retry time has come; returns how many docs were tried."""
    rows = (await sentinel.view("sentinel", "retries_due", endkey=int(time.time() * 1000), limit=limit))["rows"]
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        value = row["value"]
        if row["id"] == info_id(value["doc_id"], engine.namespace):  # this engine's feed only
            wanted[value["doc_id"]].add(value["transition"])
    if not wanted:
        return 0
    docs = await engine.db.get_many(wanted)
    for doc_id, names in wanted.items():
        if doc_id in docs:
            await engine.run_docs([(docs[doc_id], None)], only=names, retry=True)
    return len(wanted)
