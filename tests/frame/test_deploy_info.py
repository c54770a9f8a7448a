"""GET /api/deploy-info and the deploy_info of _design/medic-client: the CHT version Jamii answers as."""

import pytest

from api import deploy_info
from api.deploy_info import CHT_VERSION, CLIENT_DDOC
from tests.helpers import admin_headers, basic


@pytest.fixture
def medic(couch, config):
    return couch.db(config.db_medic)


async def test_any_signed_in_user_reads_the_version(client, make_user, config, medic):
    chw = basic(await make_user("deploy-chw", ["chw"]))
    response = await client.get("/api/deploy-info", headers=chw)
    assert response.status == 200
    info = await response.json()
    stored = (await medic.get(CLIENT_DDOC))["deploy_info"]
    assert info == {**stored, "version": CHT_VERSION} and isinstance(info["timestamp"], int)
    assert info["user"] == config.couch_user, "the set-up recorded who deployed"
    assert (await client.get("/api/deploy-info")).status == 401


async def test_the_version_is_what_cht_clients_expect():
    major, minor, _ = (int(part) for part in CHT_VERSION.split("."))
    # cht-conf: nools boilerplate below 4.2, --disable-users from 4.7, Nouveau (which Jamii lacks) from 5.0
    assert major == 4 and minor >= 7


async def test_ensure_records_once_and_keeps_an_upgrades_release(client, medic, config):
    ddoc = await medic.get(CLIENT_DDOC)
    original = ddoc["deploy_info"]
    try:
        assert await deploy_info.ensure(medic, "admin") is False, "already recorded: nothing written"
        assert (await medic.get(CLIENT_DDOC))["_rev"] == ddoc["_rev"]
        ddoc["deploy_info"] = {"version": "9.1.0", "release": "9.1.0", "user": "someone", "timestamp": 1}
        await medic.put(ddoc)  # as an upgrade recorded it before the version was the API's
        assert await deploy_info.ensure(medic, "admin") is True
        fixed = (await medic.get(CLIENT_DDOC))["deploy_info"]
        assert fixed["version"] == CHT_VERSION and fixed["release"] == "9.1.0" and fixed["user"] == "admin"
        reply = await (await client.get("/api/deploy-info", headers=admin_headers(config))).json()
        assert reply["version"] == CHT_VERSION and reply["release"] == "9.1.0"
        assert await deploy_info.ensure(medic, "admin") is False
    finally:
        current = await medic.get(CLIENT_DDOC)
        current["deploy_info"] = original
        await medic.put(current)


async def test_without_a_record_the_version_is_still_answered(client, medic, config):
    ddoc = await medic.get(CLIENT_DDOC)
    original = ddoc.pop("deploy_info")
    await medic.put(ddoc)
    try:
        reply = await client.get("/api/deploy-info", headers=admin_headers(config))
        assert await reply.json() == {"version": CHT_VERSION}
    finally:
        ddoc["deploy_info"] = original
        await medic.put(ddoc)
