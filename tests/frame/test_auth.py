"""Authentication: Basic, session cookie and JWT, against the real server."""

import base64
import json
import time
from urllib.parse import unquote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from api.auth import Authenticator, Principal
from api.errors import Unauthorized
from tests.helpers import JWT_SECRET, PASSWORD, basic


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256(claims: dict, secret: str = JWT_SECRET) -> str:
    return jwt.encode({"exp": int(time.time()) + 300, **claims}, secret, algorithm="HS256")


async def test_anonymous_is_refused_with_json_401(client):
    response = await client.get("/api/v1/settings")
    assert response.status == 401
    assert await response.json() == {"code": 401, "error": "unauthorized"}
    assert response.headers["logout-authorization"] == "CHT-Core API"


async def test_basic_auth(client, make_user):
    name = await make_user("basic-user", ["chw"])
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    wrong = await client.get("/api/v1/settings", headers=basic(name, "wrong-password"))
    assert wrong.status == 401
    assert await wrong.json() == {"code": 401, "error": "unauthorized"}
    unknown = await client.get("/api/v1/settings", headers=basic("nobody-at-all"))
    assert unknown.status == 401


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"])
async def test_malformed_authorization_is_401(client, header):
    response = await client.get("/api/v1/settings", headers={"Authorization": header})
    assert response.status == 401
    assert "error" in await response.json()


async def test_session_cookie_login_and_use(client, make_user):
    name = await make_user("cookie-user", ["chw"])
    response = await client.post("/_session", json={"name": name, "password": PASSWORD})
    assert response.status == 200
    assert (await response.json())["name"] == name
    set_cookie = response.headers["Set-Cookie"]
    assert set_cookie.startswith("AuthSession=") and "HttpOnly" in set_cookie
    # CouchDB's capitalisation: pouchdb-session-authentication (cht-conf) looks for exactly "Expires"
    assert "; Expires=" in set_cookie and "; Max-Age=600" in set_cookie and "; Path=/" in set_cookie
    cookie = response.cookies["AuthSession"].value
    client.session.cookie_jar.clear()
    ok = await client.get("/api/v1/settings", headers={"Cookie": f"AuthSession={cookie}"})
    assert ok.status == 200
    session = await (await client.get("/_session", headers={"Cookie": f"AuthSession={cookie}"})).json()
    assert session["userCtx"]["name"] == name and session["info"]["authenticated"] == "cookie"


async def test_session_accepts_basic_header_and_form(client, make_user):
    name = await make_user("form-user", ["chw"])
    response = await client.post("/_session", headers=basic(name))
    assert response.status == 200 and "AuthSession" in response.cookies
    client.session.cookie_jar.clear()
    form = await client.post("/_session", data={"name": name, "password": PASSWORD})
    assert form.status == 200


async def test_session_errors_are_couch_shaped(client, make_user):
    name = await make_user("bad-login", ["chw"])
    wrong = await client.post("/_session", json={"name": name, "password": "nope"})
    assert wrong.status == 401  # CHT answers CouchDB's 401 with its own body
    assert await wrong.json() == {"code": 401, "error": "unauthorized"}
    missing = await client.post("/_session", json={"name": name})
    assert missing.status == 400 and (await missing.json())["error"] == "bad_request"
    bad_json = await client.post("/_session", data=b"{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status == 400


async def test_bad_cookie_is_401(client):
    client.session.cookie_jar.clear()
    response = await client.get("/api/v1/settings", headers={"Cookie": "AuthSession=bm9ib2R5OjEyMzQ6YWJj"})
    assert response.status == 401


async def test_cht_login_endpoint(client, make_user):
    """CHT's answer: 302 with the URL to go to as the body, the session and CHT's userCtx and locale cookies."""
    name = await make_user("login-form", ["chw"])
    response = await client.post("/medic/login", json={"user": name, "password": PASSWORD}, allow_redirects=False)
    assert response.status == 302 and await response.text() == "/" and "Location" not in response.headers
    assert "AuthSession" in response.cookies and response.cookies["locale"].value == "en"
    assert json.loads(unquote(response.cookies["userCtx"].value)) == {"name": name, "roles": ["chw"]}
    wrong = await client.post("/medic/login", json={"user": name, "password": "x"})
    assert wrong.status == 401 and await wrong.json() == {"error": "Not logged in"}
    assert "logout-authorization" not in wrong.headers
    client.session.cookie_jar.clear()
    for target, expected in (("/medic/_design/medic/_rewrite#/messages", "/medic/_design/medic/_rewrite#/messages"),
                             ("https://evil.example.org/x?y=1", "/x"), ("//evil.example.org", "/"),
                             ("/a/%2F/b", "/")):
        redirected = await client.post("/medic/login", allow_redirects=False,
                                       json={"user": name, "password": PASSWORD, "redirect": target})
        assert await redirected.text() == expected, target


async def test_cht_login_asks_for_a_new_password_first(client, make_user):
    name = await make_user("login-change", ["program_officer"], password_change_required=True)
    response = await client.post("/medic/login", json={"user": name, "password": PASSWORD}, allow_redirects=False)
    assert response.status == 302 and await response.text() == "/medic/password-reset"
    assert "AuthSession" not in response.cookies and "userCtx" in response.cookies
    for body, error in (({"password": "password"}, "password-weak"), ({"password": "Short1!"}, "password-short"),
                        ({"password": "Another_1", "currentPassword": "wrong"}, "current-password-incorrect"),
                        ({"password": PASSWORD}, "password-same")):
        refused = await client.post("/medic/password-reset",
                                    json={"username": name, "currentPassword": PASSWORD, **body})
        assert refused.status == 400 and (await refused.json())["error"] == error, body
    short = await client.post("/medic/password-reset", json={"username": name, "password": "Short1!"})
    assert (await short.json())["params"] == {"minimum": 8}
    changed = await client.post("/medic/password-reset", allow_redirects=False,
                                json={"username": name, "currentPassword": PASSWORD, "password": "Another_1"})
    assert changed.status == 302 and await changed.text() == "/" and "AuthSession" in changed.cookies
    again = await client.post("/medic/login", json={"user": name, "password": "Another_1"}, allow_redirects=False)
    assert again.status == 302 and await again.text() == "/" and "AuthSession" in again.cookies


async def test_identity(client, make_user):
    name = await make_user("identity", ["chw"])
    anonymous = await client.get("/medic/login/identity")
    assert anonymous.status == 401 and await anonymous.read() == b""
    known = await client.get("/medic/login/identity", headers=basic(name))
    assert known.status == 200 and await known.json() == {"success": True}
    assert json.loads(unquote(known.cookies["userCtx"].value))["name"] == name


async def test_logout_clears_the_cookie(client):
    response = await client.delete("/_session")
    assert response.status == 200
    assert "AuthSession=" in response.headers["Set-Cookie"]


async def test_jwt_hs256(client):
    ok = await client.get("/api/v1/settings", headers=bearer(hs256({"sub": "machine", "scope": "read:foci"})))
    assert ok.status == 200


@pytest.mark.parametrize("token, message", [
    (jwt.encode({"sub": "m", "exp": int(time.time()) - 10}, JWT_SECRET, algorithm="HS256"), "Token expired"),
    (jwt.encode({"sub": "m", "exp": int(time.time()) + 3600}, "another-secret-of-32-bytes-long!!", algorithm="HS256"),
     "Signature verification failed"),
    (jwt.encode({"sub": "m"}, JWT_SECRET, algorithm="HS256"), "exp"),
    (jwt.encode({"exp": int(time.time()) + 3600}, JWT_SECRET, algorithm="HS256"), "no subject"),
    ("not.a.jwt", "Invalid token"),
    (jwt.encode({"sub": "m", "exp": int(time.time()) + 60}, None, algorithm="none"), "Invalid token"),
])
async def test_bad_jwts_are_401(client, token, message, caplog):
    with caplog.at_level("INFO", logger="jamii.api"):
        response = await client.get("/api/v1/settings", headers=bearer(token))
    assert response.status == 401 and await response.json() == {"code": 401, "error": "unauthorized"}
    assert message in caplog.text  # the reason is logged, the body is CHT's


async def test_jwt_rs256_with_public_key(aiohttp_client, config):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    client = await aiohttp_client(create_app(config.replace(jwt_secret=None, jwt_public_key=public_pem)))
    token = jwt.encode({"sub": "svc", "exp": int(time.time()) + 60}, key, algorithm="RS256")
    assert (await client.get("/api/v1/settings", headers=bearer(token))).status == 200
    hs = hs256({"sub": "svc"})
    assert (await client.get("/api/v1/settings", headers=bearer(hs))).status == 401


async def test_jwt_disabled_without_keys(aiohttp_client, config):
    client = await aiohttp_client(create_app(config.replace(jwt_secret=None)))
    response = await client.get("/api/v1/settings", headers=bearer(hs256({"sub": "x"})))
    assert response.status == 401 and (await response.json())["error"] == "unauthorized"


async def test_cache_remembers_and_forgets(aiohttp_client, config, make_user, couch):
    from api.web import AUTH

    app = create_app(config.replace(auth_cache_seconds=60))
    client = await aiohttp_client(app)
    name = await make_user("cached", ["chw"])
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    users = couch.db(config.db_users)
    doc = await users.get(f"org.couchdb.user:{name}")
    doc["password"] = "a-new-Passw0rd"
    await users.put(doc)
    app[AUTH].forget(name)
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 401
    assert (await client.get("/api/v1/settings", headers=basic(name, "a-new-Passw0rd"))).status == 200


async def test_registered_scheme_is_used_and_remembered(couch, config):
    authenticator = Authenticator(couch, users_db=config.db_users, cache_seconds=60)
    calls = []

    async def scheme(credentials):
        calls.append(credentials)
        if credentials != "good":
            raise Unauthorized("Invalid token.")
        return Principal(name="scheme-user", method="token")

    authenticator.register_scheme("Token", scheme)
    assert (await authenticator.authenticate("Token good", None)).name == "scheme-user"
    assert (await authenticator.authenticate("token  good ", None)).method == "token"
    assert calls == ["good"]
    authenticator.forget("scheme-user")
    await authenticator.authenticate("Token good", None)
    assert calls == ["good", "good"]
    with pytest.raises(Unauthorized):
        await authenticator.authenticate("Token bad", None)
