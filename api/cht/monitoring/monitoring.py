"""Figures for ``/api/v{1,2}/monitoring``, with cht-core's fields and meanings (``services/monitoring.js``).

``couchdb`` has cht-core's four keys (``medic``, ``sentinel``, ``usersmeta``, ``users``) and, beside them,
Jamii's other databases under their own names. The message figures come from views with cht-core's maps
(``medic/message_queue``, ``medic/messages_by_last_updated_state``), ``replication_failure`` from the failure
logs of ``replication_failures``. Jamii's extra figure: ``version.python``.

Each metric is computed on its own; one that fails is reported as ``-1``
(numbers) or ``""`` (strings), as cht-core does, and the rest still answer.
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
from typing import Any, Awaitable, Callable

from api import checkpoint
from api.cht.messages import FINAL_GROUP, MUTED_GROUP, PENDING_GROUP
from api.config import Config
from api.couch import Couch, Database
from api.ddocs import ddoc_names
from api.deploy_info import CHT_VERSION

from .replication_failures import users_with_failures

log = logging.getLogger("jamii.monitoring")


async def safe(what: str, fn: Callable[[], Awaitable[Any]], fallback: Any) -> Any:
    try:
        return await fn()
    except Exception as exc:  # noqa: BLE001 - one failed metric must not fail the endpoint
        log.warning("monitoring: %s failed: %s", what, exc)
        return fallback


def seq_number(seq: Any) -> int:
    """A seq as the number monitoring shows (CouchDB 3's ``"12-g1A..."`` -> 12; -1 when it has none)."""
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq
    head = str(seq).split("-", 1)[0] if seq else ""
    return int(head) if head.isdigit() else -1


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) else -1


# cht-core's monitoring keys -> Jamii's logical database names
CHT_DATABASES = {"medic": "medic", "sentinel": "medic-sentinel", "usersmeta": "medic-users-meta", "users": "_users"}
# The design docs cht-core reports for its four databases; those Jamii has (no medic-admin, medic-sms, users)
# are read, the others would only fail.
VIEW_INDEXES = {"medic": ("medic", "medic-admin", "medic-client", "medic-conflicts", "medic-sms"),
                "medic-sentinel": ("sentinel",), "medic-users-meta": ("users-meta",), "_users": ("users",)}


async def database_metrics(db: Database, logical_name: str, config: Config) -> dict[str, Any]:
    """One database as cht-core describes it; ``view_indexes`` lists the design docs whose ``_info`` answered."""
    installed = ddoc_names(logical_name, config.ddocs_dir)
    names = [n for n in VIEW_INDEXES[logical_name] if n in installed] if logical_name in VIEW_INDEXES else installed
    info, indexes = await asyncio.gather(db.info(), asyncio.gather(*(
        safe(f"{db.name}/_design/{name}/_info", lambda n=name: db.couch.get_json(f"{db.path}/_design/{n}/_info"),
             None) for name in names)))
    view_indexes, sizes_seen = [], [info.get("sizes")]
    for name, index in zip(names, indexes):
        if not isinstance(index, dict):
            continue
        view_index = index.get("view_index") if isinstance(index.get("view_index"), dict) else {}
        # pouchdb-server answers {"view_index": "Not implemented."}: sizes unknown (-1).
        index_sizes = view_index.get("sizes") if isinstance(view_index.get("sizes"), dict) else {}
        sizes_seen.append(index_sizes)
        view_indexes.append({"name": index.get("name") or name,
                             "sizes": {"active": _number(index_sizes.get("active")),
                                       "file": _number(index_sizes.get("file"))}})
    sizes = info.get("sizes") if isinstance(info.get("sizes"), dict) else {}
    return {
        "name": info.get("db_name") or "",
        "update_sequence": seq_number(info.get("update_seq")),
        "doc_count": _number(info.get("doc_count")),
        "doc_del_count": _number(info.get("doc_del_count")),
        "fragmentation": fragmentation(sizes_seen),
        "sizes": {"active": _number(sizes.get("active")), "file": _number(sizes.get("file"))},
        "view_indexes": view_indexes,
        "nouveau_indexes": [],  # no Nouveau in Jamii: cht-core lists none either when it has no such index
    }


def fragmentation(all_sizes: list[Any]) -> Any:
    """Σ file / Σ active over the database and its view indexes that report an active size; -1 if none does."""
    active = [s for s in all_sizes if isinstance(s, dict) and isinstance(s.get("active"), (int, float))
              and s["active"] > 0]
    if not active:
        return -1
    return sum(_number(s.get("file")) for s in active) / sum(s["active"] for s in active)


async def sentinel_backlog(couch: Couch, config: Config) -> int:
    since = await checkpoint.read(couch.db(config.db_sentinel), checkpoint.SENTINEL)
    return await couch.db(config.db_medic).pending_changes(since)


QUEUE_KEYS = ("due", "scheduled", "muted", "failed", "delivered")
LAST_HUNDRED = {"pending": PENDING_GROUP, "final": FINAL_GROUP, "muted": MUTED_GROUP}


async def count(db: Database, ddoc: str, view: str, **params: Any) -> int:
    """The ``_count`` of a view (over a key range when given)."""
    rows = (await db.view(ddoc, view, reduce=True, **params))["rows"]
    return rows[0]["value"] if rows else 0


async def queue_totals(medic: Database) -> dict[str, int]:
    """cht-core's ``outgoing.state`` / ``total``: messages per ``message_queue`` key."""
    rows = (await medic.view("medic", "message_queue", reduce=True, group_level=1))["rows"]
    result = dict.fromkeys(QUEUE_KEYS, 0)
    result.update({row["key"][0]: row["value"] for row in rows})
    return result


async def queue_since(medic: Database, now: dt.datetime) -> dict[str, int]:
    """cht-core's ``seven_days``: per key, the messages due from the start of the day a week ago until now."""
    start = int((now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=7)).timestamp() * 1000)
    end = int(now.timestamp() * 1000)

    async def one(key: str) -> int:
        return await safe(f"seven days {key}", lambda: count(medic, "medic", "message_queue", startkey=[key, start],
                                                             endkey=[key, end]), -1)
    return dict(zip(QUEUE_KEYS, await asyncio.gather(*(one(k) for k in QUEUE_KEYS))))


async def last_hundred(medic: Database, now: dt.datetime) -> dict[str, dict[str, int]]:
    """cht-core's ``last_hundred``: states of the 100 tasks of each group updated last (other states found are
    added, e.g. ``unrecognised`` under pending)."""
    end = int(now.timestamp() * 1000)

    async def group(name: str, states: tuple[str, ...]) -> dict[str, int]:
        async def read() -> dict[str, int]:
            rows = (await medic.view("medic", "messages_by_last_updated_state", descending=True,
                                     startkey=[name, end], endkey=[name, 0], limit=100))["rows"]
            counts = dict.fromkeys(states, 0)
            for row in rows:
                counts[row["key"][2]] = counts.get(row["key"][2], 0) + 1
            return counts
        return await safe(f"last hundred {name}", read, dict.fromkeys(states, -1))

    found = await asyncio.gather(*(group(name, states) for name, states in LAST_HUNDRED.items()))
    return dict(zip(LAST_HUNDRED, found))


async def messaging(couch: Couch, config: Config, version: int) -> dict[str, Any]:
    medic = couch.db(config.db_medic)
    totals = await safe("messages", lambda: queue_totals(medic), dict.fromkeys(QUEUE_KEYS, -1))
    if version == 1:
        return {"outgoing": {"state": totals}}
    now = dt.datetime.now(dt.timezone.utc)
    seven_days, hundred = await asyncio.gather(queue_since(medic, now), last_hundred(medic, now))
    return {"outgoing": {"total": totals, "seven_days": seven_days, "last_hundred": hundred}}


async def transition_counts(couch: Couch, config: Config) -> dict[tuple[str, str], int]:
    """How many docs each transition ran on, ok or failed (from the info docs)."""
    rows = (await couch.db(config.db_sentinel).view("sentinel", "transitions_by_name", reduce=True,
                                                     group=True))["rows"]
    return {(row["key"][0], row["key"][1]): row["value"] for row in rows}


async def collect(couch: Couch, config: Config, *, uptime_seconds: float, version: int = 2,
                  connected_user_interval: float = 7) -> dict[str, Any]:
    """The monitoring document of ``/api/v<version>/monitoring``."""
    def fallback() -> dict[str, Any]:
        return {"name": "", "update_sequence": -1, "doc_count": -1, "doc_del_count": -1, "fragmentation": -1,
                "sizes": {"active": -1, "file": -1}, "view_indexes": [], "nouveau_indexes": []}

    medic, logs = couch.db(config.db_medic), couch.db(config.db_logs)
    names = {key: config.databases[logical] for key, logical in CHT_DATABASES.items()}
    names.update({actual: actual for logical, actual in config.databases.items()
                  if logical not in CHT_DATABASES.values()})
    logical_of = {actual: logical for logical, actual in config.databases.items()}
    now_ms = int(time.time() * 1000)
    (server, backlog, messages, feedback, conflicts, limited, connected, failures, *metrics) = await asyncio.gather(
        safe("server info", couch.info, {}),
        safe("sentinel backlog", lambda: sentinel_backlog(couch, config), -1),
        messaging(couch, config, version),
        safe("feedback", lambda: count(couch.db(config.db_users_meta), "users-meta", "feedback_by_date"), -1),
        safe("conflicts", lambda: count(medic, "medic-conflicts", "conflicts"), -1),
        safe("replication limit", lambda: count(logs, "logs", "replication_limit"), -1),
        safe("connected users", lambda: count(logs, "logs", "connected_users", startkey=int(
            now_ms - connected_user_interval * 86400000)), -1),
        safe("replication failures", lambda: users_with_failures(logs, connected_user_interval), -1),
        *(safe(f"database {actual}", lambda d=couch.db(actual), n=logical_of[actual]: database_metrics(d, n, config),
               fallback()) for actual in names.values()))
    result = {
        "version": {
            "app": CHT_VERSION,
            "node": "",
            "couchdb": server.get("version", "") if isinstance(server, dict) else "",
            "python": platform.python_version(),
        },
        "couchdb": dict(zip(names, metrics)),
        "date": {"current": now_ms, "uptime": uptime_seconds},
        "sentinel": {"backlog": backlog},
        "messaging": messages,
        # Jamii has no outbound push: nothing ever waits for it.
        "outbound_push": {"backlog": 0},
        "feedback": {"count": feedback},
        "conflict": {"count": conflicts},
        "replication_limit": {"count": limited},
        "connected_users": {"count": connected},
    }
    if version == 2:
        result["replication_failure"] = {"count": failures}
    return result
