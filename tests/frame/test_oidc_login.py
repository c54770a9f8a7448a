"""OIDC login as CHT does it (issue 20, class 2): ``/medic/login/oidc/authorize`` and ``/medic/login/oidc``
against a real OpenID provider (``oidc-provider-mock``, started by the tests), and against a small provider
of our own for the faults a real one does not make. Also the users API's ``oidc_username`` rules and the other
logins' refusals of SSO users."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_provider_mock import run_server_in_thread

from api.couch import Couch
from api.credentials import PREFIX as CREDENTIAL_PREFIX
from tests.helpers import admin_headers, user_prefix

GOOD = "Secret_1"
SECRET = "client-secret-for-tests"


@pytest.fixture(scope="module")
def provider():
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


async def _configure(client, config, discovery_url: str, *, insecure: bool = True, secret: str | None = SECRET,
                     client_id: str = "cht") -> str:
    app_url = str(client.make_url("")).rstrip("/")
    admin = admin_headers(config)
    oidc = {"discovery_url": discovery_url, "client_id": client_id, "allow_insecure_requests": insecure}
    response = await client.put("/api/v1/settings?replace=1", headers=admin,
                                json={"oidc_provider": oidc, "app_url": app_url})
    assert response.status == 200, await response.text()
    if secret is not None:
        stored = await client.put("/api/v1/credentials/oidc:client-secret", data=secret.encode(), headers=admin)
        assert stored.status == 200
    return app_url


async def _sso_user(client, config, short: str, email: str, roles: list[str] | None = None) -> str:
    name = user_prefix(config) + short
    response = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "oidc_username": email, "roles": roles or ["program_officer"]})
    assert response.status == 200, await response.text()
    return name


async def _authorize(client) -> str:
    response = await client.get("/medic/login/oidc/authorize", allow_redirects=False)
    assert response.status == 302, await response.text()
    assert "Location" not in response.headers
    return await response.text()


async def _code(authorization_url: str, sub: str) -> str:
    """What a browser does at the provider: log in as ``sub`` and come back with a code."""
    async with aiohttp.ClientSession() as http:
        async with http.post(authorization_url, data={"sub": sub}, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0]


async def test_authorize_answers_the_providers_url_as_cht_builds_it(client, config, provider):
    app_url = await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    url = urlsplit(await _authorize(client))
    assert f"{url.scheme}://{url.netloc}" == provider and url.path == "/oauth2/authorize"
    assert url.query == ("redirect_uri=" + app_url.replace(":", "%3A").replace("/", "%2F") + "%2Fmedic%2Flogin%2Foidc"
                         "&scope=openid+email&client_id=cht&response_type=code")


async def test_login_with_a_real_provider(client, config, provider, couch):
    await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    name = await _sso_user(client, config, "sso-happy", email)
    users = couch.db(config.db_users)
    before = await users.get(f"org.couchdb.user:{name}")
    code = await _code(await _authorize(client), email)
    response = await client.get(f"/medic/login/oidc?code={code}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/"
    assert await response.text() == "Found. Redirecting to /"
    cookie = response.cookies["AuthSession"].value
    ctx = response.cookies["userCtx"].value
    assert unquote(ctx) == f'{{"name":"{name}","roles":["program_officer","mm-online"]}}'
    assert response.cookies["locale"].value == "en"
    client.session.cookie_jar.clear()
    session = await (await client.get("/_session", headers={"Cookie": f"AuthSession={cookie}"})).json()
    assert session["userCtx"]["name"] == name
    after = await users.get(f"org.couchdb.user:{name}")
    assert after["salt"] == before["salt"]  # the user's other sessions stay valid
    # the same code cannot be used twice
    again = await client.get(f"/medic/login/oidc?code={code}", allow_redirects=False)
    assert again.headers["Location"] == "/medic/login?sso_error=loginerror" and "AuthSession" not in again.cookies


async def test_an_admin_user_lands_on_the_admin_app(client, config, provider):
    await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    await _sso_user(client, config, "sso-admin", email, roles=["national_admin"])  # can_configure
    code = await _code(await _authorize(client), email)
    response = await client.get(f"/medic/login/oidc?code={code}", allow_redirects=False)
    assert response.headers["Location"] == "/admin/"
    assert '"home":"/admin/"' in unquote(response.cookies["userCtx"].value)


@pytest.mark.parametrize("query, error", [("code=", "loginerror"), ("code=invalid", "loginerror"),
                                          ("", "loginerror"), ("error=access_denied", "loginerror")])
async def test_callback_errors_go_back_to_the_login_page(client, config, provider, query, error):
    await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    response = await client.get(f"/medic/login/oidc?{query}", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == f"/medic/login?sso_error={error}"
    assert "AuthSession" not in response.cookies


async def test_an_unknown_user_is_ssouserinvalid(client, config, provider):
    await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    code = await _code(await _authorize(client), "nobody-here@example.org")
    response = await client.get(f"/medic/login/oidc?code={code}", allow_redirects=False)
    assert response.headers["Location"] == "/medic/login?sso_error=ssouserinvalid"
    assert "AuthSession" not in response.cookies


@pytest.mark.parametrize("case", ["not configured", "no secret", "unreachable", "http not allowed"])
async def test_configuration_problems(client, config, provider, case):
    """The authorize route answers CHT's 500 ``Server error``; the callback goes back to the login page."""
    good = f"{provider}/.well-known/openid-configuration"
    try:
        if case == "not configured":
            await client.put("/api/v1/settings?replace=1", headers=admin_headers(config), json={"oidc_provider": {}})
        elif case == "no secret":
            await _configure(client, config, good)
            await _remove_secret(config)
        elif case == "unreachable":
            await _configure(client, config, "http://127.0.0.1:1/.well-known/openid-configuration")
        else:
            await _configure(client, config, good, insecure=False)
        authorize = await client.get("/medic/login/oidc/authorize", headers={"Accept": "application/json"},
                                     allow_redirects=False)
        assert authorize.status == 500 and await authorize.json() == {"code": 500, "error": "Server error"}
        callback = await client.get("/medic/login/oidc?code=x", allow_redirects=False)
        assert callback.headers["Location"] == "/medic/login?sso_error=loginerror"
    finally:
        await _configure(client, config, good)


async def _remove_secret(config) -> None:
    async with Couch.from_config(config) as couch:
        vault = couch.db(config.db_vault)
        doc = await vault.get_or_none(f"{CREDENTIAL_PREFIX}oidc:client-secret")
        assert doc is not None
        await vault.delete(doc["_id"], doc["_rev"])


# -- a provider of our own, for the faults ------------------------------------------------------

class FaultyProvider:
    """Discovery, authorize, token and JWKS, with a knob per fault."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.url = ""
        self.claims: dict[str, Any] = {}
        self.token_failures = 0
        self.sign_with_other_key = False
        self.token_calls = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_post("/token", self.token)
        app.router.add_get("/jwks", self.jwks)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                                  "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def token(self, request: web.Request) -> web.Response:
        self.token_calls += 1
        form = await request.post()
        assert form["client_secret"] == SECRET and form["grant_type"] == "authorization_code"
        if self.token_failures:
            self.token_failures -= 1
            return web.Response(status=500)
        now = int(time.time())
        claims = {"iss": self.url, "aud": "cht", "sub": "s1", "iat": now, "exp": now + 300, **self.claims}
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.other_key if self.sign_with_other_key else self.key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        return web.json_response({"access_token": "at", "token_type": "Bearer", "id_token": token})

    async def jwks(self, request: web.Request) -> web.Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})


@pytest.fixture
async def faulty(aiohttp_server):
    fake = FaultyProvider()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.mark.parametrize("fault", ["no email", "wrong aud", "wrong iss", "expired", "other key", "nonce",
                                   "several audiences", "state"])
async def test_id_tokens_that_are_refused(client, config, faulty, fault):
    await _configure(client, config, faulty.url)  # an issuer URL: its discovery names it
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    await _sso_user(client, config, f"sso-{fault.replace(' ', '-')}", email)
    faulty.claims = {"email": email, **{
        "no email": {"email": None}, "wrong aud": {"aud": "someone-else"}, "wrong iss": {"iss": "https://other"},
        "expired": {"exp": int(time.time()) - 120}, "nonce": {"nonce": "n"},
        "several audiences": {"aud": ["cht", "other"], "azp": "other"}}.get(fault, {})}
    faulty.sign_with_other_key = fault == "other key"
    query = "code=c1&state=s" if fault == "state" else "code=c1"
    response = await client.get(f"/medic/login/oidc?{query}", allow_redirects=False)
    assert response.headers["Location"] == "/medic/login?sso_error=loginerror", fault
    assert "AuthSession" not in response.cookies


async def test_a_good_token_from_our_provider_and_retries(client, config, faulty):
    await _configure(client, config, faulty.url)
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    name = await _sso_user(client, config, "sso-retried", email)
    faulty.claims = {"email": email}
    faulty.token_failures = 2  # 500 twice, then the token: CHT tries three times
    response = await client.get("/medic/login/oidc?code=c1", allow_redirects=False)
    assert response.headers["Location"] == "/" and faulty.token_calls == 3
    assert f'"name":"{name}"' in unquote(response.cookies["userCtx"].value)
    faulty.token_failures, faulty.token_calls = 3, 0
    failed = await client.get("/medic/login/oidc?code=c1", allow_redirects=False)
    assert failed.headers["Location"] == "/medic/login?sso_error=loginerror" and faulty.token_calls == 3


async def test_an_issuer_that_is_not_the_configured_one_is_refused(client, config, faulty):
    await _configure(client, config, faulty.url + "/")  # the discovered issuer has no trailing slash
    authorize = await client.get("/medic/login/oidc/authorize", allow_redirects=False)
    assert authorize.status == 500


# -- oidc_username in the users API, and the other logins ------------------------------------------


async def test_oidc_usernames_in_the_users_api(client, config, provider, couch):
    admin = admin_headers(config)
    prefix = user_prefix(config)
    await client.put("/api/v1/settings?replace=1", headers=admin, json={"oidc_provider": {}})
    disabled = await client.post("/api/v1/users", headers=admin, json={
        "username": prefix + "sso-off", "oidc_username": "off@example.org", "roles": ["program_officer"]})
    assert disabled.status == 400
    assert await disabled.read() == b'{"code":400,"error":"Cannot set oidc_username when OIDC Login is not enabled."}'
    await _configure(client, config, f"{provider}/.well-known/openid-configuration")
    with_password = await client.post("/api/v1/users", headers=admin, json={
        "username": prefix + "sso-pw", "oidc_username": "pw@example.org", "password": GOOD,
        "roles": ["program_officer"]})
    assert with_password.status == 400 and await with_password.json() == {
        "code": 400, "error": "Cannot set password or token_login with oidc_username."}
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    name = await _sso_user(client, config, "sso-docs", email)
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert user_doc["oidc_username"] == email and user_doc["password_change_required"] is False
    assert user_doc.get("derived_key")  # a random password nobody knows
    assert settings_doc["oidc_login"] is True and "oidc_username" not in settings_doc
    duplicate = await client.post("/api/v1/users", headers=admin, json={
        "username": prefix + "sso-dup", "oidc_username": email, "roles": ["program_officer"]})
    assert duplicate.status == 400 and await duplicate.json() == {"code": 400, "error": {
        "message": f"The oidc_username [{email}] already exists for user [org.couchdb.user:{name}].",
        "translationKey": "user.sso.username.duplicate"}}
    in_bulk = await client.post("/api/v1/users", headers=admin, json=[{
        "username": prefix + "sso-dup2", "oidc_username": email, "roles": ["program_officer"]}])
    assert (await in_bulk.json())[0]["error"]["translationKey"] == "user.sso.username.duplicate"
    # password login is refused to an SSO user while OIDC is configured
    await couch.db(config.db_users).put({**user_doc, "password": GOOD})
    refused = await client.post("/medic/login", json={"user": name, "password": GOOD})
    assert refused.status == 401 and await refused.json() == {"error": "Password Login Not Permitted For SSO Users"}
    # back to a password user
    back = await client.post(f"/api/v1/users/{name}", headers=admin,
                             json={"oidc_username": None, "password": "Another_1", "password_change_required": False})
    assert back.status == 200, await back.text()
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert user_doc["oidc_username"] is None and settings_doc["oidc_login"] is False
    login = await client.post("/medic/login", json={"user": name, "password": "Another_1"}, allow_redirects=False)
    assert login.status == 302 and await login.text() == "/"
    # and to SSO again
    again = await client.post(f"/api/v1/users/{name}", headers=admin, json={"oidc_username": email})
    assert again.status == 200
    assert (await couch.db(config.db_users).get(f"org.couchdb.user:{name}"))["password_change_required"] is False
    both = await client.post(f"/api/v1/users/{name}", headers=admin,
                             json={"oidc_username": email, "password": "Another_2"})
    assert both.status == 400 and (await both.json())["error"] == "Cannot set password or token_login with oidc_username."
