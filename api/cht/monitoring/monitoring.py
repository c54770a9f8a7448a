"""Figures for ``/api/v{1,2}/monitoring``.

Each metric is computed on its own; one that fails is reported as ``-1``
(numbers) or ``""`` (strings), as the spec says, and the rest still answer.
The ~40 CouchDB reads are made concurrently: monitoring is looked at when the
server is busy, and one after another they queued behind the load (about
30 s per call with 200 clients in ``bench.load``, against about one round
trip's worth now).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import platform
import time
from collections import Counter
from typing import Any, Awaitable, Callable

from api import __version__, checkpoint
from api.cht.messages import FINAL_GROUP, MUTED_GROUP, PENDING_GROUP, STATES, iso
from api.config import Config
from api.couch import Couch, Database
from api.ddocs import ddoc_names

log = logging.getLogger("jamii.monitoring")


async def safe(what: str, fn: Callable[[], Awaitable[Any]], fallback: Any) -> Any:
    try:
        return await fn()
    except Exception as exc:  # noqa: BLE001 - one failed metric must not fail the endpoint
        log.warning("monitoring: %s failed: %s", what, exc)
        return fallback


def seq_number(seq: Any) -> int:
    """A seq as the number monitoring shows (CouchDB 3's ``"12-g1A..."`` -> 12); display only."""
    if isinstance(seq, int):
        return seq
    return int(str(seq).split("-", 1)[0])


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else -1


async def database_metrics(db: Database, logical_name: str, config: Config) -> dict[str, Any]:
    names = ddoc_names(logical_name, config.ddocs_dir)
    info, indexes = await asyncio.gather(db.info(), asyncio.gather(*(
        safe(f"{db.name}/_design/{name}/_info", lambda n=name: db.couch.get_json(f"{db.path}/_design/{n}/_info"), {})
        for name in names)))
    sizes = info.get("sizes") or {}
    active = _number(sizes.get("active"))
    file_size = _number(sizes.get("file", info.get("disk_size")))
    view_indexes = []
    view_active = view_file = 0
    for name, index in zip(names, indexes):
        view_index = index.get("view_index") if isinstance(index, dict) else None
        # pouchdb-server answers {"view_index": "Not implemented."}: sizes unknown (-1).
        index_sizes = view_index.get("sizes") or {} if isinstance(view_index, dict) else {}
        entry = {"name": name, "sizes": {"active": _number(index_sizes.get("active")),
                                         "file": _number(index_sizes.get("file"))}}
        view_active += max(entry["sizes"]["active"], 0)
        view_file += max(entry["sizes"]["file"], 0)
        view_indexes.append(entry)
    fragmentation: Any = -1
    if active > 0 and file_size >= 0:
        fragmentation = (file_size + view_file) / (active + view_active)
    return {
        "name": db.name,
        "update_sequence": seq_number(info["update_seq"]),
        "doc_count": _number(info.get("doc_count")),
        "doc_del_count": _number(info.get("doc_del_count")),
        "fragmentation": fragmentation,
        "sizes": {"active": active, "file": file_size},
        "view_indexes": view_indexes,
    }


async def sentinel_backlog(couch: Couch, config: Config) -> int:
    since = await checkpoint.read(couch.db(config.db_sentinel), checkpoint.SENTINEL)
    return await couch.db(config.db_medic).pending_changes(since)


# How the spec's message figures group the states.
TOTALS = {"due": PENDING_GROUP, "scheduled": ("scheduled",), "muted": MUTED_GROUP,
          "delivered": ("sent", "delivered"), "failed": ("failed",)}


async def count(db: Database, ddoc: str, view: str, **params: Any) -> int:
    """The ``_count`` of a view (over a key range when given)."""
    rows = (await db.view(ddoc, view, reduce=True, **params))["rows"]
    return rows[0]["value"] if rows else 0


async def messages_by_state(medic: Database, since: str | None = None) -> dict[str, int]:
    """Messages per state (only those due or changed since ``since``, an ISO date, if given)."""
    if since is None:
        rows = (await medic.view("medic", "messages_by_state", reduce=True, group_level=1))["rows"]
        return {row["key"][0]: row["value"] for row in rows}
    counts = await asyncio.gather(*(count(medic, "medic", "messages_by_state", startkey=[state, since],
                                          endkey=[state, {}]) for state in STATES))
    return dict(zip(STATES, counts))


def group_totals(by_state: dict[str, int]) -> dict[str, int]:
    return {name: sum(by_state.get(s, 0) for s in states) for name, states in TOTALS.items()}


async def last_hundred(medic: Database) -> dict[str, dict[str, int]]:
    rows = (await medic.view("medic", "messages_by_last_update", descending=True, limit=100))["rows"]
    seen = Counter(row["value"] for row in rows)
    return {"pending": {s: seen[s] for s in PENDING_GROUP}, "final": {s: seen[s] for s in FINAL_GROUP},
            "muted": {s: seen[s] for s in MUTED_GROUP}}


async def messaging(couch: Couch, config: Config, version: int) -> dict[str, Any]:
    medic = couch.db(config.db_medic)
    if version == 1:
        return {"outgoing": {"state": group_totals(await messages_by_state(medic))}}
    week_ago = iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7))
    totals, seven_days, hundred = await asyncio.gather(
        messages_by_state(medic), messages_by_state(medic, since=week_ago), last_hundred(medic))
    return {"outgoing": {"total": group_totals(totals), "seven_days": group_totals(seven_days),
                         "last_hundred": hundred}}


def _messaging_fallback(version: int) -> dict[str, Any]:
    totals = {name: -1 for name in TOTALS}
    if version == 1:
        return {"outgoing": {"state": totals}}
    return {"outgoing": {"total": totals, "seven_days": dict(totals),
                         "last_hundred": {"pending": {s: -1 for s in PENDING_GROUP},
                                          "final": {s: -1 for s in FINAL_GROUP},
                                          "muted": {s: -1 for s in MUTED_GROUP}}}}


async def transition_counts(couch: Couch, config: Config) -> dict[tuple[str, str], int]:
    """How many docs each transition ran on, ok or failed (from the info docs)."""
    rows = (await couch.db(config.db_sentinel).view("sentinel", "transitions_by_name", reduce=True,
                                                     group=True))["rows"]
    return {(row["key"][0], row["key"][1]): row["value"] for row in rows}


async def collect(couch: Couch, config: Config, *, uptime_seconds: float, version: int = 2,
                  connected_user_interval: int = 7) -> dict[str, Any]:
    """The monitoring document of ``/api/v<version>/monitoring``."""
    def fallback(actual: str) -> dict[str, Any]:
        return {"name": actual, "update_sequence": -1, "doc_count": -1, "doc_del_count": -1,
                "fragmentation": -1, "sizes": {"active": -1, "file": -1}, "view_indexes": []}

    medic, logs = couch.db(config.db_medic), couch.db(config.db_logs)
    (server, backlog, messages, feedback, conflicts, limited, connected, *metrics) = await asyncio.gather(
        safe("server info", couch.info, {}),
        safe("sentinel backlog", lambda: sentinel_backlog(couch, config), -1),
        safe("messaging", lambda: messaging(couch, config, version), _messaging_fallback(version)),
        safe("feedback", lambda: count(couch.db(config.db_users_meta), "users-meta", "feedback_by_date"), -1),
        safe("conflicts", lambda: count(medic, "medic-conflicts", "conflicts"), -1),
        safe("replication limit", lambda: count(logs, "logs", "replication_limit"), -1),
        safe("connected users", lambda: count(logs, "logs", "connected_users", startkey=int(
            (time.time() - connected_user_interval * 86400) * 1000)), -1),
        *(safe(f"database {actual}", lambda d=couch.db(actual), n=logical: database_metrics(d, n, config),
               fallback(actual)) for logical, actual in config.databases.items()))
    databases = dict(zip(config.databases.values(), metrics))
    return {
        "version": {
            "app": __version__,
            "node": "",
            "python": platform.python_version(),
            "couchdb": server.get("version", ""),
        },
        "couchdb": databases,
        "date": {"current": int(time.time() * 1000), "uptime": uptime_seconds},
        "sentinel": {"backlog": backlog},
        "messaging": messages,
        # Jamii has no outbound push: nothing ever waits for it.
        "outbound_push": {"backlog": 0},
        "feedback": {"count": feedback},
        "conflict": {"count": conflicts},
        "replication_limit": {"count": limited},
        "connected_users": {"count": connected},
    }
