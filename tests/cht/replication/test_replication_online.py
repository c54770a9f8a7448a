"""/medic for admins and online users: CouchDB's behaviour through the API, with the write rules."""

import json

import pytest

from api.app import create_app
from tests.device import Device
from tests.helpers import admin_headers, basic


@pytest.fixture
async def server(aiohttp_server, config):
    return await aiohttp_server(create_app(config))


async def test_admin_replicates_both_ways_with_a_stock_pouchdb(server, config, couch):
    medic = couch.db(config.db_medic)
    await medic.bulk_docs([{"_id": f"adm-{i}", "type": "x"} for i in range(150)])
    device = await Device.start(f"http://127.0.0.1:{server.port}/medic", config.couch_user, config.couch_password)
    try:
        pulled = await device.call("pull")
        assert pulled["ok"] and pulled["doc_write_failures"] == 0
        ids = await device.call("ids")
        assert {f"adm-{i}" for i in range(150)} <= set(ids) and "_design/medic" in ids, "admins get everything"
        await device.call("put", doc={"_id": "from-admin-device", "a": 1})
        assert (await device.call("push"))["docs_written"] == 1
        assert (await medic.get("from-admin-device"))["a"] == 1
    finally:
        await device.close()


async def test_passthrough_keeps_couchdb_answers(client, config, couch):
    admin = admin_headers(config)
    await couch.db(config.db_medic).put({"_id": "ordered", "z": 1, "a": 2, "m": 3})
    raw = await (await client.get("/medic/ordered", headers=admin)).text()
    assert raw.index('"z"') < raw.index('"a"') < raw.index('"m"'), "keys in the order they were written"
    missing = await client.get("/medic/not-there", headers=admin)
    assert missing.status == 404 and await missing.json() == {"error": "not_found", "reason": "missing"}
    info = await (await client.get("/medic/", headers=admin)).json()
    assert info["db_name"] == "medic" and "update_seq" in info
    conflict = await client.put("/medic/ordered", json={"x": 1}, headers=admin)
    assert conflict.status == 409 and (await conflict.json())["error"] == "conflict"


async def test_documents_come_back_in_couchdbs_key_order(client, config):
    """_id, _rev, the body as written, _attachments last: clients (cht-conf) compare JSON.stringify(doc)."""
    admin = admin_headers(config)
    body = {"_id": "keys-in-order", "_attachments": {"a.txt": {"content_type": "text/plain", "data": "aGk="}},
            "z": 1, "a": {"y": 1, "b": 2}}
    assert (await client.post("/medic", json=body, headers=admin)).status == 201
    for path, pick in (("/medic/keys-in-order", lambda b: b),
                       ("/medic/_all_docs?include_docs=true&key=%22keys-in-order%22", lambda b: b["rows"][0]["doc"]),
                       ("/medic/keys-in-order?open_revs=all", lambda b: b[0]["ok"])):
        response = await client.get(path, headers={**admin, "Accept": "application/json"})
        doc = pick(json.loads(await response.text()))
        assert list(doc) == ["_id", "_rev", "z", "a", "_attachments"], path
        assert list(doc["a"]) == ["y", "b"]


async def test_attachments_round_trip(client, config):
    admin = admin_headers(config)
    created = await (await client.put("/medic/with-att", json={"type": "x"}, headers=admin)).json()
    put = await client.put(f"/medic/with-att/photo.png?rev={created['rev']}", data=b"\x89PNG\r\n\x00\xff",
                           headers={**admin, "Content-Type": "image/png"})
    assert put.status == 201
    got = await client.get("/medic/with-att/photo.png", headers=admin)
    assert got.status == 200 and await got.read() == b"\x89PNG\r\n\x00\xff"
    assert got.headers["Content-Type"] == "image/png"
    stub = (await (await client.get("/medic/with-att", headers=admin)).json())["_attachments"]["photo.png"]
    assert stub["stub"] is True and stub["digest"].startswith("md5-")


async def test_unsafe_changes_filters_are_refused(client, config):
    admin = admin_headers(config)
    for query in ("filter=_design", "filter=_selector", "filter=medic/missing", "feed=continuous"):
        response = await client.get(f"/medic/_changes?{query}", headers=admin)
        assert response.status == 400, query
        assert (await response.json())["error"] == "bad_request"
    ok = await client.get("/medic/_changes?limit=1", headers=admin)
    assert ok.status == 200


async def test_changes_parameters_that_kill_pouchdb_server_are_400(client, config):
    """Found by fuzzing: ``filter=_doc_ids`` without an array of ids killed the embedded database."""
    admin = admin_headers(config)
    for query in ("filter=_doc_ids", "filter=_doc_ids&doc_ids=5", "timeout=abc&feed=longpoll", "limit=-1",
                  "heartbeat=%C2%B2"):
        response = await client.get(f"/medic/_changes?{query}", headers=admin)
        assert response.status == 400, query
        assert (await response.json())["error"] == "bad_request"
    posted = await client.post("/medic/_changes?filter=_doc_ids", json={"doc_ids": "x"}, headers=admin)
    assert posted.status == 400
    for query, body in (("filter=_doc_ids&doc_ids=%5B%22a%22%5D", None), ("filter=_doc_ids", {"doc_ids": ["a"]})):
        response = await client.post(f"/medic/_changes?{query}", json=body, headers=admin)
        assert response.status == 200, await response.text()
        assert (await response.json())["results"] == []
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_latest_with_unknown_revs_is_answered_missing(client, config, couch):
    """Found by fuzzing: ``latest=true`` with a rev the database lacks killed the embedded database."""
    admin = admin_headers(config)
    rev = (await couch.db(config.db_medic).put({"_id": "fz-latest", "type": "x"}))["rev"]
    unknown = await client.get("/medic/fz-latest?rev=2-abc&latest=true", headers=admin)
    assert unknown.status == 404
    some = await client.get('/medic/fz-latest?open_revs=["1-abc","' + rev + '"]&latest=true', headers=admin)
    assert some.status == 200
    # CouchDB does not promise the order of open_revs answers (pouchdb-server varies it), so match by content.
    answered = sorted(await some.json(), key=lambda item: json.dumps(item, sort_keys=True))
    assert answered == [{"missing": "1-abc"}, {"ok": {"_id": "fz-latest", "_rev": rev, "type": "x"}}]
    bulk = await client.post("/medic/_bulk_get?latest=true&revs=true", headers=admin, json={"docs": [
        {"id": "fz-latest", "rev": "3-abc"}, {"id": "fz-nothing", "rev": "1-a"}]})
    assert bulk.status == 200
    assert (await bulk.json())["results"][0]["docs"] == [{"missing": "3-abc"}]
    odd = await client.post("/medic/_bulk_get?latest=true", headers=admin, json={"docs": [{"id": "fz-latest",
                                                                                         "rev": 5}]})
    assert odd.status == 200
    known = await client.get(f"/medic/fz-latest?rev={rev}&latest=true", headers=admin)
    assert known.status == 200 and (await known.json())["_rev"] == rev
    bad = await client.get("/medic/fz-latest?open_revs=x", headers=admin)
    assert bad.status == 400 and (await bad.json())["error"] == "bad_request"
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_json_nested_too_deep_for_a_parser_is_400_on_the_proxy(client, config):
    """Bodies and ``open_revs`` the proxy parses for its own checks: deep nesting is a 400, not a
    RecursionError (500), and nothing is passed on to CouchDB."""
    admin = admin_headers(config)
    deep = "[" * 5000 + "]" * 5000
    for path in ("/medic/_bulk_get", "/medic/_changes"):
        response = await client.post(path, data=deep, headers={**admin, "Content-Type": "application/json"})
        assert response.status == 400, path
        assert "nested" in (await response.json())["reason"], path
    revs = await client.get("/medic/fz-latest?open_revs=" + "[" * 1300 + "]" * 1300, headers=admin)
    assert revs.status == 400 and (await revs.json())["error"] == "bad_request"
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_an_admins_doc_with_an_unknown_underscore_field_is_400(client, config, couch):
    """CouchDB answers 400 doc_validation; pouchdb-server's 500 for it came back to admins as a 503."""
    admin = admin_headers(config)
    before = (await couch.db(config.db_medic).info())["update_seq"]
    for method, path, body in (("PUT", "/medic/adm-special", {"_foo": 1}),
                               ("POST", "/medic/_bulk_docs", {"docs": [{"_id": "adm-special-2", "_foo": 1}]}),
                               ("POST", "/medic", {"_id": "adm-special-3", "_foo": 1})):
        response = await client.request(method, path, json=body, headers=admin)
        assert response.status == 400, path
        assert await response.json() == {"error": "doc_validation", "reason": "Bad special document member: _foo"}
    assert (await couch.db(config.db_medic).info())["update_seq"] == before, "nothing was written"


async def test_malformed_revs_of_an_online_user_are_400(client, make_user):
    """Found by fuzzing: CouchDB's 400 for a malformed rev came back as a 500."""
    name = await make_user("fz-online", ["program_officer"])
    put = await client.put("/medic/fz-rev?new_edits=false", json={"type": "x"}, headers=basic(name))
    assert put.status == 400 and (await put.json())["error"] == "bad_request"
    deleted = await client.delete("/medic/fz-rev?rev=__dict__", headers=basic(name))
    assert deleted.status in (400, 404), await deleted.text()


async def test_a_missing_attachment_is_json(client, config):
    response = await client.get("/medic/fz-none/file.txt", headers=admin_headers(config))
    assert response.status == 404 and response.content_type == "application/json"
    assert (await response.json())["error"] == "not_found"


async def test_online_user_writes_follow_the_rules(client, make_user, couch, config):
    officer = await make_user("officer", ["program_officer"])
    auth = basic(officer)
    medic = couch.db(config.db_medic)
    created = await client.put("/medic/officer-report", json={"type": "data_record", "form": "P"}, headers=auth)
    assert created.status == 201
    for doc_id, body in (("_design/evil", {"views": {}}), ("settings", {"settings": {}}),
                         ("form:anc", {"type": "form"}), ("org.couchdb.user:someone", {"type": "user-settings"})):
        response = await client.put(f"/medic/{doc_id}", json=body, headers=auth)
        assert response.status == 403, doc_id
        assert (await response.json())["error"] == "forbidden"
    results = await (await client.post("/medic/_bulk_docs", headers=auth, json={"docs": [
        {"_id": "ok-1", "type": "data_record"}, {"_id": "settings", "settings": {}}, {"_id": "ok-2"}]})).json()
    assert [r.get("error") for r in results] == [None, "forbidden", None]
    assert [r["id"] for r in results] == ["ok-1", "settings", "ok-2"]
    assert await medic.get_or_none("ok-2") and (await medic.get("settings"))["settings"]
    assert (await client.get("/medic/_security", headers=auth)).status == 200  # CouchDB lets members read it
    assert (await client.put("/medic/_security", json={}, headers=auth)).status == 403
    assert (await client.post("/medic/_index", json={"index": {"fields": ["a"]}}, headers=auth)).status == 403
    assert (await client.get("/medic/_design/medic-client", headers=auth)).status == 200


async def test_users_without_can_edit_cannot_write(client, make_user):
    viewer = await make_user("viewer", ["analytics"])
    response = await client.put("/medic/by-viewer", json={"type": "data_record"}, headers=basic(viewer))
    assert response.status == 403


async def test_local_docs_are_per_user(client, make_user):
    a = basic(await make_user("local-a", ["program_officer"]))
    b = basic(await make_user("local-b", ["program_officer"]))
    assert (await client.put("/medic/_local/checkpoint", json={"last_seq": 5}, headers=a)).status == 201
    assert (await (await client.get("/medic/_local/checkpoint", headers=a)).json())["last_seq"] == 5
    assert (await client.get("/medic/_local/checkpoint", headers=b)).status == 404


async def test_anonymous_gets_couch_shaped_401(client):
    response = await client.get("/medic/_changes")
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"
