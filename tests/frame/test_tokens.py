"""API tokens (``Authorization: Token <key>``): made, used, listed and revoked, against the real server."""

import hashlib
import json
import time

import jwt

from api.app import create_app
from tests.helpers import JWT_SECRET, PASSWORD, admin_headers, basic


def token(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


async def make_token(client, headers, **body):
    response = await client.post("/api/v1/tokens", json=body, headers=headers)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_token_is_made_once_stored_hashed_and_acts_as_its_user(client, make_user, couch, config):
    name = await make_user("tok-owner", ["national_admin"])
    made = await make_token(client, basic(name), name="laptop")
    assert set(made) == {"id", "name", "user", "created", "key"}
    assert made["user"] == name and made["name"] == "laptop" and len(made["key"]) >= 40
    hashed = hashlib.sha256(made["key"].encode()).hexdigest()
    assert made["id"] == hashed[:16]
    stored = await couch.db(config.db_spatial).get("api_token:" + hashed)
    assert made["key"] not in json.dumps(stored)
    # accepted wherever a password is, with the user's roles
    settings = await client.get("/api/v1/settings", headers=token(made["key"]))
    assert settings.status == 200
    put = await client.put("/api/v1/settings", json={"locale": "en"}, headers=token(made["key"]))
    assert put.status == 200
    # the key is never shown again
    listed = await (await client.get("/api/v1/tokens", headers=basic(name))).json()
    assert listed == [{"id": made["id"], "name": "laptop", "created": made["created"], "user": name}]


async def test_roles_are_read_at_request_time(client, make_user, couch, config):
    name = await make_user("tok-roles", ["chw"])
    made = await make_token(client, basic(name))
    refused = await client.put("/api/v1/settings", json={"locale": "en"}, headers=token(made["key"]))
    assert refused.status == 403
    users = couch.db(config.db_users)
    doc = await users.get(f"org.couchdb.user:{name}")
    doc["roles"] = ["national_admin"]
    await users.put(doc)
    allowed = await client.put("/api/v1/settings", json={"locale": "en"}, headers=token(made["key"]))
    assert allowed.status == 200


async def test_revoked_unknown_and_orphaned_tokens_are_401(client, make_user, couch, config):
    name = await make_user("tok-revoke", ["chw"])
    first = await make_token(client, basic(name), name="one")
    second = await make_token(client, basic(name), name="two")
    assert (await client.get("/api/v1/settings", headers=token(first["key"]))).status == 200
    revoked = await client.delete(f"/api/v1/tokens/{first['id']}", headers=basic(name))
    assert revoked.status == 204
    after = await client.get("/api/v1/settings", headers=token(first["key"]))
    assert after.status == 401 and (await after.json())["error"] == "unauthorized"
    assert (await client.delete(f"/api/v1/tokens/{first['id']}", headers=basic(name))).status == 404
    assert (await client.get("/api/v1/settings", headers=token(second["key"]))).status == 200
    for bad in ("Token nope", "Token ", "Token " + "x" * 300, "Token a b"):
        response = await client.get("/api/v1/settings", headers={"Authorization": bad})
        assert response.status == 401, bad
    # a deleted user's tokens stop working
    users = couch.db(config.db_users)
    doc = await users.get(f"org.couchdb.user:{name}")
    await users.delete(doc["_id"], doc["_rev"])
    assert (await client.get("/api/v1/settings", headers=token(second["key"]))).status == 401


async def test_revocation_applies_at_once_even_with_a_credential_cache(aiohttp_client, make_user, config):
    client = await aiohttp_client(create_app(config.replace(auth_cache_seconds=300)))
    name = await make_user("tok-cached", ["chw"])
    made = await make_token(client, basic(name))
    assert (await client.get("/api/v1/settings", headers=token(made["key"]))).status == 200
    assert (await client.delete(f"/api/v1/tokens/{made['id']}", headers=basic(name))).status == 204
    assert (await client.get("/api/v1/settings", headers=token(made["key"]))).status == 401


async def test_only_passwords_and_sessions_make_tokens(client, make_user):
    name = await make_user("tok-chain", ["chw"])
    made = await make_token(client, basic(name))
    chained = await client.post("/api/v1/tokens", json={}, headers=token(made["key"]))
    assert chained.status == 403
    claims = {"sub": name, "exp": int(time.time()) + 60}
    bearer = {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")}
    assert (await client.post("/api/v1/tokens", json={}, headers=bearer)).status == 403
    login = await client.post("/_session", json={"name": name, "password": PASSWORD})
    cookie = {"Cookie": f"AuthSession={login.cookies['AuthSession'].value}"}
    client.session.cookie_jar.clear()
    by_cookie = await client.post("/api/v1/tokens", headers=cookie)
    assert by_cookie.status == 201
    anonymous = await client.post("/api/v1/tokens", json={})
    assert anonymous.status == 401


async def test_admins_manage_other_users_tokens_and_users_do_not(client, make_user, config):
    owner = await make_user("tok-managed", ["chw"])
    other = await make_user("tok-other", ["chw"])
    made = await make_token(client, admin_headers(config), user=owner, name="issued")
    assert made["user"] == owner
    assert (await client.get("/api/v1/settings", headers=token(made["key"]))).status == 200
    listed = await client.get(f"/api/v1/tokens?user={owner}", headers=admin_headers(config))
    assert [t["id"] for t in await listed.json()] == [made["id"]]
    assert (await client.get(f"/api/v1/tokens?user={owner}", headers=basic(other))).status == 403
    assert (await client.post("/api/v1/tokens", json={"user": owner}, headers=basic(other))).status == 403
    # another user cannot revoke it, nor learn that it exists
    assert (await client.delete(f"/api/v1/tokens/{made['id']}", headers=basic(other))).status == 404
    assert (await client.delete(f"/api/v1/tokens/{made['id']}", headers=admin_headers(config))).status == 204
    unknown = await client.post("/api/v1/tokens", json={"user": "nobody-here"}, headers=admin_headers(config))
    assert unknown.status == 400 and (await unknown.json())["field"] == "user"
    server_admin = await client.post("/api/v1/tokens", json={}, headers=admin_headers(config))
    assert server_admin.status == 400


async def test_bad_bodies_and_ids_are_refused(client, make_user):
    name = await make_user("tok-bad", ["chw"])
    for body, field in (([], "body"), ({"name": 5}, "name"), ({"name": "x" * 101}, "name"),
                        ({"colour": "red"}, "colour"), ({"user": ""}, "user")):
        response = await client.post("/api/v1/tokens", json=body, headers=basic(name))
        assert response.status == 400, body
        assert (await response.json())["field"] == field
    bad_json = await client.post("/api/v1/tokens", data=b"{", headers={**basic(name), "Content-Type": "application/json"})
    assert bad_json.status == 400
    for token_id in ("zz", "0123456789abcdef"):
        assert (await client.delete(f"/api/v1/tokens/{token_id}", headers=basic(name))).status == 404
    # "../x" is the path /api/v1/x, which no route serves: CHT's firewall for an offline user
    assert (await client.delete("/api/v1/tokens/../x", headers=basic(name))).status == 403
    assert await (await client.get("/api/v1/tokens", headers=basic(name))).json() == []
