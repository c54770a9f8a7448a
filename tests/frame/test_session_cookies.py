"""A session ends with its password: the cookie's signature is checked against the user's current salt."""

import base64
import hmac

import pytest

from api.auth import Authenticator
from api.errors import Unauthorized
from api.session_cookies import CookieSigner, signed_with, split
from tests.helpers import PASSWORD


def cookie(name: str, secret: str, salt: str, algorithm: str = "sha256", time_hex: str = "6B1618D0") -> str:
    message = f"{name}:{time_hex}".encode()
    signature = hmac.new((secret + salt).encode(), message, algorithm).digest()
    return base64.urlsafe_b64encode(message + b":" + signature).decode().rstrip("=")


def test_a_cookie_is_signed_with_the_secret_and_the_salt():
    value = cookie("kim", "s3cret", "salt-1")
    assert split(value)[0] == b"kim:6B1618D0"
    assert signed_with(value, "s3cret", "salt-1") is True
    assert signed_with(value, "s3cret", "salt-2") is False, "another salt: the password changed"
    assert signed_with(value, "other", "salt-1") is False
    assert signed_with(cookie("kim", "s3cret", "salt-1", "sha1"), "s3cret", "salt-1") is True, "pouchdb-server"


@pytest.mark.parametrize("value", ["", "!!!", base64.urlsafe_b64encode(b"no-colons").decode(),
                                   base64.urlsafe_b64encode(b":only:").decode()])
def test_a_cookie_in_another_format_cannot_be_told(value):
    assert split(value) is None and signed_with(value, "s", "salt") is None


async def _session(couch, name):
    status, _, headers = await couch.request("POST", "/_session", json_body={"name": name, "password": PASSWORD})
    assert status == 200
    return headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


async def test_the_servers_cookie_verifies_against_the_current_salt_only(couch, config, make_user):
    name = await make_user("salted", ["chw"])
    value = await _session(couch, name)
    users = couch.db(config.db_users)
    doc = await users.get(f"org.couchdb.user:{name}")
    signer = CookieSigner(couch)
    assert await signer.current(value, doc), "the server signs with its secret and the user's salt"
    assert not await signer.current(value, {**doc, "salt": "a-new-salt"}), "a new password: a new salt"
    assert await signer.current(value, {k: v for k, v in doc.items() if k != "salt"}), "no salt: CouchDB decides"


async def test_a_password_change_ends_the_session_even_if_couchdb_still_accepts_it(couch, config, make_user):
    """As a cluster node whose ``_users`` cache lags does: CouchDB's ``/_session`` still names the user,
    but the salt the API reads from a quorum of copies is the new one."""
    name = await make_user("lagging", ["chw"])
    value = await _session(couch, name)
    auth = Authenticator.from_config(couch, config)
    try:
        assert (await auth.cookie(value)).name == name
        auth.forget(name)
        users = couch.db(config.db_users)
        doc = await users.get(f"org.couchdb.user:{name}")
        await users.put({**doc, "password": "A-new-pass-9876"})
        ctx = {"name": name, "roles": ["chw"]}  # what a lagging node's /_session still answers
        with pytest.raises(Unauthorized):
            await auth._principal(ctx, "cookie", cookie=value)
    finally:
        auth.close()
