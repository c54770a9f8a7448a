"""Requests that stop the embedded pouchdb-server are refused before they reach any database (``api.couch_guards``),
whoever sends them and whichever way they come (the ``/medic`` routes, the pass-through to other databases),
and the database still answers afterwards — the same process, not one a supervisor restarted."""

from __future__ import annotations

import asyncio

import pytest

from api.couch_guards import body_needed, check_changes, segments
from api.errors import BadRequest
from tests.helpers import admin_headers, basic

SENTINEL = "/medic-sentinel"
LISTS = {"_id": "_design/pt-lists", "views": {"v": {"map": "function(doc) { emit(doc._id); }"}},
         "lists": {"ids": "function(head, req) { var row, out = []; while ((row = getRow())) { out.push(row.id); } "
                          "return JSON.stringify(out); }"},
         "filters": {"f": "function(doc, req) { return true; }"}}


def test_segments_are_split_before_they_are_decoded():
    assert segments("/db/_design/x/_list/l/v?a=1") == ["db", "_design", "x", "_list", "l", "v"]
    assert segments("/db/_design%2Fx/a%20b") == ["db", "_design/x", "a b"]
    assert segments("/") == [""]


def test_the_body_is_read_only_where_the_danger_is():
    assert body_needed("POST", ["db", "_bulk_get"], {"latest": "true"})
    assert not body_needed("POST", ["db", "_bulk_get"], {})
    assert body_needed("POST", ["db", "_changes"], {"filter": "_doc_ids"})
    assert not body_needed("POST", ["db", "_changes"], {"filter": "_doc_ids", "doc_ids": "[]"})
    assert not body_needed("PUT", ["db", "doc"], {"latest": "true"})


def test_changes_take_doc_ids_and_nothing_else():
    check_changes({}, {})
    check_changes({"filter": "_doc_ids", "doc_ids": '["a"]'}, {})
    check_changes({"filter": "_doc_ids"}, {"doc_ids": ["a"]})
    for query, body, field in [({"filter": "_design"}, {}, "filter"), ({"filter": "ddoc/f"}, {}, "filter"),
                               ({"filter": "_selector"}, {"selector": {}}, "filter"),
                               ({"filter": "_view", "view": "d/v"}, {}, "filter"),
                               ({"feed": "continuous"}, {}, "feed"), ({"filter": "_doc_ids"}, {}, "doc_ids"),
                               ({"filter": "_doc_ids", "doc_ids": "5"}, {}, "doc_ids")]:
        with pytest.raises(BadRequest) as refused:
            check_changes(query, body)
        assert refused.value.field == field, query


@pytest.fixture
async def alive(couch_server, couch):
    """Call after each request: the database still answers, and (embedded) it is the process it was."""
    embedded = couch_server.embedded
    pid = embedded.process.pid if embedded else None

    async def check(what: str) -> None:
        await asyncio.sleep(0.3)  # pouchdb-server sometimes dies just after it has answered
        if embedded is not None:
            assert embedded.alive() and embedded.process.pid == pid, f"the database stopped after {what}"
        assert (await couch.info()).get("version"), what

    return check


@pytest.fixture
async def docs(couch, config):
    """A doc with an attachment and a list design doc, in medic and in the sentinel database; their revs."""
    revs = {}
    for db_name in (config.db_medic, config.db_sentinel):
        db = couch.db(db_name)
        if await db.get_or_none(LISTS["_id"]) is None:
            await db.put(dict(LISTS))
        doc = await db.get_or_none("pt-guarded")
        if doc is None:
            created = await db.put({"_id": "pt-guarded", "a": 1})
            await db.put_attachment("pt-guarded", "a.txt", b"x", "text/plain", created["rev"])
            doc = await db.get("pt-guarded")
        revs[db_name, "pt-guarded"] = doc["_rev"]
    return revs


async def test_the_issues_list_request_is_refused_and_the_database_keeps_running(client, config, alive, docs):
    admin = admin_headers(config)
    response = await client.get("/medic/_design/medic/_list/x/contacts_by_type", headers=admin)
    assert response.status == 404
    assert await response.json() == {"error": "not_found", "reason": "missing json key: x"}
    await alive("the issue's _list")
    works = await client.get("/medic/_design/pt-lists/_list/ids/v", headers=admin)
    assert works.status == 200 and "pt-guarded" in await works.text(), "a list that exists still runs"


@pytest.mark.parametrize("db", ["/medic", SENTINEL])
async def test_requests_that_stop_the_embedded_database_are_refused(client, config, alive, docs, db):
    admin = admin_headers(config)
    unknown = "1-00000000000000000000000000000000"
    cases = [
        ("GET", "/_design/pt-lists/_list/nope/v", None, 404, "missing json key: nope"),
        ("HEAD", "/_design/pt-lists/_list/nope/v", None, 404, None),
        ("POST", "/_design/pt-lists/_list/nope/v", {}, 404, "missing json key: nope"),
        ("GET", "/_design/no-such-ddoc/_list/x/v", None, 404, "missing"),
        ("GET", "/_changes?filter=_design", None, 400, "filter _design is not supported; use _doc_ids"),
        ("GET", "/_changes?filter=pt-lists/nope", None, 400, "filter pt-lists/nope is not supported; use _doc_ids"),
        ("GET", "/_changes?filter=_view&view=pt-lists/nope", None, 400, "filter _view is not supported; use _doc_ids"),
        ("POST", "/_changes?filter=_selector", {"selector": {"a": 1}}, 400,
         "filter _selector is not supported; use _doc_ids"),
        ("GET", "/_changes?filter=_doc_ids", None, 400, "`doc_ids` filter parameter is not a list of doc ids."),
        ("POST", "/_changes?filter=_doc_ids", {}, 400, "`doc_ids` filter parameter is not a list of doc ids."),
        ("GET", f"/pt-guarded/a.txt?rev={unknown}&latest=true", None, 400, None),
        ("GET", f"/_design/pt-lists?rev={unknown}&latest=true", None, 400, None),
    ]
    if db == SENTINEL:  # medic's own routes answer these two as CouchDB does (without sending latest)
        cases += [("GET", f"/pt-guarded?rev={unknown}&latest=true", None, 400, None),
                  ("POST", "/_bulk_get?latest=true", {"docs": [{"id": "pt-guarded", "rev": unknown}]}, 400, None)]
    for method, path, body, status, reason in cases:
        response = await client.request(method, db + path, json=body, headers=admin)
        assert response.status == status, (method, path, await response.text())
        if reason is not None:
            answer = await response.json()
            assert answer["reason"] == reason and "error" in answer, (path, answer)
        await alive(f"{method} {db}{path}")
    ids = await client.get(db + '/_changes?filter=_doc_ids&doc_ids=["pt-guarded"]', headers=admin)
    assert ids.status == 200 and [r["id"] for r in (await ids.json())["results"]] == ["pt-guarded"]
    known = docs[config.db_medic if db == "/medic" else config.db_sentinel, "pt-guarded"]
    latest = await client.get(f"{db}/pt-guarded?rev={known}&latest=true", headers=admin)
    assert latest.status == 200, "latest with a revision the doc has goes on"


async def test_online_users_reading_lists_are_guarded_too(client, config, make_user, alive, docs):
    officer = basic(await make_user("pt-guard-officer", ["program_officer"]))
    response = await client.get("/medic/_design/medic/_list/x/v", headers=officer)
    assert response.status == 404 and (await response.json())["error"] == "not_found"
    await alive("an online user's _list")


async def test_replications_configuration_and_illegal_names_never_reach_the_server(client, config, couch, alive):
    admin = admin_headers(config)
    for method, path, body in [
        ("POST", "/_replicate", {"source": config.db_medic, "target": "http://127.0.0.1:1/x"}),
        ("POST", "/_replicate", {"source": config.db_medic, "target": "pt-copy", "filter": "pt-lists/nope"}),
        ("PUT", "/_replicator/pt-job", {"source": config.db_medic, "target": "http://127.0.0.1:1/x"}),
        ("GET", "/_config", None),
        ("GET", "/_node/_local/_config/admins", None),
        ("PUT", "/_node/_local/_config/admins/intruder", "secret"),
    ]:
        response = await client.request(method, path, json=body, headers=admin)
        assert response.status == 403 and (await response.json())["error"] == "forbidden", (path, response.status)
        await alive(path)
    ctx, _ = await couch.session_info(basic("intruder", "secret"))
    assert ctx.get("name") is None, "no admin was made"
    for name in ("Not-Lower", "_private", "has space", "..%2Fescape"):
        response = await client.put(f"/{name}", headers=admin)
        assert response.status in (400, 404), (name, response.status)
        assert (await response.json())["error"] in ("illegal_database_name", "not_found"), name
    assert not [db for db in await couch.all_dbs() if "escape" in db or "space" in db or db == "_private"]
