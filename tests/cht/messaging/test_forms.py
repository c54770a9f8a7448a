"""Forms: install from files, the JSON list, the OpenRosa list and manifest, get by id, validate."""

import hashlib
import time
import xml.etree.ElementTree as ET

import pytest

from scripts import upload_forms
from tests.helpers import admin_headers, basic, data_path

FORMS_DIR = data_path("forms")
XFORM = (FORMS_DIR / "anc-visit.xml").read_bytes()
ICON = (FORMS_DIR / "anc-visit-media" / "images" / "icon.png").read_bytes()
OR = "{http://openrosa.org/xforms/xformsList}"
MF = "{http://openrosa.org/xforms/xformsManifest}"
OPENROSA = {"X-OpenRosa-Version": "1.0"}


@pytest.fixture
async def installed(config):
    await upload_forms.upload(config, [FORMS_DIR], progress=lambda _: None)


@pytest.fixture
async def chw(make_user, couch, config):
    from tests.helpers import user_prefix
    name = user_prefix(config) + "forms-chw"
    if not await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{name}"):
        await make_user("forms-chw", ["chw"])
    return basic(name)


async def test_upload_writes_the_doc_as_cht_conf_does_and_only_when_changed(config, couch, installed):
    doc = await couch.db(config.db_medic).get("form:anc:visit")
    assert doc["type"] == "form" and doc["internalId"] == "anc:visit" and doc["title"] == "ANC visit"
    assert doc["context"] == {"person": True, "place": False} and doc["icon"] == "icon-anc"
    assert "unknown_key" not in doc
    assert sorted(doc["_attachments"]) == ["images/icon.png", "xml"]
    assert doc["xmlVersion"]["sha256"] == hashlib.sha256(XFORM).hexdigest()
    settings = (await couch.db(config.db_medic).get("settings"))["settings"]
    assert settings["forms"]["OFF"]["fields"]["reason"]["type"] == "string"
    assert await upload_forms.upload(config, [FORMS_DIR], progress=lambda _: None) == 0
    assert (await couch.db(config.db_medic).get("form:anc:visit"))["_rev"] == doc["_rev"]


async def test_upload_refuses_a_broken_form(config, tmp_path, capsys):
    bad = tmp_path / "broken.xml"
    bad.write_text("<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head/></h:html>")
    assert upload_forms.main([str(bad)]) == 1  # refused before any server is reached
    assert "broken.xml" in capsys.readouterr().err
    assert upload_forms.main([str(tmp_path / "missing.xml")]) == 1
    from api.errors import BadRequest
    with pytest.raises(BadRequest, match="broken"):
        await upload_forms.upload(config, [bad], progress=lambda _: None)
    with pytest.raises(BadRequest):
        await upload_forms.upload(config, [tmp_path / "notes.txt"], progress=lambda _: None)


async def test_json_list(client, chw, installed):
    response = await client.get("/api/v1/forms", headers=chw)
    assert response.status == 200
    names = await response.json()
    assert "anc:visit.xml" in names and "OFF.json" in names and "P.json" in names
    assert "X-OpenRosa-Version" not in response.headers


async def test_openrosa_list(client, chw, installed):
    response = await client.get("/api/v1/forms", headers={**chw, **OPENROSA})
    assert response.status == 200
    assert response.headers["X-OpenRosa-Version"] == "1.0"
    assert response.content_type == "text/xml"
    root = ET.fromstring(await response.read())
    assert root.tag == f"{OR}xforms"
    [form] = [x for x in root.findall(f"{OR}xform") if x.findtext(f"{OR}formID") == "anc_visit"]
    assert form.findtext(f"{OR}name") == "ANC visit"
    assert form.findtext(f"{OR}version") == "2024-01-01"
    assert form.findtext(f"{OR}hash") == "md5:" + hashlib.md5(XFORM).hexdigest()
    host = f"http://{client.server.host}:{client.server.port}"
    assert form.findtext(f"{OR}downloadUrl") == f"{host}/api/v1/forms/anc:visit.xml"
    assert form.findtext(f"{OR}manifestUrl") == f"{host}/api/v1/forms/anc:visit/manifest"

    download = await client.get(form.findtext(f"{OR}downloadUrl")[len(host):], headers={**chw, **OPENROSA})
    assert download.status == 200 and await download.read() == XFORM
    assert download.headers["X-OpenRosa-Version"] == "1.0"

    manifest = await client.get(form.findtext(f"{OR}manifestUrl")[len(host):], headers={**chw, **OPENROSA})
    mroot = ET.fromstring(await manifest.read())
    assert mroot.tag == f"{MF}manifest"
    [media] = mroot.findall(f"{MF}mediaFile")
    assert media.findtext(f"{MF}filename") == "icon.png"
    assert media.findtext(f"{MF}hash") == "md5:" + hashlib.md5(ICON).hexdigest()
    icon = await client.get(media.findtext(f"{MF}downloadUrl")[len(host):], headers=chw)
    assert icon.status == 200 and await icon.read() == ICON and icon.content_type == "image/png"


async def test_openrosa_urls_follow_the_proxy(client, chw, installed):
    response = await client.get("/api/v1/forms", headers={**chw, **OPENROSA, "X-Forwarded-Proto": "https",
                                                          "X-Forwarded-Host": "medic.example"})
    root = ET.fromstring(await response.read())
    urls = [x.findtext(f"{OR}downloadUrl") for x in root.findall(f"{OR}xform")]
    assert "https://medic.example/api/v1/forms/anc:visit.xml" in urls


async def test_anonymous_openrosa_requests_are_challenged(client, installed):
    for path in ("/api/v1/forms", "/api/v1/forms/anc:visit.xml", "/api/v1/forms/anc:visit/manifest"):
        challenged = await client.get(path, headers=OPENROSA)
        assert challenged.status == 401
        assert challenged.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert challenged.headers["X-OpenRosa-Version"] == "1.0"
    plain = await client.get("/api/v1/forms")
    assert plain.status == 401 and "WWW-Authenticate" not in plain.headers
    wrong = await client.get("/api/v1/forms", headers={**OPENROSA, **basic("nobody", "wrong")})
    assert wrong.status == 401 and "WWW-Authenticate" in wrong.headers


async def test_get_form_by_id_and_format(client, chw, installed):
    xml = await client.get("/api/v1/forms/anc:visit.xml", headers=chw)
    assert xml.status == 200 and await xml.read() == XFORM
    by_internal_id = await client.get("/api/v1/forms/ANC:VISIT.xml", headers=chw)
    assert by_internal_id.status == 200
    off = await client.get("/api/v1/forms/off.json", headers=chw)
    assert off.status == 200 and (await off.json())["meta"]["code"] == "OFF"
    for missing in ("nope.xml", "nope.json", "anc:visit.pdf", "anc:visit", "OFF.xml",
                    "anc:visit/media/nope.png"):
        response = await client.get(f"/api/v1/forms/{missing}", headers=chw)
        assert response.status == 404, missing
        assert (await response.json())["code"] == 404


BROKEN = {
    "not well-formed": b"<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head>",
    "root element": b"<html/>",
    "no h:head": b"<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:body/></h:html>",
    "no model": XFORM.replace(b"<model>", b"<modelx>").replace(b"</model>", b"</modelx>"),
    "instanceID": XFORM.replace(b"<instanceID/>", b"<deviceID/>"),
    "id attribute": XFORM.replace(b'id="anc_visit" ', b""),
    "no h:body": XFORM.replace(b"<h:body>", b"<h:bodx>").replace(b"</h:body>", b"</h:bodx>"),
    "empty": b"  ",
}


async def test_validate_accepts_a_good_xform(client, config):
    response = await client.post("/api/v1/forms/validate", data=XFORM,
                                 headers={**admin_headers(config), "Content-Type": "application/xml"})
    assert response.status == 200 and await response.json() == {"ok": True}


@pytest.mark.parametrize("problem", sorted(BROKEN))
async def test_validate_says_what_is_wrong(client, config, problem):
    response = await client.post("/api/v1/forms/validate", data=BROKEN[problem],
                                 headers={**admin_headers(config), "Content-Type": "application/xml"})
    assert response.status == 400
    assert problem.split()[-1].lower() in (await response.json())["error"].lower()


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><h:title>&lol9;</h:title></h:head></h:html>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><h:title>&secret;</h:title></h:head></h:html>"""


@pytest.mark.parametrize("payload", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
async def test_validate_refuses_entities_safely(client, config, payload):
    started = time.monotonic()
    response = await client.post("/api/v1/forms/validate", data=payload,
                                 headers={**admin_headers(config), "Content-Type": "application/xml"})
    assert response.status == 400
    body = await response.json()
    assert "DTD" in body["error"] and "root:" not in body["error"]
    assert time.monotonic() - started < 2


async def test_validate_permissions(client, chw):
    assert (await client.post("/api/v1/forms/validate", data=XFORM)).status == 401
    assert (await client.post("/api/v1/forms/validate", data=XFORM, headers=chw)).status == 403
