"""Error answers as CHT gives them (issue 20, class 4): 401 with CHT's body and ``logout-authorization``
header, Basic challenges where CHT prompts, authentication before routing, ``Insufficient privileges``,
the offline firewall, and ``Server error`` for what nobody expected. Bodies are always JSON (a deliberate
difference: CHT answers plain text to clients that do not ask for JSON)."""

import pytest

from api.app import create_app
from api.web import prefers_json
from tests.helpers import admin_headers, basic

JSON = {"Accept": "application/json"}
UNAUTHORIZED = {"code": 401, "error": "unauthorized"}
FIREWALL = {"code": 403, "error": "forbidden", "details": "Offline users are not allowed access to this endpoint"}
CHALLENGE = 'Basic realm="Medic Web Services"'


@pytest.mark.parametrize("header, expected", [
    (None, False), ("", False), ("*/*", False), ("application/json", True), ("text/plain", False),
    ("application/json, text/plain, */*", True),       # Angular, axios
    ("text/plain, application/json", False),            # a tie goes to text
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # a browser
    ("application/*", True), ("text/*, application/json", True), ("application/json;q=0.5, text/plain", False),
    ("application/json;q=0, */*", False), ("text/plain;q=0, */*", True), ("nonsense", False),
])
def test_prefers_json_as_express_negotiates(header, expected):
    assert prefers_json(header) is expected


async def test_anonymous_json_client_gets_chts_401(client):
    response = await client.get("/api/v2/users", headers=JSON)
    assert response.status == 401
    assert await response.read() == b'{"code":401,"error":"unauthorized"}'  # compact, as CHT writes it
    assert response.headers["logout-authorization"] == "CHT-Core API"
    assert "WWW-Authenticate" not in response.headers


async def test_a_browser_gets_json_not_a_login_redirect(client):
    response = await client.get("/api/v2/users?facility_id=x", allow_redirects=False,
                                headers={"Accept": "*/*", "User-Agent": "Mozilla/5.0"})
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    assert response.headers["logout-authorization"] == "CHT-Core API"
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("agent", [None, "Dalvik/2.1.0 (Linux; U; Android 9) medic.gateway",
                                   "Dalvik/2.1.0 (Linux; Android 10) org.medicmobile.collect.android"])
async def test_apps_that_are_not_browsers_are_challenged(aiohttp_client, config, agent):
    client = await aiohttp_client(create_app(config), skip_auto_headers=["User-Agent"])
    headers = {"Accept": "*/*", **({"User-Agent": agent} if agent else {})}
    response = await client.get("/api/v2/users", headers=headers)
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == CHALLENGE
    assert response.headers["logout-authorization"] == "CHT-Core API"


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/settings"), ("PUT", "/api/v1/settings"),
                                          ("GET", "/api/v1/users-doc-count")])
async def test_prompt_routes_challenge_every_client(client, method, path):
    response = await client.request(method, path, headers=JSON, json={} if method == "PUT" else None)
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_wrong_credentials_are_the_same_401(client, make_user):
    name = await make_user("err-wrong", ["program_officer"])
    for headers in (basic(name, "not-the-password"), basic("nobody-at-all"), {"Authorization": "Basic !!!"},
                    {"Cookie": "AuthSession=bm9ib2R5OjEyMzQ6YWJj"}):
        response = await client.get("/api/v2/users", headers={**JSON, **headers})
        assert response.status == 401 and await response.json() == UNAUTHORIZED, headers
        assert response.headers["logout-authorization"] == "CHT-Core API"


@pytest.mark.parametrize("method, path", [("GET", "/api/v1/no-such-thing"), ("DELETE", "/api/v1/settings"),
                                          ("GET", "/api/v9/users"), ("POST", "/api/deploy-info"),
                                          ("GET", "/favicon.ico")])
async def test_authentication_comes_before_routing(client, config, make_user, method, path):
    anonymous = await client.request(method, path, headers=JSON)
    assert anonymous.status == 401 and await anonymous.json() == UNAUTHORIZED
    # failed logins are counted in CouchDB across apps (and processes): a name of its own for each case
    wrong = await client.request(method, path, headers={**JSON, **basic(f"nobody-{method}-{path}")})
    assert wrong.status == 401
    admin = await client.request(method, path, headers=admin_headers(config))
    if admin.status == 404:  # cht-core passes what it does not route to CouchDB, which has no such database
        assert await admin.json() == {"error": "not_found", "reason": "Database does not exist."}
    else:  # a path the API serves with other methods
        assert admin.status == 405 and (await admin.json())["code"] == 405 and admin.headers["Allow"]
    chw = await make_user(f"err-offline-{method.lower()}{len(path)}{path[-3:].strip('/.')}", ["chw"])
    offline = await client.request(method, path, headers=basic(chw))
    assert offline.status == 403 and await offline.json() == FIREWALL


async def test_public_routes_stay_public(client):
    for path in ("/api/v2/monitoring", "/api/v1/monitoring", "/_session", "/api/docs", "/api/openapi.json"):
        assert (await client.get(path)).status == 200, path


async def test_missing_permission_is_insufficient_privileges(client, make_user):
    chw = await make_user("err-chw", ["chw"])
    officer = await make_user("err-po", ["program_officer"])
    for who in (chw, officer):
        response = await client.get("/api/v2/users", headers=basic(who))
        assert response.status == 403
        assert await response.read() == b'{"code":403,"error":"Insufficient privileges"}'
    settings = await client.put("/api/v1/settings", json={"locale": "en"}, headers=basic(officer))
    assert settings.status == 403 and await settings.json() == {"code": 403, "error": "Insufficient privileges"}


async def test_offline_users_meet_the_firewall_on_online_only_endpoints(client, make_user):
    chw = await make_user("err-fw", ["chw"])
    for path in ("/api/v1/hydrate?doc_ids=%5B%5D", "/api/v1/contacts-by-phone?phone=0712345678"):
        response = await client.get(path, headers=basic(chw))
        assert response.status == 403 and await response.json() == FIREWALL, path
    # routes cht-core guards with assertPermissions instead (exports, the data endpoints) say it plainly
    for path in ("/api/v2/export/reports", "/api/v1/person?type=person"):
        response = await client.get(path, headers=basic(chw))
        assert response.status == 403 and await response.json() == {"code": 403, "error": "Insufficient privileges"}, path
    # a role configured offline loses to CHT's online role
    online = await make_user("err-mm", ["chw", "mm-online"])
    assert (await client.get("/api/v1/hydrate?doc_ids=%5B%5D", headers=basic(online))).status == 200


async def test_unexpected_errors_are_server_error(aiohttp_client, config):
    app = create_app(config)

    async def broken(request):
        raise RuntimeError("a secret detail")

    app.router.add_get("/test-broken", broken)
    client = await aiohttp_client(app)
    response = await client.get("/test-broken", headers=admin_headers(config))
    assert response.status == 500 and await response.json() == {"code": 500, "error": "Server error"}
