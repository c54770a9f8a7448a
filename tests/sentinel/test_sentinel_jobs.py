"""The sentinel's periodic jobs against the real server: due messages, reminders, info doc clean-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import pytest

from api.cht import messages
from api.couch import Couch
from api.settings import SettingsStore
from scripts.couchdb import free_port
from sentinel import app, due_messages, info_cleanup, reminders
from sentinel.scheduler import Job, run_forever, run_once
from sentinel.translations import Translations

from .world import hierarchy, save, transition_settings, use_settings


def now() -> dt.datetime:
    """The time when asked, not when the module was imported: the suite runs for many minutes."""
    return dt.datetime.now(dt.timezone.utc)


@pytest.fixture
async def store(couch, config):
    store = SettingsStore(couch.db(config.db_medic))
    await use_settings(store, transition_settings())
    return store


def task(due: dt.datetime, text: str, state: str = "scheduled") -> dict:
    return messages.new_task("+254712999999", text, messages.message_uuid("job-test", text), now(), state=state,
                             due=messages.iso(due), group=1, type="ANC Reminders")


def outside_now() -> dict:
    """A sending window that the current local hour is not in."""
    hour = now().astimezone().hour
    return {"schedule_morning_hours": (hour + 2) % 24, "schedule_evening_hours": (hour + 3) % 24,
            "schedule_morning_minutes": 0, "schedule_evening_minutes": 0}


def test_sending_window():
    at = dt.datetime(2026, 1, 5, 7, 30)
    assert due_messages.within_window({}, at)
    assert due_messages.within_window({"schedule_morning_hours": 7, "schedule_evening_hours": 18}, at)
    assert not due_messages.within_window({"schedule_morning_hours": 8, "schedule_evening_hours": 18}, at)
    assert not due_messages.within_window({"schedule_morning_hours": 7, "schedule_morning_minutes": 45}, at)
    assert due_messages.within_window({"schedule_morning_hours": 22, "schedule_evening_hours": 8}, at)


async def test_due_messages_become_pending_once_within_the_window(couch, config, store):
    medic = couch.db(config.db_medic)
    doc = {"_id": "due-1", "type": "data_record", "form": "P", "scheduled_tasks": [
        task(now() - dt.timedelta(hours=1), "due now"),
        task(now() + dt.timedelta(days=1), "due tomorrow"),
        task(now() - dt.timedelta(days=8), "too late"),
        task(now() - dt.timedelta(hours=2), "muted one", state="muted"),
    ]}
    await save(medic, [doc])

    settings = transition_settings()
    settings.update(outside_now())
    await use_settings(store, settings)
    assert await due_messages.move_due(medic, store) == 0
    assert (await medic.get("due-1"))["_rev"] == doc["_rev"], "outside the window nothing moves"

    await use_settings(store, transition_settings())
    assert await due_messages.move_due(medic, store) == 1
    stored = await medic.get("due-1")
    assert [t["state"] for t in stored["scheduled_tasks"]] == ["pending", "scheduled", "scheduled", "muted"]
    assert [h["state"] for h in stored["scheduled_tasks"][0]["state_history"]] == ["scheduled", "pending"]
    assert await due_messages.move_due(medic, store) == 0, "a second run finds nothing"
    assert (await medic.get("due-1"))["_rev"] == stored["_rev"]


async def test_reminders_go_to_places_that_have_not_reported_once(couch, config, store):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    quiet = hierarchy("rem-a", 40)
    reported = hierarchy("rem-b", 41)
    muted = hierarchy("rem-c", 42)
    muted[2]["muted"] = messages.iso(now())
    await save(medic, quiet + reported + muted)
    recent = {"_id": "rem-report", "type": "data_record", "form": "W", "reported_date": int(now().timestamp() * 1000),
              "contact": {"_id": reported[3]["_id"], "parent": {"_id": reported[2]["_id"]}}}
    await save(medic, [recent])
    settings = transition_settings()
    settings["reminders"] = [{"form": "W", "cron": "* * * * *", "mute_after_form_for": "2 days",
                              "message": [{"locale": "en", "content": "{{contact.name}}, send W for {{place.name}}"}]}]
    await use_settings(store, settings)

    made = await reminders.send(couch, config, store, Translations())
    assert made == 1
    rows = (await medic.all_docs(startkey="reminder:W:", endkey="reminder:W:\ufff0", include_docs=True))["rows"]
    [reminder] = [r["doc"] for r in rows]
    assert reminder["place"]["_id"] == quiet[2]["_id"] and reminder["type"] == "reminder"
    [out] = reminder["tasks"]
    assert out["state"] == "pending" and out["messages"][0] == {
        "uuid": messages.message_uuid(reminder["_id"]), "to": quiet[3]["phone"],
        "message": "Chw Amani, send W for Clinic"}
    assert await reminders.send(couch, config, store, Translations()) == 0, "the occurrence is handled once"
    assert len((await medic.all_docs(startkey="reminder:W:", endkey="reminder:W:\ufff0"))["rows"]) == 1
    logs = (await sentinel.all_docs(startkey="reminderlog:W:", endkey="reminderlog:W:\ufff0"))["rows"]
    assert len(logs) == 1


def test_reminder_occurrences():
    at = now()
    assert reminders.occurrence("not cron", at) is None
    last = reminders.occurrence("* * * * *", at)
    assert last is not None and abs((at - last).total_seconds()) < 61
    assert reminders.leaf_place_types(transition_settings()) == ["clinic"]


async def test_info_docs_of_deleted_docs_are_cleaned_up(couch, config):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    await save(medic, [{"_id": "kept-doc"}, {"_id": "deleted-doc"}])
    gone = await medic.get("deleted-doc")
    await medic.delete("deleted-doc", gone["_rev"])
    await save(sentinel, [{"_id": f"{i}-info", "type": "info", "doc_id": i, "transitions": {}}
                          for i in ("kept-doc", "deleted-doc", "never-existed")]
               + [{"_id": "foci:other-info", "type": "info", "doc_id": "other", "transitions": {}}])
    deleted = 0
    for _ in range(3):  # small pages: the cursor walks the whole database
        deleted += await info_cleanup.clean(sentinel, medic, page=2)
    assert deleted == 2
    assert await sentinel.get_or_none("kept-doc-info")
    assert await sentinel.get_or_none("deleted-doc-info") is None
    assert await sentinel.get_or_none("never-existed-info") is None
    assert await sentinel.get_or_none("foci:other-info"), "another feed's info docs are not ours to judge"
    assert await info_cleanup.clean(sentinel, medic) == 0


async def test_build_registers_single_flight_jobs(couch, config, store):
    workers, jobs = app.build(couch, config, store)
    names = [job.name for job in jobs]
    assert {"retry-transitions", "send-sms", "due-messages", "reminders", "clean-info-docs"} <= set(names)
    due = next(job for job in jobs if job.name == "due-messages")
    assert await run_once(couch.db(config.db_sentinel), due) is True


async def test_a_job_stopped_by_an_outage_is_retried_soon_and_logged_without_a_traceback(couch, config, caplog):
    dead = Couch(f"http://127.0.0.1:{free_port()}", None, None, timeout=2)  # nothing listens there
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            await dead.info()

    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="jamii.sentinel.jobs")
    task = asyncio.create_task(run_forever(couch.db(config.db_sentinel),
                                           [Job("flaky", 3600, flaky, retry_seconds=0.5)], stop))
    try:
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await dead.close()
    assert len(runs) == 2, "retried after retry_seconds, not after its hour-long interval"
    logged = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert logged and all(r.exc_info is None and r.levelno == logging.WARNING for r in logged)


@pytest.mark.parametrize("text, cron", [
    ("at 9:00 am on Monday", "0 9 * * 1"),
    ("every day at 17:30", "30 17 * * *"),
    ("at 8pm on mon and thursday", "0 20 * * 1,4"),
    ("at 12 am", "0 0 * * *"),
    ("on the first day of the month at 9", None),
    ("whenever", None),
])
def test_reminder_text_expressions(text, cron):
    assert reminders.cron_of({"text_expression": text}) == cron


def test_a_cron_wins_over_a_text_expression():
    assert reminders.cron_of({"cron": "5 4 * * *", "text_expression": "at 9am"}) == "5 4 * * *"
