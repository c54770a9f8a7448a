"""The sentinel's feed follower: batches, durable checkpoint, resume after restart."""

import asyncio

from api import checkpoint
from sentinel.worker import Worker


async def test_worker_processes_every_change_once_and_resumes(couch, config):
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    await medic.bulk_docs([{"_id": f"feed-{i:03d}"} for i in range(250)])
    seen: list[str] = []

    async def record(batch):
        seen.extend(change["id"] for change in batch)
        assert all("doc" in change for change in batch)

    worker = Worker(couch, config, record, batch_size=100, wait_seconds=1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(100):
        if len(seen) >= 250:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sorted(seen) == [f"feed-{i:03d}" for i in range(250)]
    assert await medic.pending_changes(await checkpoint.read(couch.db(config.db_sentinel),
                                                             checkpoint.SENTINEL)) == 0

    # a new worker (a restart) starts from the checkpoint: only new changes
    await medic.bulk_docs([{"_id": "feed-late"}])
    seen.clear()
    restarted = Worker(couch, config, record, batch_size=100, wait_seconds=1)
    restarted.seq = await checkpoint.read(couch.db(config.db_sentinel), checkpoint.SENTINEL)
    assert await restarted.step() == 1
    assert seen == ["feed-late"]


async def test_a_failed_batch_does_not_move_the_checkpoint(couch, config):
    medic = couch.db(config.db_medic)
    sentinel = couch.db(config.db_sentinel)
    start = (await medic.info())["update_seq"]
    await checkpoint.write(sentinel, checkpoint.SENTINEL, start)
    await medic.bulk_docs([{"_id": "feed-fails"}])

    async def explode(batch):
        raise RuntimeError("crash in the middle of a batch")

    worker = Worker(couch, config, explode, wait_seconds=1)
    worker.seq = start
    try:
        await worker.step()
    except RuntimeError:
        pass
    assert await checkpoint.read(sentinel, checkpoint.SENTINEL) == start


async def test_stop_interrupts_an_idle_wait(couch, config):
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    worker = Worker(couch, config, wait_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 2)


async def test_a_broken_batch_does_not_kill_the_worker(couch, config):
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    await medic.bulk_docs([{"_id": f"broken-{i:03d}"} for i in range(150)])
    seen: list[str] = []
    failures = []

    async def flaky(batch):
        if not failures:
            failures.append(batch[0]["id"])
            raise KeyError("a bug in a transition's code")
        seen.extend(change["id"] for change in batch)

    worker = Worker(couch, config, flaky, batch_size=100, wait_seconds=1)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(100):
        if len(seen) >= 150:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert failures and sorted(seen) == [f"broken-{i:03d}" for i in range(150)], "retried from the checkpoint"


async def test_the_checkpoint_lags_during_a_backlog_and_catches_up(couch, config):
    """With ``checkpoint_seconds`` the checkpoint is not moved after every batch, only when caught up."""
    medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
    start = (await medic.info())["update_seq"]
    await checkpoint.write(sentinel, checkpoint.SENTINEL, start)
    await medic.bulk_docs([{"_id": f"lag-{i:03d}"} for i in range(250)])
    seen: list[str] = []

    async def record(batch):
        seen.extend(change["id"] for change in batch)

    worker = Worker(couch, config, record, batch_size=100, wait_seconds=1, checkpoint_seconds=3600)
    worker.seq = start
    assert [await worker.step(), await worker.step()] == [100, 100]
    assert await checkpoint.read(sentinel, checkpoint.SENTINEL) == start, "a crash now reads both batches again"
    assert await worker.step() == 50
    assert await medic.pending_changes(await checkpoint.read(sentinel, checkpoint.SENTINEL)) == 0
    assert sorted(seen) == [f"lag-{i:03d}" for i in range(250)]
