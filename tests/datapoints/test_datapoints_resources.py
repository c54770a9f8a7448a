"""The v2 resources against the real server: GET and POST of each, filters, paging, CSV, errors, ids."""

import asyncio
import csv
import io

import pytest

from api.couch import Couch
from api.datapoints.model import RESOURCES
from tests.helpers import PASSWORD, basic, user_prefix

from .world import build_sync


@pytest.fixture(scope="module")
def world(config):
    return build_sync(config)


async def get(client, world, who, url, status=200):
    response = await client.get(url, headers=world.headers(who))
    body = await response.json()
    assert response.status == status, body
    return body


async def post(client, world, who, resource, body, status=201):
    response = await client.post(f"/api/v2/{resource}/", json=body, headers=world.headers(who))
    payload = await response.json()
    assert response.status == status, payload
    return payload


def bodies(world, make):
    """An insert body and an update of one field, per resource."""
    w = world
    return {
        "office": ({"name": make("office")}, {"name": make("office2")}),
        "campaign_type": ({"name": make("ct")}, {"name": make("ct2")}),
        "region_type": ({"name": make("rt")}, {"name": make("rt2")}),
        "indicator_tag": ({"tag_name": make("tag")}, {"tag_name": make("tag2")}),
        "region": ({"name": make("Region"), "region_code": "RC", "office_id": str(w.offices["nigeria"]),
                    "region_type_id": str(w.region_types["settlement"]),
                    "parent_region_id": str(w.regions["P1D1S1"]), "latitude": "9.5", "longitude": 8.1},
                   {"region_code": "RC2"}),
        "indicator": ({"name": make("Indicator"), "short_name": "ind", "description": "d", "is_reported": "0",
                       "source_id": "1", "bound_json": [{"bound_name": "bad", "mn_val": 0.2, "mx_val": 1}],
                       "tag_json": []}, {"description": "changed"}),
        "campaign": ({"slug": make("campaign"), "campaign_type_id": "1", "office_id": str(w.offices["nigeria"]),
                      "start_date": "2017-01-01", "end_date": "2017-01-05"}, {"end_date": "2017-01-09"}),
        "region_map": ({"source_object_id": 184381, "master_object_id": w.regions["P1"]},
                       {"source_object_id": 184382}),
        "indicator_map": ({"source_object_id": 5, "master_object_id": w.indicators["missed"]},
                          {"source_object_id": 6}),
        "campaign_map": ({"source_object_id": 7, "master_object_id": w.campaigns["ng-2016-01"]},
                         {"source_object_id": 8}),
        "document": ({"docfile": "upload.csv", "doc_text": "a,b\n1,2"}, {"is_processed": True}),
        "document_review": ({"document_id": 1, "db_model": "region", "source_object_id": 3,
                             "source_string": "Kano"}, {"master_object_id": w.regions["P1"]}),
        "group": ({"name": make("group")}, {"name": make("group2")}),
        "user_group": ({"user_id": w.user_ids["analyst"], "group_id": w.groups["entry"]},
                       {"group_id": w.groups["entry"]}),
        "region_permission": ({"user_id": w.user_ids["analyst"], "region_id": w.regions["P1D2"]},
                              {"read_write": "w"}),
        "user_permission": ({"user_id": w.user_ids["analyst"], "auth_code": "upload_csv"},
                            {"auth_code": "review"}),
        "group_permission": ({"group_id": w.groups["entry"], "indicator_id": w.indicators["pct_vaccinated"]},
                             {"indicator_id": w.indicators["pct_vaccinated"]}),
        "custom_dashboard": ({"title": make("Dashboard"), "dashboard_json": {"charts": [1, 2]},
                              "default_office_id": w.offices["nigeria"]}, {"description": "mine"}),
    }


WRITER = {"document": "entry", "custom_dashboard": "entry"}


@pytest.mark.parametrize("resource", sorted(set(RESOURCES) - {"user"}))
async def test_insert_read_update_delete_every_resource(client, world, resource):
    counter = iter(range(1000))
    insert, change = bodies(world, lambda base: f"{base}-{resource}-{next(counter)}")[resource]
    who = WRITER.get(resource, "admin")
    if resource == "document_review":
        doc = await post(client, world, "entry", "document", {"docfile": "x.csv"})
        insert = {**insert, "document_id": doc["objects"]["new_id"]}
    created = await post(client, world, who, resource, insert)
    assert created["meta"] is None and created["error"] is None
    new_id = created["objects"]["new_id"]
    assert isinstance(new_id, int) and new_id >= 1

    body = await get(client, world, who, f"/api/v2/{resource}/?id={new_id}")
    assert set(body) == {"meta", "objects", "errors"} and body["errors"] == {}
    assert body["meta"]["total_count"] == 1
    (obj,) = body["objects"]
    assert list(obj) == [f.name for f in RESOURCES[resource].fields]
    assert obj["id"] == new_id and obj["resource_uri"] == f"/api/v2/{resource}/{new_id}/"
    for name, value in insert.items():
        if name.endswith("_id") and isinstance(value, str):
            value = int(value)
        if name in ("latitude",):
            value = float(value)
        if name == "is_reported":
            value = False
        assert obj[name] == value, name
    if "created_at" in obj:
        assert len(obj["created_at"]) == 23 and obj["created_at"][10] == "T"
    if resource in ("region_map", "indicator_map", "campaign_map"):
        admin = await get(client, world, "admin", f"/api/v2/user/?username={world.config.couch_user}")
        assert obj["mapped_by_id"] == admin["objects"][0]["id"]

    updated = await post(client, world, who, resource, {"id": str(new_id), **change}, status=200)
    assert updated["objects"] == {"updated_id": new_id}
    detail = await get(client, world, who, f"/api/v2/{resource}/{new_id}/")
    for name, value in change.items():
        assert detail["objects"][0][name] == value

    deleted = await post(client, world, who, resource, {"id": "", "id__in": [new_id]}, status=200)
    assert deleted["objects"] == {"deleted_ids": [new_id]}
    assert (await get(client, world, who, f"/api/v2/{resource}/?id={new_id}"))["objects"] == []
    await get(client, world, who, f"/api/v2/{resource}/{new_id}/", status=404)


async def test_meta_paging_and_limits(client, world):
    everything = await get(client, world, "admin", "/api/v2/region/?limit=0")
    ids = [o["id"] for o in everything["objects"]]
    assert ids == sorted(ids) and len(ids) >= 33
    assert everything["meta"]["total_count"] == len(ids)
    default = await get(client, world, "admin", "/api/v2/region/")
    assert default["meta"]["limit"] == 20 and default["meta"]["offset"] == 0
    assert [o["id"] for o in default["objects"]] == ids[:20]
    assert default["meta"]["total_count"] == len(ids)
    page = await get(client, world, "admin", "/api/v2/region/?limit=7&offset=10")
    assert [o["id"] for o in page["objects"]] == ids[10:17]
    assert page["meta"] == {"limit": 7, "offset": 10, "total_count": len(ids),
                            "parameters_requested": {"limit": "7", "offset": "10"}}
    beyond = await get(client, world, "admin", f"/api/v2/region/?offset={len(ids) + 5}")
    assert beyond["objects"] == [] and beyond["meta"]["total_count"] == len(ids)
    tail = await get(client, world, "admin", f"/api/v2/region/?offset={len(ids) - 3}&limit=10")
    assert [o["id"] for o in tail["objects"]] == ids[-3:] and tail["meta"]["total_count"] == len(ids)
    paged = []
    for offset in range(0, len(ids), 6):
        paged += [o["id"] for o in (await get(client, world, "admin",
                                              f"/api/v2/region/?limit=6&offset={offset}"))["objects"]]
    assert paged == ids


def names(body):
    return sorted(o["name"] for o in body["objects"])


async def test_each_filter_operator(client, world):
    r = world.regions
    url = "/api/v2/region/?limit=0&"

    async def found(query):
        return names(await get(client, world, "admin", url + query))

    assert await found("name=P1D1") == ["P1D1"]
    assert await found("name__exact=P1D1") == ["P1D1"]
    assert await found(f"id__in={r['P1']},{r['P2']},99999") == ["P1", "P2"]
    assert await found(f"id__gt={r['P2D2S2']}") == ["Banadir", "P2D2S2T1", "P2D2S2T2", "Somalia"]
    assert await found(f"id__gte={r['P2D2S2T2']}") == ["Banadir", "P2D2S2T2", "Somalia"]
    assert await found(f"id__lt={r['P1D1']}") == ["Nigeria", "P1"]
    assert await found(f"id__lte={r['P1D1']}") == ["Nigeria", "P1", "P1D1"]
    assert await found(f"id__gt={r['P1']}&id__lt={r['P1D1S2']}") == ["P1D1", "P1D1S1", "P1D1S1T1", "P1D1S1T2"]
    assert await found("name__contains=D2S2T") == ["P1D2S2T1", "P1D2S2T2", "P2D2S2T1", "P2D2S2T2"]
    assert await found("name__startswith=P2D1S") == ["P2D1S1", "P2D1S1T1", "P2D1S1T2", "P2D1S2", "P2D1S2T1",
                                                     "P2D1S2T2"]
    assert await found("name__starts_with=P2D1S2") == ["P2D1S2", "P2D1S2T1", "P2D1S2T2"]
    assert await found("name__startswith=P2&name__contains=T2&depth=4") == \
        ["P2D1S1T2", "P2D1S2T2", "P2D2S1T2", "P2D2S2T2"]
    assert await found("parent_region_id__isnull=true") == ["Nigeria", "Somalia"]
    assert await found(f"office={world.offices['somalia']}") == ["Banadir", "Somalia"]
    assert await found(f"parent_region={r['P1D1']}") == ["P1D1S1", "P1D1S2"]
    assert await found("depth__gte=1&depth__lte=1") == ["Banadir", "P1", "P2"]
    assert await found("name=Atlantis") == []
    assert await found("name__in=P1,P2,Atlantis") == ["P1", "P2"]
    campaigns = "/api/v2/campaign/?"
    assert [c["slug"] for c in (await get(client, world, "admin", campaigns + "start_date__lte=2016-03-01"))[
        "objects"]] == ["ng-2016-01", "so-2016-03"]
    assert [c["slug"] for c in (await get(client, world, "admin", campaigns + "start_date__gte=2016-03-01"))[
        "objects"]] == ["ng-2016-06", "so-2016-03"]
    assert [c["slug"] for c in (await get(client, world, "admin", campaigns + "end_date__gt=2016-06-13"))[
        "objects"]] == ["ng-2016-06"]
    indicators = await get(client, world, "admin", "/api/v2/indicator/?name__startswith=Number&is_reported=1")
    assert sorted(i["slug"] for i in indicators["objects"]) == ["missed", "target", "vaccinated"]
    perms = await get(client, world, "admin", f"/api/v2/group_permission/?indicator={world.indicators['missed']}")
    assert [p["group_id"] for p in perms["objects"]] == [world.groups["entry"]]
    groups = await get(client, world, "admin", f"/api/v2/user_group/?user={world.user_ids['entry']}")
    assert [g["group_id"] for g in groups["objects"]] == [world.groups["entry"]]


async def test_bad_operators_and_values_are_errors_and_unknown_parameters_warnings(client, world):
    response = await client.get("/api/v2/region/?nme=Kano&name__like=K&id=abc&limit=-1&format=xml",
                                headers=world.headers("admin"))
    body = await response.json()
    assert response.status == 400
    assert body["objects"] == [] and set(body["errors"]) == {"name__like", "id", "limit", "format"}
    assert body["code"] == 400 and body["field"] in body["errors"]
    assert body["meta"]["parameters_requested"]["nme"] == "Kano"
    assert set(body["meta"]["warnings"]) == {"nme"} and "name" in body["meta"]["warnings"]["nme"]
    assert response.headers["X-Ignored-Parameters"] == "nme"
    for url in ("/api/v2/region/?read_write=x", "/api/v2/region/?uri_format=pdf",
                "/api/v2/custom_dashboard/?owner_username=x", "/api/v2/region/?office__name=x",
                "/api/v2/indicator/?bound_json=x", "/api/v2/region/?name__icontains=k"):
        response = await client.get(url, headers=world.headers("admin"))
        assert response.status == 400, url


async def test_unknown_parameters_are_ignored_as_rhizome_ignored_them(client, world):
    """RhizomeDB's own front end sends uri_display (and chart_uuid) with every GET: ignored, with a warning."""
    plain = await get(client, world, "admin", "/api/v2/region/?name=P1D1")
    response = await client.get("/api/v2/region/?name=P1D1&uri_display=id&chart_uuid=abc&offset=0&format=json",
                                headers=world.headers("admin"))
    body = await response.json()
    assert response.status == 200 and body["objects"] == plain["objects"] and body["errors"] == {}
    assert set(body["meta"]["warnings"]) == {"uri_display", "chart_uuid"}
    assert body["meta"]["parameters_requested"]["uri_display"] == "id"
    assert response.headers["X-Ignored-Parameters"] == "chart_uuid, uri_display"
    assert "warnings" not in plain["meta"]
    assert "X-Ignored-Parameters" not in (await client.get("/api/v2/region/?name=P1D1",
                                                           headers=world.headers("admin"))).headers
    # parameters of other resources are not this one's: ignored too, and said so
    for url, name in (("/api/v2/indicator/?depth_level=1", "depth_level"), ("/api/v2/office/?show_all=1", "show_all"),
                      ("/api/v2/office/?read_write=w", "read_write")):
        body = await get(client, world, "admin", url)
        assert set(body["meta"]["warnings"]) == {name}, url
    csv_reply = await client.get("/api/v2/region/?name=P1D1&format=csv&uri_display=id&a%0D%0Ab=1",
                                 headers=world.headers("admin"))
    assert csv_reply.status == 200 and csv_reply.headers["X-Ignored-Parameters"] == "a%0D%0Ab, uri_display"
    assert list(csv.reader(io.StringIO(await csv_reply.text())))[1][0] == str(plain["objects"][0]["id"])
    one = await client.get(f"/api/v2/region/{world.regions['P1D1']}/?uri_display=id", headers=world.headers("admin"))
    one_body = await one.json()
    assert one.status == 200 and one_body["objects"][0]["id"] == world.regions["P1D1"]
    assert set(one_body["meta"]["warnings"]) == {"uri_display"} and one.headers["X-Ignored-Parameters"] == "uri_display"
    bad_one = await client.get(f"/api/v2/region/{world.regions['P1D1']}/?uri_format=pdf&uri_display=id",
                               headers=world.headers("admin"))
    assert bad_one.status == 400 and set((await bad_one.json())["errors"]) == {"uri_format"}


async def test_references_follow_uri_format(client, world):
    url = "/api/v2/region/?name=P1D1&uri_format="
    by_id = (await get(client, world, "admin", url + "id"))["objects"][0]
    assert by_id["office"] == world.offices["nigeria"] and by_id["parent_region"] == world.regions["P1"]
    assert by_id["region_type"] == "district"
    by_name = (await get(client, world, "admin", url + "name"))["objects"][0]
    assert by_name["office"] == "nigeria" and by_name["parent_region"] == "P1"
    by_slug = (await get(client, world, "admin", url + "slug"))["objects"][0]
    assert by_slug["parent_region"] == "p1"
    by_uri = (await get(client, world, "admin", url + "uri"))["objects"][0]
    assert by_uri["office"] == f"/api/v2/office/{world.offices['nigeria']}/"
    assert by_uri["parent_region"] == f"/api/v2/region/{world.regions['P1']}/"
    campaign = (await get(client, world, "admin", "/api/v2/campaign/?slug=so-2016-03&uri_format=name"))["objects"][0]
    assert campaign["office"] == "somalia" and campaign["name"] == "so-2016-03"


async def test_csv_has_a_header_and_one_row_per_record(client, world):
    response = await client.get("/api/v2/region/?format=csv&name__startswith=P1D1S1&uri_format=name",
                                headers=world.headers("admin"))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == [f.name for f in RESOURCES["region"].fields]
    assert [row[1] for row in rows[1:]] == ["P1D1S1", "P1D1S1T1", "P1D1S1T2"]
    assert rows[1][rows[0].index("office")] == "nigeria"
    assert rows[1][rows[0].index("latitude")] == ""
    indicators = await client.get("/api/v2/indicator/?format=csv&slug=pct_vaccinated",
                                  headers=world.headers("admin"))
    row = list(csv.DictReader(io.StringIO(await indicators.text())))[0]
    assert row["calculation"].startswith('{"type":"ratio"') and row["is_reported"] == "false"
    empty = await client.get("/api/v2/region/?format=csv&name=Atlantis", headers=world.headers("admin"))
    assert list(csv.reader(io.StringIO(await empty.text()))) == [[f.name for f in RESOURCES["region"].fields]]


async def test_post_errors_name_the_field_and_write_nothing(client, world):
    before = (await get(client, world, "admin", "/api/v2/region/?limit=1"))["meta"]["total_count"]
    base = {"name": "Broken", "region_code": "B", "office_id": world.offices["nigeria"],
            "region_type_id": world.region_types["district"], "parent_region_id": world.regions["P1"]}
    cases = [
        ({**base, "office_id": "abc"}, 400, "office_id"),
        ({**base, "office_id": 999}, 400, "office_id"),
        ({**base, "parent_region_id": 999}, 400, "parent_region_id"),
        ({k: v for k, v in base.items() if k != "region_code"}, 400, "region_code"),
        ({**base, "colour": "red"}, 400, "colour"),
        ({**base, "depth": 2}, 400, "depth"),
        ({**base, "latitude": 123}, 400, "latitude"),
        ({**base, "name": ""}, 400, "name"),
        ({"id": "seven", "name": "x"}, 400, "id"),
        ({"id": 99999, "name": "x"}, 404, "id"),
        ({"id": ""}, 400, "id"),
        ({"id": "", "nme": "x"}, 400, "nme"),
    ]
    for body, status, field in cases:
        payload = await post(client, world, "admin", "region", body, status=status)
        assert payload["field"] == field and payload["code"] == status, (body, payload)
        assert payload["objects"] is None and payload["meta"] is None and payload["error"]
    for raw in (b"{", b"[1, 2]", b""):
        response = await client.post("/api/v2/region/", data=raw, headers={**world.headers("admin"),
                                                                           "Content-Type": "application/json"})
        assert response.status == 400 and (await response.json())["field"] == "body"
    campaign = {"slug": "backwards", "campaign_type_id": 1, "office_id": world.offices["nigeria"],
                "start_date": "2017-02-01", "end_date": "2017-01-01"}
    assert (await post(client, world, "admin", "campaign", campaign, status=400))["field"] == "end_date"
    bad_date = {**campaign, "end_date": "2017-02-30"}
    assert (await post(client, world, "admin", "campaign", bad_date, status=400))["field"] == "end_date"
    bad_tag = {"name": "Tagged", "tag_json": [999]}
    assert (await post(client, world, "admin", "indicator", bad_tag, status=400))["field"] == "tag_json"
    nested = {"name": "Nested", "calculation": {"type": "ratio", "part": world.indicators["pct_vaccinated"],
                                                "whole": world.indicators["target"]}}
    assert (await post(client, world, "admin", "indicator", nested, status=400))["field"] == "calculation.part"
    after = (await get(client, world, "admin", "/api/v2/region/?limit=1"))["meta"]["total_count"]
    assert after == before


async def test_unique_slugs_and_pairs_conflict(client, world):
    clash = {"name": "P1 again", "slug": "p1", "region_code": "X", "office_id": world.offices["nigeria"],
             "region_type_id": world.region_types["province"], "parent_region_id": world.regions["Nigeria"]}
    assert (await post(client, world, "admin", "region", clash, status=409))["field"] == "slug"
    pair = {"user_id": world.user_ids["entry"], "group_id": world.groups["entry"]}
    assert (await post(client, world, "admin", "user_group", pair, status=409))["code"] == 409
    same = await post(client, world, "admin", "region", {"id": world.regions["P1"], "slug": "p1"}, status=200)
    assert same["objects"] == {"updated_id": world.regions["P1"]}


async def test_concurrent_creates_get_distinct_ids_and_ids_are_never_reused(client, world, couch, config):
    """On a cluster two creates of one id could both be told 202 and both answer it (this test once saw id 4
    twice there): an id is a claim, and an unconfirmed one is dropped, leaving a gap; one node leaves none."""
    responses = await asyncio.gather(*(client.post("/api/v2/office/", json={"name": f"concurrent-{i}"},
                                                   headers=world.headers("admin")) for i in range(25)))
    ids = [(await r.json())["objects"]["new_id"] for r in responses]
    assert all(r.status == 201 for r in responses)
    assert len(set(ids)) == 25
    offices = (await get(client, world, "admin", "/api/v2/office/?limit=0"))["objects"]
    names = [o["name"] for o in offices if o["name"].startswith("concurrent-")]
    assert sorted(names) == sorted(f"concurrent-{i}" for i in range(25)), "each stored once, none left over"
    if await couch.write_quorum(config.db_datapoints) is None:
        assert sorted(ids) == list(range(min(ids), min(ids) + 25)), "no gaps without a reason"
    last = max(ids)
    await post(client, world, "admin", "office", {"id": "", "id__in": [last]}, status=200)
    fresh = await post(client, world, "admin", "office", {"name": "after-delete"})
    assert fresh["objects"]["new_id"] == last + 1


async def test_delete_by_other_fields_and_referenced_records(client, world):
    analyst, entry = world.user_ids["analyst"], world.groups["entry"]
    await post(client, world, "admin", "user_permission", {"user_id": analyst, "auth_code": "a"})
    await post(client, world, "admin", "user_permission", {"user_id": analyst, "auth_code": "b"})
    gone = await post(client, world, "admin", "user_permission", {"id": "", "user_id": analyst}, status=200)
    assert len(gone["objects"]["deleted_ids"]) == 2
    nothing = await post(client, world, "admin", "user_permission", {"id": None, "user_id": analyst}, status=200)
    assert nothing["objects"] == {"deleted_ids": []}
    used = await post(client, world, "admin", "office", {"id": "", "name": "nigeria"}, status=409)
    assert "still used" in used["error"]
    has_children = await post(client, world, "admin", "region", {"id": "", "name": "P1D1"}, status=409)
    assert "region" in has_children["error"]
    in_use = await post(client, world, "admin", "group", {"id": "", "id__in": [entry]}, status=409)
    assert "user_group" in in_use["error"] or "group_permission" in in_use["error"]
    users = await post(client, world, "admin", "user", {"id": "", "username": "x"}, status=400)
    assert users["field"] == "id"


async def test_users_are_couchdb_users_with_integer_ids(client, world, config):
    manager_view = await get(client, world, "manager", "/api/v2/user/?limit=0")
    assert {u["username"] for u in manager_view["objects"]} >= set(world.users.values()) - {world.users["outsider"]}
    mine = await get(client, world, "entry", "/api/v2/user/")
    (me,) = mine["objects"]
    assert me["username"] == world.users["entry"] and me["id"] == world.user_ids["entry"]
    assert me["first_name"] == "Entry" and me["last_name"] == "Person" and me["email"] == "entry@example.org"
    assert me["is_active"] is True and me["is_superuser"] is False and me["last_login"]
    name = f"{user_prefix(config)}dp-newcomer"
    async with Couch.from_config(config) as couch:
        await couch.db(config.db_users).put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                                             "roles": ["analytics"], "password": PASSWORD})
    created = await post(client, world, "manager", "user", {"username": name, "first_name": "New"})
    new_id = created["objects"]["new_id"]
    await post(client, world, "manager", "user", {"username": name}, status=409)
    assert (await post(client, world, "manager", "user", {"username": "nobody-here"}, status=400))["field"] == \
        "username"
    grant = await post(client, world, "manager", "region_permission", {"user_id": new_id,
                                                                       "region_id": world.regions["P2D2"]})
    assert grant["objects"]["new_id"]
    response = await client.get("/api/v2/region/?limit=0", headers=basic(name))
    assert names(await response.json())[0] == "P2D2"
    profile = (await (await client.get("/api/v2/user/", headers=basic(name))).json())["objects"][0]
    assert profile["id"] == new_id and profile["first_name"] == "New"
    await post(client, world, "manager", "user", {"id": new_id, "is_active": "false"}, status=200)
    assert (await client.get("/api/v2/region/", headers=basic(name))).status == 403
    await post(client, world, "manager", "user", {"id": new_id, "username": "other"}, status=400)
    await post(client, world, "entry", "user", {"id": new_id, "is_active": True}, status=403)


async def test_concurrent_first_calls_make_one_profile(client, config, world):
    name = f"{user_prefix(config)}dp-racer"
    async with Couch.from_config(config) as couch:
        await couch.db(config.db_users).put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                                             "roles": ["analytics"], "password": PASSWORD})
    responses = await asyncio.gather(*(client.get("/api/v2/user/", headers=basic(name)) for _ in range(8)))
    ids = {(await r.json())["objects"][0]["id"] for r in responses}
    assert len(ids) == 1
    everyone = await get(client, world, "admin", f"/api/v2/user/?username={name}")
    assert everyone["meta"]["total_count"] == 1


async def test_custom_dashboards_show_their_owner(client, world):
    created = await post(client, world, "entry", "custom_dashboard", {"title": "Mine", "dashboard_json": [1]})
    new_id = created["objects"]["new_id"]
    own = (await get(client, world, "entry", f"/api/v2/custom_dashboard/?id={new_id}"))["objects"][0]
    assert own["owned_by_current_user"] is True and own["owner_username"] == world.users["entry"]
    assert own["owner_id"] == world.user_ids["entry"]
    other = (await get(client, world, "entry2", f"/api/v2/custom_dashboard/?id={new_id}"))["objects"][0]
    assert other["owned_by_current_user"] is False and other["owner_username"] == world.users["entry"]
    await post(client, world, "entry2", "custom_dashboard", {"id": new_id, "title": "Stolen"}, status=403)
    await post(client, world, "entry2", "custom_dashboard", {"id": "", "id__in": [new_id]}, status=403)
    await post(client, world, "manager", "custom_dashboard", {"id": new_id, "title": "Renamed"}, status=200)
    await post(client, world, "analyst", "custom_dashboard", {"title": "Read only"}, status=403)
    mine = await get(client, world, "entry", f"/api/v2/custom_dashboard/?owner_id={world.user_ids['entry']}")
    assert [d["title"] for d in mine["objects"]] == ["Renamed"]


async def test_documents_are_own_unless_show_all(client, world):
    a = (await post(client, world, "entry", "document", {"docfile": "a.csv"}))["objects"]["new_id"]
    b = (await post(client, world, "entry2", "document", {"docfile": "b.csv", "guid": "fixed-guid"}))["objects"][
        "new_id"]
    own = await get(client, world, "entry", "/api/v2/document/?limit=0")
    assert a in [d["id"] for d in own["objects"]] and b not in [d["id"] for d in own["objects"]]
    assert all(d["created_by_id"] == world.user_ids["entry"] for d in own["objects"])
    every = await get(client, world, "entry", "/api/v2/document/?limit=0&show_all=1")
    assert {a, b} <= {d["id"] for d in every["objects"]}
    assert (await get(client, world, "entry", "/api/v2/document/?show_all=1&guid=fixed-guid"))["objects"][0][
        "id"] == b
    await post(client, world, "entry", "document", {"id": b, "is_processed": True}, status=403)
    assert len((await get(client, world, "entry", f"/api/v2/document/?id={a}"))["objects"][0]["guid"]) == 32


async def test_who_may_call_what(client, world):
    assert (await client.get("/api/v2/region/")).status == 401
    outsider = await client.get("/api/v2/office/", headers=world.headers("outsider"))
    assert outsider.status == 403
    assert (await client.get("/api/v1/datapoint", headers=world.headers("outsider"))).status == 403
    await post(client, world, "analyst", "office", {"name": "not allowed"}, status=403)
    await post(client, world, "entry", "office", {"name": "not allowed"}, status=403)
    assert (await client.get("/api/v2/nothing/", headers=world.headers("admin"))).status == 404


async def test_tags_and_calculations_cannot_loop(client, world):
    parent = (await post(client, world, "admin", "indicator_tag", {"tag_name": "parent"}))["objects"]["new_id"]
    child = (await post(client, world, "admin", "indicator_tag", {"tag_name": "child", "parent_tag_id": parent}))[
        "objects"]["new_id"]
    loop = await post(client, world, "admin", "indicator_tag", {"id": parent, "parent_tag_id": child}, status=400)
    assert loop["field"] == "parent_tag_id"
    tagged = await post(client, world, "admin", "indicator", {"name": "Tagged", "tag_json": [parent, child]})
    detail = await get(client, world, "admin", f"/api/v2/indicator/{tagged['objects']['new_id']}/")
    assert detail["objects"][0]["tag_json"] == [parent, child]
    in_use = await post(client, world, "admin", "indicator_tag", {"id": "", "id__in": [child]}, status=409)
    assert "indicator" in in_use["error"]
    component = await post(client, world, "admin", "indicator", {
        "id": world.indicators["target"], "calculation": {"type": "ratio", "part": world.indicators["missed"],
                                                          "whole": world.indicators["vaccinated"]}}, status=400)
    assert component["field"] == "calculation"


async def test_non_finite_numbers_are_refused(client, world):
    headers = {**world.headers("admin"), "Content-Type": "application/json"}
    response = await client.post("/api/v2/region/", data=b'{"name": "Inf", "latitude": Infinity}', headers=headers)
    assert response.status == 400 and "Infinity is not a JSON value" in (await response.json())["error"]
    response = await client.post("/api/v1/dataentry", headers=headers, data=(
        '{"region_id": %d, "campaign_id": %d, "indicator_id": %d, "value": NaN}'
        % (world.regions["P1"], world.campaigns["ng-2016-01"], world.indicators["missed"])).encode())
    assert response.status == 400 and "NaN is not a JSON value" in (await response.json())["error"]


async def test_digits_that_are_not_decimal_are_refused(client, world):
    """Found by fuzzing: a superscript digit passed str.isdigit() and then broke int() (500)."""
    response = await client.post("/api/v1/dataentry", headers=world.headers("admin"), json={
        "region_id": "\u00b2", "campaign_id": world.campaigns["ng-2016-01"],
        "indicator_id": world.indicators["missed"], "value": 1})
    assert response.status == 400, await response.text()


async def test_a_failure_mid_stream_cuts_the_reply(client, world, monkeypatch):
    import functools

    import aiohttp

    from api.datapoints import query, service
    from api.errors import ServiceUnavailable

    calls = []
    real_present = service.present

    async def failing_present(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise ServiceUnavailable("CouchDB went away")
        return await real_present(*args, **kwargs)

    monkeypatch.setattr(service, "batches", functools.partial(query.batches, batch=5))
    monkeypatch.setattr(service, "present", failing_present)
    for fmt in ("json", "csv"):
        calls.clear()
        response = await client.get(f"/api/v2/region/?limit=0&format={fmt}", headers=world.headers("admin"))
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_a_removed_find_index_is_made_again(client, world, couch, config):
    """The index is made once per process; when its design doc is gone (removed by hand, or the database made
    again under the same name), the next listing makes it again instead of failing with no_usable_index."""
    assert len((await get(client, world, "admin", "/api/v2/indicator/"))["objects"]) > 0
    db = couch.db(config.db_datapoints)
    ddoc = await db.get("_design/datapoints-find")
    await db.delete("_design/datapoints-find", ddoc["_rev"])
    assert len((await get(client, world, "admin", "/api/v2/indicator/"))["objects"]) > 0
    assert await db.get_or_none("_design/datapoints-find") is not None
