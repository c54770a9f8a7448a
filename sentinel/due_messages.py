"""The ``due-messages`` job: scheduled messages whose time has come become ``pending``.

Runs only inside the sending window of the settings, CHT's
``schedule_morning_hours``/``schedule_morning_minutes`` (default 00:00) to
``schedule_evening_hours``/``schedule_evening_minutes`` (default 23:59), in the
server's local time; outside it, messages wait. As in CHT, a message more than
7 days overdue (the sentinel was down, or outside the window for that long) is
left ``scheduled`` rather than sent late. Each doc is written once per run at
the revision read: a doc changed meanwhile is left for the next run, and a
second run finds nothing more to move.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Mapping

from api.cht import messages
from api.couch import Database
from api.settings import SettingsStore

from .schedules import to_datetime

log = logging.getLogger("jamii.sentinel.due")

OVERDUE = dt.timedelta(days=7)
PAGE = 500


def _int(settings: Mapping[str, Any], name: str, default: int) -> int:
    try:
        return int(settings.get(name, default))
    except (TypeError, ValueError):
        return default


def within_window(settings: Mapping[str, Any], local: dt.datetime) -> bool:
    """Whether messages may be sent at this local time (CHT's ``schedule_*`` settings)."""
    start = _int(settings, "schedule_morning_hours", 0) * 60 + _int(settings, "schedule_morning_minutes", 0)
    end = _int(settings, "schedule_evening_hours", 23) * 60 + _int(settings, "schedule_evening_minutes", 59)
    minute = local.hour * 60 + local.minute
    if start <= end:
        return start <= minute <= end
    return minute >= start or minute <= end  # a window across midnight


async def move_due(db: Database, store: SettingsStore, now: dt.datetime | None = None) -> int:
    """Move due scheduled messages to ``pending``; returns how many tasks moved."""
    settings = await store.get()
    now = now or dt.datetime.now(dt.timezone.utc)
    if not within_window(settings, now.astimezone()):
        return 0
    start, end = messages.iso(now - OVERDUE), messages.iso(now)
    moved = 0
    tried: set[str] = set()
    while True:
        rows = (await db.view("medic", "messages_by_state", reduce=False, startkey=["scheduled", start],
                              endkey=["scheduled", end], limit=PAGE))["rows"]
        ids = [i for i in dict.fromkeys(row["id"] for row in rows) if i not in tried]
        if not ids:
            return moved
        tried.update(ids)
        docs = await db.get_many(ids)
        changed = []
        for doc in docs.values():
            count = 0
            for task in doc.get("scheduled_tasks") or []:
                due = to_datetime(task.get("due"))
                if task.get("state") == "scheduled" and due is not None and now - OVERDUE <= due <= now:
                    count += messages.set_state(task, "pending", now)
            if count:
                changed.append(doc)
                moved += count
        for result in await db.bulk_docs(changed) if changed else []:
            if not result.get("ok"):
                log.info("%s changed meanwhile; its due messages move on the next run", result.get("id"))
        if len(rows) < PAGE:
            return moved
