"""Login by SMS end to end: the spec's token_login table, the SMS docs, the login route, one use, expiry."""

import json
import logging
from urllib.parse import unquote

import pytest

from api.cht.users.token_login import DOC_PREFIX, digest
from tests.helpers import admin_headers, basic

from .world import APP_URL, make_users_world

GOOD = "Kit-Amani-2024!"


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


async def _sms(couch, config, name):
    """The token (read from the link in the pending SMS) and the token_login doc of a user."""
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    doc = await couch.db(config.db_medic).get(DOC_PREFIX + user_doc["token_login"]["token_hash"])
    link = doc["tasks"][1]["messages"][0]["message"]
    return link.rsplit("/", 1)[1], doc


async def _create(client, config, name, **extra):
    response = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "roles": ["program_officer"], "token_login": True, "phone": "0712 345 678", **extra})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_new_user_gets_the_sms_and_logs_in_once(client, uw, config, couch, caplog):
    name = uw.name("tok1")
    body = await _create(client, config, name)
    assert body["token_login"]["expiration_date"] > 0
    token, doc = await _sms(couch, config, name)
    assert len(token) == 64 and doc["_id"] == DOC_PREFIX + digest(token) and token not in doc["_id"]
    assert doc["type"] == "token_login" and doc["user"] == f"org.couchdb.user:{name}"
    assert [t["state"] for t in doc["tasks"]] == ["pending", "pending"]
    assert [t["messages"][0]["to"] for t in doc["tasks"]] == ["+254712345678"] * 2
    assert doc["tasks"][0]["messages"][0]["message"] == "Your link is next"
    assert doc["tasks"][1]["messages"][0]["message"] == f"{APP_URL}/medic/login/token/{token}"
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert settings_doc["token_login"]["active"] is True and "token_hash" not in settings_doc["token_login"]
    assert settings_doc["phone"] == "+254712345678"
    pending = await couch.db(config.db_medic).view("medic", "messages_by_state", startkey=["pending"],
                                                   endkey=["pending", {}], reduce=False)
    ids = {row["value"]["id"] for row in pending["rows"]}
    assert {t["messages"][0]["uuid"] for t in doc["tasks"]} <= ids  # the SMS gateway hands them out
    caplog.set_level(logging.INFO, logger="jamii.access")
    page = await client.get(f"/medic/login/token/{token}")
    assert page.status == 200 and "<form method=\"post\"" in await page.text()
    login = await client.post(f"/medic/login/token/{token}", allow_redirects=False)
    # CHT's answer: 302, the app's URL as the body, and the session's cookies
    assert login.status == 302 and await login.text() == "/", await login.text()
    assert "Location" not in login.headers
    cookie = login.cookies["AuthSession"].value
    assert json.loads(unquote(login.cookies["userCtx"].value))["name"] == name
    me = await client.get("/_session", headers={"Cookie": f"AuthSession={cookie}"})
    assert (await me.json())["userCtx"]["name"] == name
    assert "/medic/login/token/{token}" in caplog.text and token not in caplog.text
    logged_in = await client.post(f"/medic/login/token/{token}", allow_redirects=False)
    assert logged_in.status == 302 and await logged_in.text() == "/"  # already logged in: sent on
    client.session.cookie_jar.clear()
    again = await client.post(f"/medic/login/token/{token}")
    assert again.status == 401 and (await again.json())["error"] == "invalid"
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert settings_doc["token_login"]["active"] is False and settings_doc["token_login"]["login_date"] > 0
    assert (await client.post("/medic/login/token/" + "x" * 64)).status == 401


async def test_expired_token(client, uw, config, couch):
    name = uw.name("tok2")
    await _create(client, config, name)
    token, _ = await _sms(couch, config, name)
    users = couch.db(config.db_users)
    user_doc = await users.get(f"org.couchdb.user:{name}")
    user_doc["token_login"]["expiration_date"] = 1000  # long ago
    await users.put(user_doc)
    response = await client.post(f"/medic/login/token/{token}")
    assert response.status == 401 and await response.json() == {"error": "expired"}  # CHT's body


async def test_link_uses_the_host_without_app_url(client, uw, config, couch):
    await client.put("/api/v1/settings", headers=admin_headers(config), json={"app_url": ""})
    try:
        name = uw.name("tok3")
        await _create(client, config, name)
        _, doc = await _sms(couch, config, name)
        link = doc["tasks"][1]["messages"][0]["message"]
        assert link.startswith(f"http://{client.server.host}:{client.server.port}/medic/login/token/")
    finally:
        await client.put("/api/v1/settings", headers=admin_headers(config), json={"app_url": APP_URL})


async def test_the_table_for_existing_users(client, uw, config, couch):
    name = uw.name("tok4")
    created = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["program_officer"], "phone": "+254712000444"})
    assert created.status == 200
    # undefined, existent, no token: nothing
    await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"fullname": "T"})
    assert "token_login" not in await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    # false, existent, no token: nothing
    assert (await client.post(f"/api/v1/users/{name}", headers=admin_headers(config),
                              json={"token_login": False})).status == 200
    session = await client.post("/_session", json={"name": name, "password": GOOD})
    cookie = {"Cookie": f"AuthSession={session.cookies['AuthSession'].value}"}
    assert (await client.get("/api/v1/settings", headers=cookie)).status == 200
    # true, existent, no token: password reset, token made, SMS sent, sessions invalidated
    enabled = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"token_login": True})
    assert enabled.status == 200 and "expiration_date" in (await enabled.json())["token_login"]
    assert (await client.get("/api/v1/settings", headers=cookie)).status == 401
    assert (await client.get("/api/v1/settings", headers=basic(name, GOOD))).status == 401
    first, first_doc = await _sms(couch, config, name)
    # undefined, existent, with token: unchanged
    await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"fullname": "U"})
    assert (await _sms(couch, config, name))[0] == first
    # true, existent, with token: a new token; the old one is invalid and its SMS cleared
    await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"token_login": True})
    second, _ = await _sms(couch, config, name)
    assert second != first
    old = await couch.db(config.db_medic).get(first_doc["_id"])
    assert [t["state"] for t in old["tasks"]] == ["cleared", "cleared"]
    assert (await client.post(f"/medic/login/token/{first}")).status == 401
    # false, existent, with token: needs a password; then disabled and the token invalid
    refused = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"token_login": False})
    assert refused.status == 400 and "Password is required" in (await refused.json())["error"]["message"]
    disabled = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config),
                                 json={"token_login": False, "password": "Fresh-pass-4321"})
    assert disabled.status == 200
    assert "token_login" not in await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    assert "token_login" not in await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert (await client.post(f"/medic/login/token/{second}")).status == 401
    assert (await client.get("/api/v1/settings", headers=basic(name, "Fresh-pass-4321"))).status == 200


async def test_new_user_false_and_disabled_setting(client, uw, config, couch):
    name = uw.name("tok5")
    plain = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["program_officer"], "token_login": False})
    assert plain.status == 200 and "token_login" not in await plain.json()
    await client.put("/api/v1/settings", headers=admin_headers(config), json={"token_login": {"enabled": False}})
    try:
        # as in CHT, token_login: true is ignored where login by SMS is not configured: a password is needed
        refused = await client.post("/api/v1/users", headers=admin_headers(config), json={
            "username": uw.name("tok6"), "roles": ["program_officer"], "token_login": True, "phone": "0712345678"})
        assert refused.status == 400 and await refused.json() == {"code": 400, "error": {
            "message": "Missing required fields: password", "translationKey": "fields.required",
            "translationParams": {"fields": "password"}}}
        made = await client.post("/api/v1/users", headers=admin_headers(config), json={
            "username": uw.name("tok6"), "roles": ["program_officer"], "token_login": True, "phone": "0712345678",
            "password": GOOD})
        assert made.status == 200 and "token_login" not in await made.json()
        for db in (config.db_users, config.db_medic):
            assert "token_login" not in await couch.db(db).get(f"org.couchdb.user:{uw.name('tok6')}")
        assert (await client.post("/_session", json={"name": uw.name("tok6"), "password": GOOD})).status == 200
        ignored = await client.post(f"/api/v1/users/{uw.name('tok6')}", headers=admin_headers(config),
                                    json={"token_login": True})
        assert ignored.status == 200 and "token_login" not in await ignored.json()
        assert "token_login" not in await couch.db(config.db_users).get(f"org.couchdb.user:{uw.name('tok6')}")
        route = await client.post("/medic/login/token/abc")
        assert route.status == 400 and (await route.json())["error"] == "disabled"
    finally:
        await client.put("/api/v1/settings", headers=admin_headers(config), json={"token_login": {"enabled": True}})
