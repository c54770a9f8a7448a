"""GET /api/v1/users-info (offline and online callers) and GET /api/v1/users-doc-count."""

import json
from urllib.parse import quote

import pytest

from api.auth import Principal
from api.cht.replication import limit as replication_limit
from api.cht.replication import scope as replication_scope
from api.cht.visibility import Scope, depths, scope_for
from api.settings import default_settings
from tests.helpers import admin_headers, basic

from .world import make_users_world


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


async def test_offline_user_gets_their_own_counts(client, uw, config, couch):
    world = uw.world
    medic = couch.db(config.db_medic)
    await medic.bulk_docs([{"_id": "info-task-1", "type": "task", "user": "org.couchdb.user:" + world.users["chw"]},
                           {"_id": "info-task-2", "type": "task", "user": "someone-else"}])
    response = await client.get("/api/v1/users-info", headers=basic(world.users["chw"]))
    assert response.status == 200
    body = await response.json()
    principal = Principal(world.users["chw"], ("chw",), facility_id=world.chw_clinic, contact_id=world.chw_contact)
    expected = await replication_scope.count(medic, scope_for(principal, default_settings()))
    assert body == expected.as_json()
    clinic_contacts = 1 + len(world.h.children(world.chw_clinic))
    assert body["total_docs"] == body["warn_docs"] + 1 and body["warn_docs"] > clinic_contacts
    assert body["warn"] is False and body["limit"] == 10000


async def test_online_user_describes_an_offline_user(client, uw, config, couch):
    world = uw.world
    national = basic(world.users["national"])
    query = f"facility_id={world.chw_clinic}&role=chw&contact_id={world.chw_contact}"
    response = await client.get(f"/api/v1/users-info?{query}", headers=national)
    assert response.status == 200
    body = await response.json()
    depth, report_depth = depths(["chw"], default_settings())
    scope = Scope(restricted=True, facility_ids=(world.chw_clinic,), contact_id=world.chw_contact, depth=depth,
                  report_depth=report_depth)
    expected = await replication_scope.count(couch.db(config.db_medic), scope)
    assert body == expected.as_json() and body["total_docs"] == body["warn_docs"]
    as_array = await client.get(f"/api/v1/users-info?facility_id={world.chw_clinic}&role="
                                + quote(json.dumps(["chw", "data_entry"])), headers=national)
    assert as_array.status == 200
    wider = await client.get(f"/api/v1/users-info?facility_id={world.sup_center}&role=chw_supervisor",
                             headers=national)
    assert (await wider.json())["total_docs"] > body["total_docs"]


@pytest.mark.parametrize("query", ["", "role=chw", "facility_id=x", "role=&facility_id=x"])
async def test_missing_params_is_the_spec_error(client, uw, query):
    response = await client.get(f"/api/v1/users-info?{query}", headers=basic(uw.world.users["national"]))
    assert response.status == 400
    assert await response.json() == {"code": 400, "error": "Missing required query params: role and/or facility_id"}


async def test_online_role_and_permissions(client, uw):
    national = basic(uw.world.users["national"])
    # CHT's rule: only an admin role or its online role is refused; any other role counts as offline
    for role in ("mm-online", quote('["chw", "admin"]')):
        online = await client.get(f"/api/v1/users-info?facility_id=x&role={role}", headers=national)
        assert online.status == 400 and await online.json() == {"code": 400, "error": "Provided role is not offline"}
    configured_online = await client.get("/api/v1/users-info?facility_id=x&role=program_officer", headers=national)
    assert configured_online.status == 200 and (await configured_online.json())["total_docs"] >= 0
    bad = await client.get("/api/v1/users-info?facility_id=x&role=" + quote('{"a":1}'), headers=national)
    assert bad.status == 400
    assert (await client.get("/api/v1/users-info?facility_id=x&role=chw",
                             headers=basic(uw.world.users["po"]))).status == 403
    assert (await client.get("/api/v1/users-info")).status == 401


async def test_users_doc_count(client, uw, config, couch):
    logs = couch.db(config.db_logs)
    await replication_limit.record(logs, "mary", 58)
    await replication_limit.record(logs, "bob", 12001)
    kept = await replication_limit.record(logs, "mary", 60)  # as cht-core: within 100 of the stored count
    assert kept["count"] == 58 and (await logs.get("replication-count-mary"))["_rev"] == kept["_rev"]
    await replication_limit.record(logs, "mary", 160)
    one = await client.get("/api/v1/users-doc-count?user=mary", headers=admin_headers(config))
    assert one.status == 200
    body = await one.json()
    assert body["limit"] == 10000
    assert body["users"]["_id"] == "replication-count-mary" and body["users"]["count"] == 160
    assert body["users"]["user"] == "mary" and body["users"]["date"] > 0
    every = await (await client.get("/api/v1/users-doc-count", headers=admin_headers(config))).json()
    assert [d["user"] for d in every["users"]] == ["bob", "mary"]
    missing = await client.get("/api/v1/users-doc-count?user=nobody", headers=admin_headers(config))
    assert missing.status == 404
    assert (await client.get("/api/v1/users-doc-count", headers=basic(uw.world.users["national"]))).status == 403
    assert (await client.get("/api/v1/users-doc-count")).status == 401
    monitoring = await (await client.get("/api/v2/monitoring")).json()
    assert monitoring["replication_limit"]["count"] == 1
