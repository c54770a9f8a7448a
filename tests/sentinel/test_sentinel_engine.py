"""The transition engine and scheduler against the real server, with small test transitions."""

import asyncio
import time

import pytest

from api.couch import Database
from api.settings import SETTINGS_ID, SettingsStore
from sentinel import info as infos
from sentinel import retries
from sentinel.engine import Engine
from sentinel.scheduler import Job, run_once
from sentinel.transitions import TransitionError, is_enabled
from sentinel.worker import Worker


class Stamp:
    """Sets ``stamp`` on probe docs (idempotent, as the contract asks)."""

    name = "stamp"

    def __init__(self):
        self.calls = 0

    def filter(self, doc, ctx):
        return doc.get("type") == "probe"

    async def run(self, doc, ctx):
        self.calls += 1
        if doc.get("stamp") == "done":
            return False
        doc["stamp"] = "done"
        return True


class Count:
    """Adds the seen order of transitions, to check ordering and the single write."""

    name = "count"

    def filter(self, doc, ctx):
        return doc.get("type") == "probe"

    async def run(self, doc, ctx):
        if "stamp" not in doc:
            raise AssertionError("stamp must run first")
        if doc.get("counted"):
            return False
        doc["counted"] = True
        return True


class Fails:
    name = "fails"

    def __init__(self, exc):
        self.exc = exc
        self.calls = 0

    def filter(self, doc, ctx):
        return doc.get("type") == "probe"

    async def run(self, doc, ctx):
        self.calls += 1
        raise self.exc


@pytest.fixture
async def store(couch, config):
    settings = SettingsStore(couch.db(config.db_medic))
    await settings.update({"transitions": {"stamp": True, "count": {"disable": False}, "fails": True}},
                          replace=True)
    return settings


def changes_for(docs):
    return [{"id": d["_id"], "seq": None, "doc": d, "changes": [{"rev": d["_rev"]}]} for d in docs]


async def make_probes(db, n, prefix):
    docs = [{"_id": f"{prefix}-{i}", "type": "probe"} for i in range(n)]
    results = await db.bulk_docs(docs)
    for doc, result in zip(docs, results):
        doc["_rev"] = result["rev"]
    return docs


def test_enabled_flags():
    settings = {"transitions": {"a": True, "b": {"disable": True}, "c": {}, "d": False}}
    assert [is_enabled(settings, n) for n in "abcde"] == [True, False, True, False, False]


async def test_transitions_run_in_order_and_save_once(couch, config, store):
    medic = couch.db(config.db_medic)
    stamp = Stamp()
    engine = Engine(couch, config, store, [stamp, Count()])
    docs = await make_probes(medic, 20, "order")
    await engine.process_batch(changes_for(docs))
    for doc in docs:
        stored = await medic.get(doc["_id"])
        assert stored["stamp"] == "done" and stored["counted"] is True
        assert stored["_rev"].startswith("2-"), "all transitions' changes in one write"
        info = await couch.db(config.db_sentinel).get(f"{doc['_id']}-info")
        assert set(info["transitions"]) == {"stamp", "count"}
        assert info["transitions"]["stamp"]["last_rev"] == stored["_rev"] and info["transitions"]["stamp"]["ok"]

    # the change our own write produced comes through the feed: nothing runs on it
    calls = stamp.calls
    await engine.process_batch(changes_for([await medic.get(d["_id"]) for d in docs]))
    assert stamp.calls == calls
    assert (await medic.get(docs[0]["_id"]))["_rev"].startswith("2-")


class Late:
    """Applies only once ``count`` has run: on the engine's own write, never on the doc as first seen."""

    name = "late"

    def filter(self, doc, ctx):
        return doc.get("type") == "probe" and bool(doc.get("counted"))

    async def run(self, doc, ctx):
        if doc.get("late"):
            return False
        doc["late"] = True
        return True


async def test_a_transition_that_applies_to_the_engines_own_write_runs_on_it(couch, config, store):
    """The feed is read without docs: the engine's own writes come back as echoes taken from memory,
    and still go through the filters."""
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    await store.update({"transitions": {"stamp": True, "count": True, "late": True}}, replace=True)
    start = (await medic.info())["update_seq"]
    engine = Engine(couch, config, store, [Late(), Stamp(), Count()])
    await make_probes(medic, 3, "echo")
    worker = Worker(couch, config, engine.process_batch, wait_seconds=0.2, include_docs=False)
    worker.seq = start
    while await worker.step():
        pass
    assert engine.echoes >= 6, "both of the engine's writes of each probe came back and were taken from memory"
    for i in range(3):
        stored = await medic.get(f"echo-{i}")
        assert stored["late"] is True and stored["counted"] is True and stored["_rev"].startswith("3-")
        info = await sentinel.get(f"echo-{i}-info")
        assert info["transitions"]["late"]["last_rev"] == stored["_rev"] and info["transitions"]["late"]["ok"]


async def test_a_crash_before_the_info_doc_replays_as_a_no_op(couch, config, store):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    engine = Engine(couch, config, store, [Stamp(), Count()])
    [doc] = await make_probes(medic, 1, "crash")
    await engine.process_batch(changes_for([doc]))
    info = await sentinel.get("crash-0-info")
    await sentinel.delete(info["_id"], info["_rev"])  # as if we died between the two writes
    saved = await medic.get("crash-0")
    restarted = Engine(couch, config, store, [Stamp(), Count()])  # a new process remembers nothing
    await restarted.process_batch(changes_for([saved]))
    again = await medic.get("crash-0")
    assert again["_rev"] == saved["_rev"], "idempotent transitions change nothing on replay"
    assert (await sentinel.get("crash-0-info"))["transitions"]["stamp"]["last_rev"] == saved["_rev"]


async def test_disabled_transitions_do_not_run_and_settings_reload(couch, config, store):
    medic = couch.db(config.db_medic)
    stamp = Stamp()
    engine = Engine(couch, config, store, [stamp])
    settings_doc = await medic.get(SETTINGS_ID)
    settings_doc["settings"]["transitions"] = {"stamp": False}
    await medic.put(settings_doc)
    [doc] = await make_probes(medic, 1, "disabled")
    await engine.process_batch(changes_for([settings_doc]) + changes_for([doc]))
    assert "stamp" not in await medic.get("disabled-0")
    assert stamp.calls == 0
    await store.update({"transitions": {"stamp": True}}, replace=True)


@pytest.mark.parametrize("exc, code", [
    (TransitionError("invalid_patient", "No patient with id 1234"), "invalid_patient"),
    (ZeroDivisionError("boom"), "fails_failed"),
])
async def test_failures_are_recorded_and_retried_a_bounded_number_of_times(couch, config, store, exc, code):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    failing = Fails(exc)
    stamp = Stamp()
    engine = Engine(couch, config, store, [failing, stamp])
    docs = await make_probes(medic, 2, f"fail-{code}")
    await engine.process_batch(changes_for(docs))
    for doc in docs:
        stored = await medic.get(doc["_id"])
        assert stored["stamp"] == "done", "the other transitions and docs carry on"
        assert [e["code"] for e in stored["errors"]] == [code]
        run = (await sentinel.get(f"{doc['_id']}-info"))["transitions"]["fails"]
        assert run["ok"] is False and run["attempts"] == 1 and run["next_retry"] > time.time() * 1000

    for attempt in range(2, infos.MAX_ATTEMPTS + 2):
        for doc in docs:  # make the retry due now
            info = await sentinel.get(f"{doc['_id']}-info")
            if "next_retry" in info["transitions"]["fails"]:
                info["transitions"]["fails"]["next_retry"] = 0
                await sentinel.put(info)
        await retries.retry_due(engine, sentinel)
    info = await sentinel.get(f"{docs[0]['_id']}-info")
    assert info["transitions"]["fails"]["attempts"] == infos.MAX_ATTEMPTS
    assert "next_retry" not in info["transitions"]["fails"]
    assert failing.calls == 2 * infos.MAX_ATTEMPTS
    assert len((await medic.get(docs[0]["_id"]))["errors"]) == 1, "the same error is not added twice"


async def test_a_doc_changed_meanwhile_is_left_for_its_next_change(couch, config, store):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    engine = Engine(couch, config, store, [Stamp()])
    [doc] = await make_probes(medic, 1, "race")
    newer = dict(doc, note="edited by a user")
    await medic.put(newer)
    await engine.process_batch(changes_for([doc]))  # the stale revision
    assert "stamp" not in await medic.get("race-0")
    assert await sentinel.get_or_none("race-0-info") is None
    await engine.process_batch(changes_for([await medic.get("race-0")]))
    assert (await medic.get("race-0"))["stamp"] == "done"


class LaggingCopy(Database):
    """The medic database read through a shard copy that lags, as one may on a cluster while a write
    travels between copies: its one-copy reads (``_all_docs``) lack the ``missing`` docs and give the
    ``behind`` ones at an older revision. Reads from every live copy (``latest``) see every write."""

    def __init__(self, db: Database, missing: set[str], behind: dict[str, dict]):
        super().__init__(db.couch, db.name)
        self.missing, self.behind, self.latest_reads = missing, behind, []

    async def get_many(self, ids, *, latest=False):
        found = await super().get_many(ids, latest=latest)
        if latest:
            self.latest_reads.append(sorted(found))
            return found
        found.update({i: d for i, d in self.behind.items() if i in found})
        return {i: d for i, d in found.items() if i not in self.missing}


def feed_changes(docs):
    """Changes as the worker reads them: without docs."""
    return [{"id": d["_id"], "seq": None, "changes": [{"rev": d["_rev"]}]} for d in docs]


async def test_a_change_whose_doc_a_lagging_copy_lacks_is_read_from_every_copy(couch, config, store):
    """A change is never passed over because the doc read came from a copy the write had not reached yet:
    the run-5 loss of the cluster test (six reports never processed, at their first revision)."""
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    missing, behind, plain = await make_probes(medic, 3, "lag")
    edited = dict(behind, note="edited by a user")
    edited["_rev"] = (await medic.put(edited))["rev"]
    engine = Engine(couch, config, store, [Stamp()])
    engine.db = LaggingCopy(medic, {missing["_id"]}, {behind["_id"]: behind})
    await engine.process_batch(feed_changes([missing, edited, plain]))
    assert engine.db.latest_reads == [[missing["_id"], behind["_id"]]], "only the lagging docs are read again"
    for doc in (missing, behind, plain):
        stored = await medic.get(doc["_id"])
        assert stored["stamp"] == "done", doc["_id"]
        assert await sentinel.get_or_none(f"{doc['_id']}-info"), doc["_id"]
    assert (await medic.get(behind["_id"]))["note"] == "edited by a user", "the feed's revision, not the older one"


async def test_a_change_whose_doc_is_gone_from_every_copy_is_left_out(couch, config, store):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    [doc] = await make_probes(medic, 1, "vanished")
    await medic.delete(doc["_id"], doc["_rev"])
    engine = Engine(couch, config, store, [Stamp()])
    await engine.process_batch(feed_changes([doc]))  # the feed was read before the delete
    assert await sentinel.get_or_none("vanished-0-info") is None


async def test_deleted_docs_lose_their_info_doc(couch, config, store):
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    engine = Engine(couch, config, store, [Stamp()])
    [doc] = await make_probes(medic, 1, "gone")
    await engine.process_batch(changes_for([doc]))
    assert await sentinel.get_or_none("gone-0-info")
    stored = await medic.get("gone-0")
    await medic.delete("gone-0", stored["_rev"])
    await engine.process_batch([{"id": "gone-0", "deleted": True, "seq": None,
                                 "doc": {"_id": "gone-0", "_deleted": True}}])
    assert await sentinel.get_or_none("gone-0-info") is None


async def test_jobs_are_single_flight(couch, config):
    sentinel = couch.db(config.db_sentinel)
    running = 0
    peak = 0

    async def slow():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.3)
        running -= 1

    job = Job("probe-job", 60, slow)
    ran = await asyncio.gather(*(run_once(sentinel, job) for _ in range(4)))
    assert ran.count(True) == 1 and peak == 1
    assert await run_once(sentinel, job) is True, "the lease is released after the run"
