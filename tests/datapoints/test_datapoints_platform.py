"""Where the datapoints spec is silent, Jamii answers as RhizomeDB (tastypie) did (issue 25): unknown query
parameters ignored with a warning, 201 for a created value, unique dashboard titles, the /api/v1/ root."""

import csv
import io

import pytest

from .world import build_sync


@pytest.fixture(scope="module")
def world(config):
    return build_sync(config)


async def enter(client, world, who, items):
    response = await client.post("/api/v1/dataentry/", json=items, headers=world.headers(who))
    return response.status, await response.json()


async def get(client, world, who, url):
    response = await client.get(url, headers=world.headers(who))
    return response, await response.json()


def value(world, region, campaign, indicator, number):
    return {"region_id": world.regions[region], "campaign_id": world.campaigns[campaign],
            "indicator_id": world.indicators[indicator], "value": number}


# -- item 6: unknown parameters of /api/v1/datapoint ------------------------------------------------

async def test_unknown_datapoint_parameters_are_ignored_with_a_warning(client, world):
    status, _ = await enter(client, world, "admin", [value(world, "P2D1S1T1", "ng-2016-06", "vaccinated", 40),
                                                     value(world, "P2D1S1T2", "ng-2016-06", "vaccinated", 2)])
    assert status == 201
    base = f"/api/v1/datapoint/?region__in={world.regions['P2D1S1']}&indicator__in={world.indicators['vaccinated']}"
    plain_response, plain = await get(client, world, "admin", base)
    assert plain_response.status == 200 and plain["objects"][0]["indicators"][0]["value"] == 42
    assert "warnings" not in plain["meta"] and "X-Ignored-Parameters" not in plain_response.headers
    response, body = await get(client, world, "admin", base + "&chart_uuid=abc&uri_display=id")
    assert response.status == 200 and body["objects"] == plain["objects"] and body["errors"] == {}
    assert set(body["meta"]["warnings"]) == {"chart_uuid", "uri_display"}
    assert "region__in" in body["meta"]["warnings"]["chart_uuid"]  # the typo help: the known parameters
    assert response.headers["X-Ignored-Parameters"] == "chart_uuid, uri_display"
    assert body["meta"]["parameters_requested"]["chart_uuid"] == "abc"
    # RhizomeDB honoured these two; Jamii does not, and says the answer is not narrowed by them
    narrowing = f"&parent_region__in={world.regions['P2']}&level=district"
    response, body = await get(client, world, "admin", base + narrowing)
    assert response.status == 200 and body["objects"] == plain["objects"]
    assert set(body["meta"]["warnings"]) == {"parent_region__in", "level"}
    assert all("does not narrow" in text and "region__in" in text for text in body["meta"]["warnings"].values())
    csv_reply = await client.get(base + "&format=csv&colour=red", headers=world.headers("admin"))
    assert csv_reply.status == 200 and csv_reply.headers["X-Ignored-Parameters"] == "colour"
    rows = list(csv.reader(io.StringIO(await csv_reply.text())))
    assert rows[0][:2] == ["region", "campaign"] and rows[1][2] == "42"
    # known parameters with bad values are still refused, with the warnings beside the errors
    response, body = await get(client, world, "admin", base + "&limit=x&colour=red")
    assert response.status == 400 and set(body["errors"]) == {"limit"} and set(body["meta"]["warnings"]) == {"colour"}
    assert response.headers["X-Ignored-Parameters"] == "colour"


# -- item 7: POST /api/v1/dataentry/ answers 201 when it creates ----------------------------------

async def test_dataentry_answers_201_for_a_new_value_and_200_for_an_update(client, world):
    def item(region, number):
        return value(world, region, "ng-2016-01", "missed", number)

    status, body = await enter(client, world, "entry", item("P1D2S1T1", 5))
    assert status == 201 and body["objects"][0]["value"] == 5
    status, body = await enter(client, world, "entry", item("P1D2S1T1", 6))
    assert status == 200 and body["objects"][0]["value"] == 6
    assert (await enter(client, world, "entry", [item("P1D2S2T1", 1), item("P1D2S1T1", 7)]))[0] == 201
    assert (await enter(client, world, "entry", [item("P1D2S2T1", 2), item("P1D2S1T1", 8)]))[0] == 200
    assert (await enter(client, world, "entry", {"objects": [item("P1D2S2T1", None)]}))[0] == 200  # a removal
    assert (await enter(client, world, "entry", item("P1D2S2T1", None)))[0] == 200  # removing nothing
    status, body = await enter(client, world, "entry", [item("P1D2S2T2", 1), item("P1D2S2T2", 9)])
    assert status == 201 and body["meta"]["total_count"] == 2  # the same new key twice: the second wins
    query = (f"/api/v1/datapoint/?campaign__in={world.campaigns['ng-2016-01']}&indicator__in="
             f"{world.indicators['missed']}&no_pivot=1&region__in=")
    for region, expected in (("P1D2S1T1", 8), ("P1D2S2T2", 9)):
        _, read = await get(client, world, "admin", query + str(world.regions[region]))
        assert read["objects"][0]["indicators"][0]["value"] == expected, region
    _, removed = await get(client, world, "admin", query + str(world.regions["P1D2S2T1"]))
    assert removed["objects"] == []
    # errors are unchanged, and write nothing
    status, body = await enter(client, world, "entry", [item("P1D2S2T1", 3), item("P2D1S1T1", 3)])
    assert status == 400 and body["field"] == "region_id"
    assert (await enter(client, world, "analyst", item("P2D1S1T1", 3)))[0] == 403
    _, untouched = await get(client, world, "admin", query + str(world.regions["P1D2S2T1"]))
    assert untouched["objects"] == []


# -- item 8: custom dashboards have unique titles ---------------------------------------------------

async def test_custom_dashboard_titles_are_unique(client, world):
    async def post(who, body):
        response = await client.post("/api/v2/custom_dashboard/", json=body, headers=world.headers(who))
        return response.status, await response.json()

    status, made = await post("entry", {"title": "Polio 2015"})
    assert status == 201
    first = made["objects"]["new_id"]
    status, clash = await post("entry2", {"title": "Polio 2015", "dashboard_json": [1]})
    assert status == 409 and clash["code"] == 409 and clash["field"] == "title" and clash["objects"] is None
    assert "title" in clash["error"] and str(first) in clash["error"]
    _, listed = await get(client, world, "admin", "/api/v2/custom_dashboard/?title=Polio%202015")
    assert [d["id"] for d in listed["objects"]] == [first]
    assert (await post("entry2", {"title": "polio 2015"}))[0] == 201  # exact, as RhizomeDB's constraint
    assert (await post("entry2", {"title": "Polio 2015 "}))[0] == 201
    status, other = await post("entry2", {"title": "Other"})
    second = other["objects"]["new_id"]
    status, clash = await post("entry2", {"id": second, "title": "Polio 2015"})
    assert status == 409 and clash["field"] == "title"
    status, _ = await post("entry", {"id": first, "title": "Polio 2015", "description": "unchanged title"})
    assert status == 200
    assert (await post("entry", {"id": "", "id__in": [first]}))[0] == 200
    assert (await post("entry2", {"id": second, "title": "Polio 2015"}))[0] == 200


# -- item 9: GET /api/v1/ -----------------------------------------------------------------------------

ROOT = {"dataentry": {"list_endpoint": "/api/v1/dataentry/", "schema": "/api/v1/dataentry/schema/"},
        "datapoint": {"list_endpoint": "/api/v1/datapoint/", "schema": "/api/v1/datapoint/schema/"}}


async def test_the_api_root_lists_the_v1_resources(client, world):
    for path, headers in (("/api/v1/", {}), ("/api/v1", {}), ("/api/v1/", world.headers("admin"))):
        response = await client.get(path, headers=headers)
        assert response.status == 200 and response.content_type == "application/json"
        body = await response.json()
        assert body == ROOT and list(body) == sorted(body)
    assert (await client.post("/api/v1/", json={}, headers=world.headers("admin"))).status == 405
    assert (await client.get("/api/v1/does-not-exist", headers=world.headers("admin"))).status == 404
    methods = {"datapoint": (200, ["get"]), "dataentry": (405, ["post"])}
    for name, links in ROOT.items():
        listed = await client.get(links["list_endpoint"], headers=world.headers("admin"))
        assert listed.status == methods[name][0], name
        response, schema = await get(client, world, "analyst", links["schema"])
        assert response.status == 200, schema
        assert schema["allowed_list_http_methods"] == methods[name][1]
        assert schema["allowed_detail_http_methods"] == [] and schema["default_format"] == "application/json"
        assert schema["default_limit"] == 20
        for field in schema["fields"].values():
            assert set(field) == {"blank", "default", "help_text", "nullable", "readonly", "type", "unique"}
        assert (await client.get(links["schema"].rstrip("/"), headers=world.headers("analyst"))).status == 200
        assert (await client.get(links["schema"])).status == 401
        assert (await client.get(links["schema"], headers=world.headers("outsider"))).status == 403
    _, entry_schema = await get(client, world, "admin", "/api/v1/dataentry/schema/")
    assert set(entry_schema["fields"]) == {"region_id", "campaign_id", "indicator_id", "value", "document_id",
                                           "changed_by_id", "updated_at"}
    assert entry_schema["fields"]["value"]["nullable"] is True and entry_schema["fields"]["value"]["type"] == "float"
    _, point_schema = await get(client, world, "admin", "/api/v1/datapoint/schema/")
    assert set(point_schema["fields"]) == {"region", "campaign", "indicators"}
