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
    for method, query, body in (("GET", "filter=_doc_ids&doc_ids=%5B%22a%22%5D", None),
                                ("POST", "filter=_doc_ids", {"doc_ids": ["a"]})):
        response = await client.request(method, f"/medic/_changes?{query}", json=body, headers=admin)
        assert response.status == 200, await response.text()
        assert (await response.json())["results"] == []
    # CouchDB takes a POSTed _changes only as JSON (chttpd_db:handle_changes_req); so does the API, on both
    # servers and for every role (pouchdb-server would accept it)
    bare = await client.post("/medic/_changes?filter=_doc_ids&doc_ids=%5B%22a%22%5D", headers=admin)
    assert bare.status == 415
    assert await bare.json() == {"error": "bad_content_type", "reason": "Content-Type must be application/json"}
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_latest_with_unknown_revs_is_answered_as_couchdb_does(client, config, couch):
    """Found by fuzzing: ``latest=true`` with a rev the database lacks killed the embedded database. The API
    answers such requests itself, as CouchDB 3 documents and answers them."""
    admin = admin_headers(config)
    rev = (await couch.db(config.db_medic).put({"_id": "fz-latest", "type": "x"}))["rev"]
    # "latest: forces retrieving latest leaf revision, no matter what rev was requested"
    unknown = await client.get("/medic/fz-latest?rev=2-abc&latest=true", headers=admin)
    assert unknown.status == 200 and (await unknown.json())["_rev"] == rev
    some = await client.get('/medic/fz-latest?open_revs=["1-abc","' + rev + '"]&latest=true', headers=admin)
    assert some.status == 200
    # CouchDB does not promise the order of open_revs answers (pouchdb-server varies it), so match by content.
    answered = sorted(await some.json(), key=lambda item: json.dumps(item, sort_keys=True))
    assert answered == [{"missing": "1-abc"}, {"ok": {"_id": "fz-latest", "_rev": rev, "type": "x"}}]
    bulk = await client.post("/medic/_bulk_get?latest=true&revs=true", headers=admin, json={"docs": [
        {"id": "fz-latest", "rev": "3-abc"}, {"id": "fz-nothing", "rev": "1-a"}]})
    assert bulk.status == 200
    # _bulk_get's documented shape for a rev the doc does not have ({"missing": rev} is open_revs' shape)
    assert await bulk.json() == {"results": [
        {"id": "fz-latest", "docs": [{"error": {"id": "fz-latest", "rev": "3-abc", "error": "not_found",
                                                "reason": "missing"}}]},
        {"id": "fz-nothing", "docs": [{"error": {"id": "fz-nothing", "rev": "1-a", "error": "not_found",
                                                 "reason": "missing"}}]}]}
    mixed = await client.post("/medic/_bulk_get?latest=true", headers=admin, json={"docs": [
        {"id": "fz-latest", "rev": "3-abc"}, {"id": "fz-latest", "rev": rev}]})
    results = (await mixed.json())["results"]
    assert results[0]["docs"][0]["error"]["rev"] == "3-abc" and results[1]["docs"][0]["ok"]["_rev"] == rev
    odd = await client.post("/medic/_bulk_get?latest=true", headers=admin, json={"docs": [{"id": "fz-latest",
                                                                                         "rev": 5}]})
    assert odd.status == 400 and (await odd.json())["error"] == "bad_request"
    known = await client.get(f"/medic/fz-latest?rev={rev}&latest=true", headers=admin)
    assert known.status == 200 and (await known.json())["_rev"] == rev
    bad = await client.get("/medic/fz-latest?open_revs=x", headers=admin)
    assert bad.status == 400 and (await bad.json())["error"] == "bad_request"
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_json_nested_too_deep_for_a_parser_is_400_on_the_proxy(client, config, make_user):
    """Every body the proxy would pass on is read by the API first, for admins and online users too: deep
    nesting is a 400 (it was CouchDB's 500, answered 503), and nothing is passed on to CouchDB."""
    admin = admin_headers(config)
    online = basic(await make_user("deep-online", ["program_officer"]))
    deep = "[" * 5000 + "]" * 5000
    for who in (admin, online):
        for method, path in (("POST", "/medic/_bulk_get"), ("POST", "/medic/_changes"), ("POST", "/medic/_find"),
                             ("POST", "/medic/_all_docs"), ("POST", "/medic/_revs_diff"),
                             ("POST", "/medic/_bulk_docs"), ("PUT", "/medic/deep-doc")):
            response = await client.request(method, path, data=deep,
                                            headers={**who, "Content-Type": "application/json"})
            assert response.status == 400, path
            assert "nested" in (await response.json())["reason"], path
    revs = await client.get("/medic/fz-latest?open_revs=" + "[" * 1300 + "]" * 1300, headers=admin)
    assert revs.status == 400 and (await revs.json())["error"] == "bad_request"
    assert (await client.get("/medic", headers=admin)).status == 200


async def test_admin_bodies_of_the_wrong_shape_are_400_on_both_servers(client, config, couch):
    """CouchDB 3.4.3 answers ``PUT _revs_limit {}`` with a 500 ``function_clause`` and pouchdb-server with
    400; the API checks each body's documented shape first, so both give CouchDB's 400 ``bad_request``."""
    admin = admin_headers(config)
    for body in ({}, 0, -1, 1.5, "5", True, [1000]):
        response = await client.put("/medic/_revs_limit", json=body, headers=admin)
        assert response.status == 400, body
        refusal = await response.json()
        assert set(refusal) == {"error", "reason"} and refusal["error"] == "bad_request", refusal
    for path, body in (("/medic/_bulk_docs", {}), ("/medic/_bulk_docs", {"docs": {}}),
                       ("/medic/_bulk_docs", {"docs": [1]}), ("/medic/_bulk_docs", {"docs": [], "new_edits": "no"}),
                       ("/medic/_all_docs", {"keys": "a"}), ("/medic/_bulk_get", {"docs": [{"rev": "1-a"}]}),
                       ("/medic/_bulk_get", {}), ("/medic/_revs_diff", {"a": "1-a"}), ("/medic/_purge", {"a": [1]}),
                       ("/medic/_find", {}), ("/medic/_find", {"selector": {}, "limit": -1}),
                       ("/medic/_index", {"index": "a"}), ("/medic/_design/medic-client/_view/doc_by_type",
                                                          {"keys": "a"}),
                       # not an object at all
                       ("/medic/_bulk_docs", []), ("/medic/_all_docs", "keys"), ("/medic/_bulk_get", [{"id": "a"}]),
                       ("/medic/_revs_diff", ["a"]), ("/medic/_purge", []), ("/medic/_find", 5),
                       ("/medic/_bulk_get", {"docs": "a"}), ("/medic/_purge", {"a": "1-a"}),
                       ("/medic/_find", {"selector": []})):
        response = await client.post(path, json=body, headers=admin)
        assert response.status == 400, (path, body)
        refusal = await response.json()  # CouchDB's shape: {"error", "reason"} and nothing else
        assert set(refusal) == {"error", "reason"} and refusal["error"] == "bad_request", (path, body, refusal)
        assert isinstance(refusal["reason"], str) and refusal["reason"], (path, body)
    security = await client.put("/medic/_security", json={"members": {"roles": "x"}}, headers=admin)
    assert security.status == 400 and set(await security.json()) == {"error", "reason"}
    valid = await client.put("/medic/_revs_limit", json=1000, headers=admin)
    if await couch.is_apache_couchdb():
        assert valid.status == 200
    else:  # pouchdb-server does not implement _revs_limit (documented in the OpenAPI operation)
        assert valid.status in (400, 404), await valid.text()
    assert (await couch.request("GET", f"/{config.db_medic}/_security"))[1].get("members", {}).get("roles") != "x"


async def test_admin_requests_couchdb_refuses_by_method_or_type_are_refused_alike(client, config):
    """CouchDB's 405 for a method a design doc path does not take, and its 415 for a body it only takes as
    JSON; the API answers them itself, so pouchdb-server (400, or 202) gives the same."""
    admin = admin_headers(config)
    for method, path, allowed in (("POST", "/medic/_design/medic-client/0", "DELETE, GET, HEAD, PUT"),
                                  ("POST", "/medic/_design/medic-client/_info", "GET"),
                                  ("PUT", "/medic/_design/medic-client/_view/doc_by_type", "GET, POST, HEAD"),
                                  ("GET", "/medic/_design/medic-client/_update/x", "PUT, POST")):
        response = await client.request(method, path, json={}, headers=admin)
        assert response.status == 405, path
        assert response.headers["Allow"] == allowed
        assert (await response.json())["error"] == "method_not_allowed"
    for path in ("/medic/_compact", "/medic/_bulk_docs", "/medic/_all_docs", "/medic/_find", "/medic/_revs_diff",
                 "/medic/_bulk_get", "/medic/_purge", "/medic/_index", "/medic/_ensure_full_commit", "/medic"):
        response = await client.post(path, data=b"{}", headers={**admin, "Content-Type": "text/plain"})
        assert response.status == 415, path
        assert await response.json() == {"error": "bad_content_type",
                                         "reason": "Content-Type must be application/json"}
    compact = await client.post("/medic/_compact", headers={**admin, "Content-Type": "application/json"})
    assert compact.status == 202


async def test_couchdbs_400_on_a_relayed_request_is_a_400(client, config, couch, make_user):
    """A request the API passes on through its own CouchDB calls (here ``_revs_diff`` to answer
    ``latest``, and an online user's checkpoint): CouchDB's 400 for what the client sent reaches the client
    as that 400, not as the API's 500. (pouchdb-server does not check a ``_local`` doc's rev format: it
    answers that write 409.)"""
    admin = admin_headers(config)
    expected = (400, "bad_request") if await couch.is_apache_couchdb() else (409, "conflict")
    for who in (admin, basic(await make_user("relay-400", ["program_officer"]))):
        bad_rev = await client.put("/medic/_local/relay-400", json={"_rev": "garbage"}, headers=who)
        assert (bad_rev.status, (await bad_rev.json())["error"]) == expected
    latest = await client.get("/medic/relay-400?rev=garbage&latest=true", headers=admin)
    assert latest.status in (400, 404), await latest.text()  # pouchdb-server: no such doc, whatever the rev


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
    # seqs are opaque (on a cluster two reads of update_seq may name other copies): count what follows
    assert await couch.db(config.db_medic).pending_changes(before) == 0, "nothing was written"


async def test_an_admins_purged_doc_is_refused_and_the_others_written(client, config, couch):
    """cht-core's rule, admins included: purging happens on the device. The API applies it (no database has a
    validate_doc_update), so both servers answer as CouchDB with cht-core's ddoc does."""
    admin = admin_headers(config)
    medic = couch.db(config.db_medic)
    purged = {"_id": "adm-purged", "type": "data_record", "purged": True}
    response = await client.post("/medic/_bulk_docs", json={"docs": [purged, {"_id": "adm-kept", "type": "x"}]},
                                 headers=admin)
    assert response.status == 201
    results = await response.json()
    assert results[0] == {"id": "adm-purged", "error": "forbidden",
                          "reason": "Purged documents should not be written to CouchDB!"}
    assert results[1]["ok"] and (await medic.get_or_none("adm-kept")) is not None
    single = await client.put("/medic/adm-purged", json=purged, headers=admin)
    assert single.status == 403
    assert await single.json() == {"error": "forbidden", "reason": "Purged documents should not be written to CouchDB!"}
    assert await medic.get_or_none("adm-purged") is None


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
