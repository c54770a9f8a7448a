"""The sentinel keeps cluster counts right: cases created, moved and deleted through the API."""

import asyncio

import pytest

from api.settings import SettingsStore
from sentinel.app import build
from tests.helpers import admin_headers

SQUARE = {"type": "Polygon", "coordinates": [[[30, -26], [31, -26], [31, -25], [30, -25], [30, -26]]]}


def point(lon, lat):
    return {"type": "Point", "coordinates": [lon, lat]}


@pytest.fixture
async def sentinel(couch, config):
    """The real sentinel workers and jobs (as python -m sentinel builds them), in this event loop."""
    settings = SettingsStore(couch.db(config.db_medic))
    workers, _ = build(couch, config, settings)
    for worker in workers:
        worker.wait_seconds = 0.5
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    yield
    stop.set()
    await asyncio.gather(*tasks)


async def count_of(client, headers, cluster_id):
    clusters = await (await client.get("/v6/foci/cluster?country=zaf", headers=headers)).json()
    return next(int(c["cases"]) for c in clusters if c["id"] == cluster_id)


async def eventually(predicate, timeout=20):
    for _ in range(int(timeout * 10)):
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


async def test_counts_follow_cases(client, config, sentinel):
    headers = admin_headers(config)
    created = await (await client.post("/v6/foci/cluster?country=zaf", headers=headers,
                                       json={"status": "active", "geometry": SQUARE, "cases": 99})).json()
    cluster_id = created[0]["cluster_id"]
    assert await eventually(lambda: _is(client, headers, cluster_id, 0)), "a client-sent count is overwritten"
    cases = [{"id": f"case-{i}", "geometry": point(30.5, -25.5)} for i in range(3)]
    cases.append({"id": "case-outside", "geometry": point(35, -20)})
    response = await client.post("/v6/foci/case?country=zaf", headers=headers, json=cases)
    assert response.status == 201
    assert await eventually(lambda: _is(client, headers, cluster_id, 3))
    moved = await client.put("/v6/foci/case?country=zaf", headers=headers,
                             json={"id": "case-outside", "geometry": point(30.2, -25.2)})
    assert moved.status == 200
    assert await eventually(lambda: _is(client, headers, cluster_id, 4))
    deleted = await client.delete("/v6/foci/case?country=zaf&id=case-0", headers=headers)
    assert deleted.status == 200
    assert await eventually(lambda: _is(client, headers, cluster_id, 3))


async def _is(client, headers, cluster_id, expected):
    return await count_of(client, headers, cluster_id) == expected
