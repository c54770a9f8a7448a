"""Offline users replicate through the API with a stock PouchDB: exactly their visible set, both ways."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from api import deadline
from api.app import create_app
from api.auth import Principal
from api.cht.lineage import minify_lineage
from api.cht.replication import changes, visible_set
from api.cht.replication import limit as replication_limit
from api.cht.replication.handlers import SCOPES
from api.cht.replication import scope as replication_scope
from api.cht.visibility import scope_for, user_key
from api.couch import Couch, Database
from api.errors import ServiceUnavailable
from api.settings import default_settings
from api.web import SETTINGS
from tests.device import Device
from tests.helpers import PASSWORD, basic, forget_replication_count
from tests.hierarchy import build, load
from tests.world import make_users

from .brute import expected_ids


@pytest.fixture(scope="module")
def world(config):
    """Two districts; users at a clinic (chw), a health center (supervisor) and a district (manager)."""
    h = build(seed=6, districts=2, centers=2, clinics=2, people=6, reports_per_clinic=5)
    clinic = h.by_id[h.clinics[0]]
    center = h.by_id[h.centers[0]]
    district = h.by_id[h.districts[0]]
    specs = {
        "chw": (["chw"], {"facility_id": clinic["_id"], "contact_id": clinic["contact"]["_id"]}),
        "sup": (["chw_supervisor"], {"facility_id": center["_id"], "contact_id": center["contact"]["_id"]}),
        "manager": (["chw_supervisor"], {"facility_id": district["_id"], "contact_id": district["contact"]["_id"]}),
        "officer": (["program_officer"], {}),
    }

    async def go():
        async with Couch.from_config(config) as couch:
            medic = couch.db(config.db_medic)
            await load(medic, h)
            await medic.bulk_docs([{"_id": "form:P", "type": "form", "title": "P"},
                                   {"_id": "resources", "resources": {}}])
    asyncio.run(go())
    users = make_users(config, specs)

    async def settings_docs():
        async with Couch.from_config(config) as couch:
            await couch.db(config.db_medic).bulk_docs([
                {"_id": f"org.couchdb.user:{full}", "type": "user-settings", "name": full}
                for full in users.values()])
    asyncio.run(settings_docs())
    return {"h": h, "users": users, "specs": specs}


@pytest.fixture
async def server(aiohttp_server, config):
    return await aiohttp_server(create_app(config))


def principal(world, short):
    roles, fields = world["specs"][short]
    return Principal(world["users"][short], tuple(roles), facility_id=fields.get("facility_id"),
                     contact_id=fields.get("contact_id"))


async def device_for(server, world, short) -> Device:
    return await Device.start(f"http://127.0.0.1:{server.port}/medic", world["users"][short], PASSWORD)


@pytest.mark.parametrize("short", ["chw", "sup", "manager"])
async def test_pull_gives_exactly_the_visible_set(server, world, couch, config, short):
    device = await device_for(server, world, short)
    try:
        result = await device.call("pull")
        assert result["ok"] and result["doc_write_failures"] == 0
        local = set(await device.call("ids"))
    finally:
        await device.close()
    expected = await expected_ids(couch, config, principal(world, short))
    assert local == expected
    assert "_design/medic-client" in local and "form:P" in local and "settings" in local
    assert f"org.couchdb.user:{world['users'][short]}" in local
    assert "_design/medic" not in local
    others = {f"org.couchdb.user:{u}" for s, u in world["users"].items() if s != short}
    assert not local & others


async def test_the_scopes_nest(server, world, couch, config):
    def shared(ids):
        return {i for i in ids if not i.startswith("org.couchdb.user:")}

    chw = shared(await expected_ids(couch, config, principal(world, "chw")))
    sup = shared(await expected_ids(couch, config, principal(world, "sup")))
    manager = shared(await expected_ids(couch, config, principal(world, "manager")))
    assert chw < manager and sup < manager
    assert len(manager) < len((await couch.db(config.db_medic).all_docs())["rows"])


async def test_a_devices_bulk_get_with_latest_and_an_unknown_rev(client, world, couch, config):
    """PouchDB asks ``_bulk_get`` with ``latest=true``: a rev the doc lacks is answered as CouchDB answers it (the
    API answers it itself: pouchdb-server would die on it), the rest served."""
    auth = basic(world["users"]["chw"])
    inside = world["specs"]["chw"][1]["facility_id"]
    rev = (await couch.db(config.db_medic).get(inside))["_rev"]
    answer = await client.post("/medic/_bulk_get?latest=true&revs=true", headers=auth, json={"docs": [
        {"id": inside, "rev": "9-abc"}, {"id": inside, "rev": rev}]})
    assert answer.status == 200
    unknown, known = (await answer.json())["results"]
    assert unknown == {"id": inside, "docs": [{"error": {"id": inside, "rev": "9-abc", "error": "not_found",
                                                         "reason": "missing"}}]}
    assert known["docs"][0]["ok"]["_rev"] == rev and "_revisions" in known["docs"][0]["ok"]


async def test_reads_of_invisible_docs_are_404(client, world, couch, config):
    h = world["h"]
    auth = basic(world["users"]["chw"])
    other_district = h.districts[1]
    inside = world["specs"]["chw"][1]["facility_id"]
    assert (await client.get(f"/medic/{inside}", headers=auth)).status == 200
    missing = await client.get(f"/medic/{other_district}", headers=auth)
    assert missing.status == 404 and await missing.json() == {"error": "not_found", "reason": "missing"}
    rows = (await (await client.post("/medic/_all_docs", json={"keys": [inside, other_district]},
                                     headers=auth)).json())["rows"]
    assert rows[0]["id"] == inside and rows[1] == {"key": other_district, "error": "not_found"}
    got = (await (await client.post("/medic/_bulk_get", json={"docs": [{"id": other_district}]},
                                    headers=auth)).json())["results"][0]
    assert got["docs"][0]["error"]["error"] == "not_found"
    rev = (await couch.db(config.db_medic).get(other_district))["_rev"]
    diff = await (await client.post("/medic/_revs_diff", json={other_district: [rev]}, headers=auth)).json()
    assert diff == {other_district: {"missing": [rev]}}, "as if the server had never seen it"
    assert (await client.get("/medic/_design/medic", headers=auth)).status == 404
    assert (await client.post("/medic/_find", json={"selector": {}}, headers=auth)).status == 403
    all_ids = {r["id"] for r in (await (await client.get("/medic/_all_docs", headers=auth)).json())["rows"]}
    assert all_ids == await expected_ids(couch, config, principal(world, "chw"))


async def test_bad_parameters_and_special_members_are_400(client, world):
    """Found by fuzzing: skip/limit that are not numbers and non-string keys were 500s, and a
    doc with an unknown underscore field came back as pouchdb-server's 500 (as 503)."""
    auth = basic(world["users"]["chw"])
    for query in ("skip=false", "limit=false", "limit=-1", "startkey=5", "endkey=true"):
        response = await client.get(f"/medic/_all_docs?{query}", headers=auth)
        assert response.status == 400, query
        assert (await response.json())["error"] == "bad_request"
    assert (await client.get("/medic/_all_docs?limit=1&skip=1", headers=auth)).status == 200
    posted = await client.post("/medic", json={"type": "x", "_v#": 1}, headers=auth)
    assert posted.status == 400 and "_v#" in (await posted.json())["reason"]


async def test_push_accepts_inside_and_refuses_outside(server, world, couch, config):
    h = world["h"]
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    clinic = h.by_id[chw.facility_id]
    patient = next(d for d in h.docs if d.get("type") == "person" and d["parent"]["_id"] == clinic["_id"]
                   and d["_id"] != clinic["contact"]["_id"])
    outsider = next(d for d in h.docs if d.get("type") == "person"
                    and h.districts[1] in str(d.get("parent")))
    device = await device_for(server, world, "chw")
    try:
        await device.call("pull")
        local_patient = await device.call("get", id=patient["_id"])
        await device.call("put", doc={**local_patient, "notes": "edited on the phone"})
        await device.call("put", doc={"_id": "report-from-phone", "type": "data_record", "form": "V",
                                      "reported_date": 1, "fields": {"patient_id": patient["patient_id"]},
                                      "contact": {"_id": clinic["contact"]["_id"],
                                                  "parent": {"_id": clinic["_id"]}}})
        await device.call("put", doc={"_id": "report-about-outsider", "type": "data_record", "form": "V",
                                      "reported_date": 1, "fields": {"patient_id": outsider["patient_id"]},
                                      "contact": {"_id": outsider["_id"]}})
        await device.call("put", doc={"_id": "settings-copy-attempt", "type": "form"})
        local_settings = await device.call("get", id="settings")
        await device.call("put", doc={**local_settings, "settings": {"hacked": True}})
        result = await device.call("push")
    finally:
        await device.close()
    assert result["docs_written"] == 2 and result["doc_write_failures"] == 3
    assert (await medic.get(patient["_id"]))["notes"] == "edited on the phone"
    assert await medic.get_or_none("report-from-phone")
    assert await medic.get_or_none("report-about-outsider") is None
    assert await medic.get_or_none("settings-copy-attempt") is None
    assert "hacked" not in (await medic.get("settings"))["settings"]


async def test_conflicts_are_kept_and_visible(server, world, couch, config):
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    doc_id = chw.facility_id
    device = await device_for(server, world, "chw")
    try:
        await device.call("pull")
        local = await device.call("get", id=doc_id)
        await device.call("put", doc={**local, "name": "Name from the phone"})
        server_doc = await medic.get(doc_id)
        await medic.put({**server_doc, "name": "Name from the server"})
        await device.call("push")
        stored = await medic.get(doc_id, conflicts=True)
        assert len(stored.get("_conflicts", [])) == 1
        await device.call("pull")
        mine = await device.call("get", id=doc_id, options={"conflicts": True})
        assert mine["_rev"] == stored["_rev"] and mine["_conflicts"] == stored["_conflicts"]
    finally:
        await device.close()
    auth = basic(world["users"]["chw"])
    via_api = await (await server_client_get(server, f"/medic/{doc_id}?conflicts=true", auth)).json()
    assert via_api["_conflicts"] == stored["_conflicts"]


async def server_client_get(server, path, headers):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}{path}", headers=headers) as response:
            body = await response.read()

    class Answer:
        status = response.status

        async def json(self):
            import json
            return json.loads(body)
    return Answer()


async def test_moving_a_contact_changes_who_has_it(server, world, couch, config, client):
    h = world["h"]
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    clinic = h.by_id[chw.facility_id]
    other_clinic = h.by_id[h.clinics[-1]]  # in the other district
    person = next(d for d in h.docs if d.get("type") == "person" and d["parent"]["_id"] == clinic["_id"]
                  and d["_id"] != clinic["contact"]["_id"] and d["_id"] != "moved")
    chw_device = await device_for(server, world, "chw")
    try:
        await chw_device.call("pull")
        assert person["_id"] in await chw_device.call("ids")
        stored = await medic.get(person["_id"])
        stored["parent"] = {"_id": other_clinic["_id"], "parent": other_clinic["parent"]}
        await medic.put(stored)
        await chw_device.call("pull")
        auth = basic(world["users"]["chw"])
        feed = await (await client.get("/medic/_changes", headers=auth)).json()
        assert person["_id"] not in {c["id"] for c in feed["results"]}
        # the set kept by the API, brought forward over the move (the person and what belongs to them judged
        # again), is what a computation from scratch gives
        kept = await client.app[SCOPES].get(chw, await client.app[SETTINGS].get())
        assert set(kept.ids) == await expected_ids(couch, config, chw)
        gone = await (await client.post("/api/v1/replication/get-deletes", json={"doc_ids": [person["_id"]]},
                                        headers=auth)).json()
        assert gone == {"doc_ids": [person["_id"]]}, "a CHT-aware client learns to purge it"
    finally:
        await chw_device.close()
    expected_other = await expected_ids(couch, config, principal(world, "manager"))
    assert person["_id"] not in expected_other
    # put it back for the other tests
    stored = await medic.get(person["_id"])
    stored["parent"] = person["parent"]
    await medic.put(stored)


async def test_deletions_reach_the_device(server, world, couch, config):
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    clinic = world["h"].by_id[chw.facility_id]
    patient = next(d for d in world["h"].docs if d.get("type") == "person" and d["parent"]["_id"] == clinic["_id"]
                   and d["_id"] != chw.contact_id)
    device = await device_for(server, world, "chw")
    try:
        await device.call("put", doc={"_id": "to-delete", "type": "data_record", "form": "V", "reported_date": 1,
                                      "fields": {"patient_id": patient["patient_id"]},
                                      "contact": {"_id": chw.contact_id,
                                                  "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}}})
        assert (await device.call("push"))["docs_written"] == 1
        await device.call("pull")
        assert "to-delete" in await device.call("ids")
        stored = await medic.get("to-delete")
        await medic.delete("to-delete", stored["_rev"])
        await device.call("pull")
        assert "to-delete" not in await device.call("ids")
    finally:
        await device.close()


async def test_initial_sync_endpoints(client, world, couch, config):
    auth = basic(world["users"]["chw"])
    body = await (await client.get("/api/v1/replication/get-ids", headers=auth)).json()
    expected = await expected_ids(couch, config, principal(world, "chw"))
    assert {d["id"] for d in body["doc_ids_revs"]} == expected
    assert body["warn"] is False and body["limit"] == 10000 and body["warn_docs"] <= len(expected)
    assert body["last_seq"] is not None
    some = sorted(expected)[:2]
    medic = couch.db(config.db_medic)
    await medic.put({"_id": "deleted-soon", "type": "data_record"})
    await medic.delete("deleted-soon", (await medic.get("deleted-soon"))["_rev"])
    deleted = await (await client.post("/api/v1/replication/get-deletes",
                                       json={"doc_ids": some + ["ghost", "deleted-soon"]}, headers=auth)).json()
    # deleted: purge it; never seen by the server: a doc the device made and has not pushed yet, keep it
    assert deleted == {"doc_ids": ["deleted-soon"]}
    online = basic(world["users"]["officer"])
    for method, path in (("GET", "/api/v1/replication/get-ids"), ("POST", "/api/v1/replication/get-deletes")):
        response = await client.request(method, path, json={"doc_ids": []}, headers=online)  # as cht-core answers
        assert response.status == 404 and await response.json() == {"error": "not_found",
                                                                     "reason": "Database does not exist."}
    assert (await client.post("/api/v1/replication/get-deletes", json={"doc_ids": "x"},
                              headers=auth)).status == 400


async def test_replication_count_is_recorded(client, world, couch, config):
    """The count is written after the answer: wait for this sync's doc, not one an earlier test left
    (found on CouchDB, where the earlier count, before other tests added docs, was read)."""
    auth = basic(world["users"]["sup"])
    await forget_replication_count(couch, config, world["users"]["sup"])
    started = int(time.time() * 1000)
    await client.get("/medic/_changes", headers=auth)
    logs = couch.db(config.db_logs)
    for _ in range(100):
        doc = await logs.get_or_none(f"replication-count-{world['users']['sup']}")
        if doc and doc["date"] >= started:
            break
        await asyncio.sleep(0.05)
    assert doc["date"] >= started
    assert doc["count"] == doc["all_docs_count"] == len(await expected_ids(couch, config, principal(world, "sup")))


def test_a_stored_count_is_replaced_as_cht_core_replaces_it():
    now = 1_700_000_000_000
    assert replication_limit.differs(None, 5, now) and replication_limit.differs({"_id": "x"}, 5, now)
    stored = {"count": 500, "date": now}
    assert not replication_limit.differs(stored, 600, now) and not replication_limit.differs(stored, 400, now)
    assert replication_limit.differs(stored, 601, now) and replication_limit.differs(stored, 399, now)
    month = replication_limit.MAX_AGE_MS
    assert not replication_limit.differs(stored, 500, now + month)
    assert replication_limit.differs(stored, 500, now + month + 1)


async def test_a_process_trusts_the_count_it_stored(client, world, couch, config):
    """A sync whose count is within 100 of the log this process stored reads and writes nothing: the log
    deleted behind the process's back is not written again (for ``COUNT_EVERY_SECONDS``)."""
    auth, name = basic(world["users"]["sup"]), world["users"]["sup"]
    await forget_replication_count(couch, config, name)
    await client.get("/medic/_changes", headers=auth)
    logs = couch.db(config.db_logs)
    for _ in range(100):
        if await logs.get_or_none(f"replication-count-{name}"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the process notes what it stored once CouchDB has answered
    await forget_replication_count(couch, config, name)
    assert (await client.get("/medic/_changes", headers=auth)).status == 200
    await asyncio.sleep(0.5)
    assert await logs.get_or_none(f"replication-count-{name}") is None


async def test_longpoll_waits_for_a_visible_change(client, world, couch, config):
    auth = basic(world["users"]["chw"])
    first = await (await client.get("/medic/_changes", headers=auth)).json()
    chw = principal(world, "chw")
    medic = couch.db(config.db_medic)

    async def later():
        await asyncio.sleep(0.5)
        await medic.put({"_id": "elsewhere-change", "type": "data_record", "form": "V",
                         "fields": {"patient_id": "not-a-patient"}})
        await asyncio.sleep(0.5)
        await medic.put({"_id": "longpoll-visible", "type": "person", "name": "New baby",
                         "parent": {"_id": chw.facility_id,
                                    "parent": world["h"].by_id[chw.facility_id]["parent"]}})

    writer = asyncio.create_task(later())
    response = await client.get(f"/medic/_changes?feed=longpoll&since={first['last_seq']}&heartbeat=200"
                                "&timeout=20000", headers=auth)
    body = await response.json()
    await writer
    assert [c["id"] for c in body["results"]] == ["longpoll-visible"]
    quiet = await client.get(f"/medic/_changes?feed=longpoll&since={body['last_seq']}&timeout=600&heartbeat=100",
                             headers=auth)
    assert (await quiet.json())["results"] == []


async def test_live_sync_survives_an_api_restart(world, couch, config, unused_tcp_port_factory):
    port = unused_tcp_port_factory()
    server = TestServer(create_app(config), port=port)
    await server.start_server()
    chw = principal(world, "chw")
    device = await Device.start(f"http://127.0.0.1:{port}/medic", world["users"]["chw"], PASSWORD)
    medic = couch.db(config.db_medic)
    try:
        await device.call("pull")
        await device.call("live_start")
        await server.close()
        await medic.put({"_id": "while-down", "type": "person", "name": "Born during the outage",
                         "parent": {"_id": chw.facility_id,
                                    "parent": world["h"].by_id[chw.facility_id]["parent"]}})
        await device.call("put", doc={"_id": "made-offline", "type": "person", "name": "Registered offline",
                                      "parent": {"_id": chw.facility_id,
                                                 "parent": world["h"].by_id[chw.facility_id]["parent"]}})
        await asyncio.sleep(1)
        server = TestServer(create_app(config), port=port)
        await server.start_server()
        for _ in range(150):
            ids = await device.call("ids")
            if "while-down" in ids and await medic.get_or_none("made-offline"):
                break
            await asyncio.sleep(0.2)
        assert "while-down" in ids and await medic.get_or_none("made-offline")
    finally:
        await device.call("live_stop")
        await device.close()
        await server.close()


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_served_set_matches_brute_force_on_random_hierarchies(aiohttp_client, couch_server, seed):
    """Random hierarchies, places and role depths: the feed the API serves is exactly the brute-force set."""
    import random
    import uuid as uuid_module

    from api.settings import SettingsStore
    from scripts.setup_db import setup
    from tests.helpers import drop_databases, module_config

    rng = random.Random(seed)
    config = module_config(couch_server, f"r{uuid_module.uuid4().hex[:8]}-")
    await setup(config, progress=lambda _: None)
    try:
        h = build(seed=seed, districts=2, centers=rng.randint(1, 3), clinics=rng.randint(1, 3),
                  people=rng.randint(2, 5), reports_per_clinic=rng.randint(1, 6))
        depth, report_depth = rng.choice([(0, 0), (1, 0), (2, 1), (3, 2), (-1, -1)])
        async with Couch.from_config(config) as c:
            medic = c.db(config.db_medic)
            await load(medic, h)
            entry = {"role": "chw", "depth": depth}
            if report_depth >= 0:
                entry["report_depth"] = report_depth
            await SettingsStore(medic).update({"replication_depth": [entry] if depth >= 0 else []}, replace=True)
            settings = (await medic.get("settings"))["settings"]
            place = h.by_id[rng.choice(h.districts + h.centers + h.clinics)]
            name = f"{config.db_medic[:-5]}rnd"
            await c.db(config.db_users).put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                                             "roles": ["chw"], "password": PASSWORD, "facility_id": place["_id"],
                                             "contact_id": place["contact"]["_id"]})
            client = await aiohttp_client(create_app(config))
            served = await (await client.get("/medic/_changes", headers=basic(name))).json()
            who = Principal(name, ("chw",), facility_id=place["_id"], contact_id=place["contact"]["_id"])
            assert {c["id"] for c in served["results"]} == await expected_ids(c, config, who, settings)
    finally:
        await drop_databases(config)


class WritesDuringTheRead(Database):
    """The medic database, where another writer's doc lands just before the API reads the feed."""

    def __init__(self, db: Database, doc: dict[str, Any]):
        super().__init__(db.couch, db.name)
        self.doc: dict[str, Any] | None = doc

    async def changes(self, **params: Any) -> dict[str, Any]:
        if self.doc is not None:
            doc, self.doc = self.doc, None
            await self.put(doc)
        return await super().changes(**params)


async def test_a_doc_written_while_the_feed_is_read_is_not_skipped(world, couch, config):
    """Found by the outage test: the visible set was taken before the feed was read, so a doc written in
    between was judged invisible while the returned seq moved past it, and the device never got it."""
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    settings = default_settings()
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        since = (await medic.info())["update_seq"]
        await scopes.get(chw, settings)  # the cached set is exact as of `since`
        clinic = world["h"].by_id[chw.facility_id]
        newcomer = {"_id": "written-during-the-read", "type": "person", "name": "Newcomer",
                    "parent": minify_lineage(clinic)}
        results, _ = await changes._scan(WritesDuringTheRead(medic, newcomer),
                                             lambda: scopes.get(chw, settings), since, None, None, None, False,
                                             settings)
    finally:
        await scopes.close()
    assert [c["id"] for c in results] == ["written-during-the-read"]


async def test_a_change_the_set_has_not_judged_is_judged_with_the_page(world, couch, config):
    """Found by the cluster test: the device's page and the set's own feed were read from different copies
    of a shard, so a person one copy lacked passed the device unjudged and the device moved past it for good.
    Here the set lags the page the same way (it was made before the writes and is not brought forward)."""
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    settings = default_settings()
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    h = world["h"]
    try:
        since = (await medic.info())["update_seq"]
        behind = await scopes.get(chw, settings)
        await medic.put({"_id": "unjudged-here", "type": "person", "name": "In the area",
                         "parent": minify_lineage(h.by_id[chw.facility_id])})
        await medic.put({"_id": "unjudged-elsewhere", "type": "person", "name": "Elsewhere",
                         "parent": minify_lineage(h.by_id[h.clinics[-1]])})

        async def lagging() -> visible_set.VisibleSet:
            return behind

        results, _ = await changes._scan(medic, lagging, since, None, None, None, False, settings)
        assert [c["id"] for c in results] == ["unjudged-here"]
        brought = await scopes.get(chw, settings)  # brought forward over both writes: it remembers judging them
    finally:
        await scopes.close()
    feed = (await medic.changes(since=since))["results"]
    assert all(brought.has_judged(c) for c in feed)
    assert "unjudged-here" in brought and "unjudged-elsewhere" not in brought


def test_seen_seqs_give_a_seq_from_a_while_ago():
    """A fresh set re-reads the feed from a seq read a few seconds before it (``SeenSeqs.before``)."""
    seen = visible_set.SeenSeqs()
    assert seen.before("1-a", 5) is None  # never read
    seen.note("1-a")
    assert seen.before("1-a", 5) is None  # nothing read before it
    time.sleep(0.05)
    seen.note("2-b")
    time.sleep(0.05)
    seen.note("2-b")  # the same seq again is not a new sample
    seen.note("3-c")
    assert seen.before("2-b", 0.03) == "1-a"
    assert seen.before("3-c", 0.03) == "2-b"  # measured from when 3-c was read, not from now
    assert seen.before("3-c", 60) == "1-a"  # none that much older: the oldest read before it


async def test_a_fresh_set_rejudges_the_changes_just_before_it(world, couch, config, monkeypatch):
    """Found by the cluster test: a set computed afresh from views read from a copy that lacked a recent write
    never had it (its seq was already past the write). A fresh set now re-reads the last seconds' changes;
    here the views are stood in for by a set that lacks the write, as the lagging copy's would."""
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    scope = scope_for(chw, default_settings())
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        scopes._seen.note((await medic.info())["update_seq"])
        await medic.put({"_id": "lagging-copy", "type": "person", "name": "In the area",
                         "parent": minify_lineage(world["h"].by_id[chw.facility_id])})
        now = (await medic.info())["update_seq"]
        scopes._seen.note(now)
        fresh = await scopes._afresh(scope, now)
        assert "lagging-copy" in fresh

        async def lacking(db, scope):  # the views of a copy without the write
            async for doc in original(db, scope):
                if doc.id != "lagging-copy":
                    yield doc

        original = replication_scope.visible_docs
        monkeypatch.setattr(replication_scope, "visible_docs", lacking)
        assert "lagging-copy" in await scopes._afresh(scope, now)
        scopes._seen = visible_set.SeenSeqs()  # no earlier seq to re-read from: the lagging views' set, as before
        assert "lagging-copy" not in await scopes._afresh(scope, now)
    finally:
        await scopes.close()


async def test_bulk_get_judges_a_doc_its_set_lacks(world, couch, config):
    """Found by the cluster test: another API process's feed sent the device a doc this process's set had not
    caught up with, and `_bulk_get` answered it as missing, failing the device's replication."""
    from api.cht.replication import reads

    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    h = world["h"]
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        behind = await scopes.get(chw, default_settings())
    finally:
        await scopes.close()
    await medic.put({"_id": "bulk-get-here", "type": "person", "name": "In the area",
                     "parent": minify_lineage(h.by_id[chw.facility_id])})
    await medic.put({"_id": "bulk-get-elsewhere", "type": "person", "name": "Elsewhere",
                     "parent": minify_lineage(h.by_id[h.clinics[-1]])})
    got = await reads.bulk_get(medic, behind, {}, {"docs": [{"id": "bulk-get-here"}, {"id": "bulk-get-elsewhere"}]})
    here, elsewhere = got["results"]
    assert here["docs"][0]["ok"]["name"] == "In the area"
    assert "error" in elsewhere["docs"][0] and "ok" not in elsewhere["docs"][0]


@contextlib.asynccontextmanager
async def chw_scopes_after_a_write(world, couch, config, medic: Database, doc_id: str):
    """A ScopeCache over ``medic`` holding the chw's visible set, then a person written in their clinic
    (acknowledged before any request that follows); yields the chw's ``get``."""
    chw = principal(world, "chw")
    settings = default_settings()
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        await scopes.get(chw, settings)
        await medic.put({"_id": doc_id, "type": "person", "name": "Newcomer",
                         "parent": minify_lineage(world["h"].by_id[chw.facility_id])})
        yield lambda: scopes.get(chw, settings)
    finally:
        await scopes.close()


class CountingChanges(Database):
    """The medic database, counting the ``_changes`` reads made through it."""

    def __init__(self, db: Database):
        super().__init__(db.couch, db.name)
        self.reads = 0

    async def changes(self, **params: Any) -> dict[str, Any]:
        self.reads += 1
        return await super().changes(**params)


async def test_concurrent_requests_of_a_user_share_one_refresh(world, couch, config):
    """Found by the load run: each concurrent request of an offline user brought their visible set
    forward on its own, the same ``_changes`` read many times over. A write acknowledged before the
    requests arrive is still in the set they all get."""
    medic = CountingChanges(couch.db(config.db_medic))
    async with chw_scopes_after_a_write(world, couch, config, medic, "seen-by-every-request") as get:
        medic.reads = 0
        sets = await asyncio.gather(*(get() for _ in range(10)))
    assert medic.reads == 1
    assert all("seen-by-every-request" in visible for visible in sets)


class HangingChanges(Database):
    """The medic database, whose first ``_changes`` read hangs until released (a server stopped mid-answer,
    or views catching up)."""

    def __init__(self, db: Database):
        super().__init__(db.couch, db.name)
        self.hanging = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0
        self.sizes: list[int] = []  # how many changes each read found

    async def changes(self, **params: Any) -> dict[str, Any]:
        self.calls += 1
        if not self.hanging.is_set():
            self.hanging.set()
            await self.release.wait()
        body = await super().changes(**params)
        self.sizes.append(len(body.get("results", [])))
        return body


async def test_a_request_never_waits_for_a_refresh_begun_before_it(world, couch, config):
    """A request made after CouchDB returned from an outage must not wait for (and get the 503 of) a
    refresh stuck since before it: shared refreshes are joined only by requests that came before them."""
    medic = HangingChanges(couch.db(config.db_medic))
    try:
        async with chw_scopes_after_a_write(world, couch, config, medic, "after-the-hang") as get:
            stuck = asyncio.ensure_future(get())
            await asyncio.wait_for(medic.hanging.wait(), 5)
            later = await asyncio.wait_for(get(), 5)
            assert "after-the-hang" in later
            assert not stuck.done()
            medic.release.set()
            assert "after-the-hang" in await asyncio.wait_for(stuck, 5)
    finally:
        medic.release.set()


async def test_a_first_sync_and_counts_take_the_newest_set_while_a_refresh_is_under_way(world, couch, config):
    """A first sync says which seq its answer is as of (the device resumes from it) and users-info counts,
    so while a refresh is under way they are answered at once from the newest set, even with that refresh
    stuck, instead of waiting for one begun after them; reads that need every write made before them
    (the feed from a seq, a doc) still wait for that."""
    medic = HangingChanges(couch.db(config.db_medic))
    chw, settings = principal(world, "chw"), default_settings()
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        before = await scopes.get(chw, settings)
        await medic.put({"_id": "during-the-refresh", "type": "person", "name": "Newcomer",
                         "parent": minify_lineage(world["h"].by_id[chw.facility_id])})
        medic.hanging.clear()
        stuck = asyncio.ensure_future(scopes.get(chw, settings))
        await asyncio.wait_for(medic.hanging.wait(), 5)
        at_once = await asyncio.wait_for(scopes.get(chw, settings, latest=False), 1)
        assert at_once is before and "during-the-refresh" not in at_once
        assert (await asyncio.wait_for(scopes.of_scope(before.scope, latest=False), 1)) is before
        assert not stuck.done()
        medic.release.set()
        assert "during-the-refresh" in await asyncio.wait_for(stuck, 5)
        assert "during-the-refresh" in await scopes.get(chw, settings, latest=False)  # none under way: as now
    finally:
        medic.release.set()
        await scopes.close()


async def test_a_request_waits_for_a_slow_refresh_only_until_its_deadline(world, couch, config):
    """Views catching up after a restart make a refresh slow: a request gets 503 with Retry-After at its
    deadline (COUCH_TIMEOUT from its arrival) instead of waiting on, and the refresh is not thrown away:
    it finishes and its set answers the next request at once."""
    medic = HangingChanges(couch.db(config.db_medic))
    chw, settings = principal(world, "chw"), default_settings()
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        await scopes.get(chw, settings)
        await medic.put({"_id": "after-the-catch-up", "type": "person", "name": "Newcomer",
                         "parent": minify_lineage(world["h"].by_id[chw.facility_id])})
        medic.hanging.clear()

        async def request():
            deadline.start(0.5)  # what the middleware does for each request
            return await scopes.get(chw, settings)

        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as slow:
            await asyncio.wait_for(asyncio.ensure_future(request()), 5)
        assert time.monotonic() - started < 2 and slow.value.headers["Retry-After"] == "1"
        calls = medic.calls
        medic.release.set()  # the views have caught up: the refresh the request started finishes on its own
        for _ in range(100):
            if not scopes._shared._running:
                break
            await asyncio.sleep(0.05)
        found = len(medic.sizes)
        assert "after-the-catch-up" in await asyncio.wait_for(request(), 5)
        # On a cluster the database's update_seq can name other copies from one read to the next with no
        # write between (seqs are opaque): the set is then brought forward over an empty feed, nothing redone.
        assert medic.calls == calls or medic.sizes[found:] == [0], \
            "the next request found the refresh's set, without reading again"
    finally:
        medic.release.set()
        await scopes.close()


async def test_users_info_counts_follow_the_visible_set(world, couch, config):
    """users-info answers from the visible set the user's replication keeps (brought forward from the
    changes, not recomputed from the views at each call): its counts, tasks apart, equal a computation from
    scratch after tasks and reports are written and deleted."""
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    scope = scope_for(chw, default_settings())
    scopes = visible_set.ScopeCache(medic, couch.db(config.db_logs))
    try:
        first = await scopes.of_scope(scope)
        assert first.counts() == await replication_scope.count(medic, scope)
        task = {"_id": "counted-task", "type": "task", "user": user_key(chw.name)}  # CHT names users by doc id
        other = {"_id": "someone-elses-task", "type": "task", "user": "someone-else"}
        report = {"_id": "counted-report", "type": "data_record", "form": "P", "reported_date": 1,
                  "fields": {"patient_id": chw.contact_id}, "contact": {"_id": chw.contact_id}}
        written = await medic.bulk_docs([task, other, report])
        second = await scopes.of_scope(scope)
        assert second.counts() == await replication_scope.count(medic, scope)
        assert "counted-task" in second.tasks and "someone-elses-task" not in second.ids
        assert second.counts().total_docs - second.counts().warn_docs == \
            first.counts().total_docs - first.counts().warn_docs + 1
        await medic.delete("counted-task", written[0]["rev"])
        third = await scopes.of_scope(scope)
        assert "counted-task" not in third.tasks and third.counts() == await replication_scope.count(medic, scope)
    finally:
        await scopes.close()


async def test_a_change_made_while_a_longpoll_reads_the_feed_wakes_it(couch, config):
    """Found on CouchDB under load: a longpoll woken by one change read the feed, and a second change made
    during that read set (and replaced) the notifier's event before the longpoll waited again, so it slept
    until its timeout. The mark taken before reading is the event such a change sets."""
    from api.cht.replication.notifier import ChangesNotifier

    medic = couch.db(config.db_medic)
    notifier = ChangesNotifier(medic)
    try:
        mark = await notifier.mark()
        await medic.put({"_id": "made-during-the-read", "type": "feedback"})
        for _ in range(200):  # the notifier has seen it and moved on to a new event
            if mark.is_set():
                break
            await asyncio.sleep(0.05)
        assert await notifier.wait(0.5, mark), "the change made after the mark wakes the waiter"
        assert not await notifier.wait(0.3, await notifier.mark()), "and nothing else does"
    finally:
        await notifier.close()


async def test_a_report_about_a_patient_registered_after_it_reaches_a_running_device(server, world, couch, config):
    """The report was invisible when its change passed the device (no such patient yet); it becomes visible
    with the patient and comes with the patient's change, though its own is behind the device."""
    medic = couch.db(config.db_medic)
    chw = principal(world, "chw")
    clinic = world["h"].by_id[chw.facility_id]
    other_district = world["h"].districts[1]
    elsewhere = next(d for d in world["h"].docs if d.get("type") == "person"
                     and other_district in json.dumps(d["parent"]))
    code = f"7{time.time_ns() % 10**6:06d}"
    device = await device_for(server, world, "chw")
    try:
        await device.call("pull")
        await medic.put({"_id": f"visit-before-{code}", "type": "data_record", "form": "V", "reported_date": 1,
                         "fields": {"patient_id": code}, "contact": {"_id": elsewhere["_id"]}})
        await device.call("pull")
        assert f"visit-before-{code}" not in await device.call("ids"), "no such patient yet"
        await medic.put({"_id": f"patient-{code}", "type": "person", "name": "Late", "patient_id": code,
                         "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}, "reported_date": 2})
        await device.call("pull")
        assert {f"patient-{code}", f"visit-before-{code}"} <= set(await device.call("ids"))
    finally:
        await device.close()
