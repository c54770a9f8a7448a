"""Nothing the ``/medic`` proxy answers names CouchDB: ``Location`` is this server's own URL (issue 23,
class 4: the internal CouchDB address leaked in proxied replies)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from tests.helpers import admin_headers, basic
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    return make_world(config, districts=1, centers=1, clinics=1, people=2, reports_per_clinic=1)


def backend_marks(config) -> list[str]:
    """How CouchDB's address could show: host:port, and the real database name."""
    parts = urlsplit(config.couch_url)
    return [f"{parts.hostname}:{parts.port}", config.db_medic]


async def check_hidden(response, config) -> bytes:
    body = await response.read()
    for mark in backend_marks(config):
        for name, value in response.headers.items():
            assert mark not in value, (name, value)
        if mark != config.db_medic or response.headers.get("Content-Type", "").startswith("application/json"):
            assert mark.encode() not in body, (mark, body[:300])
    return body


async def test_location_is_this_servers_own_url(client, config, world):
    admin = admin_headers(config)
    base = f"http://{client.server.host}:{client.server.port}"
    created = await client.put("/medic/loc-1", headers=admin, json={"type": "note"})
    assert created.status == 201
    await check_hidden(created, config)
    assert created.headers["Location"] == f"{base}/medic/loc-1"
    rev = (await created.json())["rev"]
    # attachments, by an admin and by an online user (both passed through to CouchDB)
    attached = await client.put("/medic/loc-1/a%20b.txt", params={"rev": rev}, data=b"x",
                                headers={**admin, "Content-Type": "text/plain"})
    assert attached.status == 201
    await check_hidden(attached, config)
    assert attached.headers["Location"] == f"{base}/medic/loc-1/a%20b.txt"
    online = basic(world.users["po"])
    doc = await (await client.get(f"/medic/{world.chw_contact}", headers=online)).json()
    by_user = await client.put(f"/medic/{world.chw_contact}/note.txt", params={"rev": doc["_rev"]}, data=b"y",
                               headers={**online, "Content-Type": "text/plain"})
    assert by_user.status == 201, await by_user.text()
    await check_hidden(by_user, config)
    assert by_user.headers["Location"] == f"{base}/medic/{world.chw_contact}/note.txt"
    ddoc = await client.put("/medic/_design/loc", headers=admin, json={"views": {}})
    assert ddoc.status == 201
    await check_hidden(ddoc, config)
    assert ddoc.headers["Location"] == f"{base}/medic/_design/loc"


async def test_behind_a_tls_proxy_location_is_https(client, config):
    response = await client.put("/medic/loc-tls", headers={**admin_headers(config), "X-Forwarded-Proto": "https",
                                                           "Host": "jamii.example.org"}, json={})
    assert response.status == 201
    assert response.headers["Location"] == "https://jamii.example.org/medic/loc-tls"


async def test_no_proxied_answer_names_couchdb(client, config, world):
    admin = admin_headers(config)
    await client.put("/medic/seen", headers=admin, json={"a": 1})
    for method, path, body in [
        ("GET", "/medic/seen", None),
        ("GET", "/medic/_all_docs?limit=2", None),
        ("POST", "/medic/_all_docs", {"keys": ["seen", "missing"]}),
        ("GET", "/medic/_changes?limit=2", None),
        ("POST", "/medic/_bulk_get", {"docs": [{"id": "seen"}]}),
        ("POST", "/medic/_revs_diff", {"seen": ["1-abc"]}),
        ("POST", "/medic/_find", {"selector": {"a": 1}}),
        ("GET", "/medic/_design/medic-client", None),
        ("GET", "/medic/no-such-doc", None),
        ("GET", "/medic/seen/no-such-attachment", None),
        ("PUT", "/medic/seen", {"a": 2}),  # a conflict, CouchDB's error passed on
        ("PUT", "/medic", None),  # exists already: CouchDB's 412
        ("GET", "/medic/_security", None),
        ("GET", "/medic/_index", None),
    ]:
        response = await client.request(method, path, headers=admin, json=body)
        assert response.status < 500, (path, response.status)
        await check_hidden(response, config)


async def test_the_proxy_never_follows_a_redirect_as_admin(config, world, couch):
    """A show function can redirect; the client gets the redirect (to follow as itself), and a Location
    into CouchDB outside the medic database is dropped."""
    admin = admin_headers(config)
    async with TestClient(TestServer(create_app(config))) as client:
        ddoc = {"shows": {"away": "function(doc, req) { return {code: 302, headers: {Location: '/_users/x'}}; }"}}
        put = await client.put("/medic/_design/redirects", headers=admin, json=ddoc)
        assert put.status == 201
        response = await client.get("/medic/_design/redirects/_show/away", headers=admin, allow_redirects=False)
        if response.status in (404, 500, 501, 503):  # pouchdb-server has no show functions
            pytest.skip(f"this server does not run show functions ({response.status})")
        assert response.status == 302
        assert "Location" not in response.headers
        await check_hidden(response, config)
