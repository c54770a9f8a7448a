"""The ``reminders`` job: CHT's ``reminders`` settings, messages to places that have not reported.

Each entry is ``{"form", "message" | "translation_key", "cron",
"mute_after_form_for": "3 days", "contact_types": [...]}``. When the ``cron``
expression (five fields, server local time) has come round — its latest
occurrence, if within the last day, not yet handled — every place of the
``contact_types`` (default: place types no other place type sits under, i.e.
the leaf places) gets a reminder, unless it is muted, has no contact with a
phone, or sent the form within ``mute_after_form_for`` before that occurrence.

A reminder is a doc ``reminder:<form>:<occurrence ms>:<place id>`` of type
``reminder`` (``form``, ``reminder_date``, ``place``, ``contact``, ``tasks``);
its id names the occurrence, so a second run (or a second sentinel) makes
nothing twice. A handled occurrence is noted as ``reminderlog:<form>:<ms>``
in the sentinel database. Of CHT's ``text_expression`` (later.js text), the
simple forms are read (see ``cron_of``); give ``cron`` for anything else.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Mapping

from croniter import croniter

from api.cht import contact_types, messages
from api.cht.lineage import minify_contact, minify_lineage
from api.config import Config
from api.couch import Couch
from api.errors import Conflict
from api.settings import SettingsStore

from . import messaging
from .reports import duration
from .schedules import add_offset
from .transitions import Context
from .translations import Translations

log = logging.getLogger("jamii.sentinel.reminders")

LOOKBACK = dt.timedelta(days=1)


TEXT_TIME_RE = re.compile(r"\bat\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", re.I)
DAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]


def cron_of(reminder: Mapping[str, Any]) -> str | None:
    """The reminder's cron expression: ``cron``, or the simple later.js texts CHT configs use.

    ``text_expression`` is read when it says a time and, optionally, week days:
    ``at 9:00 am on Monday``, ``every day at 17:30``, ``at 8am on monday and
    thursday``. Anything else is not understood (None).
    """
    if isinstance(reminder.get("cron"), str):
        return reminder["cron"]
    text = reminder.get("text_expression")
    if not isinstance(text, str):
        return None
    match = TEXT_TIME_RE.search(text)
    if not match:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").lower()
    if half == "pm" and hour < 12:
        hour += 12
    elif half == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    rest = (text[:match.start()] + " " + text[match.end():]).lower()
    days = [str(i) for i, day in enumerate(DAYS) if re.search(rf"\b{day[:3]}(?:{day[3:]})?\b", rest)]
    if not days and re.sub(r"\b(every|each|day|daily|on|and)\b|[\s,]", "", rest):
        return None  # something more than a time and days: not understood
    return f"{minute} {hour} * * {','.join(days) or '*'}"


def occurrence(cron: Any, now: dt.datetime) -> dt.datetime | None:
    """The latest time the cron expression named, at or before ``now`` and within the last day."""
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        return None
    local = now.astimezone()
    probe = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    last = croniter(cron, probe).get_prev(dt.datetime)
    return last if local - last <= LOOKBACK else None


def leaf_place_types(settings: Mapping[str, Any]) -> list[str]:
    places = [t["id"] for t in contact_types.configured(settings) if not t.get("person")]
    parents = {p for t in contact_types.configured(settings) if not t.get("person")
               for p in contact_types.parent_types(settings, t["id"])}
    return [t for t in places if t not in parents]


def place_types(reminder: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    wanted = reminder.get("contact_types")
    if isinstance(wanted, list) and wanted:
        return [t for t in wanted if isinstance(t, str)]
    return leaf_place_types(settings)


async def send(couch: Couch, config: Config, store: SettingsStore, translations: Translations,
               now: dt.datetime | None = None) -> int:
    """The job; returns how many reminders were made."""
    settings = await store.get()
    now = now or dt.datetime.now(dt.timezone.utc)
    ctx = Context(couch, config, settings, now=now, translations=await translations.get(couch.db(config.db_medic)))
    total = 0
    for reminder in settings.get("reminders") or []:
        if not isinstance(reminder, dict) or not isinstance(reminder.get("form"), str):
            continue
        cron = cron_of(reminder)
        if cron is None:
            log.warning("reminder %s: no cron expression, and text_expression %r is not understood",
                        reminder["form"], reminder.get("text_expression"))
            continue
        when = occurrence(cron, now)
        if when is None:
            continue
        total += await send_one(ctx, reminder, when)
    return total


async def send_one(ctx: Context, reminder: Mapping[str, Any], when: dt.datetime) -> int:
    medic, sentinel = ctx.medic, ctx.sentinel
    form = reminder["form"]
    stamp = int(when.timestamp() * 1000)
    log_id = f"reminderlog:{form}:{stamp}"
    if await sentinel.get_or_none(log_id):
        return 0
    places: list[dict[str, Any]] = []
    for type_id in place_types(reminder, ctx.settings):
        async for row in medic.iter_view("medic-client", "contacts_by_type", startkey=[type_id], endkey=[type_id],
                                         include_docs=True):
            if row.get("doc") and not row["doc"].get("muted"):
                places.append(row["doc"])
    made = 0
    for start in range(0, len(places), 200):
        made += await _remind(ctx, reminder, when, stamp, places[start:start + 200])
    try:
        await sentinel.put({"_id": log_id, "type": "reminderlog", "form": form, "reminder_date": messages.iso(when),
                            "count": made})
    except Conflict:
        pass
    if made:
        log.info("reminder %s at %s: %d place(s)", form, messages.iso(when), made)
    return made


async def _remind(ctx: Context, reminder: Mapping[str, Any], when: dt.datetime, stamp: int,
                  places: list[dict[str, Any]]) -> int:
    medic = ctx.medic
    form = reminder["form"]
    span = duration(reminder.get("mute_after_form_for"))
    if span is not None:
        since = int(add_offset(when, -span[0], span[1]).timestamp() * 1000)
        rows = (await medic.view("medic", "reports_by_form_and_parent",
                                 keys=[[form, p["_id"]] for p in places]))["rows"]
        recent = {row["key"][1] for row in rows if isinstance(row.get("value"), (int, float))
                  and row["value"] >= since}
        places = [p for p in places if p["_id"] not in recent]
    contact_ids = [p["contact"]["_id"] for p in places if isinstance(p.get("contact"), dict)
                   and p["contact"].get("_id")]
    contacts = await medic.get_many(contact_ids) if contact_ids else {}
    docs = []
    for place in places:
        contact = contacts.get((place.get("contact") or {}).get("_id")) if isinstance(place.get("contact"), dict) \
            else None
        doc = {"_id": f"reminder:{form}:{stamp}:{place['_id']}", "type": "reminder", "form": form,
               "reminder_date": messages.iso(when), "place": minify_lineage(place)}
        if contact is not None:
            doc["contact"] = minify_contact(contact)
        doc["contact_phone"] = (contact or {}).get("phone") or place.get("phone")
        if not doc["contact_phone"]:
            continue
        context = {**doc, "place": place, "contact": contact, "week": when.isocalendar()[1], "year": when.year}
        text = messaging.text_of(reminder, ctx, messaging.locale_of({}, ctx.settings))
        if not text:
            continue
        to = doc.pop("contact_phone")
        state = "pending" if messaging.outgoing_allowed(to, ctx.settings) else "denied"
        doc["tasks"] = [messages.new_task(to, messaging.render(text, context), messages.message_uuid(doc["_id"]),
                                          ctx.now, state=state)]
        docs.append(doc)
    if not docs:
        return 0
    return sum(1 for r in await medic.bulk_docs(docs) if r.get("ok"))
