"""The credential store and ``PUT /api/v1/credentials/{key}``: encrypted at rest, never returned or logged."""

import logging
import os
import stat

import pytest
from cryptography.fernet import Fernet

from api.config import ConfigError
from api.credentials import CredentialStore, key_file, load_keys
from api.errors import BadRequest
from tests.helpers import admin_headers, basic

SECRET = "s3cret-aggregator-token-Zq9"


async def test_put_stores_the_secret_encrypted(client, couch, config, caplog):
    with caplog.at_level(logging.DEBUG):
        response = await client.put("/api/v1/credentials/rapidpro:incoming", data=SECRET,
                                    headers={**admin_headers(config), "Content-Type": "text/plain"})
    assert response.status == 200
    assert await response.json() == {"ok": True}
    doc = await couch.db(config.db_vault).get("credential:rapidpro:incoming")
    assert SECRET not in str(doc) and doc["password"]
    assert await CredentialStore.from_config(couch, config).get("rapidpro:incoming") == SECRET
    assert SECRET not in caplog.text


async def test_put_replaces_and_drops_a_trailing_newline(client, couch, config):
    for value in ("first", "second\n"):
        response = await client.put("/api/v1/credentials/replace.me", data=value, headers=admin_headers(config))
        assert response.status == 200
    assert await CredentialStore.from_config(couch, config).get("replace.me") == "second"


async def test_missing_credential_is_none(couch, config):
    assert await CredentialStore.from_config(couch, config).get("never-set") is None


async def test_permissions(client, config, make_user):
    chw = await make_user("cred-chw", ["chw"])
    officer = await make_user("cred-admin", ["national_admin"])
    anonymous = await client.put("/api/v1/credentials/x", data="v")
    assert anonymous.status == 401
    refused = await client.put("/api/v1/credentials/x", data="v", headers=basic(chw))
    assert refused.status == 403 and (await refused.json())["error"] == "forbidden"  # CHT's firewall
    # as in CHT, only CouchDB server admins set credentials, whatever the permissions
    officer_refused = await client.put("/api/v1/credentials/x", data="v", headers=basic(officer))
    assert officer_refused.status == 403 and await officer_refused.json() == {
        "code": 403, "error": "Insufficient permissions"}
    allowed = await client.put("/api/v1/credentials/x", data="v", headers=admin_headers(config))
    assert allowed.status == 200


@pytest.mark.parametrize("key, body, field", [
    ("ok-key", "", "body"),
    ("bad%20key", "v", "key"),
    ("-starts-with-dash", "v", "key"),
    ("x" * 201, "v", "key"),
])
async def test_bad_input_is_400(client, config, key, body, field):
    response = await client.put(f"/api/v1/credentials/{key}", data=body, headers=admin_headers(config))
    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_non_utf8_body_is_400(client, config):
    response = await client.put("/api/v1/credentials/binary", data=b"\xff\xfe", headers=admin_headers(config))
    assert response.status == 400


def test_generated_key_is_saved_private_and_reused(tmp_path, config):
    local = config.replace(data_dir=tmp_path, credentials_key=None)
    first = load_keys(local)
    path = key_file(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = first.encrypt(b"x")
    assert load_keys(local).decrypt(token) == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["credentials-key"]


def test_configured_keys_rotate(tmp_path, config):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = load_keys(config.replace(credentials_key=old)).encrypt(b"x")
    assert load_keys(config.replace(credentials_key=f"{new},{old}")).decrypt(token) == b"x"
    with pytest.raises(ConfigError):
        load_keys(config.replace(credentials_key="not-a-key"))


async def test_wrong_key_reads_as_missing(couch, config):
    store = CredentialStore.from_config(couch, config.replace(credentials_key=Fernet.generate_key().decode()))
    await store.set("rotated-away", "value")
    other = CredentialStore.from_config(couch, config.replace(credentials_key=Fernet.generate_key().decode()))
    assert await other.get("rotated-away") is None
    with pytest.raises(BadRequest):
        await store.set("bad key", "value")
