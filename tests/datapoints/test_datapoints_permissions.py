"""Region-tree permissions: recursion down the tree, depth_level, read/write, campaigns by office, own rows."""

import pytest

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


def subtree(world, root):
    return sorted(n for n in world.regions if n.startswith(root) and n not in ("Nigeria", "Somalia", "Banadir"))


async def regions(client, world, who, query=""):
    body = await get(client, world, who, f"/api/v2/region/?limit=0&{query}")
    assert body["meta"]["total_count"] == len(body["objects"])
    return sorted(o["name"] for o in body["objects"])


async def test_a_permission_covers_every_region_below(client, world):
    assert await regions(client, world, "entry") == subtree(world, "P1")
    assert len(subtree(world, "P1")) == 15
    assert await regions(client, world, "analyst") == subtree(world, "P2")
    assert await regions(client, world, "entry2") == subtree(world, "P2D1")
    assert await regions(client, world, "manager") == sorted(["Nigeria", *subtree(world, "P")])
    assert await regions(client, world, "admin") == sorted(world.regions)


async def test_depth_level_limits_how_far_below(client, world):
    assert await regions(client, world, "entry", "depth_level=1") == ["P1", "P1D1", "P1D2"]
    assert await regions(client, world, "entry", "depth_level=2") == \
        ["P1", "P1D1", "P1D1S1", "P1D1S2", "P1D2", "P1D2S1", "P1D2S2"]
    assert await regions(client, world, "entry", "depth_level=0") == subtree(world, "P1")
    assert await regions(client, world, "entry", "depth_level=9") == subtree(world, "P1")
    assert await regions(client, world, "manager", "depth_level=1") == ["Nigeria", "P1", "P2"]
    assert await regions(client, world, "admin", "depth_level=1") == ["Banadir", "Nigeria", "P1", "P2", "Somalia"]
    assert await regions(client, world, "entry", "depth_level=1&name__contains=D2") == ["P1D2"]
    assert (await client.get("/api/v2/region/?depth_level=-1", headers=world.headers("entry"))).status == 400


async def test_two_grants_are_a_union_each_with_its_own_depth(client, world):
    grant = await post(client, world, "admin", "region_permission", {
        "user_id": world.user_ids["entry2"], "region_id": world.regions["P1D2S2"], "read_write": "r"})
    try:
        assert await regions(client, world, "entry2", "depth_level=1") == \
            ["P1D2S2", "P1D2S2T1", "P1D2S2T2", "P2D1", "P2D1S1", "P2D1S2"]
        assert await regions(client, world, "entry2", "read_write=w") == subtree(world, "P2D1")
    finally:
        await post(client, world, "admin", "region_permission",
                   {"id": "", "id__in": [grant["objects"]["new_id"]]}, status=200)


async def test_read_write_w_keeps_only_writable_regions(client, world):
    assert await regions(client, world, "entry", "read_write=w") == subtree(world, "P1")
    assert await regions(client, world, "analyst", "read_write=w") == []
    assert await regions(client, world, "analyst", "read_write=r") == subtree(world, "P2")


async def test_regions_outside_the_tree_do_not_exist_for_the_caller(client, world):
    top = (await get(client, world, "entry", "/api/v2/region/?name=P1&uri_format=name"))["objects"][0]
    assert top["parent_region_id"] == world.regions["Nigeria"] and top["parent_region"] is None
    below = (await get(client, world, "entry", "/api/v2/region/?name=P1D1&uri_format=name"))["objects"][0]
    assert below["parent_region"] == "P1"
    detail = await get(client, world, "entry", f"/api/v2/region/{world.regions['P1']}/?uri_format=uri")
    assert detail["objects"][0]["parent_region"] == f"/api/v2/region/{world.regions['Nigeria']}/"
    await get(client, world, "entry", f"/api/v2/region/{world.regions['P2']}/", status=404)
    await get(client, world, "entry", f"/api/v2/region/{world.regions['Nigeria']}/", status=404)
    mine = await get(client, world, "entry", f"/api/v2/region/{world.regions['P1D1S1T1']}/")
    assert mine["objects"][0]["name"] == "P1D1S1T1"
    assert (await get(client, world, "entry", f"/api/v2/region/?id={world.regions['P2']}"))["objects"] == []
    hidden = await post(client, world, "manager", "region", {"id": world.regions["Banadir"], "name": "X"},
                        status=404)
    assert hidden["field"] == "id"


async def test_campaigns_follow_their_office(client, world):
    def slugs(body):
        return sorted(c["slug"] for c in body["objects"])

    assert slugs(await get(client, world, "entry", "/api/v2/campaign/")) == ["ng-2016-01", "ng-2016-06"]
    assert slugs(await get(client, world, "analyst", "/api/v2/campaign/")) == ["ng-2016-01", "ng-2016-06"]
    assert slugs(await get(client, world, "admin", "/api/v2/campaign/")) == ["ng-2016-01", "ng-2016-06",
                                                                          "so-2016-03"]
    assert slugs(await get(client, world, "entry", "/api/v2/campaign/?slug=so-2016-03")) == []
    somali = {"slug": "so-2017", "campaign_type_id": 1, "office_id": world.offices["somalia"],
              "start_date": "2017-01-01", "end_date": "2017-01-02"}
    refused = await post(client, world, "manager", "campaign", somali, status=403)
    assert refused["field"] == "office_id"


async def test_managers_change_regions_only_where_they_may_write(client, world):
    district = {"name": "New district", "region_code": "ND", "office_id": world.offices["nigeria"],
                "region_type_id": world.region_types["district"], "parent_region_id": world.regions["P2"]}
    created = await post(client, world, "manager", "region", district)
    new_id = created["objects"]["new_id"]
    detail = await get(client, world, "manager", f"/api/v2/region/{new_id}/")
    assert detail["objects"][0]["depth"] == 2 and detail["objects"][0]["parent_region_id"] == world.regions["P2"]
    assert "New district" in await regions(client, world, "analyst"), "a new region is inside P2's grant at once"
    await post(client, world, "manager", "region", {**district, "parent_region_id": world.regions["Somalia"]},
               status=400)
    root = {k: v for k, v in district.items() if k != "parent_region_id"}
    assert (await post(client, world, "manager", "region", root, status=403))["field"] == "parent_region_id"
    await post(client, world, "entry", "region", district, status=403)
    await post(client, world, "manager", "region", {"id": "", "id__in": [new_id]}, status=200)


async def test_region_permissions_are_own_rows_unless_manager(client, world):
    own = await get(client, world, "entry", "/api/v2/region_permission/")
    assert [(p["user_id"], p["region_id"], p["read_write"]) for p in own["objects"]] == \
        [(world.user_ids["entry"], world.regions["P1"], "w")]
    everyone = await get(client, world, "manager", "/api/v2/region_permission/?limit=0")
    assert {p["user_id"] for p in everyone["objects"]} >= {world.user_ids[w] for w in ("entry", "analyst")}
    writers = await get(client, world, "manager", "/api/v2/region_permission/?limit=0&read_write=w")
    assert all(p["read_write"] == "w" for p in writers["objects"])
    assert world.user_ids["analyst"] not in {p["user_id"] for p in writers["objects"]}
    groups = await get(client, world, "analyst", "/api/v2/user_group/")
    assert groups["objects"] == []
    refused = await post(client, world, "entry", "region_permission",
                         {"user_id": world.user_ids["entry"], "region_id": world.regions["P2"]}, status=403)
    assert refused["code"] == 403


async def test_manager_grants_only_on_regions_they_may_write(client, world):
    analyst, banadir = world.user_ids["analyst"], world.regions["Banadir"]
    unseen = await post(client, world, "manager", "region_permission",
                        {"user_id": analyst, "region_id": banadir}, status=400)
    assert unseen["field"] == "region_id" and "no region" in unseen["error"]
    read_only = await post(client, world, "admin", "region_permission",
                           {"user_id": world.user_ids["manager"], "region_id": banadir, "read_write": "r"})
    refused = await post(client, world, "manager", "region_permission",
                         {"user_id": analyst, "region_id": banadir}, status=403)
    assert refused["field"] == "region_id"
    await post(client, world, "admin", "region_permission",
               {"id": "", "id__in": [read_only["objects"]["new_id"]]}, status=200)
    granted = await post(client, world, "manager", "region_permission",
                         {"user_id": world.user_ids["analyst"], "region_id": world.regions["P1D1"]})
    assert "P1D1" in await regions(client, world, "analyst")
    await post(client, world, "manager", "region_permission",
               {"id": "", "id__in": [granted["objects"]["new_id"]]}, status=200)
    assert "P1D1" not in await regions(client, world, "analyst")


async def test_indicators_a_caller_may_write_come_from_their_groups(client, world):
    every = await get(client, world, "analyst", "/api/v2/indicator/")
    assert len(every["objects"]) == 4
    writable = await get(client, world, "entry", "/api/v2/indicator/?read_write=w")
    assert sorted(i["slug"] for i in writable["objects"]) == ["missed", "target", "vaccinated"]
    assert (await get(client, world, "analyst", "/api/v2/indicator/?read_write=w"))["objects"] == []
    assert len((await get(client, world, "admin", "/api/v2/indicator/?read_write=w"))["objects"]) == 4
    narrowed = await get(client, world, "entry", "/api/v2/indicator/?read_write=w&slug__startswith=v")
    assert [i["slug"] for i in narrowed["objects"]] == ["vaccinated"]


async def test_jwt_callers_use_scopes_and_get_a_profile(client, world):
    import time

    import jwt

    from tests.helpers import JWT_SECRET

    token = jwt.encode({"sub": "dp-robot", "exp": int(time.time()) + 60, "scope": "write:datapoints"}, JWT_SECRET)
    response = await client.get("/api/v2/user/", headers={"Authorization": f"Bearer {token}"})
    body = await response.json()
    assert response.status == 200 and body["objects"][0]["username"] == "dp-robot"
    assert (await client.get("/api/v2/region/", headers={"Authorization": f"Bearer {token}"})).status == 200
    reader = jwt.encode({"sub": "dp-robot", "exp": int(time.time()) + 60, "scope": "read:foci"}, JWT_SECRET)
    assert (await client.get("/api/v2/region/", headers={"Authorization": f"Bearer {reader}"})).status == 403
