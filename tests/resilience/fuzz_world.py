"""The world the fuzzer runs against: seeded data, callers of every kind, and ``python -m api`` on a port.

Seeding reuses the other worlds (the CHT hierarchy of ``tests/world.py``, the
datapoints world, the spatial units world) and adds Foci clusters and cases, an
API token and two JWTs. The server is a real process of its own, talking to the
suite's embedded CouchDB, so the fuzzer speaks real HTTP to exactly what
``make run`` runs; its stderr goes to a log file the test reads for tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.config import ROOT, Config
from api.couch import Couch
from tests.datapoints import world as datapoints_world
from tests.helpers import JWT_SECRET, PASSWORD, admin_headers, basic, user_prefix
from tests.spatial import helpers as spatial_helpers
from tests.world import make_users, make_world

# The callers the issue names; each generated request is sent once per kind.
KINDS = ("admin", "online", "offline", "jwt_scoped", "jwt_bare", "none")


@dataclass
class FuzzWorld:
    base_url: str
    log: Path
    headers: dict[str, dict[str, str]]  # caller kind -> headers
    # path or query parameter name -> values that exist in the world (safe to use with any method)
    known: dict[str, list[str]] = field(default_factory=dict)
    # the same for writes (PUT/POST/PATCH/DELETE): never the callers themselves
    known_for_writes: dict[str, list[str]] = field(default_factory=dict)
    # path template -> parameter name -> values, where a name means different things on different paths
    known_by_path: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, method: str, path: str, name: str) -> list[str]:
        """Known values for one parameter of one operation (empty: leave it to the generator)."""
        if name in self.known_by_path.get(path, {}):
            return self.known_by_path[path][name]
        return (self.known if method == "GET" else self.known_for_writes).get(name, [])


def bearer(scope: str | None) -> dict[str, str]:
    claims: dict[str, Any] = {"sub": "fuzz-machine", "exp": int(time.time()) + 24 * 3600}
    if scope is not None:
        claims["scope"] = scope
    return {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")}


async def _ok(response: Any, status: int = 200) -> Any:
    assert response.status == status, f"{response.status}: {await response.text()}"
    return await response.json()


async def _seed_api(config: Config, world: FuzzWorld) -> None:
    """What only the API makes well: datapoints, spatial units, Foci clusters and cases, an API token."""
    dp = await datapoints_world.build(config)
    world.known["resource"] = ["region", "office", "campaign", "indicator", "region_type", "campaign_type",
                               "group", "user", "region_permission", "datapoint", "indicator_tag"]
    world.known["id"] = [str(v) for v in list(dp.regions.values())[:6] + list(dp.campaigns.values())]
    admin = admin_headers(config)
    prefix = user_prefix(config)

    async def make_user(name: str, roles: list[str]) -> str:
        async with Couch.from_config(config) as couch:
            await couch.db(config.db_users).put({"_id": f"org.couchdb.user:{prefix}{name}", "name": prefix + name,
                                                 "type": "user", "roles": roles, "password": PASSWORD})
        return prefix + name

    async with TestClient(TestServer(create_app(config))) as client:
        sp = await spatial_helpers.make_world(client, config, make_user, "fz")
        units = [await spatial_helpers.create_unit(client, sp, f"Unit {n}") for n in range(3)]
        world.known["org"] = [sp.org, sp.other_org]
        world.known["project"] = [sp.project, sp.other_project]
        world.known["unit_id"] = [str(u.get("id") or u.get("properties", {}).get("id")) for u in units]
        clusters = []
        for n in range(3):
            ring = [[n, 0], [n + 1, 0], [n + 1, 1], [n, 1], [n, 0]]
            made = await _ok(await client.post("/v6/foci/cluster?country=swz", headers=admin,
                                               json={"geometry": {"type": "Polygon", "coordinates": [ring]}}),
                             201)
            clusters.append(str(made[0]["cluster_id"]))
            await _ok(await client.post("/v6/foci/case?country=swz", headers=admin, json={
                "geometry": {"type": "Point", "coordinates": [n + 0.5, 0.5]}}), 201)
        world.known["cluster_id"] = clusters
        world.known["country"] = ["swz"]
        token = await _ok(await client.post("/api/v1/tokens", json={"user": prefix + "online", "name": "fuzz"},
                                            headers=admin), 201)
        world.known_by_path["/api/v1/tokens/{id}"] = {"id": [str(token["id"])]}


def build(config: Config, base_url: str, log: Path) -> FuzzWorld:
    """Seed the databases of ``config`` and return the world (the server is started separately)."""
    cht = make_world(config, districts=1, centers=2, clinics=2, people=4, reports_per_clinic=3)
    clinic, center = cht.h.by_id[cht.chw_clinic], cht.h.by_id[cht.sup_center]
    users = make_users(config, {
        "online": (["program_officer"], {"facility_id": center["_id"], "contact_id": center["contact"]["_id"]}),
        "offline": (["chw"], {"facility_id": clinic["_id"], "contact_id": clinic["contact"]["_id"]}),
        "victim1": (["chw"], {"facility_id": clinic["_id"], "contact_id": clinic["contact"]["_id"]}),
        "victim2": (["data_entry"], {}),
    })
    world = FuzzWorld(base_url, log, headers={
        "admin": admin_headers(config),
        "online": basic(users["online"]),
        "offline": basic(users["offline"]),
        "jwt_scoped": bearer("read:foci write:foci"),
        "jwt_bare": bearer(None),
        "none": {},
    })
    places = [d["_id"] for d in cht.h.docs if d.get("type") in ("district_hospital", "health_center", "clinic")]
    people = cht.h.people[:6]
    reports = cht.h.reports[:4]
    world.known.update({
        "uuid": places[:4] + people + reports,
        "doc_id": places[:3] + people[:3] + reports[:2],
        "ddoc": ["medic-client", "medic"],
        "form": ["P", "V"],
        "type": ["person", "clinic", "health_center", "district_hospital"],
        "path": ["forms.P", "contact_types.0", "roles"],
        "aggregator": ["rapidpro", "africastalking"],
        "endpoint": ["incoming-messages", "delivery-reports"],
        "username": [users["online"], users["offline"], users["victim1"]],
    })
    asyncio.run(_seed_api(config, world))
    world.known_by_path["/api/v1/places/{id}"] = {"id": places[:4]}
    world.known_for_writes = {**world.known, "username": [users["victim1"], users["victim2"]]}
    return world


def start_server(config: Config, port: int, log: Path) -> subprocess.Popen:
    """``python -m api`` on ``port`` with the databases of ``config``; stderr is appended to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUCH_", "JAMII_", "JWT_", "API_"))}
    env.update(COUCH_URL=config.couch_url_with_credentials(), JAMII_DB_PREFIX=user_prefix(config),
               JAMII_DATA_DIR=str(log.parent), UPGRADE_BUILDS=str(log.parent / "builds"),
               JWT_SECRET=JWT_SECRET, API_PORT=str(port), LOG_LEVEL="WARNING")
    with open(log, "ab") as err:
        process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                   stderr=err)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode}: {log.read_text()[-2000:]}")
    process.kill()
    raise RuntimeError("the API did not answer within 30 s")
