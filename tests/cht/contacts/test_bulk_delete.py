"""POST bulk-delete: batches of 100 streamed as chunked JSON, per-doc rights, errors, and a failure part-way."""

import asyncio

import aiohttp
import pytest

from api.app import create_app
from api.couch import Couch
from api.settings import default_settings
from scripts.setup_db import setup
from tests.helpers import admin_headers, basic
from tests.world import make_users


def _reports(prefix, count):
    return [{"_id": f"{prefix}-{i:04d}", "type": "data_record", "form": "V", "reported_date": i,
             "fields": {"n": i}} for i in range(count)]


@pytest.fixture(scope="module")
def users(config):
    return make_users(config, {"national": (["national_admin"], {}), "po": (["program_officer"], {}),
                               "chw": (["chw"], {"facility_id": "f"}), "entry": (["data_entry"], {})})


async def test_deletes_in_streamed_batches_of_100(client, couch, config, users):
    db = couch.db(config.db_medic)
    docs = _reports("bd", 253)
    await db.bulk_docs(docs)
    person = {"_id": "bd-person", "type": "person", "name": "P", "reported_date": 1}
    await db.put(person)
    ids = [d["_id"] for d in docs] + ["bd-missing", "settings", "bd-person"]
    response = await client.post("/api/v1/bulk-delete", json={"docs": [{"_id": i} for i in ids]},
                                 headers=basic(users["national"]))
    assert response.status == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Type"].startswith("application/json")
    batches = await response.json()
    assert [len(b) for b in batches] == [100, 100, 56]
    flat = [r for b in batches for r in b]
    assert [r["id"] for r in flat] == ids
    assert all(r["ok"] and r["rev"].startswith("2-") for r in flat[:253])
    assert flat[253] == {"id": "bd-missing", "error": "not_found", "reason": "missing"}
    assert flat[254]["error"] == "forbidden" and flat[255]["ok"]
    assert await db.get_or_none("bd-0100") is None and await db.get_or_none("settings") is not None
    deleted = await db.get("bd-0007", rev=flat[7]["rev"])
    assert deleted["_deleted"] and deleted["form"] == "V"  # the body stays on the tombstone
    again = await client.post("/api/v1/bulk-delete", json={"docs": [{"_id": "bd-0001"}]},
                              headers=basic(users["national"]))
    assert await again.json() == [[{"id": "bd-0001", "error": "not_found", "reason": "missing"}]]


async def test_rights_per_doc(client, couch, config, users):
    db = couch.db(config.db_medic)
    await db.bulk_docs(_reports("rights", 2) + [{"_id": "rights-person", "type": "person", "name": "x"},
                                                 {"_id": "rights-task", "type": "task"}])
    settings = default_settings()
    permissions = {**settings["permissions"], "can_bulk_delete_reports": ["national_admin", "data_entry"],
                   "can_delete_reports": ["national_admin", "data_entry"]}
    admin = admin_headers(config)
    assert (await client.put("/api/v1/settings", json={"permissions": permissions}, headers=admin)).status == 200
    try:
        response = await client.post("/api/v1/bulk-delete", headers=basic(users["entry"]), json={"docs": [
            {"_id": "rights-0000"}, {"_id": "rights-person"}, {"_id": "rights-task"}, {"_id": "_design/medic"}]})
        [results] = await response.json()
        assert results[0]["ok"]
        assert [r["error"] for r in results[1:]] == ["forbidden", "forbidden", "forbidden"]
        assert "can_delete_contacts" in results[1]["reason"]
    finally:
        await client.put("/api/v1/settings?replace=true", json={"permissions": settings["permissions"]},
                         headers=admin)
    as_admin = await client.post("/api/v1/bulk-delete", headers=admin, json={"docs": [{"_id": "rights-task"}]})
    assert (await as_admin.json())[0][0]["ok"]


async def test_who_may_call_it(client, users):
    body = {"docs": [{"_id": "x"}]}
    assert (await client.post("/api/v1/bulk-delete", json=body)).status == 401
    for name in ("po", "chw"):
        response = await client.post("/api/v1/bulk-delete", json=body, headers=basic(users[name]))
        assert response.status == 403, name


@pytest.mark.parametrize("body, field", [
    ({}, "docs"), ({"docs": []}, "docs"), ({"docs": ["id1"]}, "docs.0"), ({"docs": [{"id": "x"}]}, "docs.0._id"),
    ({"docs": [{"_id": ""}]}, "docs.0._id"), ([], "body"),
])
async def test_bad_bodies(client, users, body, field):
    response = await client.post("/api/v1/bulk-delete", json=body, headers=basic(users["national"]))
    assert response.status == 400 and (await response.json())["field"] == field


async def test_failure_part_way_ends_the_stream_unfinished(aiohttp_client, own_server, couch_server):
    config = couch_server.config.replace(couch_url=own_server.url, auth_cache_seconds=30,
                                         couch_timeout=3).with_admin(*own_server.admin)
    await setup(config, progress=lambda _: None)
    async with Couch.from_config(config.replace(couch_timeout=30)) as couch:
        docs = _reports("gone", 3000)
        for start in range(0, len(docs), 500):
            await couch.db(config.db_medic).bulk_docs(docs[start:start + 500])
    client = await aiohttp_client(create_app(config))
    response = await client.post("/api/v1/bulk-delete", json={"docs": [{"_id": f"gone-{i:04d}"} for i in range(3000)]},
                                 headers=basic(*own_server.admin))
    assert response.status == 200
    received = await response.content.readany()
    assert received.startswith(b"[[")
    own_server.kill()
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        while True:
            chunk = await asyncio.wait_for(response.content.readany(), 30)
            if not chunk:
                break
            received += chunk
    assert not received.endswith(b"]]")
