"""Helpers of the bad-input corpus: the "nothing changed" snapshot and the check of a refusal.

``Snapshot`` reads every Jamii database (and this module's users in ``_users``)
through ``_all_docs`` and keeps, per database, the number of documents and a
SHA-256 over their ids and revisions: any write, delete or new document
changes it, while the sequence number (which compaction or a pure read never
moves but a no-op write would) is left out on purpose.

Legitimately written on each request, and therefore left out:

* ``connected-user-<name>`` in the logs database: the API notes each user at
  most hourly (per process; each test makes a new app, so each test may write
  it once), in the background;
* ``replication-count-<name>`` in the logs database: how many docs an offline user's visible set holds,
  recorded whenever it is computed (a new app computes it on the user's first request);
* ``bulk-user-upload-<ms>`` in the logs database: ``POST /api/v2/users`` keeps
  a log of every import, a refused one included (CHT does the same), so an
  admin can see what was tried.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.cht.messaging.aggregators import INCOMING_KEY, RAPIDPRO
from api.config import Config
from api.couch import Couch
from tests.helpers import admin_headers, basic, user_prefix
from tests.hierarchy import build, load

WRITTEN_PER_REQUEST = ("connected-user-", "replication-count-", "bulk-user-upload-")


@dataclass(frozen=True)
class DbState:
    count: int
    digest: str


async def snapshot(couch: Couch, config: Config) -> dict[str, DbState]:
    """Doc count and a hash of ids and revs of every Jamii database (and this module's users)."""
    state = {}
    mine = f"org.couchdb.user:{user_prefix(config)}"
    for name in [*config.own_databases, config.db_users]:
        rows = (await couch.db(name).all_docs())["rows"]
        lines = sorted(f"{row['id']} {row['value']['rev']}" for row in rows
                       if not row["id"].startswith(WRITTEN_PER_REQUEST)
                       and (name != config.db_users or row["id"].startswith(mine)))
        state[name] = DbState(len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return state


def changed(before: dict[str, DbState], after: dict[str, DbState]) -> list[str]:
    return [name for name in before if before[name] != after.get(name)]


def message_of(body: Any) -> str:
    """The text of an error body, whatever the route's documented shape: CHT's ``{code, error}``,
    CouchDB's ``{error, reason}``, the spatial API's ``{detail}`` / ``{<field>: <message>}``, the users
    CSV import's list of ``{error, index}`` and the datapoints ``{error, field}`` envelopes."""
    if isinstance(body, list):
        return " ".join(message_of(item) for item in body)
    if isinstance(body, dict):
        return " ".join(f"{key} {message_of(value)}" for key, value in body.items())
    return str(body)


def is_error_shape(body: Any) -> bool:
    """A JSON error body in one of the documented shapes (see ``message_of``)."""
    if isinstance(body, list):
        return bool(body) and all(isinstance(item, dict) and "error" in item for item in body)
    if not isinstance(body, dict) or not body:
        return False
    if "code" in body:  # CHT's users API puts {message, translationKey} in "error"
        error = body.get("error")
        return isinstance(body["code"], int) and bool(error) and (
            isinstance(error, str) or isinstance(error, dict) and isinstance(error.get("message"), str))
    if "reason" in body:
        return isinstance(body.get("error"), str) and isinstance(body["reason"], str)
    return all(isinstance(v, (str, list)) for v in body.values())


# -- the seeded world -------------------------------------------------------------------------------


@dataclass
class World:
    """Something of every kind for the bad requests to aim at (and to leave alone)."""

    config: Config
    users: dict[str, str]  # short name -> full user name
    place_id: str
    person_id: str
    report_id: str
    org: str
    project: str
    unit_id: str
    cluster_id: str
    case_id: str
    incoming_key: str
    dp: Any  # tests.datapoints.world.World

    def headers(self, who: str) -> dict[str, str]:
        if who == "admin":
            return admin_headers(self.config)
        if who == "anonymous":
            return {}
        return basic(self.users[who])


def build_world(config: Config) -> World:
    """The CHT hierarchy with online and offline users, a spatial project with a unit, a foci cluster
    and case, the datapoints world and an aggregator's incoming key; made once per module."""
    from tests.datapoints import world as datapoints_world
    from tests.world import make_users

    h = build(districts=1, centers=1, clinics=2, people=4, reports_per_clinic=2)
    clinic = h.by_id[h.clinics[0]]
    users = make_users(config, {
        "po": (["program_officer"], {}),
        "chw": (["chw"], {"facility_id": clinic["_id"], "contact_id": clinic["contact"]["_id"]}),
        "gateway": (["gateway"], {}),
        "member": (["data_entry"], {}),
    })
    dp = datapoints_world.build_sync(config)
    admin = admin_headers(config)
    key = "incoming-" + uuid.uuid4().hex

    async def go() -> tuple[str, str, str, str, str]:
        async with Couch.from_config(config) as couch:
            await load(couch.db(config.db_medic), h)
        async with TestClient(TestServer(create_app(config))) as client:
            tag = user_prefix(config).strip("-")
            org, project = f"{tag}-org", f"{tag}-project"
            for path, body in (("/organizations/", {"name": "Org", "slug": org}),
                               (f"/organizations/{org}/projects/", {"name": "Project", "slug": project})):
                response = await client.post(path, json=body, headers=admin)
                assert response.status == 201, await response.text()
            response = await client.put(f"/organizations/{org}/members/{users['member']}/", json={"role": "admin"},
                                        headers=admin)
            assert response.status == 200, await response.text()
            response = await client.post(f"/organizations/{org}/projects/{project}/spatial/", headers=admin, json={
                "type": "Feature", "geometry": {"type": "Point", "coordinates": [36.8, -1.3]},
                "properties": {"name": "Unit one"}})
            assert response.status == 201, await response.text()
            unit_id = str((await response.json())["properties"]["id"])
            cluster_id, case_id = uuid.uuid4().hex, uuid.uuid4().hex
            response = await client.post("/v6/foci/cluster?country=swz", headers=admin, json={
                "id": cluster_id, "geometry": {"type": "Polygon", "coordinates": [
                    [[36.0, -1.0], [37.0, -1.0], [37.0, 0.0], [36.0, 0.0], [36.0, -1.0]]]}})
            assert response.status in (200, 201), await response.text()
            response = await client.post("/v6/foci/case?country=swz", headers=admin, json={
                "id": case_id, "geometry": {"type": "Point", "coordinates": [36.5, -0.5]}})
            assert response.status in (200, 201), await response.text()
            response = await client.put(f"/api/v1/credentials/{INCOMING_KEY[RAPIDPRO]}", data=key, headers=admin)
            assert response.status == 200, await response.text()
            return org, project, unit_id, cluster_id, case_id

    org, project, unit_id, cluster_id, case_id = asyncio.run(go())
    return World(config, users, clinic["_id"], h.people[0], h.reports[0], org, project, unit_id, cluster_id,
                 case_id, key, dp)
