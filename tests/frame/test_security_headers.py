"""Content a user controls is served inert, and every response carries the usual security headers
(issue 23, class 1: stored script served from the API's origin to an admin)."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from api.couch import Couch
from tests.helpers import admin_headers, basic
from tests.world import make_world

SCRIPT = b"<html><body><script>fetch('/api/v1/users').then(r => r.text()).then(alert)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
BASELINE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


@pytest.fixture(scope="module")
def world(config):
    return make_world(config, districts=1, centers=1, clinics=1, people=2, reports_per_clinic=1)


def policies(response) -> list[str]:
    return response.headers.getall("Content-Security-Policy", [])


def assert_sandboxed(response) -> None:
    assert "sandbox" in [p.strip() for policy in policies(response) for p in policy.split(";")], policies(response)
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, name


async def attach(client, headers, doc_id: str, name: str, body: bytes, content_type: str):
    doc = await (await client.get(f"/medic/{doc_id}", headers=headers)).json()
    response = await client.put(f"/medic/{doc_id}/{name}", params={"rev": doc["_rev"]}, data=body,
                                headers={**headers, "Content-Type": content_type})
    assert response.status == 201, await response.text()


async def test_html_an_offline_user_attaches_is_downloaded_sandboxed_by_an_admin(client, config, world):
    chw = basic(world.users["chw"])
    await attach(client, chw, world.chw_contact, "notes.html", SCRIPT, "text/html")
    response = await client.get(f"/medic/{world.chw_contact}/notes.html", headers=admin_headers(config))
    assert response.status == 200
    assert await response.read() == SCRIPT  # the bytes are the user's, untouched
    assert response.headers["Content-Type"].startswith("text/html")
    assert_sandboxed(response)
    assert response.headers["Content-Disposition"] == "attachment; filename*=UTF-8''notes.html"
    # HEAD says the same
    head = await client.head(f"/medic/{world.chw_contact}/notes.html", headers=admin_headers(config))
    assert head.headers.get("Content-Disposition", "").startswith("attachment")


async def test_inline_attachments_of_every_active_type_are_downloaded(client, config, world):
    """Attachments written inside the doc (as replication writes them) and typed as anything active."""
    chw = basic(world.users["chw"])
    doc = await (await client.get(f"/medic/{world.chw_clinic}", headers=chw)).json()
    active = {"a.svg": ("image/svg+xml", SVG), "a.xml": ("application/xml", b"<a/>"),
              "a.xhtml": ("application/xhtml+xml", SCRIPT), "a.js": ("text/javascript", b"alert(1)"),
              "a.bin": ("", SCRIPT), "a.pdf": ("application/pdf", b"%PDF-1.4")}
    passive = {"photo.png": ("image/png", PNG), "note.txt": ("text/plain", b"hello")}
    doc["_attachments"] = {name: {"content_type": ctype, "data": base64.b64encode(data).decode()}
                           for name, (ctype, data) in {**active, **passive}.items()}
    written = await client.post("/medic/_bulk_docs", json={"docs": [doc]}, headers=chw)
    assert written.status == 201 and "error" not in (await written.json())[0], await written.text()
    for name in active:
        response = await client.get(f"/medic/{world.chw_clinic}/{name}", headers=admin_headers(config))
        assert response.status == 200, name
        assert_sandboxed(response)
        assert response.headers.get("Content-Disposition", "").startswith("attachment"), name
    for name in passive:  # photos and text still show in the browser, sandboxed
        response = await client.get(f"/medic/{world.chw_clinic}/{name}", headers=admin_headers(config))
        assert response.status == 200, name
        assert_sandboxed(response)
        assert "Content-Disposition" not in response.headers, name
        assert policies(response) == ["sandbox"] or "default-src" not in "".join(policies(response)), name


async def test_design_doc_attachments_are_inert(client, config):
    admin = admin_headers(config)
    html = base64.b64encode(SCRIPT).decode()
    put = await client.put("/medic/_design/pages", headers=admin, json={
        "_attachments": {"index.html": {"content_type": "text/html", "data": html}}})
    assert put.status == 201, await put.text()
    response = await client.get("/medic/_design/pages/index.html", headers=admin)
    assert response.status == 200
    assert_sandboxed(response)
    assert response.headers["Content-Disposition"].startswith("attachment")


async def test_form_media_is_inert(client, config):
    admin = admin_headers(config)
    xform = (b'<h:html xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/2002/xforms">'
             b'<h:head><h:title>M</h:title><model><instance><data id="M"><name/></data></instance></model>'
             b'</h:head><h:body><input ref="/data/name"/></h:body></h:html>')
    put = await client.put("/medic/form:M", headers=admin, json={
        "type": "form", "internalId": "M", "title": "M",
        "_attachments": {"xml": {"content_type": "application/xml", "data": base64.b64encode(xform).decode()},
                         "page.html": {"content_type": "text/html", "data": base64.b64encode(SCRIPT).decode()}}})
    assert put.status == 201, await put.text()
    media = await client.get("/api/v1/forms/M/media/page.html", headers=admin)
    assert media.status == 200
    assert_sandboxed(media)
    assert media.headers["Content-Disposition"].startswith("attachment")
    # the form itself is OpenRosa XML for ODK Collect: sandboxed, but served as it is
    form = await client.get("/api/v1/forms/M.xml", headers=admin)
    assert form.status == 200 and form.headers["Content-Type"].split(";")[0] in ("text/xml", "application/xml")
    assert_sandboxed(form)
    assert "Content-Disposition" not in form.headers


async def test_every_answer_carries_the_security_headers(client, config):
    admin = admin_headers(config)
    for method, path, headers, status in [
        ("GET", "/api/info", {}, 200),
        ("GET", "/api/v1/settings", admin, 200),
        ("GET", "/api/v1/settings", {}, 401),
        ("GET", "/no/such/route", admin, 404),
        ("GET", "/medic/_all_docs?limit=1", admin, 200),
        ("GET", "/medic/no-such-doc", admin, 404),
        ("GET", "/api/v1/express-metrics", admin, 200),
    ]:
        response = await client.request(method, path, headers=headers)
        assert response.status == status, path
        assert_sandboxed(response)
        assert "default-src 'none'" in policies(response)[0], path
        assert "Content-Disposition" not in response.headers, path


async def test_pages_have_their_own_policy_and_still_work(client):
    """The API docs page (swagger-ui) runs its bundle and its one inline line, and nothing else."""
    page = await client.get("/api/docs")
    assert page.status == 200 and "Content-Disposition" not in page.headers
    (policy,) = policies(page)
    assert "sandbox" not in policy and "script-src 'self' 'sha256-" in policy and "frame-ancestors 'none'" in policy
    html = await page.text()
    inline = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await client.get(f"/api/docs/assets/{asset}")
        assert response.status == 200 and "Content-Disposition" not in response.headers, asset
    token_page = await client.get("/medic/login/token/" + "a" * 64)
    (policy,) = policies(token_page)
    assert "form-action 'self'" in policy and "script-src" not in policy
    assert "Content-Disposition" not in token_page.headers


async def test_couchdb_policy_on_attachments_is_passed_on(config, client, world):
    """Apache CouchDB 3.2+ sends its own Content-Security-Policy on attachments; it reaches the client (both
    apply). pouchdb-server sends none, and the API's own ``sandbox`` is there either way."""
    admin = admin_headers(config)
    await attach(client, admin, world.chw_contact, "policy.html", SCRIPT, "text/html")
    async with Couch.from_config(config) as couch:
        path = couch.db(config.db_medic).doc_path(world.chw_contact) + "/policy.html"
        async with couch.session.get(couch.url + path, headers=couch.headers) as raw:
            assert raw.status == 200
            couch_policy = raw.headers.get("Content-Security-Policy")
    response = await client.get(f"/medic/{world.chw_contact}/policy.html", headers=admin)
    if couch_policy:
        assert couch_policy in policies(response)
    assert "sandbox" in policies(response)
