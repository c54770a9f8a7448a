"""A small world for the spatial units tests: two organizations, a project each, one user per role."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.helpers import admin_headers, basic

# role in the main project -> how the user gets it
ROLES = ("org_admin", "pm", "dc", "pu", "member", "outsider", "other_org_admin", "global")


@dataclass
class World:
    org: str
    project: str
    other_org: str
    other_project: str
    users: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)

    @property
    def units(self) -> str:
        return f"/organizations/{self.org}/projects/{self.project}/spatial/"

    @property
    def other_units(self) -> str:
        return f"/organizations/{self.other_org}/projects/{self.other_project}/spatial/"

    def headers(self, role: str) -> dict[str, str]:
        if role == "admin":
            return self.admin
        if role == "anonymous":
            return {}
        return basic(self.users[role])


async def ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, f"{response.status}: {await response.text()}"
    return await response.json() if status != 204 else None


async def make_world(client: Any, config: Any, make_user: Any, tag: str) -> World:
    admin = admin_headers(config)
    world = World(org=f"{tag}-org", project=f"{tag}-project", other_org=f"{tag}-other",
                  other_project=f"{tag}-elsewhere", admin=admin)
    for org, project in ((world.org, world.project), (world.other_org, world.other_project)):
        await ok(await client.post("/organizations/", json={"name": org.upper(), "slug": org}, headers=admin), 201)
        await ok(await client.post(f"/organizations/{org}/projects/", json={"name": f"Project {project}",
                                                                            "slug": project}, headers=admin), 201)
    for role in ROLES:
        world.users[role] = await make_user(f"{tag}-{role}", ["national_admin" if role == "global" else "data_entry"])
    memberships = [
        (f"/organizations/{world.org}/members/", "org_admin", "admin"),
        (f"/organizations/{world.org}/members/", "member", "member"),
        (f"/organizations/{world.org}/projects/{world.project}/members/", "pm", "PM"),
        (f"/organizations/{world.org}/projects/{world.project}/members/", "dc", "DC"),
        (f"/organizations/{world.org}/projects/{world.project}/members/", "pu", "PU"),
        (f"/organizations/{world.other_org}/members/", "other_org_admin", "admin"),
    ]
    for path, role, given in memberships:
        await ok(await client.put(path + world.users[role], json={"role": given}, headers=admin))
    return world


def point_feature(name: str, lon: float = 100.0, lat: float = 0.0, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": name, **properties}}


async def create_unit(client: Any, world: World, name: str, role: str = "admin", **properties: Any) -> dict[str, Any]:
    response = await client.post(world.units, json=point_feature(name, **properties), headers=world.headers(role))
    return await ok(response, 201)
