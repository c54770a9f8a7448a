"""The spatial units API against the real server: the spec's flow, roles, errors, search, order, pages."""

import pytest

from api.app import create_app
from api.errors import BadRequest
from api.spatial import units as spatial_units
from api.spatial.units import matches, parse_feature, unit_doc_id
from scripts.setup_db import setup
from tests.helpers import basic

from .helpers import create_unit, make_world, ok, point_feature

SPEC_POLYGON = {"type": "Polygon", "coordinates": [[
    [-245.39088249206543, -3.333262692430284], [-245.39021730422974, -3.3330699000753414],
    [-245.39001345634458, -3.334312339033184], [-245.39063572883606, -3.334580105844384],
    [-245.39088249206543, -3.333262692430284]]]}
REFUSED = {
    "list": "You don't have permission to view spatial units in this project.",
    "create": "You don't have permission to add spatial units to this project.",
    "get": "You don't have permission to access this spatial unit.",
    "patch": "You don't have permission to edit spatial units of this project",
    "put": "You don't have permission to edit spatial units of this project",
    "delete": "You are not allowed to remove spatial units from the project.",
}
INVALID_FORMAT = "Invalid format: string or unicode input unrecognized as GeoJSON, WKT EWKT or HEXEWKB."
UNIT_MISSING = {"error": "SpatialUnit does not exist", "detail": "SpatialUnit not found."}


def names(features):
    return [f["properties"]["name"] for f in features]


# -- pure functions -------------------------------------------------------------------------------

def test_parse_feature_names_every_bad_field_flatly():
    with pytest.raises(BadRequest) as caught:
        parse_feature({"type": "Feature", "properties": {"type": "", "attributes": [], "relationships": "x",
                                                         "colour": "red"}}, mode="create")
    assert caught.value.body == {
        "geometry": "This field is required", "name": "This field is required",
        "type": "This field may not be blank.", "attributes": 'Expected a dictionary of items but got type "list".',
        "relationships": 'Expected a list of items but got type "str".', "colour": "Unknown field",
    }
    with pytest.raises(BadRequest) as flat:  # the platform's flat form names the same fields
        parse_feature({"type": "", "attributes": [], "relationships": "x", "colour": "red"}, mode="create")
    assert flat.value.body == caught.value.body


def test_parse_feature_defaults_and_partial_updates():
    fields = parse_feature(point_feature(" Park ", relationships=["a", "a", "b"]), mode="create")
    assert fields == {"geometry": {"type": "Point", "coordinates": [100.0, 0.0]}, "name": "Park",
                      "unit_type": "PA", "attributes": {}, "relationships": ["a", "b"]}
    assert parse_feature({"properties": {"attributes": {"x": None}}}, mode="patch") == {"attributes": {"x": None}}
    assert parse_feature({"properties": {"id": "ignored", "project": {}}}, mode="patch") == {}
    assert parse_feature({"type": "BU"}, mode="patch") == {"unit_type": "BU"}
    # a full update needs name and geometry, and sets no defaults for what it does not give
    assert parse_feature({"name": "Whole", "geometry": "POINT (1 2)"}, mode="put") == {
        "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}, "name": "Whole"}


def test_matches_name_attribute_values_and_related_names_case_insensitively():
    doc = {"name": "Apartment Unit #5", "attributes": {"floor": 3, "notes": ["Lift", {"keeper": "Oscar"}]},
           "relationships": ["b1"]}
    assert matches(doc, "apartment", {})
    assert matches(doc, "oscar", {}) and matches(doc, "lift", {}) and matches(doc, "3", {})
    assert not matches(doc, "keeper", {})  # keys name things; only values are searched
    assert matches(doc, "sesame", {"b1": "Sesame Street 102"})
    assert not matches(doc, "sesame", {})


# -- the spec's flow --------------------------------------------------------------------------------

async def test_spec_flow_with_a_token(client, config, make_user):
    world = await make_world(client, config, make_user, "flow")
    made = await ok(await client.post("/api/v1/tokens", json={"name": "field laptop"},
                                      headers=world.headers("pm")), 201)
    token = {"Authorization": f"Token {made['key']}"}
    building = await ok(await client.post(world.units, json={
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-245.39034605026242, -3.333294824485769]},
        "properties": {"name": "Apartment Building 102 (Test)", "type": "PA",
                       "attributes": {"address": "102 Sesame St"}},
    }, headers=token), 201)
    props = building["properties"]
    assert list(props) == ["attributes", "id", "name", "project", "relationships", "type"]
    assert len(props["id"]) == 24 and props["id"].isalnum()
    project = await ok(await client.get(f"/organizations/{world.org}/projects/{world.project}/", headers=token))
    assert props["project"] == {"id": project["id"], "name": project["name"],
                                "organization": project["organization"], "slug": world.project}
    assert list(props["project"]) == ["id", "name", "organization", "slug"]
    assert props["project"]["organization"]["slug"] == world.org
    assert building["geometry"] == {"type": "Point", "coordinates": [114.60965394973758, -3.333294824485769]}
    apartment = await ok(await client.post(world.units, json={
        "type": "Feature", "geometry": SPEC_POLYGON,
        "properties": {"name": "Apartment Unit #5 (Test)", "type": "PA", "attributes": {},
                       "relationships": [props["id"]]},
    }, headers=token), 201)
    listed = await ok(await client.get(world.units, headers=token))
    assert listed == [
        {"type": "Feature", "geometry": building["geometry"],
         "properties": {"attributes": {"address": "102 Sesame St"}, "id": props["id"],
                        "name": "Apartment Building 102 (Test)", "relationships": [], "type": "PA"}},
        {"type": "Feature", "geometry": apartment["geometry"],
         "properties": {"attributes": {}, "id": apartment["properties"]["id"], "name": "Apartment Unit #5 (Test)",
                        "relationships": [props["id"]], "type": "PA"}},
    ]
    one = await ok(await client.get(world.units + props["id"] + "/", headers=token))
    assert one == building
    changed = await ok(await client.patch(world.units + props["id"], json={
        "properties": {"name": "Apartment Building #103", "attributes": {"address": "103 Sesame St"}}},
        headers=token))
    assert changed["properties"]["name"] == "Apartment Building #103"
    assert changed["properties"]["attributes"] == {"address": "103 Sesame St"}
    assert changed["properties"]["project"] == props["project"] and changed["geometry"] == building["geometry"]
    await ok(await client.delete(world.units + props["id"] + "/", headers=token), 204)
    remaining = await ok(await client.get(world.units, headers=token))
    assert [f["properties"]["id"] for f in remaining] == [apartment["properties"]["id"]]
    assert remaining[0]["properties"]["relationships"] == []  # the deleted unit left its relations


async def test_trailing_slash_is_optional(client, config, make_user):
    world = await make_world(client, config, make_user, "slash")
    unit = await create_unit(client, world, "Slash")
    unit_id = unit["properties"]["id"]
    without = world.units.rstrip("/")
    assert names(await ok(await client.get(without, headers=world.admin))) == ["Slash"]
    await ok(await client.post(without, json=point_feature("Other"), headers=world.admin), 201)
    assert (await ok(await client.get(f"{without}/{unit_id}", headers=world.admin)))["properties"]["id"] == unit_id
    await ok(await client.patch(f"{without}/{unit_id}/", json={"properties": {"type": "BU"}}, headers=world.admin))
    await ok(await client.delete(f"{without}/{unit_id}", headers=world.admin), 204)
    assert (await client.get(f"/organizations/{world.org}", headers=world.admin)).status == 200


# -- who may do what --------------------------------------------------------------------------------

EXPECTED = {
    # role: list, create, get, patch, put, delete
    "admin": (200, 201, 200, 200, 200, 204),
    "global": (200, 201, 200, 200, 200, 204),
    "org_admin": (200, 201, 200, 200, 200, 204),
    "pm": (200, 201, 200, 200, 200, 204),
    "dc": (200, 201, 200, 200, 200, 403),
    "pu": (200, 403, 200, 403, 403, 403),
    "member": (200, 403, 200, 403, 403, 403),
    "outsider": (404, 404, 404, 403, 403, 404),
    "other_org_admin": (404, 404, 404, 403, 403, 404),
    "anonymous": (401, 401, 401, 401, 401, 401),
}


@pytest.mark.parametrize("prefix", ["", "/api/v1"])
async def test_every_status_code_for_each_role(client, config, make_user, prefix):
    """The same answers at the spec's paths and at the platform's (under /api/v1)."""
    world = await make_world(client, config, make_user, "roles" + prefix.replace("/", "-"))
    units = prefix + world.units
    for role, expected in EXPECTED.items():
        unit_id = (await create_unit(client, world, f"Unit of {role}"))["properties"]["id"]
        headers = world.headers(role)
        unit = units + unit_id + "/"
        responses = {
            "list": await client.get(units, headers=headers),
            "create": await client.post(units, json=point_feature("New"), headers=headers),
            "get": await client.get(unit, headers=headers),
            "patch": await client.patch(unit, json={"properties": {"name": "Renamed"}}, headers=headers),
            "put": await client.put(unit, json=point_feature("Replaced"), headers=headers),
            "delete": await client.delete(unit, headers=headers),
        }
        got = tuple(r.status for r in responses.values())
        assert got == expected, f"{role}: {got}"
        for action, response in responses.items():
            both = action == "delete"
            if response.status == 401:
                body = {"detail": "Please sign in."}
                assert await response.json() == ({"error": "Please sign in.", **body} if both else body)
            elif response.status == 403:
                assert await response.json() == {"error": REFUSED[action], "detail": REFUSED[action]}
            elif response.status == 404:
                body = {"error": "Project not found.", "detail": "Project not found."} if both else \
                    {"detail": "Project not found."}
                assert await response.json() == body


async def test_wrong_credentials_are_401_in_the_spec_shape(client, config, make_user):
    world = await make_world(client, config, make_user, "wrong")
    bad_token = await client.get(world.units, headers={"Authorization": "Token not-a-token"})
    assert bad_token.status == 401 and await bad_token.json() == {"detail": "Invalid token."}
    bad_password = await client.delete(world.units + "x/", headers={"Authorization": "Basic bm9ib2R5Om5vcGU="})
    assert bad_password.status == 401 and set(await bad_password.json()) == {"error", "detail"}
    for method, path in (("POST", world.units), ("GET", world.units + "x/"), ("PATCH", world.units + "x/"),
                         ("PUT", world.units + "x/")):  # 401 bodies carry "detail" on every method
        response = await client.request(method, path, headers={"Authorization": "Token not-a-token"})
        assert response.status == 401 and await response.json() == {"detail": "Invalid token."}, method


async def test_unknown_units_projects_and_organizations(client, config, make_user):
    world = await make_world(client, config, make_user, "unknown")
    missing = world.units + "doesnotexist0000000000000/"
    response = await client.get(missing, headers=world.admin)
    assert response.status == 400 and await response.json() == {"detail": "SpatialUnit not found"}  # the spec's
    # PATCH and PUT: 404 before the body is judged (a body that is not JSON, a bad one, a good one)
    json_headers = {**world.admin, "Content-Type": "application/json"}
    for method in ("PATCH", "PUT"):
        for body in (b"{nope", b'{"properties": {"name": ""}}', b"{}", b'{"name": "x", "geometry": "POINT (1 2)"}'):
            response = await client.request(method, missing, data=body, headers=json_headers)
            assert response.status == 404 and await response.json() == UNIT_MISSING, (method, body)
    deleted = await client.delete(missing, headers=world.admin)
    assert deleted.status == 404 and await deleted.json() == UNIT_MISSING
    assert await ok(await client.get(world.units, headers=world.admin)) == []
    feature = point_feature("x")
    for prefix in ("", "/api/v1"):
        for units in (f"/organizations/{world.org}/projects/nope/spatial/", "/organizations/nope/projects/x/spatial/",
                      "/organizations/Bad%20Slug/projects/x/spatial/"):
            for method, path, body in (("GET", units, None), ("POST", units, feature), ("GET", units + "x/", None),
                                       ("PATCH", units + "x/", {}), ("PUT", units + "x/", feature)):
                response = await client.request(method, prefix + path, json=body, headers=world.admin)
                assert response.status == 404, (method, prefix + path)
                assert await response.json() == {"detail": "Project not found."}, (method, prefix + path)
            gone = await client.delete(prefix + units + "x/", headers=world.admin)
            assert gone.status == 404
            assert await gone.json() == {"error": "Project not found.", "detail": "Project not found."}
    project = await client.get(f"/organizations/{world.org}/projects/nope/", headers=world.admin)
    assert project.status == 404 and await project.json() == {"detail": "Project not found."}


async def test_a_unit_of_another_organization_is_never_visible(client, config, make_user):
    world = await make_world(client, config, make_user, "hidden")
    theirs = await ok(await client.post(world.other_units, json=point_feature("Secret Garden"),
                                        headers=world.headers("other_org_admin")), 201)
    their_id = theirs["properties"]["id"]
    mine = world.headers("org_admin")
    # through their project: 404 for everything, as if it did not exist, but an update: 403, as the
    # platform answered a caller with no role in the organization
    nowhere = f"/organizations/{world.other_org}/projects/nope/spatial/"
    for response, same_as in (
            (await client.get(world.other_units, headers=mine), await client.get(nowhere, headers=mine)),
            (await client.post(world.other_units, json=point_feature("x"), headers=mine),
             await client.post(nowhere, json=point_feature("x"), headers=mine)),
            (await client.get(world.other_units + their_id + "/", headers=mine),
             await client.get(nowhere + their_id + "/", headers=mine)),
            (await client.delete(world.other_units + their_id + "/", headers=mine),
             await client.delete(nowhere + their_id + "/", headers=mine))):
        assert response.status == 404
        assert await response.json() == await same_as.json()
    for response in (await client.get(f"/organizations/{world.other_org}/", headers=mine),
                     await client.get(f"/organizations/{world.other_org}/projects/", headers=mine)):
        assert response.status == 404
    for method in ("PATCH", "PUT"):
        refused = await client.request(method, world.other_units + their_id, json=point_feature("Mine now"),
                                       headers=mine)
        assert refused.status == 403 and await refused.json() == {"error": REFUSED["patch"],
                                                                  "detail": REFUSED["patch"]}
    orgs = await ok(await client.get("/organizations/", headers=mine))
    assert [o["slug"] for o in orgs] == [world.org]
    # through my project: exactly what an id that never existed gets
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        body = None if method in ("GET", "DELETE") else point_feature("Mine now")
        through_mine = await client.request(method, world.units + their_id + "/", json=body, headers=mine)
        never = await client.request(method, world.units + "x" * 24 + "/", json=body, headers=mine)
        assert (through_mine.status, await through_mine.json()) == (never.status, await never.json()), method
    related = await client.post(world.units, json=point_feature("Mine", relationships=[their_id]), headers=mine)
    assert related.status == 400 and "relationships" in await related.json()
    assert await ok(await client.get(world.units + "?search=secret", headers=mine)) == []
    # and it is untouched
    still = await ok(await client.get(world.other_units + their_id, headers=world.headers("other_org_admin")))
    assert still["properties"]["name"] == "Secret Garden"


# -- bad input ----------------------------------------------------------------------------------------

async def test_bad_bodies_are_400_with_field_errors_and_change_nothing(client, config, make_user, couch):
    world = await make_world(client, config, make_user, "bad")
    cases = [
        ({}, {"geometry": "This field is required", "name": "This field is required"}),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, "properties": {}},
         {"name": "This field is required"}),
        (point_feature("   "), {"name": "This field may not be blank."}),
        ({**point_feature("x"), "properties": {"name": 5}}, {"name": "Not a valid string."}),
        (point_feature("x", colour="red"), {"colour": "Unknown field"}),
        ({**point_feature("x"), "type": "FeatureCollection"},
         {"non_field_errors": 'Expected a GeoJSON Feature ("type": "Feature")'}),
        ([point_feature("x")], {"non_field_errors": "Invalid data. Expected a dictionary, but got list."}),
        ({**point_feature("x"), "geometry": None}, {"geometry": "This field may not be null."}),
        ({**point_feature("x"), "properties": "x"},
         {"properties": 'Expected a dictionary of items but got type "str".'}),
        (point_feature("x", relationships=["nope"]), {"relationships": "No spatial unit of this project has the id nope"}),
        (point_feature("x", lat=95), {"geometry": "geometry.coordinates: latitude 95 is outside [-90, 90]"}),
    ]
    for body, expected in cases:
        response = await client.post(world.units, json=body, headers=world.admin)
        assert response.status == 400, body
        assert await response.json() == expected
    bowtie = {"type": "Feature", "properties": {"name": "Bowtie"},
              "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}
    response = await client.post(world.units, json=bowtie, headers=world.admin)
    assert response.status == 400
    assert (await response.json())["geometry"].startswith("Invalid geometry: Self-intersection")
    not_json = await client.post(world.units, data=b"{nope", headers={**world.admin, "Content-Type": "application/json"})
    assert not_json.status == 400 and list(await not_json.json()) == ["detail"]
    empty = await client.post(world.units, data=b"", headers=world.admin)
    assert empty.status == 400 and list(await empty.json()) == ["detail"]
    assert await ok(await client.get(world.units, headers=world.admin)) == []


async def test_bad_patches_are_400_and_change_nothing(client, config, make_user):
    world = await make_world(client, config, make_user, "badpatch")
    unit = await create_unit(client, world, "Keep", attributes={"a": 1})
    path = world.units + unit["properties"]["id"]
    cases = [
        ({"properties": {"name": ""}}, {"name": "This field may not be blank."}),
        ({"properties": {"relationships": [unit["properties"]["id"]]}},
         {"relationships": "A spatial unit cannot be related to itself"}),
        ({"geometry": {"type": "LineString", "coordinates": [[0, 0]]}}, {"geometry": INVALID_FORMAT}),
        ({"geometry": None}, {"geometry": "This field may not be null."}),
        # a flat body: "type" is the unit's type, so a bare GeoJSON geometry names unknown fields
        ({"type": "Point", "coordinates": [0, 0]}, {"coordinates": "Unknown field"}),
        ({"type": "BU", "properties": {"name": "x"}},
         {"non_field_errors": 'Expected a GeoJSON Feature ("type": "Feature")'}),
        ({"type": ""}, {"type": "This field may not be blank."}),
        ({"properties": {"attributes": "x"}}, {"attributes": 'Expected a dictionary of items but got type "str".'}),
    ]
    for body, expected in cases:
        response = await client.patch(path, json=body, headers=world.admin)
        assert response.status == 400, body
        assert await response.json() == expected
    assert await ok(await client.get(path, headers=world.admin)) == unit


async def test_patch_merges_attributes_and_replaces_the_rest(client, config, make_user):
    world = await make_world(client, config, make_user, "patch")
    other = await create_unit(client, world, "Neighbour")
    unit = await create_unit(client, world, "Plot", attributes={"owner": "Ana", "size": 10, "old": True})
    changed = await ok(await client.patch(world.units + unit["properties"]["id"], json={
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [[[190, 0], [191, 0], [191, 1]]]},
        "properties": {"id": "ignored", "type": "BU", "attributes": {"size": 12, "old": None, "new": "yes"},
                       "relationships": [other["properties"]["id"]]},
    }, headers=world.headers("dc")))
    assert changed["properties"]["id"] == unit["properties"]["id"]
    assert changed["properties"]["name"] == "Plot"
    assert changed["properties"]["attributes"] == {"owner": "Ana", "size": 12, "new": "yes"}
    assert changed["properties"]["type"] == "BU"
    assert changed["properties"]["relationships"] == [other["properties"]["id"]]
    assert changed["geometry"] == {"type": "Polygon", "coordinates": [[[-170.0, 0.0], [-169.0, 0.0], [-169.0, 1.0],
                                                                       [-170.0, 0.0]]]}
    assert await ok(await client.get(world.units + unit["properties"]["id"], headers=world.admin)) == changed
    empty = await ok(await client.patch(world.units + unit["properties"]["id"], json={}, headers=world.admin))
    assert empty["properties"] == changed["properties"]


async def test_bad_list_parameters_are_400(client, config, make_user):
    world = await make_world(client, config, make_user, "badquery")
    for query, field in (("ordering=size", "ordering"), ("limit=0", "limit"), ("limit=abc", "limit"),
                         ("limit=1001", "limit"), ("offset=-1", "offset"), ("search=" + "x" * 201, "search")):
        response = await client.get(f"{world.units}?{query}", headers=world.admin)
        assert response.status == 400, query
        assert list(await response.json()) == [field]


# -- search, type, ordering, pages ------------------------------------------------------------------

async def test_search_type_and_ordering_combinations(client, config, make_user):
    world = await make_world(client, config, make_user, "search")
    building = await create_unit(client, world, "Apartment Building 102", type="BU",
                                 attributes={"address": "102 Sesame St"})
    await create_unit(client, world, "Apartment Unit #5", type="AP", relationships=[building["properties"]["id"]])
    await create_unit(client, world, "Community Park", type="MI", attributes={"notes": ["open", {"keeper": "Oscar"}]})
    await create_unit(client, world, "building unit #2B", type="BU")
    await create_unit(client, world, "Zebra Crossing", type="RW", attributes={"lanes": 2})

    async def listed(query=""):
        return names(await ok(await client.get(f"{world.units}?{query}", headers=world.headers("pu"))))

    by_name = ["Apartment Building 102", "Apartment Unit #5", "building unit #2B", "Community Park", "Zebra Crossing"]
    assert await listed() == by_name
    assert await listed("ordering=name") == by_name
    assert await listed("ordering=-name") == by_name[::-1]
    assert await listed("ordering=type") == ["Apartment Unit #5", "Apartment Building 102", "building unit #2B",
                                             "Community Park", "Zebra Crossing"]
    assert await listed("ordering=-type") == ["Zebra Crossing", "Community Park", "building unit #2B",
                                              "Apartment Building 102", "Apartment Unit #5"]
    assert await listed("type=BU") == ["Apartment Building 102", "building unit #2B"]
    assert await listed("type=BU&ordering=-name") == ["building unit #2B", "Apartment Building 102"]
    assert await listed("type=BU&ordering=-type") == ["building unit #2B", "Apartment Building 102"]
    assert await listed("type=bu") == []
    assert await listed("search=apartment") == ["Apartment Building 102", "Apartment Unit #5"]
    assert await listed("search=SESAME") == ["Apartment Building 102"]  # an attribute value
    assert await listed("search=102") == ["Apartment Building 102", "Apartment Unit #5"]  # a related unit's name
    assert await listed("search=oscar") == ["Community Park"]  # nested attribute values
    assert await listed("search=keeper") == []  # attribute keys are not searched
    assert await listed("search=2") == ["Apartment Building 102", "Apartment Unit #5", "building unit #2B",
                                        "Zebra Crossing"]
    assert await listed("search=2&ordering=-name") == ["Zebra Crossing", "building unit #2B", "Apartment Unit #5",
                                                       "Apartment Building 102"]
    assert await listed("search=2&type=BU") == ["Apartment Building 102", "building unit #2B"]
    assert await listed("search=2&type=BU&ordering=-type") == ["building unit #2B", "Apartment Building 102"]
    assert await listed("search=apartment&type=AP&ordering=type") == ["Apartment Unit #5"]
    assert await listed("search=%20%20") == by_name  # blank search: no filter
    assert await listed("search=nothing-like-this") == []
    assert await listed("search=2&limit=2&offset=1") == ["Apartment Unit #5", "building unit #2B"]
    assert await listed("offset=3") == ["Community Park", "Zebra Crossing"]
    assert await listed("type=BU&offset=1&limit=5") == ["building unit #2B"]


async def test_limit_and_offset_pages_with_a_next_link(client, config, make_user):
    world = await make_world(client, config, make_user, "pages")
    for name in ("a", "b", "c", "d", "e"):
        await create_unit(client, world, name)
    seen, url = [], world.units + "?limit=2&ordering=-name"
    while url:
        response = await client.get(url, headers=world.admin)
        page = names(await ok(response))
        assert len(page) <= 2
        seen += page
        link = response.headers.get("Link")
        url = link[1:link.index(">")] if link else None
        if url:
            assert link.endswith('rel="next"') and "ordering=-name" in url
    assert seen == ["e", "d", "c", "b", "a"]
    last = await client.get(world.units + "?limit=2&offset=4", headers=world.admin)
    assert names(await ok(last)) == ["e"] and "Link" not in last.headers


async def test_a_large_project_is_paged_and_streamed_and_kept_apart(client, config, make_user, couch, monkeypatch):
    monkeypatch.setattr(spatial_units, "PAGE_SIZE", 100)  # several pages from a few hundred units
    world = await make_world(client, config, make_user, "large")
    project = await ok(await client.get(f"/organizations/{world.org}/projects/{world.project}/", headers=world.admin))
    other = await ok(await client.get(f"/organizations/{world.other_org}/projects/{world.other_project}/",
                                      headers=world.admin))
    docs = []
    for project_id, count in ((project["id"], 450), (other["id"], 30)):
        for i in range(count):
            unit_id = f"u{i:05d}{project_id[:18]}"
            docs.append({"_id": unit_doc_id(project_id, unit_id), "doc_type": "spatial_unit", "unit_id": unit_id,
                         "project": project_id, "organization": "x", "name": f"Unit {i:05d}",
                         "unit_type": "BU" if i % 3 else "PA", "attributes": {"code": f"C{i}"},
                         "relationships": [], "geometry": {"type": "Point", "coordinates": [1.0, 2.0]}})
    await couch.db(config.db_spatial).bulk_docs(docs)
    everything = await client.get(world.units, headers=world.admin)
    assert everything.headers["Transfer-Encoding"] == "chunked"
    assert names(await ok(everything)) == [f"Unit {i:05d}" for i in range(450)]
    page = names(await ok(await client.get(world.units + "?limit=250&offset=150", headers=world.admin)))
    assert page == [f"Unit {i:05d}" for i in range(150, 400)]
    backwards = names(await ok(await client.get(world.units + "?ordering=-name&offset=446", headers=world.admin)))
    assert backwards == ["Unit 00003", "Unit 00002", "Unit 00001", "Unit 00000"]
    pa = names(await ok(await client.get(world.units + "?type=PA&ordering=-type", headers=world.admin)))
    assert pa == [f"Unit {i:05d}" for i in range(0, 450, 3)][::-1]
    found = names(await ok(await client.get(world.units + "?search=c42", headers=world.admin)))
    assert found == ["Unit 00042"] + [f"Unit {i:05d}" for i in range(420, 430)]
    paged = names(await ok(await client.get(world.units + "?search=c4&limit=3&offset=10", headers=world.admin)))
    assert paged == ["Unit 00049", "Unit 00400", "Unit 00401"]  # after 4, 40..48
    assert len(await ok(await client.get(world.other_units, headers=world.admin))) == 30


async def test_an_outage_is_a_503_in_the_spec_shape(aiohttp_client, own_server, couch_server):
    config = couch_server.config.replace(couch_url=own_server.url, auth_cache_seconds=60,
                                         couch_timeout=3).with_admin(*own_server.admin)
    await setup(config, progress=lambda _: None)
    client = await aiohttp_client(create_app(config))
    admin = basic(*own_server.admin)
    await ok(await client.post("/organizations/", json={"name": "Down"}, headers=admin), 201)
    await ok(await client.post("/organizations/down/projects/", json={"name": "Here"}, headers=admin), 201)
    units = "/organizations/down/projects/here/spatial/"
    assert await ok(await client.get(units, headers=admin)) == []
    own_server.kill()
    listed = await client.get(units, headers=admin)
    assert listed.status == 503 and list(await listed.json()) == ["detail"]
    deleted = await client.delete(units + "x/", headers=admin)
    assert deleted.status == 503 and set(await deleted.json()) == {"error", "detail"}
