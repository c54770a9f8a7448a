"""The two docs of a user stay consistent: failures between the writes are undone; crashes are found and repaired."""

import pytest

from api.auth import Principal
from api.cht.users.create import UserCreator
from api.cht.users.users import Dbs, find_problems
from api.cht.users.writes import UserWriter
from api.cht.visibility import UNRESTRICTED
from api.couch import Database
from api.errors import ServiceUnavailable
from api.settings import default_settings
from scripts.repair_users import run
from tests.helpers import admin_headers

from .world import make_users_world

GOOD = "Kit-Amani-2024!"
ADMIN = Principal("admin", ("_admin",))


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


class FailingUsersDb(Database):
    """The real _users database, except that writing some users fails as if CouchDB went away or refused."""

    def __init__(self, real: Database, refuse: set[str], down: bool = False):
        super().__init__(real.couch, real.name)
        self.refuse, self.down = refuse, down

    async def bulk_docs(self, docs, **kwargs):
        if self.down:
            raise ServiceUnavailable("CouchDB unreachable: ClientConnectorError")
        kept = [d for d in docs if d["_id"] not in self.refuse]
        results = {r["id"]: r for r in await super().bulk_docs(kept, **kwargs)}
        return [results.get(d["_id"]) or {"id": d["_id"], "error": "forbidden", "reason": "refused"} for d in docs]


def _dbs(couch, config, users_db=None):
    return Dbs(users_db or couch.db(config.db_users), couch.db(config.db_medic), couch.db(config.db_logs),
                couch.db(config.db_sentinel))


def _user(uw, short, center):
    return {"username": uw.name(short), "password": GOOD, "roles": ["chw"],
            "place": {"name": f"Area {short}", "type": "clinic", "parent": center}, "contact": {"name": short}}


async def test_a_failed_users_write_undoes_the_settings_and_contacts(uw, config, couch):
    medic = couch.db(config.db_medic)
    before = (await medic.info())["doc_count"]
    refused = f"org.couchdb.user:{uw.name('half1')}"
    failing = FailingUsersDb(couch.db(config.db_users), {refused})
    writer = UserCreator(_dbs(couch, config, failing), default_settings(), ADMIN, UNRESTRICTED)
    center = uw.h.centers[0]
    results = await writer.create_many([_user(uw, "half1", center), _user(uw, "whole1", center)])
    assert isinstance(results[0], ServiceUnavailable) and "user" in results[1]
    assert await medic.get_or_none(refused) is None  # no settings doc without its _users doc
    # only the good user's place, person and settings doc were added
    assert (await medic.info())["doc_count"] == before + 3
    assert [p async for p in find_problems(_dbs(couch, config), uw.name("half1"))] == []


async def test_couchdb_gone_during_the_users_write_leaves_nothing(uw, config, couch):
    medic = couch.db(config.db_medic)
    before = (await medic.info())["doc_count"]
    failing = FailingUsersDb(couch.db(config.db_users), set(), down=True)
    writer = UserCreator(_dbs(couch, config, failing), default_settings(), ADMIN, UNRESTRICTED)
    results = await writer.create_many([_user(uw, "down1", uw.h.centers[1]), _user(uw, "down2", uw.h.centers[1])])
    assert all(isinstance(r, ServiceUnavailable) for r in results)
    assert (await medic.info())["doc_count"] == before


async def test_an_update_whose_users_write_fails_restores_the_settings(uw, config, couch, client):
    name = uw.name("upd1")
    assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["program_officer"], "fullname": "Before"})).status == 200
    failing = FailingUsersDb(couch.db(config.db_users), set())

    async def refuse(doc, **params):
        raise ServiceUnavailable("CouchDB unreachable: ClientConnectorError")

    failing.put = refuse
    writer = UserWriter(_dbs(couch, config, failing), default_settings(), ADMIN, UNRESTRICTED)
    with pytest.raises(ServiceUnavailable):
        await writer.update(name, {"fullname": "After", "roles": ["data_entry"]}, full_access=True)
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert settings_doc["fullname"] == "Before" and settings_doc["roles"] == ["program_officer", "mm-online"]


async def test_crash_leftovers_are_reported_and_repaired(uw, config, couch, client, make_user):
    medic, users = couch.db(config.db_medic), couch.db(config.db_users)
    # a process that died after the settings write of a create
    orphan = uw.name("xorphan")
    await medic.put({"_id": f"org.couchdb.user:{orphan}", "type": "user-settings", "name": orphan, "roles": ["chw"]})
    # a _users doc made without the API (no settings doc)
    bare = await make_user("xbare", ["program_officer"], known=True)
    # a pair that diverged (an update that died after the settings write)
    diverged = uw.name("xdiverged")
    assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": diverged, "password": GOOD, "roles": ["program_officer"]})).status == 200
    doc = await medic.get(f"org.couchdb.user:{diverged}")
    await medic.put({**doc, "roles": ["national_admin"]})
    shown = await (await client.get(f"/api/v2/users/{diverged}", headers=admin_headers(config))).json()
    assert any("roles differs" in p for p in shown["inconsistencies"])
    lines = []
    assert await run(config, prefix=uw.prefix + "x", out=lines.append) == 3
    assert sorted(line.split(":")[0] for line in lines) == sorted([orphan, bare, diverged])
    assert await run(config, prefix=uw.prefix + "x", fix=True, out=lines.append) == 0
    assert await run(config, prefix=uw.prefix + "x", out=lines.append) == 0
    assert (await medic.get(f"org.couchdb.user:{orphan}"))["inactive"] is True
    assert (await medic.get(f"org.couchdb.user:{bare}"))["known"] is True
    assert (await medic.get(f"org.couchdb.user:{diverged}"))["roles"] == ["program_officer", "mm-online"]
    shown = await (await client.get(f"/api/v2/users/{diverged}", headers=admin_headers(config))).json()
    assert "inconsistencies" not in shown
    # as in CHT, a name stays taken while a user-settings doc has it (inactive included)
    again = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": orphan, "password": GOOD, "roles": ["program_officer"]})
    assert again.status == 400 and (await again.json())["error"]["translationKey"] == "username.taken"
    assert await users.get_or_none(f"org.couchdb.user:{orphan}") is None
