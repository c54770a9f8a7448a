"""Per-user meta databases through the API: made by the device's first PUT (as CHT), its owner's alone, and
a stock PouchDB syncing feedback and telemetry into it."""

from __future__ import annotations

import zlib

import pytest

from api.app import create_app
from api.cht.user_meta.names import escape_username, is_meta_db, user_db_name
from api.cht.user_meta.store import DDOC
from api.ddocs import check
from tests.device import Device, DeviceError
from tests.helpers import PASSWORD, admin_headers, basic


def test_names_are_escaped_as_cht_escapes_them():
    assert escape_username("a.b") == "a(46)b"
    assert escape_username("Jo") == "(74)o"
    assert escape_username("chw_1-x$(y)+z/w") == "chw_1-x$(y)+z/w"
    assert escape_username("\U0001F600") == "(55357)(56832)", "one group per UTF-16 code unit"
    assert user_db_name("medic", "Jo.b") == "medic-user-(74)o(46)b-meta"
    assert is_meta_db("medic", "medic-user-jo-meta") and not is_meta_db("medic", "medic-users-meta")
    assert not is_meta_db("medic", "medic-user--meta") and not is_meta_db("medic", "other-user-jo-meta")


def test_the_design_doc_is_chts_and_compiles():
    assert DDOC["_id"] == "_design/medic-user"
    assert DDOC["views"]["read"]["reduce"] == "_count" and "purged" in DDOC["validate_doc_update"]
    assert check([DDOC]) == []


@pytest.fixture
async def users(make_user, request):
    """Users of this test alone (names carry the test's index, since their meta databases outlive them)."""
    n = zlib.crc32(request.node.name.encode()) % 100000
    return {"chw": await make_user(f"meta-chw{n}", ["chw"]),
            "other": await make_user(f"Meta.Other{n}", ["chw"]),
            "officer": await make_user(f"meta-officer{n}", ["program_officer"])}


def url(name: str, rest: str = "") -> str:
    return f"/medic-user-{escape_username(name)}-meta/{rest}"


async def test_the_first_put_makes_it_and_only_for_its_owner(client, couch, config, users):
    chw, other = users["chw"], users["other"]
    db = couch.db(user_db_name(config.db_medic, chw))
    assert not await db.exists(), "nothing is made with the user (CHT makes it on first use)"
    missing = await client.get(url(chw), headers=basic(chw))
    assert missing.status == 404 and await missing.json() == {"error": "not_found",
                                                              "reason": "Database does not exist."}
    for _ in range(2):
        made = await client.put(url(chw), headers=basic(chw))
        assert made.status == 200 and await made.json() == {"ok": True}
    assert await db.exists()
    assert (await db.get("_design/medic-user"))["views"] == DDOC["views"]
    security = (await couch.request("GET", db.path + "/_security"))[1]
    assert security["members"]["names"] == [chw] and security["admins"]["names"] == [chw]
    refused = await client.put(url(chw), headers=basic(other))
    assert refused.status == 403 and (await refused.json())["error"] == "Insufficient privileges"
    assert (await client.put(url(other), headers=admin_headers(config))).status == 403
    assert (await client.put(url(chw))).status == 401
    escaped = await client.put(url(other), headers=basic(other))
    assert escaped.status == 200 and await couch.db(user_db_name(config.db_medic, other)).exists()
    online = await client.put(url(users["officer"]), headers=basic(users["officer"]))
    assert online.status == 200, "online users have one too (they use the server's copy directly)"


async def test_a_user_cannot_read_or_write_another_users_meta_database(client, couch, config, users):
    chw, other = users["chw"], users["other"]
    await client.put(url(chw), headers=basic(chw))
    written = await client.put(url(chw, "feedback-1"), json={"type": "feedback", "info": {"message": "hi"}},
                               headers=basic(chw))
    assert written.status == 201
    as_other = basic(other)
    forbidden = {"error": "forbidden", "reason": "You are not allowed to access this db."}
    for method, rest, body in (("GET", "", None), ("GET", "_all_docs", None), ("GET", "_changes", None),
                               ("GET", "feedback-1", None), ("POST", "_bulk_docs", {"docs": [{"_id": "x"}]}),
                               ("PUT", "feedback-2", {"type": "feedback"}), ("DELETE", "feedback-1", None),
                               ("POST", "_all_docs", {"keys": ["feedback-1"]}), ("GET", "_local/x", None),
                               ("GET", "_design/medic-user", None), ("DELETE", "", None)):
        answer = await client.request(method, url(chw, rest), json=body, headers=as_other)
        assert answer.status == 403 and await answer.json() == forbidden, (method, rest)
    never_made = await client.get(url(users["officer"]), headers=as_other)
    assert never_made.status == 404, "CouchDB's answer: the database does not exist"
    for owner in (basic(chw), admin_headers(config)):
        doc = await client.get(url(chw, "feedback-1"), headers=owner)
        assert doc.status == 200 and (await doc.json())["info"] == {"message": "hi"}
        info = await client.get(url(chw), headers=owner)
        assert info.status == 200
    assert (await client.get(url(chw, "feedback-1"))).status == 401
    assert await couch.db(user_db_name(config.db_medic, chw)).get("feedback-1")


async def test_what_the_owner_may_not_do(client, couch, config, users):
    chw = users["chw"]
    await client.put(url(chw), headers=basic(chw))
    auth = basic(chw)
    for method, rest, body in (("PUT", "_security", {"members": {"names": []}}),
                               ("PUT", "_design/mine", {"views": {}}),
                               ("DELETE", "_design/medic-user", None),
                               ("DELETE", "", None), ("POST", "_purge", {"x": ["1-a"]}),
                               ("POST", "_compact", {}), ("POST", "_view_cleanup", {}),
                               ("PUT", "_revs_limit", 1), ("POST", "_index", {}), ("POST", "_find", {}),
                               ("PUT", "feedback-1/file.txt", None)):
        answer = await client.request(method, url(chw, rest), json=body, headers=auth)
        assert answer.status == 403 and (await answer.json())["error"] == "forbidden", (method, rest)
    for query in ("filter=_design", "filter=_view&view=x/y", "feed=continuous"):
        assert (await client.get(url(chw, f"_changes?{query}"), headers=auth)).status == 400, query
    assert (await client.get(url(chw, "_design/medic-user/_view/read"), headers=auth)).status == 200
    assert (await client.get(url(chw, "_security"), headers=auth)).status == 200
    db = couch.db(user_db_name(config.db_medic, chw))
    assert await db.exists() and (await db.get("_design/medic-user"))
    # an admin may
    assert (await client.put(url(chw, "_design/extra"), json={"_id": "_design/extra"},
                             headers=admin_headers(config))).status == 201


async def test_purge_records_are_never_stored(client, couch, config, users):
    chw = users["chw"]
    await client.put(url(chw), headers=basic(chw))
    auth = basic(chw)
    made = await (await client.put(url(chw, "telemetry-x"), json={"type": "telemetry"}, headers=auth)).json()
    stub = {"_id": "telemetry-x", "_rev": made["rev"], "_deleted": True, "purged": True}
    single = await client.put(url(chw, "telemetry-x"), json=stub, headers=auth)
    assert single.status == 403
    assert (await single.json())["reason"] == "Purged documents should not be written to CouchDB!"
    bulk = await client.post(url(chw, "_bulk_docs"), json={"docs": [stub, {"_id": "feedback-ok", "a": 1}]},
                             headers=auth)
    assert bulk.status == 201
    results = await bulk.json()
    assert results[0] == {"id": "telemetry-x", "error": "forbidden",
                          "reason": "Purged documents should not be written to CouchDB!"}
    assert results[1]["id"] == "feedback-ok" and results[1]["ok"]
    db = couch.db(user_db_name(config.db_medic, chw))
    assert await db.get("telemetry-x") and await db.get("feedback-ok")
    deleted = await client.delete(url(chw, f"telemetry-x?rev={made['rev']}"), headers=auth)
    assert deleted.status == 200, "a plain deletion is fine"


async def test_a_device_syncs_feedback_and_telemetry(aiohttp_server, couch, config, make_user):
    server = await aiohttp_server(create_app(config))
    name = await make_user("Device.User", ["chw"])
    device = await Device.start(f"http://127.0.0.1:{server.port}/medic", name, PASSWORD)
    try:
        await device.call("meta_connect", name=escape_username(name))
        await device.call("meta_put", doc={"_id": "feedback-2026-01-01T00:00:00.000Z-1", "type": "feedback",
                                           "meta": {"time": "2026-01-01T00:00:00.000Z", "user": {"name": name}},
                                           "info": {"message": "it broke"}})
        await device.call("meta_put", doc={"_id": f"telemetry-2026-1-1-{name}-d1", "type": "telemetry",
                                           "metadata": {"year": 2026, "month": 1, "day": 1, "user": name,
                                                        "deviceId": "d1"}})
        await device.call("meta_put", doc={"_id": "read:report:r1"})
        synced = await device.call("meta_sync")
        assert synced["push"]["ok"] and synced["push"]["docs_written"] == 3
        db = couch.db(user_db_name(config.db_medic, name))
        assert await db.exists(), "made by PouchDB's own setup (PUT) on the first sync"
        assert {r["id"] for r in (await db.all_docs())["rows"]} >= {
            "feedback-2026-01-01T00:00:00.000Z-1", f"telemetry-2026-1-1-{name}-d1", "read:report:r1"}
        await db.put({"_id": "read:message:m1"})
        synced = await device.call("meta_sync")
        assert "read:message:m1" in await device.call("meta_ids"), "read marks sync between a user's devices"
    finally:
        await device.close()


async def test_a_device_cannot_replicate_another_users_meta_database(aiohttp_server, couch, config, make_user):
    """A stock PouchDB of one user pointed at another user's meta database gets CouchDB's 403 both ways:
    nothing of the owner's comes down, nothing of the intruder's goes up."""
    server = await aiohttp_server(create_app(config))
    owner, intruder = await make_user("Meta.Owner", ["chw"]), await make_user("meta-intruder", ["chw"])
    owner_device = await Device.start(f"http://127.0.0.1:{server.port}/medic", owner, PASSWORD)
    intruder_device = await Device.start(f"http://127.0.0.1:{server.port}/medic", intruder, PASSWORD)
    try:
        await owner_device.call("meta_connect", name=escape_username(owner))
        await owner_device.call("meta_put", doc={"_id": "feedback-2026-03-01T00:00:00.000Z-secret",
                                                 "type": "feedback", "info": {"message": "private"}})
        assert (await owner_device.call("meta_sync"))["push"]["docs_written"] == 1
        db = couch.db(user_db_name(config.db_medic, owner))
        before = {r["id"]: r["value"]["rev"] for r in (await db.all_docs())["rows"]}

        await intruder_device.call("meta_connect", name=escape_username(owner))
        await intruder_device.call("meta_put", doc={"_id": "feedback-2026-03-02T00:00:00.000Z-planted",
                                                    "type": "feedback", "info": {"message": "planted"}})
        with pytest.raises(DeviceError) as refused:
            await intruder_device.call("meta_sync")
        assert refused.value.status == 403, str(refused.value)
        assert await intruder_device.call("meta_ids") == ["feedback-2026-03-02T00:00:00.000Z-planted"]
        assert {r["id"]: r["value"]["rev"] for r in (await db.all_docs())["rows"]} == before
        # the intruder's own meta database is theirs, and holds nothing of the owner's
        await intruder_device.call("meta_connect", name=escape_username(intruder))
        assert (await intruder_device.call("meta_sync"))["pull"]["ok"]
        assert await intruder_device.call("meta_ids") == ["_design/medic-user"]
    finally:
        await owner_device.close()
        await intruder_device.close()


async def test_deleting_the_user_keeps_the_meta_database(client, couch, config, make_user):
    name = await make_user("leaving", ["chw"])
    await client.put(url(name), headers=basic(name))
    deleted = await client.delete(f"/api/v1/users/{name}", headers=admin_headers(config))
    assert deleted.status == 200
    assert await couch.db(user_db_name(config.db_medic, name)).exists()
    assert (await client.get(url(name), headers=basic(name))).status == 401
    removed = await client.delete(url(name), headers=admin_headers(config))
    assert removed.status == 200, "an admin removes it when it is no longer wanted"
    assert not await couch.db(user_db_name(config.db_medic, name)).exists()
