"""The crash test: ``python -m sentinel`` killed with SIGKILL at random moments during a backlog.

Afterwards every doc shows each applicable transition exactly once and no
message is duplicated or missing. The default run (2,000 docs, a handful of
kills) is part of ``make test``; the ``slow`` variant is longer.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from api import checkpoint
from api.cht import messages
from api.settings import SettingsStore
from sentinel.transitions.registration import patient_uuid
from tests.processes import start_sentinel

from .world import EXPECTED_TRANSITIONS, build_backlog, save, save_existing_contacts, transition_settings, use_settings


def started_feeds(config, data_dir: Path) -> int:
    """How many sentinel processes have begun to follow the feed (their signal handlers are in place)."""
    path = data_dir / "sentinel.log"
    return path.read_text().count(f"following {config.db_medic} from") if path.exists() else 0


async def wait_started(proc: subprocess.Popen, config, data_dir: Path, before: int, deadline: float) -> None:
    while started_feeds(config, data_dir) == before:
        assert proc.poll() is None, (data_dir / "sentinel.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the sentinel did not start"
        await asyncio.sleep(0.05)


async def backlog(couch, config) -> int:
    since = await checkpoint.read(couch.db(config.db_sentinel), checkpoint.SENTINEL)
    return await couch.db(config.db_medic).pending_changes(since)


@pytest.fixture
def processes():
    """Every sentinel process a test starts is gone when it ends, whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def crash_run(couch, config, tmp_path, processes, total: int, kills: int, seed: int) -> None:
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    store = SettingsStore(medic)
    await use_settings(store, transition_settings())
    contacts, docs, kinds = build_backlog(total, worlds=12, seed=seed)
    await save_existing_contacts(medic, sentinel, contacts)
    await checkpoint.write(sentinel, checkpoint.SENTINEL, (await medic.info())["update_seq"])
    for start in range(0, len(docs), 500):
        await save(medic, docs[start:start + 500])
    rng = random.Random(seed)

    kill_backlogs = []
    for _ in range(kills):
        if await backlog(couch, config) == 0:
            break
        ready = started_feeds(config, tmp_path)
        # a restarted sentinel first waits out the killed one's lease (its shortest: 4 s)
        proc = start_sentinel(config, tmp_path, LOG_LEVEL="INFO", SENTINEL_LEASE_SECONDS="4")
        processes.append(proc)
        # once it follows the feed, kill it at a random moment: before or after its checkpoint (moved at
        # most every second during a backlog) moves, in the middle of a batch or between two
        await wait_started(proc, config, tmp_path, ready, time.monotonic() + 120)
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kill_backlogs.append(await backlog(couch, config))
    ready = started_feeds(config, tmp_path)
    proc = start_sentinel(config, tmp_path, LOG_LEVEL="INFO", SENTINEL_LEASE_SECONDS="4")
    processes.append(proc)
    try:
        deadline = time.monotonic() + 300
        await wait_started(proc, config, tmp_path, ready, deadline)  # a SIGTERM before would find no handler
        while await backlog(couch, config) > 0:
            assert proc.poll() is None, (tmp_path / "sentinel.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the sentinel did not drain its backlog"
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # our own last writes come back through the feed
        while await backlog(couch, config) > 0:
            await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, "SIGTERM stops it cleanly"
    assert sum(1 for left in kill_backlogs if left > 0) >= min(3, kills), \
        f"too few kills fell during the work: backlog at each kill {kill_backlogs}"

    stored = {}
    for start in range(0, len(docs), 500):
        stored.update(await medic.get_many(d["_id"] for d in docs[start:start + 500]))
    info_docs = {}
    for start in range(0, len(docs), 500):
        found = await sentinel.get_many(f"{d['_id']}-info" for d in docs[start:start + 500])
        info_docs.update({k[: -len("-info")]: v for k, v in found.items()})
    patients = await medic.get_many(patient_uuid(d["_id"]) for d in docs if kinds[d["_id"]] == "registration")
    for doc_id, kind in kinds.items():
        doc, info = stored[doc_id], info_docs.get(doc_id)
        assert info is not None, f"{kind} {doc_id} has no info doc"
        ran = {name for name, run in info["transitions"].items() if run["ok"]}
        assert ran == EXPECTED_TRANSITIONS[kind], (kind, doc_id, info["transitions"])
        uuids = [m["uuid"] for _, _, m in messages.iter_messages(doc)]
        assert len(uuids) == len(set(uuids)), f"duplicated message on {doc_id}"
        if kind == "contact":
            assert doc["patient_id"].isdigit()
        elif kind == "registration":
            patient = patients[patient_uuid(doc_id)]
            assert doc["patient_id"] == patient["patient_id"] and patient["source_id"] == doc_id
            assert len(doc["tasks"]) == 1 and len(doc["scheduled_tasks"]) == 4
        elif kind == "visit":
            assert [t["messages"][0]["message"] for t in doc["tasks"]] == ["Thanks, visit for Chw Amani recorded."]
        elif kind == "text":
            assert len(doc["tasks"]) == 1 and doc["tasks"][0]["messages"][0]["message"].startswith("SMS message")
        elif kind == "stranger":
            assert doc["errors"] == [{"code": "sys.facility_not_found", "message": "Facility not found."}]
            assert doc["tasks"] == [], "a valid form from an unknown sender gets no default response"

    # no person twice for one registration, no short id twice, no message twice anywhere
    by_source = Counter()
    codes = Counter()
    async for row in medic.iter_view("medic-client", "contacts_by_reference", startkey=["shortcode"],
                                     endkey=["shortcode", {}]):
        codes[row["key"][1]] += 1
    assert [c for c, n in codes.items() if n > 1] == []
    for start in range(0, 100000, 1000):
        rows = (await medic.all_docs(include_docs=True, skip=start, limit=1000))["rows"]
        by_source.update(r["doc"]["source_id"] for r in rows if r.get("doc", {}).get("source_id"))
        if len(rows) < 1000:
            break
    assert by_source and max(by_source.values()) == 1
    uuids = Counter()
    async for row in medic.iter_view("medic", "messages_by_uuid"):
        uuids[row["key"]] += 1
    assert [u for u, n in uuids.items() if n > 1] == []
    expected_messages = sum({"contact": 0, "registration": 5, "visit": 1, "text": 1, "stranger": 0}[k]
                            for k in kinds.values())
    assert sum(uuids.values()) == expected_messages


async def test_sigkill_during_a_backlog_loses_and_doubles_nothing(couch, config, tmp_path, processes):
    await crash_run(couch, config, tmp_path, processes, total=2000, kills=5, seed=7)


@pytest.mark.slow
async def test_sigkill_during_a_long_backlog(couch, config, tmp_path, processes):
    await crash_run(couch, config, tmp_path, processes, total=10000, kills=12, seed=11)
