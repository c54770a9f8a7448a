"""The Foci API against the real server: every endpoint, the draft aliases, errors and permissions."""

import copy
import json
import time
import uuid

import jwt
import pytest

from api.couch import Couch
from tests.helpers import JWT_SECRET, admin_headers, basic

SPEC_RING = [[31.43463134765625, -25.89134949832312], [31.451110839843746, -25.869109390999295],
             [31.43463134765625, -25.84439325019513]]
# The spec's PUT example (the cluster object inside the sloppy extra braces).
SPEC_CLUSTER = {"id": "2949c6b9-b388-43aa-9a5b-2ea2ea899c00", "cases": "94", "status": "investigated",
                "geometry": {"type": "Polygon", "coordinates": [SPEC_RING]}}
SPEC_CASE = {"id": "f8275210-60af-410b-a621-d97a4e113fa3",
             "geometry": {"type": "Point", "coordinates": [31.243057250976562, -25.867873706693747]}}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


def square(x0, y0, size=1.0):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size],
                                                 [x0, y0 + size], [x0, y0]]]}


def point(lon, lat):
    return {"type": "Point", "coordinates": [lon, lat]}


def token(scope=None, **claims):
    body = {"sub": "foci-service", "exp": int(time.time()) + 300, **claims}
    if scope is not None:
        body["scope"] = scope
    return {"Authorization": "Bearer " + jwt.encode(body, JWT_SECRET, algorithm="HS256")}


def uid(prefix="r"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def admin(config):
    return admin_headers(config)


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def error(response, status, field=None):
    body = await ok(response, status)
    assert body["code"] == status and body["error"]
    if field is not None:
        assert body.get("field") == field, body
    return body


async def listing(client, headers, kind, country="swz"):
    return await ok(await client.get(f"/v6/foci/{kind}?country={country}", headers=headers))


async def by_id(client, headers, kind, record_id, country="swz"):
    found = [r for r in await listing(client, headers, kind, country) if r["id"] == record_id]
    return found[0] if found else None


# -- permissions ----------------------------------------------------------------------

ENDPOINTS = [
    ("get", "/v6/foci/cluster?country=swz", None, "read:foci"),
    ("get", "/v6/foci/case?country=swz", None, "read:foci"),
    ("get", "/v6/foci/number_of_clusters?country=swz", None, "read:foci"),
    ("get", "/v6/foci/number_of_cases?country=swz", None, "read:foci"),
    ("get", "/api/v6/cluster/?country=swz", None, "read:foci"),
    ("post", "/v6/foci/cluster?country=swz", {"geometry": square(0, 0)}, "write:foci"),
    ("put", "/v6/foci/cluster?country=swz", {"id": "x", "status": "active"}, "write:foci"),
    ("delete", "/v6/foci/cluster?country=swz&id=x", None, "write:foci"),
    ("post", "/v6/foci/case?country=swz", {"geometry": point(0, 0)}, "write:foci"),
    ("put", "/v6/foci/case?country=swz", {"id": "x"}, "write:foci"),
    ("delete", "/v6/foci/case?country=swz&id=x", None, "write:foci"),
    ("post", "/api/v6/cluster/", {"country": "swz", "cluster_data": {"geometry": square(0, 0)}}, "write:foci"),
    ("put", "/api/v6/cluster/x", {"country": "swz", "cluster_data": {"status": "active"}}, "write:foci"),
]


@pytest.mark.parametrize("method, path, body, permission", ENDPOINTS)
async def test_no_credentials_is_401_and_no_permission_is_403(client, make_user, method, path, body, permission,
                                                             caplog):
    anonymous = await client.request(method, path, json=body)
    await error(anonymous, 401)
    chw = await make_user(uid("foci-chw"), ["chw"])
    with caplog.at_level("INFO", logger="jamii.permissions"):
        refused = await client.request(method, path, json=body, headers=basic(chw))
    # CHT's words for every API that uses its permission model; the log names what was missing
    assert (await error(refused, 403))["error"] == "Insufficient privileges" and permission in caplog.text
    unscoped = await client.request(method, path, json=body, headers=token())
    await error(unscoped, 403)
    other_scope = await client.request(method, path, json=body, headers=token("can_view_contacts"))
    await error(other_scope, 403)


async def test_jwt_scopes_read_and_write(client):
    reader, writer = token("read:foci"), token("write:foci")
    await ok(await client.get("/v6/foci/cluster?country=bwa", headers=reader))
    await error(await client.post("/v6/foci/cluster?country=bwa", json={"geometry": square(0, 0)},
                                  headers=reader), 403)
    created = await ok(await client.post("/v6/foci/cluster?country=bwa", json={"geometry": square(0, 0)},
                                         headers=writer), 201)
    listed = await ok(await client.get("/v6/foci/cluster?country=bwa", headers=writer))  # write implies read
    assert created[0]["cluster_id"] in [c["id"] for c in listed]
    scp = token(None, scp=["read:foci"])
    await ok(await client.get("/v6/foci/number_of_cases?country=bwa", headers=scp))
    expired = {"Authorization": "Bearer " + jwt.encode({"sub": "x", "scope": "write:foci",
                                                        "exp": int(time.time()) - 10}, JWT_SECRET)}
    await error(await client.get("/v6/foci/cluster?country=bwa", headers=expired), 401)


async def test_roles_from_settings(client, make_user):
    analyst = await make_user("foci-analyst", ["analytics"])
    officer = await make_user("foci-officer", ["program_officer"])
    await ok(await client.get("/v6/foci/case?country=bwa", headers=basic(analyst)))
    await error(await client.post("/v6/foci/case?country=bwa", json=SPEC_CASE, headers=basic(analyst)), 403)
    await ok(await client.post("/v6/foci/case?country=bwa", json={"geometry": point(25, -22)},
                               headers=basic(officer)), 201)


# -- countries ----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v6/foci/cluster", "/v6/foci/case", "/v6/foci/number_of_clusters",
                                  "/v6/foci/number_of_cases", "/api/v6/cluster/", "/api/v6/cluster"])
async def test_unknown_country_is_404_on_reads_and_missing_is_400(client, admin, path):
    await error(await client.get(f"{path}?country=atlantis", headers=admin), 404, "country")
    await error(await client.get(path, headers=admin), 400, "country")


async def test_unknown_country_on_writes_is_as_the_spec_says(client, admin):
    await error(await client.post("/v6/foci/cluster?country=atlantis", json={"geometry": square(0, 0)},
                                  headers=admin), 400, "country")
    await error(await client.post("/v6/foci/case?country=atlantis", json=SPEC_CASE, headers=admin), 400, "country")
    await error(await client.post("/v6/foci/case", json=SPEC_CASE, headers=admin), 400, "country")
    await error(await client.put("/v6/foci/cluster?country=atlantis", json=SPEC_CLUSTER, headers=admin), 404,
                "country")
    await error(await client.put("/v6/foci/case?country=atlantis", json=SPEC_CASE, headers=admin), 404, "country")
    await error(await client.delete("/v6/foci/case?country=atlantis&id=x", headers=admin), 404, "country")
    await error(await client.post("/api/v6/cluster/", json={"country": "atlantis", "cluster_data": SPEC_CLUSTER},
                                  headers=admin), 400, "country")
    await error(await client.put("/api/v6/cluster/x", json={"country": "atlantis", "cluster_data": {}},
                                 headers=admin), 404, "country")


async def test_countries_are_matched_without_case_and_kept_apart(client, admin):
    shared_id = uid("shared")
    await ok(await client.post("/v6/foci/case?country=SWZ", json={"id": shared_id, "geometry": point(31.2, -26)},
                               headers=admin), 201)
    await ok(await client.post("/v6/foci/case?country=zaf", json={"id": shared_id, "geometry": point(28, -26)},
                               headers=admin), 201)
    in_swz = await by_id(client, admin, "case", shared_id, "swz")
    in_zaf = await by_id(client, admin, "case", shared_id, "ZAF")
    assert in_swz["geometry"]["coordinates"] == [31.2, -26] and in_zaf["geometry"]["coordinates"] == [28, -26]
    assert in_swz["_id"] != in_zaf["_id"]
    await ok(await client.delete(f"/v6/foci/case?country=zaf&id={shared_id}", headers=admin))
    assert await by_id(client, admin, "case", shared_id, "swz") is not None
    assert await by_id(client, admin, "case", shared_id, "zaf") is None


async def test_countries_come_from_the_settings(client, admin):
    await error(await client.get("/v6/foci/cluster?country=tza", headers=admin), 404)
    await ok(await client.put("/api/v1/settings", json={"foci": {"countries": ["swz", "bwa", "zaf", "tza"]}},
                              headers=admin))
    try:
        assert await ok(await client.get("/v6/foci/cluster?country=tza", headers=admin)) == []
        bad = await client.put("/api/v1/settings", json={"foci": {"countries": ["no spaces"]}}, headers=admin)
        await error(bad, 400, "foci.countries.0")
    finally:
        await ok(await client.put("/api/v1/settings?replace=true",
                                  json={"foci": {"countries": ["ago", "bwa", "moz", "nam", "swz", "zaf", "zmb",
                                                               "zwe"]}}, headers=admin))


# -- clusters ---------------------------------------------------------------------------

async def test_create_a_cluster_from_the_spec_example(client, admin):
    body = copy.deepcopy(SPEC_CLUSTER)
    body["id"] = uid("spec")
    before = int(time.time() * 1000)
    created = await ok(await client.post("/v6/foci/cluster?country=swz", json=body, headers=admin), 201)
    assert created == [{"cluster_id": body["id"]}]
    stored = await by_id(client, admin, "cluster", body["id"])
    assert stored["status"] == "investigated"
    assert stored["cases"] == 0  # the client's "94" is not kept: the recount owns the count
    assert stored["geometry"]["coordinates"][0] == SPEC_RING + [SPEC_RING[0]]  # the ring was closed
    assert before <= stored["updated_at"] <= int(time.time() * 1000)


async def test_create_clusters_in_bulk_with_generated_ids(client, admin):
    created = await ok(await client.post("/v6/foci/cluster?country=swz",
                                         json=[{"geometry": square(40, 0)}, {"geometry": square(42, 0),
                                                                            "status": "active"}],
                                         headers=admin), 201)
    assert len(created) == 2 and all(uuid.UUID(c["cluster_id"]) for c in created)
    first = await by_id(client, admin, "cluster", created[0]["cluster_id"])
    assert first["status"] == "suggested"  # the default


async def test_retrying_a_create_is_harmless_and_other_content_is_a_conflict(client, admin):
    body = {"id": uid("retry"), "geometry": square(10, 10), "status": "active"}
    first = await ok(await client.post("/v6/foci/cluster?country=swz", json=body, headers=admin), 201)
    again = await ok(await client.post("/v6/foci/cluster?country=swz", json=body, headers=admin), 200)
    assert first == again == [{"cluster_id": body["id"]}]
    count = (await ok(await client.get("/v6/foci/number_of_clusters?country=swz", headers=admin)))["count"]
    other = {**body, "status": "cleared"}
    fresh = {"id": uid("fresh"), "geometry": square(12, 12)}
    clash = await client.post("/v6/foci/cluster?country=swz", json=[fresh, other], headers=admin)
    assert body["id"] in (await error(clash, 409, "id"))["error"]
    after = (await ok(await client.get("/v6/foci/number_of_clusters?country=swz", headers=admin)))["count"]
    assert after == count  # nothing of the refused request was written
    assert (await by_id(client, admin, "cluster", body["id"]))["status"] == "active"


@pytest.mark.parametrize("body, field, words", [
    ({"geometry": BOWTIE}, "geometry", "Self-intersection"),
    ({"geometry": square(0, 0), "status": "done"}, "status", "is not one of"),
    ({"geometry": {"type": "Point", "coordinates": [0, 0]}}, "geometry.type", "is not one of"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1]]]}},
     "geometry.coordinates.0.1.0", "longitude 200"),
    ({"status": "active"}, "geometry", "required"),
    ({"geometry": square(0, 0), "colour": "red"}, "colour", "Additional properties"),
    ({"geometry": square(0, 0), "id": ""}, "id", "should be non-empty"),
    ([{"geometry": square(0, 0)}, {"geometry": BOWTIE}], "1.geometry", "Self-intersection"),
    ([{"geometry": square(0, 0)}, 7], "1", "must be a JSON object"),
    ([{"id": "dup", "geometry": square(0, 0)}, {"id": "dup", "geometry": square(2, 0)}], "1.id", "also record 0"),
    ([], "body", "empty"),
    (7, "body", "JSON object or an array"),
])
async def test_bad_clusters_are_refused_naming_the_field(client, admin, body, field, words):
    count = (await ok(await client.get("/v6/foci/number_of_clusters?country=nam", headers=admin)))["count"]
    refused = await error(await client.post("/v6/foci/cluster?country=nam", json=body, headers=admin), 400, field)
    assert words in refused["error"]
    assert (await ok(await client.get("/v6/foci/number_of_clusters?country=nam", headers=admin)))["count"] == count


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe"])
async def test_bad_json_is_400(client, admin, data):
    headers = {**admin, "Content-Type": "application/json"}
    for method, path in (("post", "/v6/foci/cluster?country=swz"), ("put", "/v6/foci/cluster?country=swz"),
                         ("post", "/v6/foci/case?country=swz"), ("put", "/v6/foci/case?country=swz"),
                         ("post", "/api/v6/cluster/"), ("put", "/api/v6/cluster/x")):
        await error(await client.request(method, path, data=data, headers=headers), 400, "body")


async def test_update_a_cluster(client, admin):
    cluster_id = uid("upd")
    await ok(await client.post("/v6/foci/cluster?country=swz", json={"id": cluster_id, "geometry": square(20, 20)},
                               headers=admin), 201)
    before = await by_id(client, admin, "cluster", cluster_id)
    changed = await client.put("/v6/foci/cluster?country=swz", json={"id": cluster_id, "status": "cleared"},
                               headers=admin)
    assert await ok(changed) == {"n": 1, "nModified": 1, "ok": 1}
    after = await by_id(client, admin, "cluster", cluster_id)
    assert after["status"] == "cleared" and after["geometry"] == before["geometry"]
    assert after["updated_at"] >= before["updated_at"]
    same = await client.put("/v6/foci/cluster?country=swz", json={"id": cluster_id, "status": "cleared",
                                                                  "cases": "94"}, headers=admin)
    assert await ok(same) == {"n": 1, "nModified": 0, "ok": 1}
    assert (await by_id(client, admin, "cluster", cluster_id))["updated_at"] == after["updated_at"]
    reshaped = {"id": cluster_id, "geometry": {"type": "Polygon", "coordinates": [SPEC_RING]}}
    assert (await ok(await client.put("/v6/foci/cluster?country=SWZ", json=reshaped, headers=admin)))["nModified"] == 1
    assert (await by_id(client, admin, "cluster", cluster_id))["geometry"]["coordinates"][0][-1] == SPEC_RING[0]
    # the spec's own example body updates a cluster that exists
    spec = copy.deepcopy(SPEC_CLUSTER)
    spec["id"] = cluster_id
    assert (await ok(await client.put("/v6/foci/cluster?country=swz", json=spec, headers=admin)))["n"] == 1


async def test_update_errors(client, admin):
    await error(await client.put("/v6/foci/cluster?country=swz", json={"id": uid("none"), "status": "active"},
                                 headers=admin), 404, "id")
    await error(await client.put("/v6/foci/cluster?country=swz", json={"status": "active"}, headers=admin),
                400, "id")
    await error(await client.put("/v6/foci/cluster?country=swz", json=[{"id": "x"}], headers=admin), 400, "body")
    cluster_id = uid("upderr")
    await ok(await client.post("/v6/foci/cluster?country=swz", json={"id": cluster_id, "geometry": square(0, 30)},
                               headers=admin), 201)
    bad = await client.put("/v6/foci/cluster?country=swz", json={"id": cluster_id, "geometry": BOWTIE}, headers=admin)
    assert "Self-intersection" in (await error(bad, 400, "geometry"))["error"]
    await error(await client.put("/v6/foci/cluster?country=swz", json={"id": cluster_id, "status": "x"},
                                 headers=admin), 400, "status")
    # a cluster of one country is not reachable through another
    await error(await client.put("/v6/foci/cluster?country=zaf", json={"id": cluster_id, "status": "active"},
                                 headers=admin), 404, "id")


async def test_delete_a_cluster(client, admin):
    cluster_id = uid("del")
    await ok(await client.post("/v6/foci/cluster?country=zmb", json={"id": cluster_id, "geometry": square(0, 0)},
                               headers=admin), 201)
    assert (await ok(await client.get("/v6/foci/number_of_clusters?country=zmb", headers=admin)))["count"] == 1
    assert await ok(await client.delete(f"/v6/foci/cluster?country=zmb&id={cluster_id}", headers=admin)) == \
        {"n": 1, "ok": 1}
    assert await listing(client, admin, "cluster", "zmb") == []
    assert (await ok(await client.get("/v6/foci/number_of_clusters?country=zmb", headers=admin)))["count"] == 0
    await error(await client.delete(f"/v6/foci/cluster?country=zmb&id={cluster_id}", headers=admin), 404, "id")
    await error(await client.delete("/v6/foci/cluster?country=zmb", headers=admin), 400, "id")
    # the id can be used again
    await ok(await client.post("/v6/foci/cluster?country=zmb", json={"id": cluster_id, "geometry": square(1, 1)},
                               headers=admin), 201)


# -- cases ------------------------------------------------------------------------------

async def test_create_a_case_from_the_spec_example(client, admin):
    body = {**SPEC_CASE, "id": uid("case")}
    assert await ok(await client.post("/v6/foci/case?country=swz", json=body, headers=admin), 201) == \
        {"n": 1, "ok": 1}
    stored = await by_id(client, admin, "case", body["id"])
    assert stored["geometry"] == SPEC_CASE["geometry"]
    assert stored["personalised_instance_id"] == "default"
    assert isinstance(stored["updated_at"], int) and isinstance(stored["_id"], str)
    assert await ok(await client.post("/v6/foci/case?country=swz", json=body, headers=admin), 200) == \
        {"n": 0, "ok": 1}


async def test_bulk_create_cases_and_list_them_all(client, admin, config):
    cases = [{"id": f"bulk-{i:04d}", "geometry": point(25 + i / 1000, -20), "personalised_instance_id": "team-3"}
             for i in range(1200)]
    assert await ok(await client.post("/v6/foci/case?country=ago", json=cases, headers=admin), 201) == \
        {"n": 1200, "ok": 1}
    assert await ok(await client.get("/v6/foci/number_of_cases?country=ago", headers=admin)) == {"count": 1200}
    response = await client.get("/v6/foci/case?country=ago", headers=admin)
    assert response.status == 200 and response.headers["Content-Type"].startswith("application/json")
    listed = json.loads(await response.read())  # streamed in several pages, one valid array
    assert [c["id"] for c in listed] == [c["id"] for c in cases]
    assert {c["personalised_instance_id"] for c in listed} == {"team-3"}
    # a day's upload sent again with a few new cases writes only the new ones
    more = cases[:10] + [{"id": "bulk-new", "geometry": point(26, -20)}]
    assert await ok(await client.post("/v6/foci/case?country=ago", json=more, headers=admin), 201) == \
        {"n": 1, "ok": 1}
    # nothing is written when one case is bad
    bad = [{"id": "bulk-x1", "geometry": point(26, -20)}, {"id": "bulk-x2", "geometry": point(26, -95)}]
    await error(await client.post("/v6/foci/case?country=ago", json=bad, headers=admin), 400,
                "1.geometry.coordinates.1")
    assert await ok(await client.get("/v6/foci/number_of_cases?country=ago", headers=admin)) == {"count": 1201}


async def test_too_many_records_in_one_request_is_400(client, admin):
    many = [{"geometry": point(0, 0)}] * 10001
    await error(await client.post("/v6/foci/case?country=ago", json=many, headers=admin), 400, "body")


@pytest.mark.parametrize("body, field", [
    ({"geometry": point(181, 0)}, "geometry.coordinates.0"),
    ({"geometry": square(0, 0)}, "geometry.type"),
    ({"geometry": {"type": "Point", "coordinates": [0, "1"]}}, "geometry.coordinates.1"),
    ({"id": "x"}, "geometry"),
    ({"geometry": point(0, 0), "personalised_instance_id": 5}, "personalised_instance_id"),
    ({"geometry": point(0, 0), "country": "swz"}, "country"),
])
async def test_bad_cases_are_refused_naming_the_field(client, admin, body, field):
    await error(await client.post("/v6/foci/case?country=moz", json=body, headers=admin), 400, field)
    assert await ok(await client.get("/v6/foci/number_of_cases?country=moz", headers=admin)) == {"count": 0}


async def test_update_and_delete_a_case(client, admin):
    case_id = uid("move")
    await ok(await client.post("/v6/foci/case?country=swz", json={"id": case_id, "geometry": point(31, -26)},
                               headers=admin), 201)
    before = await by_id(client, admin, "case", case_id)
    moved = {"id": case_id, "geometry": {"type": "Point", "coordinates": [31.196880340576172, -25.931031499716866]}}
    assert await ok(await client.put("/v6/foci/case?country=swz", json=moved, headers=admin)) == \
        {"n": 1, "nModified": 1, "ok": 1}
    after = await by_id(client, admin, "case", case_id)
    assert after["geometry"] == moved["geometry"] and after["updated_at"] >= before["updated_at"]
    assert await ok(await client.put("/v6/foci/case?country=swz", json=moved, headers=admin)) == \
        {"n": 1, "nModified": 0, "ok": 1}
    await error(await client.put("/v6/foci/case?country=swz", json={"id": uid("none"), "geometry": point(0, 0)},
                                 headers=admin), 404, "id")
    await error(await client.put("/v6/foci/case?country=swz", json={"id": case_id, "geometry": point(0, 100)},
                                 headers=admin), 400, "geometry.coordinates.1")
    assert await ok(await client.delete(f"/v6/foci/case?country=swz&id={case_id}", headers=admin)) == \
        {"n": 1, "ok": 1}
    assert await by_id(client, admin, "case", case_id) is None
    await error(await client.delete(f"/v6/foci/case?country=swz&id={case_id}", headers=admin), 404)


async def test_deleted_records_keep_where_they_were_for_the_recount(client, admin, config):
    case_id = uid("tomb")
    await ok(await client.post("/v6/foci/case?country=swz", json={"id": case_id, "geometry": point(31, -26)},
                               headers=admin), 201)
    await ok(await client.delete(f"/v6/foci/case?country=swz&id={case_id}", headers=admin))
    async with Couch.from_config(config) as couch:
        changes = await couch.db(config.db_foci).changes(doc_ids=[f"case:swz:{case_id}"], include_docs=True)
    tombstone = changes["results"][0]["doc"]
    assert tombstone["_deleted"] and tombstone["country"] == "swz"
    assert tombstone["geometry"] == point(31, -26)


# -- the draft's paths --------------------------------------------------------------------

async def test_draft_aliases(client, admin):
    cluster_id = uid("draft")
    created = await client.post("/api/v6/cluster/", json={"country": "nam", "cluster_data": {
        "id": cluster_id, "status": "investigated", "geometry": {"type": "Polygon", "coordinates": [SPEC_RING]}}},
        headers=admin)
    assert await ok(created, 201) == [{"cluster_id": cluster_id}]
    for path in ("/api/v6/cluster/?country=nam", "/api/v6/cluster?country=NAM"):
        assert cluster_id in [c["id"] for c in await ok(await client.get(path, headers=admin))]
    updated = await client.put(f"/api/v6/cluster/{cluster_id}", json={"country": "nam",
                                                                     "cluster_data": {"status": "active"}},
                               headers=admin)
    assert await ok(updated) == [{"cluster_id": cluster_id}]
    assert (await by_id(client, admin, "cluster", cluster_id, "nam"))["status"] == "active"
    by_query = await client.put(f"/api/v6/cluster/{cluster_id}?country=nam",
                                json={"cluster_data": {"id": cluster_id, "geometry": square(2, 2)}}, headers=admin)
    assert await ok(by_query) == [{"cluster_id": cluster_id}]
    assert (await by_id(client, admin, "cluster", cluster_id, "nam"))["geometry"] == square(2, 2)
    many = await client.post("/api/v6/cluster?country=nam", json={"cluster_data": [{"geometry": square(1, 1)},
                                                                                   {"geometry": square(3, 3)}]},
                             headers=admin)
    assert len(await ok(many, 201)) == 2


async def test_draft_errors(client, admin):
    await error(await client.post("/api/v6/cluster/", json={"country": "nam"}, headers=admin), 400, "cluster_data")
    await error(await client.post("/api/v6/cluster/", json={"cluster_data": {"geometry": square(0, 0)}},
                                  headers=admin), 400, "country")
    bad = await client.post("/api/v6/cluster/", json={"country": "nam", "cluster_data": {"geometry": BOWTIE}},
                            headers=admin)
    assert "Self-intersection" in (await error(bad, 400, "cluster_data.geometry"))["error"]
    listed = await client.post("/api/v6/cluster/", json={"country": "nam", "cluster_data": [{"geometry": BOWTIE}]},
                               headers=admin)
    await error(listed, 400, "cluster_data.0.geometry")
    await error(await client.post("/api/v6/cluster/", json={"country": "nam", "cluster_data": 3}, headers=admin),
                400, "cluster_data")
    await error(await client.put("/api/v6/cluster/nope", json={"country": "nam", "cluster_data": {"status": "active"}},
                                 headers=admin), 404)
    cluster_id = uid("drafterr")
    await ok(await client.post("/api/v6/cluster/", json={"country": "nam", "cluster_data": {
        "id": cluster_id, "geometry": square(5, 5)}}, headers=admin), 201)
    await error(await client.put(f"/api/v6/cluster/{cluster_id}", json={"country": "nam", "cluster_data": {
        "id": "other", "status": "active"}}, headers=admin), 400, "cluster_data.id")
    await error(await client.put(f"/api/v6/cluster/{cluster_id}", json={"country": "nam", "cluster_data": {
        "status": "nope"}}, headers=admin), 400, "cluster_data.status")
    await error(await client.put(f"/api/v6/cluster/{cluster_id}", json={"country": "nam", "cluster_data": []},
                                 headers=admin), 400, "cluster_data")


async def test_counts_and_empty_lists(client, admin):
    assert await ok(await client.get("/v6/foci/number_of_clusters?country=zwe", headers=admin)) == {"count": 0}
    assert await ok(await client.get("/v6/foci/number_of_cases?country=zwe", headers=admin)) == {"count": 0}
    assert await listing(client, admin, "case", "zwe") == []
    await ok(await client.post("/v6/foci/case?country=zwe", json=[{"geometry": point(30, -19)}] * 3, headers=admin),
             201)
    await ok(await client.post("/v6/foci/cluster?country=zwe", json={"geometry": square(29, -20)}, headers=admin), 201)
    assert await ok(await client.get("/v6/foci/number_of_cases?country=zwe", headers=admin)) == {"count": 3}
    assert await ok(await client.get("/v6/foci/number_of_clusters?country=zwe", headers=admin)) == {"count": 1}
