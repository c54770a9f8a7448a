"""Message schedules (settings ``schedules``), assigned to a registration by ``assign_schedule``.

A schedule is ``{"name", "start_from": "<doc path, default reported_date>",
"start_mid_group": false, "messages": [{"group", "offset": "12 weeks",
"send_day": "monday", "send_time": "09:00 [+03:00]", "recipient",
"message" | "translation_key"}]}``. Each message becomes a task in
``scheduled_tasks`` due ``offset`` after the start (moved to the weekday and
time when given; the time is UTC unless an offset is given), in state
``scheduled`` (``muted`` when the subject is muted, ``denied`` when the
recipient is). As in CHT, a message already due is not scheduled, and neither
is the rest of its group unless ``start_mid_group`` is set; a schedule already
on the doc is not assigned twice. The text is rendered when the schedule is
assigned (CHT renders translation keys when the message falls due).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Mapping

from api.cht import messages

from . import messaging
from .transitions import Context

OFFSET_RE = re.compile(r"^\s*(\d+)\s+(second|minute|hour|day|week|month|year)s?\s*$", re.I)
TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})(?:\s+([+-]\d{2}):?(\d{2}))?\s*$")
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def parse_offset(text: Any) -> tuple[int, str] | None:
    match = OFFSET_RE.match(text) if isinstance(text, str) else None
    return (int(match.group(1)), match.group(2).lower()) if match else None


def add_offset(start: dt.datetime, amount: int, unit: str) -> dt.datetime:
    if unit in ("month", "year"):
        months = start.month - 1 + amount * (12 if unit == "year" else 1)
        year, month = start.year + months // 12, months % 12 + 1
        day = start.day
        while True:
            try:
                return start.replace(year=year, month=month, day=day)
            except ValueError:
                day -= 1
    return start + dt.timedelta(**{unit + "s": amount})


def to_datetime(value: Any) -> dt.datetime | None:
    """A date from ms since the epoch or ISO 8601 (UTC when no zone is given)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdecimal():
            return dt.datetime.fromtimestamp(int(text) / 1000, dt.timezone.utc)
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
    return None


def due_date(start: dt.datetime, message: Mapping[str, Any]) -> dt.datetime | None:
    offset = parse_offset(message.get("offset"))
    if offset is None:
        return None
    due = add_offset(start, *offset)
    match = TIME_RE.match(message.get("send_time") or "") if isinstance(message.get("send_time"), str) else None
    if match:
        hours, minutes, tz_h, tz_m = match.groups()
        if tz_h:
            sign = -1 if tz_h.startswith("-") else 1
            zone = dt.timezone(sign * dt.timedelta(hours=abs(int(tz_h)), minutes=int(tz_m)))
            due = due.astimezone(zone)
        due = due.replace(hour=int(hours), minute=int(minutes), second=0, microsecond=0)
    day = message.get("send_day")
    if isinstance(day, str) and day.lower() in WEEKDAYS:
        # moment's day(): the given weekday of the same (Sunday-first) week
        sunday_first = (due.weekday() + 1) % 7
        target = (WEEKDAYS.index(day.lower()) + 1) % 7
        due = due + dt.timedelta(days=target - sunday_first)
    return due.astimezone(dt.timezone.utc)


def find(settings: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    for schedule in settings.get("schedules") or []:
        if isinstance(schedule, dict) and schedule.get("name") == name:
            return schedule
    return None


def _path(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return ...
        value = value[part]
    return value


def is_muted(doc: Mapping[str, Any]) -> bool:
    """The report's subject (patient first, else place) or one of its ancestors is muted."""
    subject = doc.get("patient") if isinstance(doc.get("patient"), dict) else doc.get("place")
    node = subject if isinstance(subject, dict) else None
    while isinstance(node, dict):
        if node.get("muted"):
            return True
        node = node.get("parent")
    return False


def assign(doc: dict[str, Any], ctx: Context, schedule: Mapping[str, Any]) -> bool:
    """Add the schedule's messages to ``doc.scheduled_tasks``; returns whether the doc changed."""
    name = schedule.get("name")
    if any(t.get("type") == name for t in doc.get("scheduled_tasks") or []):
        return False
    start_from = schedule.get("start_from") or "reported_date"
    start = to_datetime(_path(doc, start_from))
    if start is None:
        return False
    muted = is_muted(doc)
    locale = messaging.locale_of(doc, ctx.settings)
    skipped_groups: set[Any] = set()
    changed = False
    for index, message in enumerate(schedule.get("messages") or []):
        if not isinstance(message, dict) or message.get("group") in skipped_groups:
            continue
        due = due_date(start, message)
        text = messaging.text_of(message, ctx, locale)
        if due is None or not text:
            continue
        if due < ctx.now:
            if not schedule.get("start_mid_group"):
                skipped_groups.add(message.get("group"))
            continue
        to = messaging.recipient(doc, message.get("recipient"), ctx.settings)
        if not to:
            continue
        msg_uuid = messages.message_uuid(doc["_id"], "schedule", name, index)
        state = "denied" if not messaging.outgoing_allowed(to, ctx.settings) else "muted" if muted else "scheduled"
        body = messaging.render(text, messaging.template_context(doc))
        task = messages.new_task(to, body, msg_uuid, ctx.now, state=state, due=messages.iso(due),
                                 group=message.get("group"), type=name, recipient=message.get("recipient"))
        if message.get("translation_key"):
            task["message_key"] = message["translation_key"]
        changed = messages.add_task(doc, task, scheduled=True) or changed
    return changed
