"""Stored values and ``/api/v1/datapoint``: aggregation up the tree against a brute-force sum, entry rules, CSV."""

import csv
import io
import random

import pytest

from .world import build_sync


@pytest.fixture(scope="module")
def world(config):
    return build_sync(config)


def tree_of(world):
    """parent name -> child names, from the naming scheme of the world."""
    children = {}
    for name in world.regions:
        if name in ("Nigeria", "Somalia", "Banadir"):
            continue
        parent = "Nigeria" if len(name) == 2 else name[:-2]
        children.setdefault(parent, []).append(name)
    return children


def brute_force(children, stored, region, key):
    """A region's value: stored, else the sum of its children's values (None when nothing below)."""
    if (region, *key) in stored:
        return stored[(region, *key)], False
    found = [v for c in children.get(region, []) if (v := brute_force(children, stored, c, key)[0]) is not None]
    return (sum(found), True) if found else (None, False)


async def enter(client, world, who, items, status):
    """POST /api/v1/dataentry; ``status`` one code, or a tuple where it depends on what earlier tests stored."""
    response = await client.post("/api/v1/dataentry", json=items, headers=world.headers(who))
    body = await response.json()
    assert response.status in (status if isinstance(status, tuple) else (status,)), body
    return body


EITHER = (200, 201)  # new or an update, depending on which tests ran before


async def datapoints(client, world, who, query, status=200):
    response = await client.get(f"/api/v1/datapoint/?{query}", headers=world.headers(who))
    body = await response.json()
    assert response.status == status, body
    return body


@pytest.fixture(scope="module")
def stored(world):
    """Random values: settlements mostly, some sub-districts and districts too (values at two depths)."""
    rng = random.Random(20161)
    values = {}
    levels = {4: 0.8, 3: 0.25, 2: 0.2}
    for name in world.regions:
        if name in ("Nigeria", "Somalia", "Banadir"):
            continue
        depth = len(name) // 2
        for campaign in ("ng-2016-01", "ng-2016-06"):
            for indicator in ("vaccinated", "target"):
                if rng.random() < levels.get(depth, 0):
                    values[(name, campaign, indicator)] = rng.randint(0, 500)
            if depth == 4 and rng.random() < 0.7:
                values[(name, campaign, "missed")] = rng.randint(0, 50)
    values[("P1D1", "ng-2016-01", "vaccinated")] = 0
    return values


async def test_aggregation_matches_a_brute_force_sum(client, world, stored):
    items = [{"region_id": world.regions[r], "campaign_id": world.campaigns[c], "indicator_id": world.indicators[i],
              "value": v} for (r, c, i), v in stored.items()]
    result = await enter(client, world, "admin", items, status=201)
    assert result["meta"]["total_count"] == len(items)
    children = tree_of(world)
    nigeria = [n for n in world.regions if n not in ("Somalia", "Banadir")]
    ids = ",".join(str(world.regions[n]) for n in nigeria)
    body = await datapoints(client, world, "admin", f"region__in={ids}&limit=0")
    assert body["errors"] == {}
    got = {(o["region"], o["campaign"]): {e["indicator"]: e for e in o["indicators"]} for o in body["objects"]}
    region_names = {v: k for k, v in world.regions.items()}
    checked = agg_seen = 0
    for region in nigeria:
        for campaign in ("ng-2016-01", "ng-2016-06"):
            entries = got.get((world.regions[region], world.campaigns[campaign]), {})
            expected = {}
            for indicator in ("vaccinated", "target", "missed"):
                value, is_agg = brute_force(children, stored, region, (campaign, indicator))
                expected[indicator] = (value, is_agg)
                entry = entries.get(world.indicators[indicator])
                if value is None:
                    assert entry is None or entry["value"] is None, (region, campaign, indicator)
                    continue
                assert entry["value"] == value, (region, campaign, indicator, entry, value)
                assert entry["is_agg"] is is_agg and entry["is_calc"] is False
                checked += 1
                agg_seen += is_agg
            (vac, vac_agg), (target, target_agg) = expected["vaccinated"], expected["target"]
            pct = entries.get(world.indicators["pct_vaccinated"])
            if vac is not None and target:
                assert pct["value"] == pytest.approx(vac / target) and pct["is_calc"] is True
                assert pct["is_agg"] is (vac_agg or target_agg)
            elif entries:
                assert pct["value"] is None
    assert checked > 100 and agg_seen > 20
    nigeria_id = world.regions["Nigeria"]
    assert {region_names[r] for r, _ in got} >= {"Nigeria", "P1", "P2"}
    assert got[(nigeria_id, world.campaigns["ng-2016-01"])][world.indicators["missed"]]["is_agg"] is True


async def test_stored_value_wins_and_null_removes_it(client, world, stored):
    region, campaign, indicator = world.regions["P2D2"], world.campaigns["ng-2016-06"], world.indicators["missed"]
    query = f"region__in={region}&campaign__in={campaign}&indicator__in={indicator}"
    before = (await datapoints(client, world, "admin", query))["objects"][0]["indicators"][0]
    assert before["is_agg"] is True
    await enter(client, world, "admin", {"region_id": region, "campaign_id": campaign, "indicator_id": indicator,
                                         "value": "12345"}, status=201)
    stored_value = (await datapoints(client, world, "admin", query))["objects"][0]["indicators"][0]
    assert stored_value == {"indicator": indicator, "value": 12345, "is_agg": False, "is_calc": False}
    nigeria = f"region__in={world.regions['P2']}&campaign__in={campaign}&indicator__in={indicator}"
    p2 = (await datapoints(client, world, "admin", nigeria))["objects"][0]["indicators"][0]
    p2d1 = sum(v for (r, c, i), v in stored.items() if r.startswith("P2D1") and c == "ng-2016-06" and i == "missed")
    assert p2["value"] == p2d1 + 12345
    await enter(client, world, "admin", {"region_id": region, "campaign_id": campaign, "indicator_id": indicator,
                                         "value": None}, status=200)
    after = (await datapoints(client, world, "admin", query))["objects"][0]["indicators"][0]
    assert after == before


async def test_pivot_paging_csv_and_campaign_dates(client, world, stored):
    regions = f"{world.regions['P1']},{world.regions['P2']}"
    body = await datapoints(client, world, "admin", f"region__in={regions}&limit=0")
    assert [(o["region"], o["campaign"]) for o in body["objects"]] == [
        (world.regions["P1"], world.campaigns["ng-2016-01"]), (world.regions["P1"], world.campaigns["ng-2016-06"]),
        (world.regions["P2"], world.campaigns["ng-2016-01"]), (world.regions["P2"], world.campaigns["ng-2016-06"])]
    assert all(len(o["indicators"]) == 4 for o in body["objects"])
    assert body["meta"]["total_count"] == 4 and body["meta"]["parameters_requested"]["region__in"] == regions
    page = await datapoints(client, world, "admin", f"region__in={regions}&limit=1&offset=2")
    assert page["objects"] == body["objects"][2:3] and page["meta"]["total_count"] == 4
    flat = await datapoints(client, world, "admin", f"region__in={regions}&no_pivot=1&limit=0")
    assert all(len(o["indicators"]) == 1 for o in flat["objects"])
    assert len(flat["objects"]) == sum(1 for o in body["objects"] for e in o["indicators"] if e["value"] is not None)
    june = await datapoints(client, world, "admin", f"region__in={regions}&campaign_start=2016-03-01")
    assert {o["campaign"] for o in june["objects"]} == {world.campaigns["ng-2016-06"]}
    january = await datapoints(client, world, "admin", f"region__in={regions}&campaign_end=2016-02-01")
    assert {o["campaign"] for o in january["objects"]} == {world.campaigns["ng-2016-01"]}
    one = await datapoints(client, world, "admin",
                           f"region__in={regions}&campaign__in={world.campaigns['ng-2016-06']}"
                           f"&indicator__in={world.indicators['missed']},{world.indicators['vaccinated']}")
    assert [[e["indicator"] for e in o["indicators"]] for o in one["objects"]] == \
        [[world.indicators["missed"], world.indicators["vaccinated"]]] * 2
    response = await client.get(f"/api/v1/datapoint/?region__in={regions}&format=csv&limit=0",
                                headers=world.headers("admin"))
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["region", "campaign", "Number vaccinated", "Number missed", "Number target",
                       "Percent vaccinated"]
    assert [r[:2] for r in rows[1:]] == [["P1", "ng-2016-01"], ["P1", "ng-2016-06"], ["P2", "ng-2016-01"],
                                         ["P2", "ng-2016-06"]]
    first = body["objects"][0]["indicators"]
    assert rows[1][2:] == ["" if e["value"] is None else str(e["value"]) for e in first]
    flat_csv = await client.get(f"/api/v1/datapoint/?region__in={regions}&format=csv&no_pivot=1&limit=0",
                                headers=world.headers("admin"))
    flat_rows = list(csv.reader(io.StringIO(await flat_csv.text())))
    assert flat_rows[0] == ["region", "campaign", "indicator", "value", "is_agg"]
    assert len(flat_rows) == len(flat["objects"]) + 1 and flat_rows[1][4] in ("true", "false")


async def test_parameters_are_checked(client, world):
    bad = await datapoints(client, world, "admin", "region__in=a&colour=red&campaign_start=June&limit=x",
                           status=400)
    assert set(bad["errors"]) == {"region__in", "campaign_start", "limit"} and bad["objects"] == []
    assert set(bad["meta"]["warnings"]) == {"colour"}  # an unknown parameter is ignored, and said so
    missing = await datapoints(client, world, "admin", f"region__in={world.regions['P1']},99999&indicator__in=1,888")
    assert set(missing["errors"]) == {"region__in", "indicator__in"} and "99999" in missing["errors"]["region__in"]
    assert (await datapoints(client, world, "admin", "region__in=99999"))["objects"] == []


async def test_callers_see_only_their_regions_and_campaigns(client, world):
    body = await datapoints(client, world, "analyst",
                            f"region__in={world.regions['Nigeria']},{world.regions['P2']},{world.regions['Banadir']}")
    assert {o["region"] for o in body["objects"]} == {world.regions["P2"]}
    assert str(world.regions["Nigeria"]) in body["errors"]["region__in"]
    assert str(world.regions["Banadir"]) in body["errors"]["region__in"]
    hidden = await datapoints(client, world, "entry", f"campaign__in={world.campaigns['so-2016-03']}")
    assert hidden["objects"] == [] and "campaign__in" in hidden["errors"]
    default = await datapoints(client, world, "entry2", "limit=0")
    assert {o["region"] for o in default["objects"]} <= {world.regions[n] for n in world.regions
                                                          if n.startswith("P2D1")}
    assert default["objects"]


async def test_data_entry_rules(client, world):
    def item(region, indicator="vaccinated", value=7, campaign="ng-2016-01"):
        return {"region_id": world.regions[region], "campaign_id": world.campaigns[campaign],
                "indicator_id": world.indicators[indicator], "value": value}

    ok = await enter(client, world, "entry", item("P1D2S1T1", value="8.5"), status=EITHER)
    stored = ok["objects"][0]
    assert stored["value"] == 8.5 and stored["changed_by_id"] == world.user_ids["entry"]
    assert (await enter(client, world, "entry", item("P2D1S1T1"), status=400))["field"] == "region_id", \
        "a region outside the caller's tree does not exist for them"
    grant = await client.post("/api/v2/region_permission/", headers=world.headers("admin"), json={
        "user_id": world.user_ids["entry"], "region_id": world.regions["P2D2"], "read_write": "r"})
    assert (await enter(client, world, "entry", item("P2D2S1T1"), status=403))["field"] == "region_id"
    await client.post("/api/v2/region_permission/", headers=world.headers("admin"),
                      json={"id": "", "id__in": [(await grant.json())["objects"]["new_id"]]})
    assert (await enter(client, world, "entry", item("P1D2", "pct_vaccinated"), status=403))["field"] == \
        "indicator_id"
    assert (await enter(client, world, "entry", item("Banadir", campaign="so-2016-03"), status=400))["field"] == \
        "region_id"
    await enter(client, world, "analyst", item("P2D1S1T1"), status=403)
    await enter(client, world, "manager", item("P2D1S1T1"), status=403)
    for body, field in (({**item("P1D2"), "value": "lots"}, "value"), ({**item("P1D2"), "region_id": 9999},
                                                                        "region_id"),
                        ({"region_id": 1}, "campaign_id"), ({**item("P1D2"), "extra": 1}, "extra"),
                        ({**item("P1D2"), "document_id": 9999}, "document_id")):
        assert (await enter(client, world, "entry", body, status=400))["field"] == field
    mixed = [item("P1D2S1T2", value=1), item("P2D1S1T1", value=2)]
    assert (await enter(client, world, "entry", mixed, status=400))["field"] == "region_id"
    check = await datapoints(client, world, "admin", f"region__in={world.regions['P1D2S1T2']}&indicator__in="
                                                      f"{world.indicators['vaccinated']}&campaign__in=1")
    assert all(o["indicators"][0]["value"] != 1 for o in check["objects"]), "nothing written when one item is refused"
    wrapped = await enter(client, world, "entry", {"objects": [item("P1D2S1T2", value=3)]}, status=EITHER)
    assert wrapped["objects"][0]["value"] == 3
    await enter(client, world, "entry", [], status=400)


async def test_moving_a_region_moves_its_values_and_totals(client, world):
    campaign = world.campaigns["ng-2016-06"]
    target = world.indicators["target"]
    moved, old_parent, new_parent = world.regions["P1D1S2"], world.regions["P1D1"], world.regions["P2D2"]

    async def value(region):
        body = await datapoints(client, world, "admin",
                                f"region__in={region}&campaign__in={campaign}&indicator__in={target}")
        return body["objects"][0]["indicators"][0]["value"] if body["objects"] else None

    await enter(client, world, "admin", [{"region_id": moved, "campaign_id": campaign, "indicator_id": target,
                                          "value": 1000},
                                         {"region_id": world.regions["P1D1S2T1"], "campaign_id": campaign,
                                          "indicator_id": target, "value": 1}], status=EITHER)
    before = {r: await value(r) for r in (old_parent, new_parent, world.regions["Nigeria"])}
    response = await client.post("/api/v2/region/", json={"id": moved, "parent_region_id": new_parent},
                                 headers=world.headers("admin"))
    assert response.status == 200, await response.json()
    assert await value(moved) == 1000
    assert await value(world.regions["P1D1S2T1"]) == 1
    assert (await value(old_parent) or 0) == (before[old_parent] or 0) - 1000
    assert await value(new_parent) == (before[new_parent] or 0) + 1000
    assert await value(world.regions["Nigeria"]) == before[world.regions["Nigeria"]]
    child = await client.get(f"/api/v2/region/{world.regions['P1D1S2T1']}/", headers=world.headers("admin"))
    assert (await child.json())["objects"][0]["depth"] == 4
    entry2 = await client.get("/api/v2/region/?limit=0&name__startswith=P1D1S2", headers=world.headers("analyst"))
    assert len((await entry2.json())["objects"]) == 3, "the moved subtree is now under P2's grant"
    cycle = await client.post("/api/v2/region/", json={"id": new_parent, "parent_region_id": moved},
                              headers=world.headers("admin"))
    assert cycle.status == 400
    back = await client.post("/api/v2/region/", json={"id": moved, "parent_region_id": old_parent},
                             headers=world.headers("admin"))
    assert back.status == 200
    assert await value(old_parent) == before[old_parent]
    assert await value(new_parent) == before[new_parent]


async def test_regions_and_campaigns_with_values_cannot_be_deleted(client, world):
    response = await client.post("/api/v2/region/", json={"id": "", "name": "P1D1S1T1"},
                                 headers=world.headers("admin"))
    assert response.status == 409
    response = await client.post("/api/v2/campaign/", json={"id": "", "slug": "ng-2016-01"},
                                 headers=world.headers("admin"))
    assert response.status == 409
