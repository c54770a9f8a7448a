"""CHT's rules for what an offline user replicates, one by one through HTTP and a stock PouchDB device:
for each rule a doc that must be in the user's set and one that must not.

The hierarchy (made by hand so every case is named):

    D (district, contact boss)                     D2 (another district)
    └── H (health centre, contact nurse)           └── X (clinic) ── far
        ├── C1 (clinic, contact cp) ── cp, pat
        └── C2 (clinic) ── nurse, kid

Users: ``chw`` at C1 (contact cp, depth 1); ``rpc`` at H with depth 0 and
``replicate_primary_contacts`` (the nurse lives in C2, below its depth);
``plain`` the same without it; ``tie`` at H with two roles of depth 2 and report
depths 0 and 1; ``ta`` at H with the first of those roles only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.auth import Principal
from api.cht.replication.scope import Counts
from api.couch import Couch
from api.settings import SettingsStore
from tests.device import Device
from tests.helpers import PASSWORD, admin_headers, basic, forget_replication_count
from tests.world import make_users

from .brute import expected_ids

D = {"_id": "D", "type": "district_hospital", "place_id": "9001", "contact": {"_id": "boss"}}
H = {"_id": "H", "type": "health_center", "place_id": "9002", "parent": {"_id": "D"}, "contact": {"_id": "nurse"}}
C1 = {"_id": "C1", "type": "clinic", "place_id": "9003", "parent": {"_id": "H", "parent": {"_id": "D"}},
      "contact": {"_id": "cp"}}
C2 = {"_id": "C2", "type": "clinic", "place_id": "9004", "parent": {"_id": "H", "parent": {"_id": "D"}}}
D2 = {"_id": "D2", "type": "district_hospital"}
X = {"_id": "X", "type": "clinic", "parent": {"_id": "D2"}}


def person(doc_id: str, code: str, place: dict[str, Any]) -> dict[str, Any]:
    parent = {"_id": place["_id"]}
    if place.get("parent"):
        parent["parent"] = place["parent"]
    return {"_id": doc_id, "type": "person", "patient_id": code, "parent": parent}


CP, PAT = person("cp", "1001", C1), person("pat", "1002", C1)
NURSE, KID = person("nurse", "1003", C2), person("kid", "1004", C2)
BOSS, FAR = person("boss", "1005", D), person("far", "1006", X)
PEOPLE = {p["_id"]: p for p in (CP, PAT, NURSE, KID, BOSS, FAR)}


def report(doc_id: str, by: str, **fields: Any) -> dict[str, Any]:
    submitter = PEOPLE[by]
    return {"_id": doc_id, "type": "data_record", "form": "V", "reported_date": 1, "fields": fields,
            "contact": {"_id": by, "parent": submitter["parent"]}}


DOCS = [D, H, C1, C2, D2, X, *PEOPLE.values(),
        report("about-pat", "cp", patient_id="1002"),
        report("about-c1", "cp", place_id="9003"),
        report("private-about-cp-by-boss", "boss", patient_id="1001", private=True),
        report("about-cp-by-boss", "boss", patient_id="1001"),
        report("private-yes-about-cp-by-boss", "boss", patient_id="1001", private="yes"),
        report("private-about-cp-by-pat", "pat", patient_id="1001", private="true"),
        report("private-about-c1-by-boss", "boss", place_id="9003", private=True),
        report("signoff-about-far", "cp", patient_id="1006", needs_signoff=True),
        report("signoff-yes-about-far", "cp", patient_id="1006", needs_signoff="yes"),
        report("about-far", "cp", patient_id="1006"),
        report("about-nurse", "kid", patient_id="1003"),
        report("about-kid", "kid", patient_id="1004"),
        {"_id": "sms-unallocated", "type": "data_record", "sms_message": {"message": "hello"}, "reported_date": 1},
        {"_id": "target-pat", "type": "target", "owner": "pat"},
        {"_id": "target-kid", "type": "target", "owner": "kid"},
        {"_id": "target-nurse", "type": "target", "owner": "nurse"},
        {"_id": "form:visit", "type": "form"},
        {"_id": "messages-sw", "type": "translations"},
        {"_id": "ui-ext", "type": "ui-extension"},
        {"_id": "extension-libs"}, {"_id": "resources"}, {"_id": "privacy-policies"}, {"_id": "branding"},
        {"_id": "token-login-x", "type": "token_login"}, {"_id": "migration-log"},
        {"_id": "feedback-1", "type": "feedback"}]

SETTINGS = {
    "replication_depth": [
        {"role": "chw", "depth": 1}, {"role": "chw", "depth": 4},  # a role's first entry counts
        {"role": "rpc_sup", "depth": 0, "replicate_primary_contacts": True},
        {"role": "plain_sup", "depth": 0},
        {"role": "ta", "depth": 2, "report_depth": 0},
        {"role": "tb", "depth": 2, "report_depth": 1},
    ],
    "roles": {r: {"name": r, "offline": True} for r in ("chw", "rpc_sup", "plain_sup", "ta", "tb")},
    "district_admins_access_unallocated_messages": True,
    "permissions": {"can_view_unallocated_data_records": ["rpc_sup"], "can_edit": ["chw", "rpc_sup"]},
}
SPECS = {
    "chw": (["chw"], {"facility_id": "C1", "contact_id": "cp"}),
    "rpc": (["rpc_sup"], {"facility_id": "H", "contact_id": "nurse"}),
    "plain": (["plain_sup"], {"facility_id": "H", "contact_id": "nurse"}),
    "tie": (["ta", "tb"], {"facility_id": "H", "contact_id": "boss"}),
    "ta": (["ta"], {"facility_id": "H", "contact_id": "boss"}),
}

# user -> (docs that must be in their set, docs that must not)
CASES = {
    "chw": ({"C1", "cp", "pat", "about-pat", "about-c1",
             "about-cp-by-boss", "private-yes-about-cp-by-boss", "private-about-cp-by-pat",  # sensitive: private only
             "signoff-about-far", "target-pat", "task-mine", "own-settings",
             "form:visit", "messages-sw", "ui-ext", "extension-libs", "resources", "privacy-policies", "branding",
             "settings", "_design/medic-client"},
            {"H", "C2", "D", "nurse", "kid", "far", "private-about-cp-by-boss", "private-about-c1-by-boss",
             "signoff-yes-about-far", "about-far", "about-kid", "target-kid", "task-bare-name", "task-other",
             "sms-unallocated", "token-login-x", "migration-log", "feedback-1", "other-settings", "_design/medic"}),
    "rpc": ({"H", "nurse", "about-nurse", "target-nurse", "sms-unallocated", "signoff-about-far"},
            {"C1", "C2", "kid", "about-kid", "target-kid", "about-pat", "D", "boss"}),
    "plain": ({"H", "signoff-about-far"},
              {"nurse", "about-nurse", "target-nurse", "sms-unallocated", "C2"}),
    "tie": ({"pat", "kid", "about-c1"}, {"about-pat", "about-kid", "far"}),  # report depth 1: the larger one
    "ta": ({"pat", "kid"}, {"about-c1", "about-pat"}),
}


@pytest.fixture(scope="module")
def world(config):
    users = make_users(config, SPECS)

    async def go():
        async with Couch.from_config(config) as couch:
            medic = couch.db(config.db_medic)
            await SettingsStore(medic).update(SETTINGS)
            tasks = [{"_id": "task-mine", "type": "task", "user": f"org.couchdb.user:{users['chw']}"},
                     {"_id": "task-bare-name", "type": "task", "user": users["chw"]},
                     {"_id": "task-other", "type": "task", "user": "org.couchdb.user:somebody"}]
            settings_docs = [{"_id": f"org.couchdb.user:{full}", "type": "user-settings", "name": full,
                              "roles": SPECS[short][0], **SPECS[short][1]} for short, full in users.items()]
            await medic.bulk_docs([dict(d) for d in DOCS] + tasks + settings_docs)
            return (await medic.get("settings"))["settings"]

    return {"users": users, "settings": asyncio.run(go())}


def principal(world, short: str) -> Principal:
    roles, fields = SPECS[short]
    return Principal(world["users"][short], tuple(roles), facility_id=fields["facility_id"],
                     contact_id=fields["contact_id"])


def named(world, short: str, ids: set[str]) -> set[str]:
    """The case's names, with the users' settings docs by their real ids."""
    own = f"org.couchdb.user:{world['users'][short]}"
    other = next(f"org.couchdb.user:{u}" for s, u in world["users"].items() if s != short)
    return {own if i == "own-settings" else other if i == "other-settings" else i for i in ids}


@pytest.mark.parametrize("short", sorted(CASES))
async def test_each_rule_lets_in_and_keeps_out(client, world, couch, config, short):
    auth = basic(world["users"][short])
    must, must_not = (named(world, short, ids) for ids in CASES[short])
    get_ids = await (await client.get("/api/v1/replication/get-ids", headers=auth)).json()
    served = {d["id"] for d in get_ids["doc_ids_revs"]}
    assert must <= served, sorted(must - served)
    assert not must_not & served, sorted(must_not & served)
    assert served == await expected_ids(couch, config, principal(world, short), world["settings"])
    feed = await (await client.get("/medic/_changes", headers=auth)).json()
    assert {c["id"] for c in feed["results"]} == served
    listed = await (await client.get("/medic/_all_docs", headers=auth)).json()
    assert {r["id"] for r in listed["rows"]} == served
    asked = sorted(must | must_not)
    got = await (await client.post("/medic/_bulk_get", json={"docs": [{"id": i} for i in asked]},
                                   headers=auth)).json()
    found = {r["id"] for r in got["results"] if "ok" in r["docs"][0]}
    assert found == {i for i in asked if i in served}
    info = await (await client.get("/api/v1/users-info", headers=auth)).json()
    tasks = sum(1 for i in served if i.startswith("task-"))
    counted = len(served - {"_design/medic-client", f"org.couchdb.user:{world['users'][short]}"}) + 2
    assert info == {"total_docs": counted, "warn_docs": counted - tasks, "warn": False, "limit": 10000}
    assert get_ids["warn_docs"] == counted - tasks


async def test_an_online_caller_describes_the_same_set(client, world, couch, config):
    """users-info for a role and place (asked by an admin) counts the set of such a user, primary contacts too."""
    del couch
    asked = await client.get("/api/v1/users-info?role=rpc_sup&facility_id=H&contact_id=nurse",
                             headers=admin_headers(config))
    body = await asked.json()
    mine = await (await client.get("/api/v1/users-info", headers=basic(world["users"]["rpc"]))).json()
    assert asked.status == 200 and body == mine


@pytest.mark.parametrize("short", ["chw", "rpc"])
async def test_a_stock_pouchdb_pulls_exactly_that_set(aiohttp_server, world, couch, config, short):
    from api.app import create_app

    server = await aiohttp_server(create_app(config))
    device = await Device.start(f"http://127.0.0.1:{server.port}/medic", world["users"][short], PASSWORD)
    try:
        result = await device.call("pull")
        local = set(await device.call("ids"))
    finally:
        await device.close()
    assert result["ok"] and result["doc_write_failures"] == 0
    must, must_not = (named(world, short, ids) for ids in CASES[short])
    assert must <= local and not must_not & local
    assert local == await expected_ids(couch, config, principal(world, short), world["settings"])


async def test_the_set_follows_changes_between_syncs(client, world, couch, config):
    """The kept set, brought forward over changes, stays the set computed afresh."""
    medic = couch.db(config.db_medic)
    chw, rpc = basic(world["users"]["chw"]), basic(world["users"]["rpc"])

    async def ids(auth):
        return {d["id"] for d in (await (await client.get("/api/v1/replication/get-ids", headers=auth)).json())
                ["doc_ids_revs"]}

    async def check(short, auth):
        assert await ids(auth) == await expected_ids(couch, config, principal(world, short), world["settings"])

    before_chw, before_rpc = await ids(chw), await ids(rpc)
    assert "private-about-cp-by-boss" not in before_chw and "kid" not in before_rpc
    # the boss moves into C1: their private report about the chw is no longer sensitive
    boss = await medic.get("boss")
    await medic.put({**boss, "parent": {"_id": "C1", "parent": C1["parent"]}})
    assert "private-about-cp-by-boss" in await ids(chw)
    await check("chw", chw)
    # H names kid as its primary contact: kid and its reports join the rpc user's set, the nurse leaves it
    h = await medic.get("H")
    await medic.put({**h, "contact": {"_id": "kid"}})
    now = await ids(rpc)
    assert {"kid", "about-kid", "target-kid"} <= now and "nurse" not in now and "about-nurse" not in now
    await check("rpc", rpc)
    # a contact registered after the place naming it as primary contact joins with the reports about it
    await medic.put(report("about-late", "kid", patient_uuid="late"))
    h = await medic.get("H")
    await medic.put({**h, "contact": {"_id": "late"}})
    assert "about-late" not in await ids(rpc)
    await medic.put(person("late", "1010", C2))
    assert {"late", "about-late"} <= await ids(rpc)
    await check("rpc", rpc)
    # a patient is deleted: the reports that name it by its short id go with it
    pat = await medic.get("pat")
    await medic.delete("pat", pat["_rev"])
    now = await ids(chw)
    assert "pat" not in now and "about-pat" not in now and "target-pat" not in now
    await check("chw", chw)
    # put things back for the other tests
    await medic.put({**(await medic.get("boss")), "parent": boss["parent"]})
    await medic.put({**(await medic.get("H")), "contact": {"_id": "nurse"}})
    await medic.put(dict(PAT))
    await check("chw", chw)
    await check("rpc", rpc)


async def test_get_deletes_lists_what_cht_lists(client, world, couch, config):
    medic = couch.db(config.db_medic)
    await medic.put({"_id": "gone-report", "type": "data_record", "form": "V", "fields": {"patient_id": "1002"}})
    await medic.delete("gone-report", (await medic.get("gone-report"))["_rev"])
    body = {"doc_ids": ["gone-report", "made-on-the-phone", "about-pat", "about-kid"]}
    answer = await client.post("/api/v1/replication/get-deletes", json=body, headers=basic(world["users"]["chw"]))
    # deleted, and (Jamii) no longer the user's; never a doc the server has never had, nor a visible one
    assert await answer.json() == {"doc_ids": ["gone-report", "about-kid"]}


async def test_the_replication_count_is_recorded_as_cht_records_it(client, world, couch, config):
    auth = basic(world["users"]["chw"])
    await forget_replication_count(couch, config, world["users"]["chw"])
    body = await (await client.get("/api/v1/replication/get-ids", headers=auth)).json()
    logs = couch.db(config.db_logs)
    for _ in range(50):
        doc = await logs.get_or_none(f"replication-count-{world['users']['chw']}")
        if doc:
            break
        await asyncio.sleep(0.05)
    served = {d["id"] for d in body["doc_ids_revs"]}
    expected = len(served - {"_design/medic-client", f"org.couchdb.user:{world['users']['chw']}"}) + 2
    assert doc["user"] == world["users"]["chw"] and doc["date"] > 0
    assert doc["count"] == doc["all_docs_count"] == expected


def test_the_warning_starts_at_the_limit():
    assert not Counts(total_docs=10500, warn_docs=9999).warn
    assert Counts(total_docs=10000, warn_docs=10000).warn


async def test_writes_follow_chts_rules(client, world):
    auth = basic(world["users"]["chw"])
    own_id = f"org.couchdb.user:{world['users']['chw']}"
    own = await (await client.get(f"/medic/{own_id}", headers=auth)).json()
    lineage = {"_id": "cp", "parent": CP["parent"]}
    docs = [{"_id": "phone-purged", "type": "data_record", "form": "V", "purged": True,
             "fields": {"patient_id": "1002"}, "contact": lineage},
            {"_id": "phone-ext", "type": "ui-extension"},
            {**own, "roles": ["chw", "rpc_sup"]},
            {"_id": "phone-report", "type": "data_record", "form": "V", "fields": {"patient_id": "1002"},
             "contact": lineage}]
    answer = await (await client.post("/medic/_bulk_docs", json={"docs": docs}, headers=auth)).json()
    assert [(r["id"], r.get("reason")) for r in answer if "error" in r] == [
        ("phone-purged", "Purged documents should not be written to CouchDB!"),
        ("phone-ext", "You are not authorized to edit admin only docs"),
        (own_id, "You are not authorized to edit roles")]
    assert [r["id"] for r in answer if r.get("ok")] == ["phone-report"]
    known = await client.put(f"/medic/{own_id}", json={**own, "known": True}, headers=auth)
    assert known.status == 201
