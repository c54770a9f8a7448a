"""Where the spec is silent, the spatial units API answers as the Cadasta platform did (issue 25): its
paths under /api/v1, flat bodies, PUT, geometry as WKT/EWKT/HEXEWKB, DRF's messages, members' reads."""

from .helpers import create_unit, make_world, ok, point_feature

INVALID_FORMAT = "Invalid format: string or unicode input unrecognized as GeoJSON, WKT EWKT or HEXEWKB."
EDIT = "You don't have permission to edit spatial units of this project"


# -- the platform's paths -------------------------------------------------------------------------

async def test_the_platform_paths_serve_the_same_units(client, config, make_user):
    world = await make_world(client, config, make_user, "v1paths")
    v1 = "/api/v1" + world.units
    pm = world.headers("pm")
    made = await ok(await client.post(v1, json=point_feature("Via v1"), headers=pm), 201)
    unit_id = made["properties"]["id"]
    assert made["properties"]["project"]["slug"] == world.project
    spec_list = await ok(await client.get(world.units, headers=pm))
    assert [f["properties"]["id"] for f in spec_list] == [unit_id]
    assert await ok(await client.get(v1, headers=pm)) == spec_list
    assert await ok(await client.get(v1.rstrip("/"), headers=pm)) == spec_list
    spec_one = await ok(await client.get(world.units + unit_id + "/", headers=pm))
    assert spec_one == made
    assert await ok(await client.get(v1 + unit_id + "/", headers=pm)) == spec_one
    assert await ok(await client.get(v1 + unit_id, headers=pm)) == spec_one
    renamed = await ok(await client.patch(v1 + unit_id, json={"properties": {"name": "R"}}, headers=pm))
    assert renamed["properties"]["name"] == "R"
    replaced = await ok(await client.put(v1 + unit_id + "/", json=point_feature("Whole", lon=3, lat=4), headers=pm))
    assert replaced["properties"]["name"] == "Whole" and replaced["geometry"]["coordinates"] == [3.0, 4.0]
    assert await ok(await client.get(world.units + unit_id, headers=pm)) == replaced
    anonymous = await client.get(v1)
    assert anonymous.status == 401 and await anonymous.json() == {"detail": "Please sign in."}
    anonymous_delete = await client.delete(v1 + "x/")
    assert anonymous_delete.status == 401
    assert await anonymous_delete.json() == {"error": "Please sign in.", "detail": "Please sign in."}
    await ok(await client.delete(v1 + unit_id + "/", headers=pm), 204)
    assert await ok(await client.get(world.units, headers=pm)) == []
    nowhere = await client.get("/api/v1/organizations/nope/projects/x/spatial/", headers=pm)
    assert nowhere.status == 404 and await nowhere.json() == {"detail": "Project not found."}
    # only the unit paths: the platform's organization API is not served under /api/v1
    orgs = await client.get("/api/v1/organizations/", headers=world.admin)
    assert orgs.status == 404 and (await orgs.json())["error"] == "not_found"


# -- updates: flat bodies, PUT --------------------------------------------------------------------

async def test_patch_takes_the_platform_flat_body(client, config, make_user):
    world = await make_world(client, config, make_user, "flat")
    dc = world.headers("dc")
    unit = await create_unit(client, world, "Plot", attributes={"owner": "Ana", "size": 10, "old": True})
    path = world.units + unit["properties"]["id"]
    typed = await ok(await client.patch(path, json={"type": "BU"}, headers=dc))
    assert typed["properties"]["type"] == "BU"
    assert typed["properties"]["name"] == "Plot" and typed["geometry"] == unit["geometry"]
    assert typed["properties"]["attributes"] == unit["properties"]["attributes"]
    assert await ok(await client.get(path, headers=dc)) == typed
    moved = await ok(await client.patch(path, json={"geometry": {"type": "Point", "coordinates": [1, 2]}}, headers=dc))
    assert moved["geometry"] == {"type": "Point", "coordinates": [1.0, 2.0]} and moved["properties"]["type"] == "BU"
    merged = await ok(await client.patch(path, json={"name": "Flat", "attributes": {"size": 12, "old": None}},
                                         headers=dc))
    assert merged["properties"]["name"] == "Flat"
    assert merged["properties"]["attributes"] == {"owner": "Ana", "size": 12}  # merged as the Feature form merges
    feature = await ok(await client.patch(path, json={"type": "Feature", "geometry": {"type": "Point",
                                                                                    "coordinates": [5, 6]}},
                                          headers=dc))
    assert feature["properties"]["type"] == "BU" and feature["geometry"]["coordinates"] == [5.0, 6.0]
    made = await ok(await client.post(world.units, json={"name": "Flat new", "type": "BU",
                                                         "geometry": {"type": "Point", "coordinates": [1, 2]}},
                                      headers=dc), 201)
    assert made["type"] == "Feature" and made["properties"]["type"] == "BU"
    assert made["properties"]["name"] == "Flat new" and made["properties"]["attributes"] == {}


async def test_put_is_a_full_update(client, config, make_user):
    world = await make_world(client, config, make_user, "put")
    other = await create_unit(client, world, "Neighbour")
    unit = await create_unit(client, world, "Plot", type="BU", attributes={"a": 1, "b": 2},
                             relationships=[other["properties"]["id"]])
    path = world.units + unit["properties"]["id"]
    dc = world.headers("dc")
    whole = await ok(await client.put(path, json={
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [7, 8]},
        "properties": {"name": "Whole", "attributes": {"c": 3, "d": None}}}, headers=dc))
    assert whole["properties"]["name"] == "Whole" and whole["geometry"]["coordinates"] == [7.0, 8.0]
    assert whole["properties"]["attributes"] == {"c": 3, "d": None}  # replaced, not merged
    assert whole["properties"]["type"] == "BU"  # not given: kept, as DRF's full update keeps it
    assert whole["properties"]["relationships"] == [other["properties"]["id"]]
    assert whole["properties"]["project"] == unit["properties"]["project"]
    assert await ok(await client.get(path, headers=dc)) == whole
    for body, expected in (({}, {"geometry": "This field is required", "name": "This field is required"}),
                           ({"properties": {"name": "x"}}, {"geometry": "This field is required"}),
                           ({"name": "x", "geometry": ""}, {"geometry": "This field is required"}),
                           ({"name": "", "geometry": "POINT (1 2)"}, {"name": "This field may not be blank."})):
        response = await client.put(path, json=body, headers=dc)
        assert response.status == 400 and await response.json() == expected, body
    assert await ok(await client.get(path, headers=dc)) == whole
    flat = await ok(await client.put(path + "/", json={"name": "Flat", "geometry": "POINT (9 10)", "type": "PA"},
                                     headers=dc))
    assert flat["properties"]["name"] == "Flat" and flat["properties"]["type"] == "PA"
    assert flat["geometry"] == {"type": "Point", "coordinates": [9.0, 10.0]}
    assert flat["properties"]["attributes"] == {"c": 3, "d": None}
    itself = await client.put(path, json=point_feature("x", relationships=[unit["properties"]["id"]]), headers=dc)
    assert itself.status == 400 and await itself.json() == {
        "relationships": "A spatial unit cannot be related to itself"}


async def test_callers_without_a_role_get_403_on_updates(client, config, make_user):
    world = await make_world(client, config, make_user, "norole")
    unit = world.units + (await create_unit(client, world, "Plot"))["properties"]["id"] + "/"
    for role in ("outsider", "other_org_admin", "member", "pu"):
        for method in ("PATCH", "PUT"):
            response = await client.request(method, unit, json=point_feature("Mine"), headers=world.headers(role))
            assert response.status == 403, (role, method)
            assert await response.json() == {"error": EDIT, "detail": EDIT}
    # the permission is judged before the unit and the body: no unit ids are revealed to them
    refused = await client.patch(world.units + "nothing-here/", data=b"{nope",
                                 headers={**world.headers("outsider"), "Content-Type": "application/json"})
    assert refused.status == 403 and await refused.json() == {"error": EDIT, "detail": EDIT}
    anonymous = await client.put(unit, json=point_feature("Mine"))
    assert anonymous.status == 401 and await anonymous.json() == {"detail": "Please sign in."}
    assert (await ok(await client.get(unit, headers=world.admin)))["properties"]["name"] == "Plot"


# -- organization members --------------------------------------------------------------------------

async def test_organization_members_list_and_read_units(client, config, make_user):
    world = await make_world(client, config, make_user, "members")
    building = await create_unit(client, world, "Apartment Building", type="BU", attributes={"street": "Sesame"})
    await create_unit(client, world, "Community Park", type="MI")
    member = world.headers("member")
    listed = await ok(await client.get(world.units, headers=member))
    assert listed == await ok(await client.get(world.units, headers=world.headers("pu")))
    assert [f["properties"]["name"] for f in listed] == ["Apartment Building", "Community Park"]
    for query, names in (("search=sesame", ["Apartment Building"]), ("type=MI", ["Community Park"]),
                         ("ordering=-name&limit=1", ["Community Park"])):
        page = await ok(await client.get(f"{world.units}?{query}", headers=member))
        assert [f["properties"]["name"] for f in page] == names, query
    one = world.units + building["properties"]["id"] + "/"
    assert await ok(await client.get(one, headers=member)) == building
    refusals = {
        "create": (await client.post(world.units, json=point_feature("x"), headers=member),
                   "You don't have permission to add spatial units to this project."),
        "patch": (await client.patch(one, json={"name": "x"}, headers=member), EDIT),
        "put": (await client.put(one, json=point_feature("x"), headers=member), EDIT),
        "delete": (await client.delete(one, headers=member),
                   "You are not allowed to remove spatial units from the project."),
    }
    for action, (response, text) in refusals.items():
        assert response.status == 403 and await response.json() == {"error": text, "detail": text}, action
    assert await ok(await client.get(one, headers=world.admin)) == building


# -- geometry input and messages ------------------------------------------------------------------

POINT = {"type": "Point", "coordinates": [100.0, 0.0]}


GEOMETRY_TEXTS = [
    "POINT (100 0)", "  point(100 0) ", "SRID=4326;POINT(100 0)",
    "0101000020E610000000000000000059400000000000000000",  # EWKB, SRID 4326
    "010100000000000000000059400000000000000000",  # WKB
    '{"type": "Point", "coordinates": [100, 0]}',
]


async def test_geometry_as_wkt_ewkt_hexewkb_or_geojson_text(client, config, make_user):
    world = await make_world(client, config, make_user, "wkt")
    for n, geometry in enumerate(GEOMETRY_TEXTS):
        made = await ok(await client.post(world.units, json=point_feature(f"u{n}") | {"geometry": geometry},
                                          headers=world.admin), 201)
        assert made["geometry"] == POINT, geometry
    listed = await ok(await client.get(world.units, headers=world.admin))
    assert [f["geometry"] for f in listed] == [POINT] * len(GEOMETRY_TEXTS)


async def test_geometry_strings_are_checked_like_geojson(client, config, make_user):
    world = await make_world(client, config, make_user, "wktcheck")
    polygon = "POLYGON ((-245.39 -3.33, -245.38 -3.33, -245.38 -3.32, -245.39 -3.33))"
    made = await ok(await client.post(world.units, json={"name": "Wrapped", "geometry": polygon},
                                      headers=world.admin), 201)
    assert made["geometry"]["coordinates"][0][0] == [114.61, -3.33]  # wrapped like the GeoJSON form
    cats = {"type": "Cats", "coordinates": [100, 0]}
    cases = [
        (point_feature("x") | {"geometry": cats}, {"geometry": INVALID_FORMAT}),
        ({"type": "BU", "name": "x", "geometry": cats}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": "POINT (100 0"}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": "not wkt"}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": "0102"}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": '{"type": "Point"'}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": 5}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": [1, 2]}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": {"type": "Point", "coordinates": [1]}}, {"geometry": INVALID_FORMAT}),
        (point_feature("x") | {"geometry": ""}, {"geometry": "This field is required"}),
        (point_feature("x") | {"geometry": "SRID=3857;POINT(100 0)"},
         {"geometry": "Only SRID 4326 (WGS 84) is accepted, not 3857"}),
        (point_feature("x") | {"geometry": "POINT EMPTY"}, {"geometry": "Invalid geometry: it is empty"}),
        (point_feature("x") | {"geometry": "POINT (0 95)"},
         {"geometry": "geometry.coordinates: latitude 95.0 is outside [-90, 90]"}),
    ]
    for body, expected in cases:
        response = await client.post(world.units, json=body, headers=world.admin)
        assert response.status == 400, body
        assert await response.json() == expected, body
    bowtie = await client.post(world.units, json={"name": "x", "geometry": "POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))"},
                               headers=world.admin)
    assert bowtie.status == 400 and (await bowtie.json())["geometry"].startswith("Invalid geometry: Self-intersection")
    unit = world.units + made["properties"]["id"]
    patched = await client.patch(unit, json={"geometry": cats}, headers=world.admin)
    assert patched.status == 400 and await patched.json() == {"geometry": INVALID_FORMAT}
    assert [f["properties"]["name"] for f in await ok(await client.get(world.units, headers=world.admin))] == [
        "Wrapped"]


async def test_validation_messages_are_drf_s(client, config, make_user):
    world = await make_world(client, config, make_user, "drf")
    cases = [
        (point_feature("x" * 201), {"name": "Ensure this field has no more than 200 characters."}),
        (point_feature(True), {"name": "Not a valid string."}),
        (point_feature(None), {"name": "This field may not be null."}),
        (point_feature("x", type="t" * 101), {"type": "Ensure this field has no more than 100 characters."}),
        (point_feature("x", attributes=[]), {"attributes": 'Expected a dictionary of items but got type "list".'}),
        (point_feature("x", relationships="x"), {"relationships": 'Expected a list of items but got type "str".'}),
        (point_feature("x", relationships=["r"] * 1001),
         {"relationships": "Ensure this field has no more than 1000 elements."}),
        ({"type": "Feature", "geometry": POINT, "properties": 5},
         {"properties": 'Expected a dictionary of items but got type "int".'}),
        ("x", {"non_field_errors": "Invalid data. Expected a dictionary, but got str."}),
        ({}, {"geometry": "This field is required", "name": "This field is required"}),
    ]
    for body, expected in cases:
        response = await client.post(world.units, json=body, headers=world.admin)
        assert response.status == 400, body
        assert await response.json() == expected, body
    search = await client.get(world.units + "?search=" + "x" * 201, headers=world.admin)
    assert search.status == 400
    assert await search.json() == {"search": "Ensure this field has no more than 200 characters."}
    assert await ok(await client.get(world.units, headers=world.admin)) == []
