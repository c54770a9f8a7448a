"""Forms: install from files, the JSON list, the OpenRosa list and manifest, get by id, validate."""

import base64
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
    assert doc["type"] == "form" and doc["internalId"] == "anc_visit" and doc["title"] == "ANC visit"
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


# Forms as cht-core's tests and worked examples have them (tests/integration/medic-collect/medic-collect.spec.js)
BARE = '<h:html xmlns:h="http://www.w3.org/1999/xhtml"><h:head><model><instance><{id}/></instance></model></h:head></h:html>'
COLLECT = [
    ("form:my_app_form", {"internalId": "MY-APP-FORM"}, BARE.format(id="MY-APP-FORM")),
    ("form:my_collect_form", {"internalId": "MY-COLLECT-FORM", "context": {"collect": True}},
     BARE.format(id="MY-COLLECT-FORM")),
    ("form:survey", {"internalId": "SURVEY", "context": {"collect": True}}, BARE.format(id="SURVEY")),
    ("form:birds", {"internalId": "birds", "context": {"collect": 1}},
     '<h:html xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/2002/xforms"><h:head>'
     '<h:title>Birds &amp; bees</h:title><model><instance><data id="birds" version="3"><meta><instanceID/></meta>'
     '</data></instance></model></h:head><h:body/></h:html>'),
    ("form:broken", {"internalId": "BROKEN", "context": {"collect": True}}, "<h:html><unclosed>"),
]


@pytest.fixture
async def collect_forms(couch, config):
    db = couch.db(config.db_medic)
    for doc_id, fields, xml in COLLECT:
        if await db.get_or_none(doc_id) is None:
            await db.put({"_id": doc_id, "type": "form", **fields, "_attachments": {
                "xml": {"content_type": "text/xml", "data": base64.b64encode(xml.encode()).decode()}}})
    yield
    for doc_id, _, _ in COLLECT:
        doc = await db.get_or_none(doc_id)
        if doc:
            await db.delete(doc_id, doc["_rev"])


async def test_json_list_is_every_xform_by_internal_id(client, chw, installed, collect_forms):
    response = await client.get("/api/v1/forms", headers=chw)
    assert response.status == 200 and response.headers["Content-Type"] == "application/json; charset=utf-8"
    names = await response.json()
    # every XForm doc in id order, whatever its context; JSON forms are not listed (as cht-core)
    assert names == ["anc_visit.xml", "birds.xml", "BROKEN.xml", "MY-APP-FORM.xml", "MY-COLLECT-FORM.xml",
                     "SURVEY.xml"]
    assert "X-OpenRosa-Version" not in response.headers


async def test_openrosa_list_byte_for_byte(client, chw, installed, collect_forms):
    response = await client.get("/api/v1/forms", headers={**chw, **OPENROSA, "Host": "example.org",
                                                          "X-Forwarded-Proto": "https"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert response.headers["X-OpenRosa-Version"] == "1.0"
    birds = COLLECT[3][2].encode()
    assert await response.text() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xforms xmlns="http://openrosa.org/xforms/xformsList">\n'
        "  <xform>\n"
        "    <name>Birds &amp; bees</name>\n"
        "    <formID>birds</formID>\n"
        "    <version>3</version>\n"
        f"    <hash>md5:{hashlib.md5(birds).hexdigest()}</hash>\n"
        "    <downloadUrl>https://example.org/api/v1/forms/birds.xml</downloadUrl>\n"
        "  </xform>\n"
        "  <xform>\n"
        "    <formID>MY-COLLECT-FORM</formID>\n"
        "    <hash>md5:7f356568a6096ef8589aef17ccc0ac27</hash>\n"
        "    <downloadUrl>https://example.org/api/v1/forms/MY-COLLECT-FORM.xml</downloadUrl>\n"
        "  </xform>\n"
        "  <xform>\n"
        "    <formID>SURVEY</formID>\n"
        "    <hash>md5:fa7ebcc878dc87a4ea9c6981fcb1962c</hash>\n"
        "    <downloadUrl>https://example.org/api/v1/forms/SURVEY.xml</downloadUrl>\n"
        "  </xform>\n"
        "</xforms>")
    # without X-Forwarded-Proto: the request's own scheme; X-Forwarded-Host is not read (as cht-core)
    response = await client.get("/api/v1/forms", headers={**chw, **OPENROSA, "Host": "medic.example",
                                                          "X-Forwarded-Host": "elsewhere.example"})
    assert "<downloadUrl>http://medic.example/api/v1/forms/SURVEY.xml</downloadUrl>" in await response.text()


async def test_openrosa_list_without_collect_forms(client, chw, installed):
    response = await client.get("/api/v1/forms", headers={**chw, **OPENROSA})
    assert await response.text() == ('<?xml version="1.0" encoding="UTF-8"?>\n'
                                      '<xforms xmlns="http://openrosa.org/xforms/xformsList"/>')


async def test_download_by_internal_id(client, chw, installed, collect_forms):
    for name, body in (("SURVEY", COLLECT[2][2]), ("MY-APP-FORM", COLLECT[0][2])):
        response = await client.get(f"/api/v1/forms/{name}.xml", headers={**chw, **OPENROSA})
        assert response.status == 200 and await response.text() == body
        assert response.headers["Content-Type"] == "text/xml" and "X-OpenRosa-Version" not in response.headers
    xml = await client.get("/api/v1/forms/anc_visit.xml", headers=chw)
    assert xml.status == 200 and await xml.read() == XFORM and xml.headers["Content-Type"] == "application/xml"
    for path, status, message in (("survey.xml", 404, "Form not found: survey (xml)"),
                                  ("anc:visit.xml", 404, "Form not found: anc:visit (xml)"),
                                  ("SURVEY.json", 400, 'Invalid file format (format="json")'),
                                  ("SURVEY.", 400, 'Invalid file format (format="")'),
                                  ("abc", 400, 'Invalid form name (form="", format="abc")'),
                                  (".xml", 400, 'Invalid form name (form="", format="xml")')):
        response = await client.get(f"/api/v1/forms/{path}", headers={**chw, "Accept": "application/json"})
        assert response.status == status, path
        assert await response.json() == {"code": status, "error": message}, path


async def test_manifest_and_media_are_jamii_extensions(client, chw, installed):
    host = f"http://{client.server.host}:{client.server.port}"
    manifest = await client.get("/api/v1/forms/anc:visit/manifest", headers={**chw, **OPENROSA})
    mroot = ET.fromstring(await manifest.read())
    assert mroot.tag == f"{MF}manifest"
    [media] = mroot.findall(f"{MF}mediaFile")
    assert media.findtext(f"{MF}filename") == "icon.png"
    assert media.findtext(f"{MF}hash") == "md5:" + hashlib.md5(ICON).hexdigest()
    icon = await client.get(media.findtext(f"{MF}downloadUrl")[len(host):], headers=chw)
    assert icon.status == 200 and await icon.read() == ICON and icon.content_type == "image/png"
    missing = await client.get("/api/v1/forms/anc:visit/media/nope.png", headers=chw)
    assert missing.status == 404


async def test_anonymous_openrosa_requests_are_challenged(client, installed):
    for path in ("/api/v1/forms", "/api/v1/forms/anc_visit.xml", "/api/v1/forms/anc:visit/manifest"):
        challenged = await client.get(path, headers=OPENROSA)
        assert challenged.status == 401
        assert challenged.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert challenged.headers["X-OpenRosa-Version"] == "1.0"
    plain = await client.get("/api/v1/forms")
    assert plain.status == 401 and "WWW-Authenticate" not in plain.headers
    wrong = await client.get("/api/v1/forms", headers={**OPENROSA, **basic("nobody", "wrong")})
    assert wrong.status == 401 and "WWW-Authenticate" in wrong.headers


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
