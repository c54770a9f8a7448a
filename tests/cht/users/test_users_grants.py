"""What was granted to a user goes with them when they are deleted, and never passes to a later user of
the same name (issue 23, class 3: a deleted user's API token came back when the name was reused).

Every grant Jamii has is tried: API tokens, login-by-SMS links, session cookies (CouchDB's AuthSession,
signed with the user's salt) and the API's credential cache.
"""

from __future__ import annotations

import pytest

from api.app import create_app
from api.cht.users.token_login import DOC_PREFIX
from tests.helpers import PASSWORD, admin_headers, basic

from .world import make_users_world

SETTINGS = "/api/v1/settings"


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


async def create(client, config, name: str, roles: list[str], **extra) -> None:
    body = {"username": name, "roles": roles, **extra}
    if "token_login" not in extra:
        body.update(password=PASSWORD, password_change_required=False)
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=body)
    assert response.status == 200, await response.text()


async def delete(client, config, name: str) -> None:
    response = await client.delete(f"/api/v1/users/{name}", headers=admin_headers(config))
    assert response.status == 200, await response.text()


async def recreate(client, config, couch, name: str, roles: list[str], **extra) -> None:
    """A new account of a deleted user's name. As in CHT, the deleted user's settings doc (kept, inactive)
    holds the name, so an admin who wants it again deletes that doc first; then the API makes the user."""
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    await couch.db(config.db_medic).delete(settings_doc["_id"], settings_doc["_rev"])
    await create(client, config, name, roles, **extra)


def token(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def test_an_api_token_dies_with_its_user_and_never_comes_back(client, uw, config, couch):
    name = uw.name("grant-token")
    await create(client, config, name, ["program_officer"])
    made = await client.post("/api/v1/tokens", headers=basic(name), json={"name": "laptop"})
    assert made.status == 201, await made.text()
    key = (await made.json())["key"]
    assert (await client.get(SETTINGS, headers=token(key))).status == 200
    await delete(client, config, name)
    assert (await client.get(SETTINGS, headers=token(key))).status == 401
    # deleted with the user, not left behind
    listed = await couch.db(config.db_spatial).view("spatial", "api_tokens_by_user", startkey=[name],
                                                    endkey=[name, {}])
    assert listed["rows"] == []
    # a new user of the same name, made by an admin, gets nothing of the old one's
    await recreate(client, config, couch, name, ["national_admin"])
    assert (await client.get(SETTINGS, headers=token(key))).status == 401
    assert (await client.put(SETTINGS, json={"locale": "en"}, headers=token(key))).status == 401


async def test_a_token_left_behind_is_refused_for_a_new_account_of_the_same_name(client, uw, config, couch):
    """A user deleted and made again directly in CouchDB (no API to delete their tokens): the token's
    record is still there, and still refused, as it names the old account."""
    name = uw.name("grant-direct")
    users = couch.db(config.db_users)
    await users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": ["chw"],
                     "password": PASSWORD})
    made = await client.post("/api/v1/tokens", headers=basic(name), json={})
    assert made.status == 201, await made.text()
    key = (await made.json())["key"]
    assert (await client.get(SETTINGS, headers=token(key))).status == 200
    doc = await users.get(f"org.couchdb.user:{name}")
    await users.delete(doc["_id"], doc["_rev"])
    await users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": ["national_admin"],
                     "password": PASSWORD})
    assert (await client.get(SETTINGS, headers=token(key))).status == 401
    # the new account can make tokens of its own, which work
    fresh = await client.post("/api/v1/tokens", headers=basic(name), json={})
    assert (await client.get(SETTINGS, headers=token((await fresh.json())["key"]))).status == 200
    assert (await client.get(SETTINGS, headers=token(key))).status == 401


async def test_a_login_link_dies_with_its_user(client, uw, config, couch):
    name = uw.name("grant-sms")
    await create(client, config, name, ["program_officer"], token_login=True, phone="0712 345 678")
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    sms = await couch.db(config.db_medic).get(DOC_PREFIX + user_doc["token_login"]["token_hash"])
    link = sms["tasks"][1]["messages"][0]["message"].rsplit("/", 1)[1]
    await delete(client, config, name)
    assert (await client.post(f"/medic/login/token/{link}")).status == 401
    await recreate(client, config, couch, name, ["program_officer"], token_login=True, phone="0712 345 678")
    assert (await client.post(f"/medic/login/token/{link}")).status == 401


async def test_a_session_cookie_dies_with_its_user(aiohttp_client, uw, config, couch):
    """CouchDB signs AuthSession with the user's salt, which a new account does not share; the API's
    credential cache forgets the user when it deletes them."""
    client = await aiohttp_client(create_app(config.replace(auth_cache_seconds=300)))
    name = uw.name("grant-cookie")
    await create(client, config, name, ["program_officer"])
    login = await client.post("/_session", json={"name": name, "password": PASSWORD})
    assert login.status == 200, await login.text()
    cookie = {"Cookie": f"AuthSession={login.cookies['AuthSession'].value}"}
    assert (await client.get(SETTINGS, headers=cookie)).status == 200
    assert (await client.get(SETTINGS, headers=basic(name))).status == 200  # cached too
    await delete(client, config, name)
    assert (await client.get(SETTINGS, headers=cookie)).status == 401
    assert (await client.get(SETTINGS, headers=basic(name))).status == 401
    await recreate(client, config, couch, name, ["national_admin"])  # same name, same password
    assert (await client.get(SETTINGS, headers=cookie)).status == 401
    session = await (await client.get("/_session", headers=cookie)).json()
    assert session["userCtx"]["name"] is None
    assert (await client.get(SETTINGS, headers=basic(name))).status == 200  # the new user's own password works


async def test_every_user_is_made_with_an_account_id_of_its_own(client, uw, config, couch):
    name = uw.name("grant-id")
    await create(client, config, name, ["program_officer"])
    first = (await couch.db(config.db_users).get(f"org.couchdb.user:{name}"))["account_id"]
    await delete(client, config, name)
    await recreate(client, config, couch, name, ["program_officer"])
    second = (await couch.db(config.db_users).get(f"org.couchdb.user:{name}"))["account_id"]
    assert len(first) == 32 and len(second) == 32 and first != second
    # an update keeps it
    updated = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"roles": ["chw_supervisor"],
                                "place": uw.world.sup_center, "contact": uw.h.by_id[uw.world.sup_center]["contact"]["_id"]})
    assert updated.status == 200, await updated.text()
    assert (await couch.db(config.db_users).get(f"org.couchdb.user:{name}"))["account_id"] == second
