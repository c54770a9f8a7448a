"""A small datapoints world made through the API, once per test module.

Nigeria: country > 2 provinces > 2 districts each > 2 sub-districts each >
2 settlements each (31 regions, names like ``P1``, ``P1D2``, ``P1D2S1``,
``P1D2S1T2``), office ``nigeria``; Somalia: a country and a province, office
``somalia``. Users: a manager (``national_admin``), two data-entry users, an
analyst and an outsider without datapoints permissions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import Config
from api.couch import Couch
from tests.helpers import PASSWORD, admin_headers, basic, user_prefix

LEVELS = ("country", "province", "district", "sub-district", "settlement")


@dataclass
class World:
    config: Config
    users: dict[str, str] = field(default_factory=dict)  # role in the tests -> CouchDB user name
    user_ids: dict[str, int] = field(default_factory=dict)
    regions: dict[str, int] = field(default_factory=dict)
    region_types: dict[str, int] = field(default_factory=dict)
    offices: dict[str, int] = field(default_factory=dict)
    campaigns: dict[str, int] = field(default_factory=dict)
    indicators: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return admin_headers(self.config) if who == "admin" else basic(self.users[who])


async def post(client: TestClient, headers: dict[str, str], resource: str, body: dict[str, Any]) -> int:
    response = await client.post(f"/api/v2/{resource}/", json=body, headers=headers)
    payload = await response.json()
    assert response.status == 201, (resource, body, payload)
    return payload["objects"]["new_id"]


async def _make_users(config: Config) -> dict[str, str]:
    roles = {"manager": ["national_admin"], "entry": ["data_entry"], "entry2": ["data_entry"],
             "analyst": ["analytics"], "outsider": ["chw"]}
    names = {}
    async with Couch.from_config(config) as couch:
        users = couch.db(config.db_users)
        for who, user_roles in roles.items():
            name = f"{user_prefix(config)}dp-{who}"
            await users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": user_roles,
                             "password": PASSWORD, "fullname": f"{who.title()} Person", "email": f"{who}@example.org"})
            names[who] = name
    return names


async def build(config: Config) -> World:
    world = World(config)
    world.users = await _make_users(config)
    async with TestClient(TestServer(create_app(config))) as client:
        admin = admin_headers(config)
        for who in world.users:
            response = await client.get("/api/v2/user/", headers=world.headers(who))
            if response.status == 200:
                world.user_ids[who] = (await response.json())["objects"][0]["id"]
        for name in ("nigeria", "somalia"):
            world.offices[name] = await post(client, admin, "office", {"name": name})
        for level in LEVELS:
            world.region_types[level] = await post(client, admin, "region_type", {"name": level})
        nid = await post(client, admin, "campaign_type", {"name": "National Immunization Days"})

        async def region(name: str, level: int, parent: str | None, office: str = "nigeria") -> None:
            body = {"name": name, "region_code": name, "office_id": str(world.offices[office]),
                    "region_type_id": str(world.region_types[LEVELS[level]])}
            if parent:
                body["parent_region_id"] = str(world.regions[parent])
            world.regions[name] = await post(client, admin, "region", body)

        await region("Nigeria", 0, None)

        async def below(parent: str, prefix: str, level: int) -> None:
            if level >= len(LEVELS):
                return
            for n in (1, 2):
                name = f"{prefix}{'PDST'[level - 1]}{n}"
                await region(name, level, parent)
                await below(name, name, level + 1)

        await below("Nigeria", "", 1)
        await region("Somalia", 0, None, "somalia")
        await region("Banadir", 1, "Somalia", "somalia")
        for slug, office, start, end in (("ng-2016-01", "nigeria", "2016-01-10", "2016-01-14"),
                                         ("ng-2016-06", "nigeria", "2016-06-10", "2016-06-14"),
                                         ("so-2016-03", "somalia", "2016-03-01", "2016-03-05")):
            world.campaigns[slug] = await post(client, admin, "campaign", {
                "slug": slug, "office_id": world.offices[office], "campaign_type_id": nid,
                "start_date": start, "end_date": end})
        for slug in ("vaccinated", "missed", "target"):
            world.indicators[slug] = await post(client, admin, "indicator", {
                "name": f"Number {slug}", "short_name": slug, "slug": slug, "description": f"children {slug}",
                "is_reported": "1", "source_id": "1"})
        world.indicators["pct_vaccinated"] = await post(client, admin, "indicator", {
            "name": "Percent vaccinated", "short_name": "% vaccinated", "slug": "pct_vaccinated",
            "calculation": {"type": "ratio", "part": world.indicators["vaccinated"],
                            "whole": world.indicators["target"]}})
        world.groups["entry"] = await post(client, admin, "group", {"name": "data entry"})
        for slug in ("vaccinated", "missed", "target"):
            await post(client, admin, "group_permission", {"group_id": world.groups["entry"],
                                                           "indicator_id": world.indicators[slug]})
        for who in ("entry", "entry2"):
            await post(client, admin, "user_group", {"user_id": world.user_ids[who],
                                                     "group_id": world.groups["entry"]})
        grants = (("entry", "P1", "w"), ("entry2", "P2D1", "w"), ("analyst", "P2", "r"), ("manager", "Nigeria", "w"))
        for who, region_name, read_write in grants:
            await post(client, admin, "region_permission", {"user_id": world.user_ids[who],
                                                            "region_id": world.regions[region_name],
                                                            "read_write": read_write})
    return world


def build_sync(config: Config) -> World:
    return asyncio.run(build(config))
