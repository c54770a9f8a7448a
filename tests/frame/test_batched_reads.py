"""``BatchedReads`` against the real server: reads asked while the request slots are busy go together in one
request, each caller gets docs of its own, and a failure reaches every caller of its batch."""

import asyncio

import pytest

from api.batched_reads import BatchedReads
from api.errors import NotFound


@pytest.fixture
def db(couch, config):
    return couch.db(config.db_medic)


async def test_reads_asked_while_the_slot_is_busy_share_one_request(db):
    await db.bulk_docs([{"_id": f"batched-{i}", "n": i, "nested": {"list": [i]}} for i in range(6)])
    reads = BatchedReads(db, in_flight=1)
    first, second, third = await asyncio.gather(reads.get_many(["batched-0", "batched-1"]),
                                                reads.get_many(["batched-1", "batched-2", "missing"]),
                                                reads.get_many(["batched-1", "batched-3"]))
    assert reads.requests == 2, "the second and third reads went together, after the first"
    assert set(first) == {"batched-0", "batched-1"} and set(second) == {"batched-1", "batched-2"}
    assert set(third) == {"batched-1", "batched-3"}
    second["batched-1"]["nested"]["list"].append("filled in by one caller")
    assert third["batched-1"]["nested"] == {"list": [1]}, "each caller has docs of its own"
    assert await reads.get_many([]) == {} and reads.requests == 2


async def test_a_read_sees_every_write_acknowledged_before_it(db):
    reads = BatchedReads(db, in_flight=1)
    busy = asyncio.create_task(reads.get_many(["batched-4"]))
    await asyncio.sleep(0)
    await db.put({"_id": "batched-late", "n": 1})
    assert (await reads.get_many(["batched-late"]))["batched-late"]["n"] == 1
    await busy


async def test_a_failed_request_fails_every_read_of_its_batch(couch, db):
    reads = BatchedReads(couch.db("jamii-no-such-database"), in_flight=1)
    results = await asyncio.gather(*(reads.get_many([f"x-{i}"]) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, NotFound) for r in results) and reads.requests == 2


async def test_a_caller_that_goes_away_leaves_its_batch_alone(db):
    reads = BatchedReads(db, in_flight=1)
    busy = asyncio.create_task(reads.get_many(["batched-0"]))
    await asyncio.sleep(0)
    gone = asyncio.create_task(reads.get_many(["batched-1"]))
    stays = asyncio.create_task(reads.get_many(["batched-2"]))
    await asyncio.sleep(0)
    gone.cancel()
    assert set(await stays) == {"batched-2"} and set(await busy) == {"batched-0"}
    assert gone.cancelled()


async def test_info_asked_while_the_slots_are_busy_shares_one_request(couch, db):
    reads = BatchedReads(db, info_in_flight=1)
    busy = asyncio.create_task(reads.info())
    await asyncio.sleep(0)
    infos = await asyncio.gather(*(reads.info() for _ in range(3)))
    await busy
    assert reads.info_requests == 2, "the three went together, after the first"
    assert len({info["db_name"] for info in infos}) == 1
    infos[0]["doc_count"] = -1
    assert infos[1]["doc_count"] >= 0, "each caller has an info of its own"


async def test_info_sees_every_write_acknowledged_before_it(db):
    reads = BatchedReads(db, info_in_flight=1)
    before = (await db.read_info())["doc_count"]
    busy = asyncio.create_task(reads.info())
    await asyncio.sleep(0)
    await db.put({"_id": "batched-info-late"})
    assert (await reads.info())["doc_count"] == before + 1
    await busy


async def test_database_info_is_batched_per_client(couch, config):
    medic = couch.db(config.db_medic)
    before = couch.batched(config.db_medic).info_requests
    infos = await asyncio.gather(*(medic.info() for _ in range(10)))
    assert len({info["db_name"] for info in infos}) == 1
    assert couch.batched(config.db_medic).info_requests - before < 10, "calls made at once shared requests"
    with pytest.raises(NotFound):
        await couch.db("jamii-no-such-database").info()
