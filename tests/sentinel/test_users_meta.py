"""The nightly copy of feedback and telemetry into medic-users-meta, read back through the exports and
monitoring; on a server with ``_purge`` (CouchDB) the copies leave the user databases."""

from __future__ import annotations

import datetime as dt
import json
import logging

from api.app import create_app
from api.cht.user_meta.names import escape_username, user_db_name
from sentinel import users_meta
from tests.device import Device
from tests.helpers import PASSWORD, admin_headers, basic


def feedback(n: int, user: str) -> dict:
    return {"_id": f"feedback-2026-02-0{n}T10:00:00.000Z-{user}", "type": "feedback",
            "meta": {"time": f"2026-02-0{n}T10:00:00.000Z", "user": {"name": user}, "version": "4.22.0",
                     "url": "/#/reports", "source": "automatic"},
            "info": {"message": f"problem {n}"}}


def telemetry(day: int, user: str, device: str) -> dict:
    return {"_id": f"telemetry-2026-2-{day}-{user}-{device}", "type": "telemetry",
            "metrics": {"boot_time": {"sum": 10, "min": 10, "max": 10, "count": 1, "sumsqr": 100}},
            "device": {"userAgent": "Mozilla/5.0 (Linux; Android 10) Chrome/120.0.0.0 Mobile Safari/537.36",
                       "deviceInfo": {"app": {"version": "v1.4.0"}, "software": {"androidVersion": "10"}}},
            "metadata": {"year": 2026, "month": 2, "day": day, "user": user, "deviceId": device,
                         "versions": {"app": "4.22.0", "settings": "3-abc"}}}


async def test_feedback_and_telemetry_are_copied_once_and_purged_where_the_server_can(client, couch, config,
                                                                                      make_user, caplog):
    alice, bob = await make_user("alice.m", ["chw"]), await make_user("bob-m", ["chw"])
    written: dict[str, dict[str, str]] = {}
    for user, docs in ((alice, [feedback(1, alice), feedback(2, alice), telemetry(1, alice, "d1"),
                                telemetry(2, alice, "d1"), {"_id": "read:report:r1"}]),
                       (bob, [telemetry(3, bob, "d9"), {"_id": "feedback-gone", "type": "feedback"}])):
        assert (await client.put(f"/medic-user-{escape_username(user)}-meta/", headers=basic(user))).status == 200
        results = await (await client.post(f"/medic-user-{escape_username(user)}-meta/_bulk_docs",
                                           json={"docs": docs}, headers=basic(user))).json()
        written[user] = {r["id"]: r["rev"] for r in results}
    bob_db = couch.db(user_db_name(config.db_medic, bob))
    await bob_db.delete("feedback-gone", written[bob]["feedback-gone"])
    caplog.set_level(logging.INFO, logger="jamii.sentinel.users_meta")

    first = await users_meta.run(couch, config)
    target = couch.db(config.db_users_meta)
    copied = {r["id"]: r["value"]["rev"] for r in (await target.all_docs())["rows"]
              if r["id"].startswith(("feedback-", "telemetry-"))}
    expected = {i: rev for user in (alice, bob) for i, rev in written[user].items()
                if i.startswith(("feedback-", "telemetry-")) and i != "feedback-gone"}
    assert expected.items() <= copied.items(), "the same docs at the same revisions"
    assert "feedback-gone" not in copied and "read:report:r1" not in copied
    assert first.copied == len(expected) and first.databases >= 2

    alice_db = couch.db(user_db_name(config.db_medic, alice))
    left = {r["id"] for r in (await alice_db.all_docs())["rows"]}
    if first.purge_supported:  # Apache CouchDB
        assert first.purged == len(expected)
        assert left == {"_design/medic-user", "read:report:r1"}, "copied docs purged; read marks stay"
    else:  # pouchdb-server has no _purge (400): the docs stay, and the log says so once
        assert first.purge_supported is False and first.purged == 0
        assert set(written[alice]) <= left
        assert len([r for r in caplog.records if "no _purge" in r.getMessage()]) == 1

    again = await users_meta.run(couch, config)
    assert again.copied == 0, "the checkpoint makes the copy incremental"
    await alice_db.put(feedback(3, alice))
    third = await users_meta.run(couch, config)
    assert third.copied == 1

    # what the exports and monitoring now read
    admin = admin_headers(config)
    csv = await (await client.get("/api/v2/export/feedback", headers=admin)).text()
    assert "problem 1" in csv and "problem 3" in csv and alice in csv
    devices = json.loads(await (await client.get("/api/v2/export/user-devices", headers=admin)).text())
    mine = [d for d in devices if d["user"] in (alice, bob)]
    assert {(d["user"], d["deviceId"], d["date"]) for d in mine} == {(alice, "d1", "2026-02-02"),
                                                                     (bob, "d9", "2026-02-03")}
    assert mine[0]["apk"] == "v1.4.0" and mine[0]["cht"] == "4.22.0"
    monitoring = await (await client.get("/api/v2/monitoring")).json()
    assert monitoring["feedback"]["count"] >= 3


async def test_the_job_runs_at_two_in_the_morning_once(couch, config):
    local = dt.datetime.now().astimezone()
    night = local.replace(hour=2, minute=30, second=0, microsecond=0)
    assert await users_meta.scheduled(couch, config, now=night) is not None
    assert await users_meta.scheduled(couch, config, now=night + dt.timedelta(minutes=20)) is None
    next_night = night + dt.timedelta(days=1)
    assert await users_meta.scheduled(couch, config, now=next_night) is not None
    assert await users_meta.scheduled(couch, config, now=next_night.replace(hour=1)) is None


async def test_old_design_docs_are_brought_up_to_date(couch, config, make_user, client):
    user = await make_user("old-ddoc", ["chw"])
    await client.put(f"/medic-user-{escape_username(user)}-meta/", headers=basic(user))
    db = couch.db(user_db_name(config.db_medic, user))
    ddoc = await db.get("_design/medic-user")
    ddoc.pop("validate_doc_update")
    await db.put(ddoc)
    await users_meta.run(couch, config)
    assert "purged" in (await db.get("_design/medic-user"))["validate_doc_update"]


async def test_a_devices_feedback_and_telemetry_reach_the_exports(aiohttp_server, client, couch, config, make_user):
    """End to end with a stock PouchDB: the device syncs its meta database as CHT's app does, the nightly copy
    brings feedback and telemetry into medic-users-meta, and the feedback and user-devices exports show them.
    Later syncs neither push the copies again nor pull anything back."""
    server = await aiohttp_server(create_app(config))
    user = await make_user("Device.Meta", ["chw"])
    device = await Device.start(f"http://127.0.0.1:{server.port}/medic", user, PASSWORD)
    admin = admin_headers(config)
    try:
        await device.call("meta_connect", name=escape_username(user))
        docs = [feedback(4, user), telemetry(4, user, "phone-1"), telemetry(5, user, "phone-1"),
                {"_id": "read:report:r9"}]
        docs[0]["info"] = {"message": "from the device, with, commas"}
        for doc in docs:
            await device.call("meta_put", doc=doc)
        synced = await device.call("meta_sync")
        assert synced["push"]["ok"] and synced["push"]["docs_written"] == len(docs)

        report = await users_meta.run(couch, config)
        assert report.copied == 3
        target = couch.db(config.db_users_meta)
        for doc in docs[:3]:
            assert (await target.get(doc["_id"]))["type"] == doc["type"]
        assert await target.get_or_none("read:report:r9") is None
        source = couch.db(user_db_name(config.db_medic, user))
        left = {r["id"] for r in (await source.all_docs())["rows"]}
        copied = {d["_id"] for d in docs[:3]}
        assert "read:report:r9" in left
        assert not left & copied if report.purge_supported else copied <= left, "purged from the source on CouchDB"

        csv = await (await client.get("/api/v2/export/feedback", headers=admin)).text()
        line = next(row for row in csv.splitlines() if row.startswith(f'"{docs[0]["_id"]}"'))
        assert user in line and r"from the device\, with\, commas" in line, line
        devices = json.loads(await (await client.get("/api/v2/export/user-devices", headers=admin)).text())
        assert [(d["deviceId"], d["date"], d["apk"], d["android"], d["cht"], d["browser"]["name"])
                for d in devices if d["user"] == user] == [("phone-1", "2026-02-05", "v1.4.0", "10", "4.22.0",
                                                            "Chrome")]

        again = await device.call("meta_sync")
        assert again["push"]["docs_written"] == 0 and again["pull"]["docs_written"] == 0
        assert sorted(await device.call("meta_ids")) == sorted(["_design/medic-user", *(d["_id"] for d in docs)])
        await device.call("meta_put", doc=telemetry(6, user, "phone-1"))
        assert (await device.call("meta_sync"))["push"]["docs_written"] == 1
        assert (await users_meta.run(couch, config)).copied == 1
        devices = json.loads(await (await client.get("/api/v2/export/user-devices", headers=admin)).text())
        assert [d["date"] for d in devices if d["user"] == user] == ["2026-02-06"]
    finally:
        await device.close()
