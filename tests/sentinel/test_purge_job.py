"""When purging runs (CHT's schedule precedence), once per occurrence, and the lease that keeps a long run
single-flight."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import subprocess
import sys

import pytest

from api.config import ROOT
from api.settings import SettingsStore, default_settings
from sentinel import app, purging
from sentinel.purging import schedule
from sentinel.scheduler import Job, keep_lease, run_once

from tests.helpers import admin_headers

from .world import use_settings

NOW = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("purge", "cron"), [
    ({"cron": "0 1 * * SUN"}, "0 1 * * SUN"),
    ({"text_expression": "at 12 am on Sunday"}, "0 0 * * 0"),
    ({"text_expression": "at 3 am", "cron": "0 1 * * *"}, "0 3 * * *"),  # CHT: the text wins
    ({"text_expression": "on the last day of the month", "cron": "0 1 * * *"}, "0 1 * * *"),
    ({"text_expression": "on the last day of the month"}, None),
    ({"cron": "not a cron"}, None),
    ({}, None),
    ({"fn": "function () {}"}, None),
    (None, None),
    ("purge", None),
])
def test_the_schedule_is_chts(purge, cron):
    assert schedule.cron_of(purge) == cron


def test_a_schedule_not_understood_is_worth_a_warning():
    assert "not understood" in schedule.not_understood({"text_expression": "whenever", "fn": "x"})
    assert schedule.not_understood({"cron": "0 1 * * *"}) is None
    assert schedule.not_understood({}) is None, "purge: {} is how CHT turns purging off"


def test_due_once_per_occurrence_within_a_day():
    local = NOW.astimezone()
    every_hour = {"cron": f"{local.minute} * * * *"}
    when = schedule.due(every_hour, None, NOW)
    assert when is not None and when <= NOW
    assert schedule.due(every_hour, int(when.timestamp() * 1000), NOW) is None
    assert schedule.due(every_hour, int(when.timestamp() * 1000) - 1, NOW) == when
    yearly = {"cron": "0 0 1 1 *"}
    assert schedule.due(yearly, None, NOW) is None, "an occurrence more than a day ago is not caught up"


@pytest.fixture
async def store(couch, config):
    return SettingsStore(couch.db(config.db_medic))


async def test_the_job_runs_each_occurrence_once(couch, config, store, caplog):
    settings = default_settings()
    settings["purge"] = {"fn": "function () { return []; }", "cron": "* * * * *"}
    await use_settings(store, settings)
    now = dt.datetime.now(dt.timezone.utc)
    caplog.set_level(logging.INFO, logger="jamii.sentinel.purging")
    first = await purging.scheduled(couch, config, store, now=now)
    assert first is not None and first.status in ("done", "skipped")
    assert await purging.scheduled(couch, config, store, now=now) is None
    later = await purging.scheduled(couch, config, store, now=now + dt.timedelta(minutes=1))
    assert later is not None
    state = await couch.db(config.db_sentinel).get_local("purging")
    assert state["occurrence"] == int(schedule.due({"cron": "* * * * *"}, None,
                                                   now + dt.timedelta(minutes=1)).timestamp() * 1000)


async def test_no_schedule_no_run_and_one_warning(couch, config, store, caplog):
    settings = default_settings()
    settings["purge"] = {"fn": "function () { return []; }", "text_expression": "on the first full moon"}
    await use_settings(store, settings)
    caplog.set_level(logging.WARNING, logger="jamii.sentinel.purging")
    for _ in range(3):
        assert await purging.scheduled(couch, config, store) is None
    assert len([r for r in caplog.records if "not understood" in r.getMessage()]) == 1


async def test_the_jobs_are_registered(couch, config, store):
    _, jobs = app.build(couch, config, store)
    by_name = {job.name: job for job in jobs}
    assert by_name["purging"].lease_seconds >= 600


async def test_a_long_job_keeps_its_lease(couch, config):
    sentinel = couch.db(config.db_sentinel)
    seen = []

    async def long_job() -> None:
        lease = await sentinel.get("job-lock:long")
        first = lease["expires"]
        await asyncio.sleep(0.05)
        await keep_lease()  # less than a third gone: nothing written
        assert (await sentinel.get("job-lock:long"))["_rev"] == lease["_rev"]
        await asyncio.sleep(0.4)
        await keep_lease()
        renewed = await sentinel.get("job-lock:long")
        seen.append(renewed["expires"] > first and renewed["holder"] == lease["holder"])

    await keep_lease()  # outside a job: nothing
    assert await run_once(sentinel, Job("long", 60, long_job, lease_seconds=0.9)) is True
    assert seen == [True]
    assert (await sentinel.get("job-lock:long"))["holder"] is None, "released at the end"


def _cli(config, *args: str) -> subprocess.CompletedProcess:
    prefix = config.db_medic[: -len("medic")]
    url = config.couch_url.replace("://", f"://{config.couch_user}:{config.couch_password}@")
    env = {**os.environ, "COUCH_URL": url, "JAMII_DB_PREFIX": prefix, "LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "sentinel.purging", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


async def test_an_admin_runs_purging_now_and_reads_the_logs(couch, config, store):
    settings = default_settings()
    settings["purge"] = {"fn": "function (u, c, r) { return [; }"}  # no schedule: only by hand
    await use_settings(store, settings)
    ran = await asyncio.to_thread(_cli, config)
    assert ran.returncode == 1, ran.stderr
    report = json.loads(ran.stdout)
    assert report["status"] == "error" and report["error_kind"] == "syntax"
    logs = await asyncio.to_thread(_cli, config, "--logs", "1")
    assert logs.returncode == 0, logs.stderr
    latest = json.loads(logs.stdout)[0]
    assert latest["_id"] == report["purgelog"] and latest["error_kind"] == "syntax"


async def test_the_purge_configuration_an_admin_puts_is_what_the_job_runs(client, couch, config, make_user):
    """Through HTTP, as an admin or cht-conf writes it: the sentinel's own settings store reads it."""
    await make_user("purge-config-chw", ["chw"])
    store = SettingsStore(couch.db(config.db_medic))
    before = await store.reload()
    purge = {"fn": "function (u, c, r) { return r.map(x => x._id); }", "cron": "* * * * *", "run_every_days": 7}
    put = await client.put("/api/v1/settings", json={"purge": purge}, headers=admin_headers(config))
    sentinel = couch.db(config.db_sentinel)
    handled = await sentinel.get_local("purging") or {}
    now = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)  # an occurrence no other test handles
    try:
        assert put.status == 200, await put.text()
        assert (await store.reload())["purge"] == purge
        ran = await purging.scheduled(couch, config, store, now=now)
        assert ran is not None and ran.status == "done" and ran.purgelog, ran
        broken = await client.put("/api/v1/settings", json={"purge": {"fn": "function ( {"}},
                                  headers=admin_headers(config))
        assert broken.status == 200, "settings are not checked when saved, as in CHT"
        assert (await store.reload())["purge"]["cron"] == "* * * * *", "merged into what was there"
        failed = await purging.scheduled(couch, config, store, now=now + dt.timedelta(minutes=1))
        assert failed is not None and failed.status == "error" and failed.error_kind == "syntax"
    finally:  # later tests get the settings and the job's clock as they were
        await use_settings(store, before)
        await sentinel.put_local("purging", handled)
