"""Several sentinels, one active: the lease doc taken and kept through MVCC, the checkpoint fenced by it,
and a standby ``python -m sentinel`` taking over after the active one is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from api import checkpoint
from api.couch import Database
from api.errors import ServiceUnavailable
from sentinel.lease import Lease, LeaseLost
from tests.processes import start_sentinel

from .world import save

FAST = {"ttl": 2.0, "renew": 0.4, "poll": 0.2, "margin": 0.6}


@pytest.fixture
async def sentinel_db(couch, config):
    db = couch.db(config.db_sentinel)
    current = await db.get_or_none(checkpoint.LEASE_ID)
    if current:
        await db.delete(checkpoint.LEASE_ID, current["_rev"])
    return db


async def _acquire(lease: Lease, seconds: float) -> bool:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await lease.acquire(stop)


async def test_one_holder_and_a_takeover_only_after_the_lease_goes_quiet(sentinel_db):
    first, second = Lease(sentinel_db, **FAST), Lease(sentinel_db, **FAST)
    assert await _acquire(first, 2)
    assert first.valid and first.generation == 1
    await first.save("feed", "seq-1")
    stop = asyncio.Event()
    keeper = asyncio.create_task(first.keep(stop))
    started = time.monotonic()
    assert not await _acquire(second, 3.0), "a renewed lease is never taken"
    stop.set()
    await keeper
    # the holder stops renewing (as if killed): the standby takes over once the doc has been quiet for ttl
    started = time.monotonic()
    assert await _acquire(second, 10)
    assert FAST["ttl"] <= time.monotonic() - started < FAST["ttl"] + 2
    assert second.generation == 2 and second.seq("feed") == "seq-1", "the checkpoint comes with the lease"
    doc = await sentinel_db.get(checkpoint.LEASE_ID)
    assert doc["holder"] == second.holder and doc["generation"] == 2


async def test_a_deposed_holder_can_move_no_checkpoint(sentinel_db):
    # the first holder believes its lease valid much longer than the standby waits (a paused process):
    # only the MVCC write of the lease stops it
    first = Lease(sentinel_db, ttl=100, renew=50, poll=0.2, margin=0)
    second = Lease(sentinel_db, **FAST)
    assert await _acquire(first, 2)
    assert await _acquire(second, 10)
    assert first.valid
    with pytest.raises(LeaseLost):
        await first.save("feed", "stale")
    assert not first.valid and first.lost.is_set()
    await second.save("feed", "fresh")
    assert await checkpoint.read(sentinel_db, "feed") == "fresh"


async def test_a_holder_that_cannot_renew_fences_itself_before_a_standby_may_take_over(sentinel_db):
    lease = Lease(sentinel_db, **FAST)
    assert await _acquire(lease, 2)
    lease.check()
    await asyncio.sleep(FAST["ttl"] - FAST["margin"] + 0.1)  # no renewal reached CouchDB meanwhile
    assert not lease.valid
    with pytest.raises(LeaseLost):
        lease.check()


class Killed(Database):
    """The sentinel database once its CouchDB is killed: every write is refused at once (connection refused)."""

    async def put(self, doc, **params):
        raise ServiceUnavailable("CouchDB unreachable: ClientConnectorError")


async def test_a_holder_whose_renewals_fail_gives_the_lease_up_and_is_active_no_longer(sentinel_db):
    """Renewals refused at once until the lease is no longer valid: ``keep`` must end it (``lost``), so the
    sentinel goes back to taking the lease instead of idling as a holder that may not write (an outage
    test on the cluster caught the sentinel stuck there for good)."""
    lease = Lease(sentinel_db, **FAST)
    assert await _acquire(lease, 2)
    lease.db = Killed(sentinel_db.couch, sentinel_db.name)
    stop = asyncio.Event()
    keeper = asyncio.create_task(lease.keep(stop))
    try:
        await asyncio.wait_for(lease.lost.wait(), FAST["ttl"] + 2)
    finally:
        stop.set()
        await keeper
    assert not lease.valid


async def test_a_released_lease_is_taken_at_once(sentinel_db):
    first, second = Lease(sentinel_db, **FAST), Lease(sentinel_db, **FAST)
    assert await _acquire(first, 2)
    await first.release()
    started = time.monotonic()
    assert await _acquire(second, 2)
    assert time.monotonic() - started < 1


async def test_two_standbys_never_both_win(sentinel_db):
    first = Lease(sentinel_db, **FAST)
    assert await _acquire(first, 2)
    await first.release()
    racers = [Lease(sentinel_db, **FAST) for _ in range(4)]
    won = await asyncio.gather(*(_acquire(r, 1.0) for r in racers))
    assert sum(won) == 1
    doc = await sentinel_db.get(checkpoint.LEASE_ID, conflicts=True)
    assert not doc.get("_conflicts")
    assert doc["holder"] == next(r.holder for r, w in zip(racers, won) if w)


async def test_the_old_local_checkpoint_is_where_the_first_holder_starts(sentinel_db):
    await sentinel_db.put_local("lease-test-feed", {"seq": "old-seq"})
    assert await checkpoint.read(sentinel_db, "lease-test-feed") == "old-seq"
    await checkpoint.write(sentinel_db, "lease-test-feed", "new-seq")
    assert await checkpoint.read(sentinel_db, "lease-test-feed") == "new-seq"


def _log(tmp_path) -> str:
    path = tmp_path / "sentinel.log"
    return path.read_text() if path.exists() else ""


async def test_a_standby_sentinel_takes_over_within_15_s_of_a_sigkill(couch, config, tmp_path, sentinel_db):
    medic = couch.db(config.db_medic)
    await checkpoint.write(sentinel_db, checkpoint.SENTINEL, (await medic.info())["update_seq"])
    procs = [start_sentinel(config, tmp_path, LOG_LEVEL="INFO") for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while "lease taken by" not in _log(tmp_path):
            assert time.monotonic() < deadline, _log(tmp_path)[-3000:]
            await asyncio.sleep(0.2)
        holder = (await sentinel_db.get(checkpoint.LEASE_ID))["holder"]
        active = next(p for p in procs if f":{p.pid}:" in holder)
        standby = next(p for p in procs if p is not active)
        active.send_signal(signal.SIGKILL)
        active.wait(10)
        killed = time.monotonic()
        while f":{standby.pid}:" not in ((await sentinel_db.get(checkpoint.LEASE_ID)).get("holder") or ""):
            assert time.monotonic() - killed < 15, _log(tmp_path)[-3000:]
            await asyncio.sleep(0.2)
        # the new holder follows the feed from the checkpoint: a doc written now is processed, and the
        # checkpoint (in the lease) moves past it
        await save(medic, [{"_id": "lease-takeover-doc", "type": "data_record", "form": None,
                            "reported_date": int(time.time() * 1000)}])
        while await medic.pending_changes(since := await checkpoint.read(sentinel_db, checkpoint.SENTINEL)) > 0:
            assert time.monotonic() - killed < 30, (f"checkpoint {since!r}, after it: "
                                                    f"{(await medic.changes(since=since))['results']}\n"
                                                    + _log(tmp_path)[-3000:])
            await asyncio.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    assert "Traceback" not in _log(tmp_path)
    assert not (await sentinel_db.get(checkpoint.LEASE_ID)).get("holder"), "a clean stop releases the lease"
