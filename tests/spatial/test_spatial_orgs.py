"""Organizations, projects and members of the spatial units API, against the real server."""

from tests.helpers import admin_headers, basic

from .helpers import make_world, ok


async def test_creating_organizations(client, config, make_user, couch):
    admin = admin_headers(config)
    made = await ok(await client.post("/organizations/", json={"name": "Public Broadcasting Service!"},
                                      headers=admin), 201)
    assert made["slug"] == "public-broadcasting-service" and made["description"] == ""
    assert len(made["id"]) == 24
    stored = await couch.db(config.db_spatial).get("organization:public-broadcasting-service")
    assert stored["id"] == made["id"]
    assert await couch.db(config.db_medic).get_or_none("organization:public-broadcasting-service") is None
    manager = await make_user("org-manager", ["national_admin"])
    await ok(await client.post("/organizations", json={"name": "Cadasta", "slug": "cadasta",
                                                       "description": "Land rights"}, headers=basic(manager)), 201)
    chw = await make_user("org-chw", ["chw"])
    refused = await client.post("/organizations/", json={"name": "Nope"}, headers=basic(chw))
    assert refused.status == 403
    assert await refused.json() == {"detail": "You don't have permission to create organizations."}
    anonymous = await client.post("/organizations/", json={"name": "Nope"})
    assert anonymous.status == 401 and await anonymous.json() == {"detail": "Please sign in."}
    for body, expected in (
        ({"name": "Again", "slug": "cadasta"}, {"slug": "Organization with this slug already exists."}),
        ({"slug": "x"}, {"name": "This field is required"}),
        ({"name": "Bad", "slug": "Not A Slug"},
         {"slug": "Use lower-case letters, digits and single hyphens (at most 50 characters)"}),
        ({"name": "!!!"}, {"slug": "Give a slug: the name has no letters or digits to make one from"}),
        ({"name": "x", "owner": "me"}, {"owner": "Unknown field"}),
        ([], {"non_field_errors": "Invalid data. Expected a dictionary, but got list."}),  # DRF's text
    ):
        response = await client.post("/organizations/", json=body, headers=admin)
        assert response.status == 400, body
        assert await response.json() == expected


async def test_who_sees_which_organizations_and_projects(client, config, make_user):
    world = await make_world(client, config, make_user, "seeing")
    second = await ok(await client.post(f"/organizations/{world.org}/projects/", json={"name": "Second Project"},
                                        headers=world.headers("org_admin")), 201)
    assert second["slug"] == "second-project" and second["organization"]["slug"] == world.org

    async def org_slugs(role):
        return [o["slug"] for o in await ok(await client.get("/organizations/", headers=world.headers(role)))]

    async def project_slugs(role):
        response = await client.get(f"/organizations/{world.org}/projects/", headers=world.headers(role))
        return [p["slug"] for p in await ok(response)] if response.status == 200 else response.status

    everything = await org_slugs("global")
    assert world.org in everything and world.other_org in everything
    for role in ("org_admin", "member", "pm", "dc", "pu"):
        assert await org_slugs(role) == [world.org], role
    assert await org_slugs("outsider") == []
    assert await org_slugs("other_org_admin") == [world.other_org]
    both = sorted([world.project, "second-project"])
    assert await project_slugs("org_admin") == both
    assert await project_slugs("member") == both
    assert await project_slugs("pu") == [world.project]
    assert await project_slugs("outsider") == 404
    assert await project_slugs("other_org_admin") == 404
    for role, status in (("pu", 200), ("member", 200), ("outsider", 404), ("other_org_admin", 404)):
        assert (await client.get(f"/organizations/{world.org}/", headers=world.headers(role))).status == status
        project = await client.get(f"/organizations/{world.org}/projects/{world.project}/",
                                   headers=world.headers(role))
        assert project.status == status, role
    # a project the PU has no role in stays hidden from them
    hidden = await client.get(f"/organizations/{world.org}/projects/second-project/", headers=world.headers("pu"))
    assert hidden.status == 404 and await hidden.json() == {"detail": "Project not found."}


async def test_creating_projects(client, config, make_user):
    world = await make_world(client, config, make_user, "projects")
    path = f"/organizations/{world.org}/projects/"
    for role, status in (("org_admin", 201), ("global", 201), ("member", 403), ("pm", 403), ("outsider", 404),
                         ("other_org_admin", 404), ("anonymous", 401)):
        response = await client.post(path, json={"name": f"By {role}"}, headers=world.headers(role))
        assert response.status == status, role
    duplicate = await client.post(path, json={"name": "x", "slug": world.project}, headers=world.admin)
    assert duplicate.status == 400
    assert await duplicate.json() == {"slug": "Project with this slug already exists in this organization."}
    # the same slug in another organization is fine
    await ok(await client.post(f"/organizations/{world.other_org}/projects/", json={"name": "x", "slug": world.project},
                               headers=world.admin), 201)
    refused = await client.post(path, json={"name": "x"}, headers=world.headers("member"))
    assert await refused.json() == {"detail": "You don't have permission to add projects to this organization."}


async def test_organization_members(client, config, make_user):
    world = await make_world(client, config, make_user, "orgmembers")
    path = f"/organizations/{world.org}/members/"
    listed = await ok(await client.get(path, headers=world.headers("org_admin")))
    assert listed == sorted([{"username": world.users["org_admin"], "role": "admin"},
                             {"username": world.users["member"], "role": "member"}], key=lambda m: m["username"])
    assert (await client.get(path, headers=world.headers("member"))).status == 403
    assert (await client.get(path, headers=world.headers("pm"))).status == 403
    assert (await client.get(path, headers=world.headers("outsider"))).status == 404
    newcomer = world.users["outsider"]
    assert (await client.put(path + newcomer, json={"role": "member"}, headers=world.headers("member"))).status == 403
    for body, expected in (({"role": "owner"}, {"role": "Must be one of: admin, member"}),
                           ({}, {"role": "This field is required"}),
                           ({"role": "member", "x": 1}, {"x": "Unknown field"})):
        response = await client.put(path + newcomer, json=body, headers=world.headers("org_admin"))
        assert response.status == 400 and await response.json() == expected
    unknown = await client.put(path + "nobody-at-all", json={"role": "member"}, headers=world.headers("org_admin"))
    assert unknown.status == 400 and await unknown.json() == {"username": "User does not exist."}
    made = await ok(await client.put(path + newcomer + "/", json={"role": "member"}, headers=world.headers("org_admin")))
    assert made == {"username": newcomer, "role": "member"}
    assert (await client.get(f"/organizations/{world.org}/", headers=world.headers("outsider"))).status == 200
    await ok(await client.put(path + newcomer, json={"role": "admin"}, headers=world.headers("org_admin")))
    units = f"/organizations/{world.org}/projects/{world.project}/spatial/"
    assert (await client.get(units, headers=world.headers("outsider"))).status == 200
    await ok(await client.delete(path + newcomer, headers=world.headers("org_admin")), 204)
    assert (await client.get(units, headers=world.headers("outsider"))).status == 404
    again = await client.delete(path + newcomer + "/", headers=world.headers("org_admin"))
    assert again.status == 404 and await again.json() == {"detail": "Not found."}


async def test_project_members(client, config, make_user):
    world = await make_world(client, config, make_user, "projmembers")
    path = f"/organizations/{world.org}/projects/{world.project}/members/"
    for role, status in (("pm", 200), ("org_admin", 200), ("global", 200), ("dc", 403), ("pu", 403),
                         ("member", 403), ("outsider", 404), ("anonymous", 401)):
        assert (await client.get(path, headers=world.headers(role))).status == status, role
    listed = await ok(await client.get(path, headers=world.headers("pm")))
    assert {m["role"] for m in listed} == {"PM", "DC", "PU"}
    newcomer = world.users["outsider"]
    units = f"/organizations/{world.org}/projects/{world.project}/spatial/"
    assert (await client.get(units, headers=world.headers("outsider"))).status == 404
    assert (await client.put(path + newcomer, json={"role": "PU"}, headers=world.headers("dc"))).status == 403
    wrong = await client.put(path + newcomer, json={"role": "admin"}, headers=world.headers("pm"))
    assert wrong.status == 400 and await wrong.json() == {"role": "Must be one of: PM, DC, PU"}
    await ok(await client.put(path + newcomer, json={"role": "PU"}, headers=world.headers("pm")))
    assert (await client.get(units, headers=world.headers("outsider"))).status == 200
    created = await client.post(units, json={"type": "Feature", "properties": {"name": "x"},
                                             "geometry": {"type": "Point", "coordinates": [0, 0]}},
                                headers=world.headers("outsider"))
    assert created.status == 403
    await ok(await client.put(path + newcomer, json={"role": "DC"}, headers=world.headers("pm")))
    created = await client.post(units, json={"type": "Feature", "properties": {"name": "x"},
                                             "geometry": {"type": "Point", "coordinates": [0, 0]}},
                                headers=world.headers("outsider"))
    assert created.status == 201
    await ok(await client.delete(path + newcomer, headers=world.headers("org_admin")), 204)
    assert (await client.get(units, headers=world.headers("outsider"))).status == 404
    assert (await client.delete(path + newcomer, headers=world.headers("pm"))).status == 404
