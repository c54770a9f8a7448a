"""CouchDB stopped: the API answers 503 JSON, then recovers by itself when it returns."""

import asyncio

import pytest

from api.app import create_app
from scripts.couchdb import EmbeddedCouch, free_port
from scripts.setup_db import setup

from .conftest import basic


@pytest.fixture
def own_server(tmp_path, couch_server):
    if couch_server.embedded is None:
        pytest.skip("needs the embedded server (COUCH_URL is set)")
    server = EmbeddedCouch(tmp_path, free_port(), ("admin", "outage-pass"))
    server.start()
    yield server
    server.stop()


async def test_outage_is_503_and_recovery_is_automatic(aiohttp_client, own_server, couch_server):
    config = couch_server.config.replace(couch_url=own_server.url, auth_cache_seconds=0,
                                         couch_timeout=3).with_admin(*own_server.admin)
    await setup(config, progress=lambda _: None)
    client = await aiohttp_client(create_app(config))
    admin = basic(*own_server.admin)
    assert (await client.put("/api/v1/settings", json={"locale": "en"}, headers=admin)).status == 200

    own_server.kill()
    down = await client.put("/api/v1/settings", json={"locale": "sw"}, headers=admin)
    assert down.status == 503
    body = await down.json()
    assert body["code"] == 503 and "CouchDB" in body["error"]
    monitoring = await client.get("/api/v2/monitoring")
    assert monitoring.status == 200
    assert (await monitoring.json())["couchdb"][config.db_medic]["doc_count"] == -1

    own_server.start()
    for _ in range(50):
        response = await client.put("/api/v1/settings", json={"locale": "sw"}, headers=admin)
        if response.status == 200:
            break
        await asyncio.sleep(0.1)
    assert response.status == 200
