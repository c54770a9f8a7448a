"""The nightly copy of feedback and telemetry from each user's meta database into ``medic-users-meta``.

As CHT's sentinel does at 02:00 (server local time): from every
``<medic>-user-<name>-meta`` database, the docs whose id starts with ``feedback-``
or ``telemetry-`` (deletions left out) are copied, with their revisions, into
``medic-users-meta``, where the feedback and user-devices exports and
monitoring read them. What was copied, and is confirmed in the target, is
then purged from the user's database with CouchDB's ``_purge``, so it stays
small and devices do not pull it back down. A server without ``_purge``
(pouchdb-server answers 400) is detected on the first attempt and the docs are
left in place, said once per run in the log; a checkpoint in each user database
(``_local/jamii-users-meta``) keeps the copy exact and incremental either way. The
user databases' design doc is brought up to date on the way (CHT does it with
migrations).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from api.cht.user_meta.names import is_meta_db
from api.cht.user_meta.store import ensure_ddoc
from api.config import Config
from api.couch import Couch, Database

from .reminders import occurrence

log = logging.getLogger("jamii.sentinel.users_meta")

PREFIXES = ("feedback-", "telemetry-")  # CHT 4.22's; 5.2 adds interaction-
CHECKPOINT = "jamii-users-meta"
STATE = "users-meta"  # _local/users-meta in the sentinel database: {occurrence}
SCHEDULE = "0 2 * * *"
PAGE = 500
PURGE_BATCH = 100  # CouchDB's default purge_max_document_id_number


@dataclass
class Copied:
    databases: int = 0
    copied: int = 0
    purged: int = 0
    purge_supported: bool | None = None  # None: never tried
    skipped: list[str] = field(default_factory=list)


async def scheduled(couch: Couch, config: Config, *, now: dt.datetime | None = None) -> Copied | None:
    """The job: a run when 02:00 has come round since the last one; None when not due."""
    now = now or dt.datetime.now(dt.timezone.utc)
    when = occurrence(SCHEDULE, now)
    sentinel = couch.db(config.db_sentinel)
    handled = (await sentinel.get_local(STATE) or {}).get("occurrence")
    if when is None or (isinstance(handled, int) and int(when.timestamp() * 1000) <= handled):
        return None
    await sentinel.put_local(STATE, {"occurrence": int(when.timestamp() * 1000)})
    return await run(couch, config)


async def run(couch: Couch, config: Config) -> Copied:
    """Copy (and purge) from every user meta database."""
    done = Copied()
    target = couch.db(config.db_users_meta)
    for name in await couch.all_dbs():
        if not is_meta_db(config.db_medic, name):
            continue
        await _copy(couch.db(name), target, done)
        done.databases += 1
    log.info("users-meta: %d doc(s) copied from %d user meta database(s), %d purged there",
             done.copied, done.databases, done.purged)
    return done


async def _copy(source: Database, target: Database, done: Copied) -> None:
    await ensure_ddoc(source)
    since: Any = (await source.get_local(CHECKPOINT) or {}).get("seq", 0)
    while True:
        page = await source.changes(since=since, limit=PAGE)
        results = page.get("results", [])
        wanted = {c["id"]: c["changes"][0]["rev"] for c in results
                  if not c.get("deleted") and c["id"].startswith(PREFIXES)}
        if wanted:
            docs = await _with_history(source, wanted)
            if docs:
                errors = await target.bulk_docs(docs, new_edits=False)
                if errors:
                    log.warning("users-meta: %d doc(s) of %s not copied: %s", len(errors), source.name, errors[0])
                copied = await _present(target, {d["_id"]: d["_rev"] for d in docs})
                done.copied += len(copied)
                await _purge(source, copied, done)
        since = page.get("last_seq", since)
        await source.put_local(CHECKPOINT, {"seq": since})
        if len(results) < PAGE:
            return


async def _with_history(source: Database, wanted: dict[str, str]) -> list[dict[str, Any]]:
    """The docs at these revs with their revision history (``_revisions``), as replication copies them."""
    _, body, _ = await source.couch.request("POST", source.path + "/_bulk_get", params={"revs": True},
                                            json_body={"docs": [{"id": i, "rev": r} for i, r in wanted.items()]})
    docs = []
    for result in body.get("results", []):
        for entry in result.get("docs", []):
            doc = entry.get("ok") if isinstance(entry, dict) else None
            if isinstance(doc, dict) and doc.get("_id") in wanted and not doc.get("_deleted"):
                docs.append(doc)
    return docs


async def _present(target: Database, revs: dict[str, str]) -> dict[str, str]:
    """The (id, rev) pairs the target now holds."""
    if not revs:
        return {}
    _, missing, _ = await target.couch.request("POST", target.path + "/_revs_diff",
                                               json_body={i: [r] for i, r in revs.items()})
    return {i: r for i, r in revs.items() if i not in (missing or {})}


async def _purge(source: Database, revs: dict[str, str], done: Copied) -> None:
    """CouchDB's ``_purge`` of what was copied, when the server has it (found out once per run)."""
    items = list(revs.items())
    for start in range(0, len(items), PURGE_BATCH):
        if done.purge_supported is False:
            return
        batch = dict(items[start:start + PURGE_BATCH])
        status, body, _ = await source.couch.request("POST", source.path + "/_purge",
                                                     json_body={i: [r] for i, r in batch.items()},
                                                     raise_errors=False)
        if status in (200, 201, 202) and isinstance(body, dict) and isinstance(body.get("purged"), dict):
            done.purge_supported = True
            done.purged += sum(1 for revs_purged in body["purged"].values() if revs_purged)
        elif status >= 500:
            log.warning("users-meta: _purge of %s failed (%s); the copied docs stay for now", source.name, status)
            return
        else:
            done.purge_supported = False
            log.info("users-meta: this server has no _purge (it answered %s %s): copied docs stay in the user "
                     "meta databases", status, body.get("error", "") if isinstance(body, dict) else "")
            return
