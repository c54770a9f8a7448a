"""CHT's pass-through to CouchDB (issue 20, class 11): what no route serves goes to CouchDB for server admins,
online users get the answers CouchDB gives them on a CHT install, offline users meet cht-core's firewall,
and unknown paths are 404 as cht-core answers them. Through HTTP, on the real database."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from urllib.parse import quote, urlsplit

from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from tests.helpers import PASSWORD, admin_headers, basic, user_prefix

JSON = {"Accept": "application/json"}
UNAUTHORIZED = {"code": 401, "error": "unauthorized"}
FIREWALL = {"code": 403, "error": "forbidden", "details": "Offline users are not allowed access to this endpoint"}
NOT_MEMBER = {"error": "forbidden", "reason": "You are not allowed to access this db."}
NO_DATABASE = {"error": "not_found", "reason": "Database does not exist."}
INSUFFICIENT = {"error": "forbidden", "reason": "Insufficient privileges"}


async def on_couchdb(couch) -> bool:
    """Apache CouchDB (its welcome says so), not the embedded pouchdb-server."""
    return "couchdb" in await couch.info()


async def test_admin_reads_and_writes_users(client, config, couch):
    admin = admin_headers(config)
    listed = await client.get("/_users/_all_docs?limit=1", headers=admin)
    assert listed.status == 200 and len((await listed.json())["rows"]) == 1
    name = user_prefix(config) + "pt-made"
    doc_id = f"org.couchdb.user:{name}"
    made = await client.put(f"/_users/{quote(doc_id)}", headers=admin,
                            json={"name": name, "type": "user", "roles": ["program_officer"], "password": PASSWORD})
    assert made.status == 201, await made.text()
    host = f"http://{client.server.host}:{client.server.port}"
    assert made.headers["Location"].startswith(f"{host}/_users/org.couchdb.user"), made.headers["Location"]
    ctx, _ = await couch.session_info(basic(name))
    assert ctx["name"] == name, "a real user, who can log in"
    read = await (await client.get(f"/_users/{quote(doc_id)}", headers=admin)).json()
    assert read["name"] == name and read["roles"] == ["program_officer"]
    gone = await client.delete(f"/_users/{quote(doc_id)}?rev={read['_rev']}", headers=admin)
    assert gone.status == 200 and await couch.db(config.db_users).get_or_none(doc_id) is None


async def test_admin_reaches_chts_other_databases_and_the_server(client, config):
    admin = admin_headers(config)
    all_dbs = await client.get("/_all_dbs", headers=admin)
    assert all_dbs.status == 200 and {config.db_medic, config.db_sentinel} <= set(await all_dbs.json())
    for logical in ("medic-sentinel", "medic-logs", "medic-vault", "medic-users-meta"):
        info = await client.get(f"/{logical}", headers=admin)
        assert info.status == 200 and (await info.json())["db_name"] == config.databases[logical], logical
    uuids = await client.get("/_uuids?count=3", headers=admin)
    assert len((await uuids.json())["uuids"]) == 3
    for path in ("/", "/dbinfo"):
        welcome = await client.get(path, headers={**admin, **JSON})
        assert welcome.status == 200 and (await welcome.json())["uuid"], path
    assert (await client.get("/", headers={**admin, "Accept": "text/html"})).status == 404, "no web app"


async def test_bodies_stream_both_ways(client, config, couch):
    """A body larger than the API would ever read into memory at once goes to CouchDB chunk by chunk, and
    comes back the same (attachment reads are served inert, as medic's are)."""
    admin = admin_headers(config)
    created = await client.put("/medic-sentinel/pt-streamed", json={"type": "pt"}, headers=admin)
    assert created.status == 201
    host = f"http://{client.server.host}:{client.server.port}"
    assert created.headers["Location"] == f"{host}/medic-sentinel/pt-streamed"
    chunk = bytes(range(256)) * 4096  # 1 MiB

    async def body():
        for _ in range(8):
            yield chunk

    rev = (await created.json())["rev"]
    put = await client.put(f"/medic-sentinel/pt-streamed/blob.bin?rev={rev}", data=body(),
                           headers={**admin, "Content-Type": "application/octet-stream"})
    assert put.status == 201, await put.text()
    got = await client.get("/medic-sentinel/pt-streamed/blob.bin", headers=admin)
    assert got.status == 200 and got.headers["Content-Disposition"].startswith("attachment")
    digest = hashlib.sha256()
    async for part in got.content.iter_chunked(65536):
        digest.update(part)
    assert digest.hexdigest() == hashlib.sha256(chunk * 8).hexdigest()
    stored = await couch.db(config.db_sentinel).get("pt-streamed")
    assert stored["_attachments"]["blob.bin"]["length"] == len(chunk) * 8


async def test_admin_reads_medics_local_and_design_doc_lists(client, config, couch):
    admin = admin_headers(config)
    assert (await client.put("/medic/_local/pt-checkpoint", json={"last_seq": 1}, headers=admin)).status == 201
    local = await client.get("/medic/_local_docs", headers=admin)
    design = await client.post("/medic/_design_docs", json={"keys": ["_design/medic-client"]}, headers=admin)
    if not await on_couchdb(couch):  # pouchdb-server has neither list; its own answer is passed on
        assert local.status == 404 and design.status in (400, 404)
        return
    assert local.status == 200, await local.text()
    assert "_local/pt-checkpoint" in [row["id"] for row in (await local.json())["rows"]]
    assert [row["id"] for row in (await design.json())["rows"]] == ["_design/medic-client"]


async def test_online_users_get_what_cht_gives_them(client, config, couch, make_user):
    officer_name = await make_user("pt-officer", ["program_officer"])
    admin_role = await make_user("pt-admin-role", ["admin"])  # CHT's admin role: online, but no CouchDB admin
    other = config.db_medic.replace("medic", "pt-other")
    await couch.create_db(other)
    try:
        await _online_answers(client, config, couch, make_user, officer_name, admin_role, other)
    finally:
        await couch.delete_db(other)


async def _online_answers(client, config, couch, make_user, officer_name: str, admin_role: str, other: str) -> None:
    for who in (basic(officer_name), basic(await make_user("pt-mm", ["chw", "mm-online"])), basic(admin_role)):
        for path in ("/_all_dbs", "/_users/_all_docs", "/_users/_changes", "/_active_tasks", "/_node/_local/_stats",
                     "/_scheduler/jobs"):
            refused = await client.get(path, headers={**who, **JSON})
            assert refused.status == 401 and await refused.json() == UNAUTHORIZED, path
            assert refused.headers["logout-authorization"] == "CHT-Core API"  # CHT's answer to CouchDB's 401
        for path in ("/medic-sentinel", "/medic-sentinel/_all_docs", "/medic-logs/x", "/medic-vault",
                     "/medic-users-meta/_all_docs", f"/_users/org.couchdb.user:{officer_name}", "/_users",
                     f"/{other}", f"/{other}/_all_docs"):
            refused = await client.get(path, headers=who)
            assert refused.status == 403 and await refused.json() == NOT_MEMBER, path
        for path in ("/api/v1/nothing", "/no-such-db-at-all", "/Not-A-Name"):
            missing = await client.get(path, headers=who)
            assert missing.status == 404 and await missing.json() == NO_DATABASE, path
        assert len((await (await client.get("/_uuids", headers=who)).json())["uuids"]) == 1
        assert (await (await client.get("/dbinfo", headers=who)).json())["uuid"]
    officer = basic(officer_name)
    # writes CouchDB keeps for its admins, and a user's own _users doc (CouchDB 3 makes _users admin-only)
    for method, path, body in (("PUT", "/pt-new-db", None), ("DELETE", f"/{other}", None),
                               ("POST", "/medic/_purge", {"x": ["1-a"]}),
                               ("POST", f"/{other}/_purge", {"x": ["1-a"]})):
        refused = await client.request(method, path, json=body, headers=officer)
        assert refused.status == 401, (method, path)
    doc_id = f"org.couchdb.user:{officer_name}"
    before = await couch.db(config.db_users).get(doc_id)
    promoted = await client.put(f"/_users/{quote(doc_id)}", headers=officer,
                                json={**before, "roles": ["program_officer", "admin"]})
    assert promoted.status == 403 and await promoted.json() == NOT_MEMBER
    assert (await couch.db(config.db_users).get(doc_id))["roles"] == before["roles"]
    assert "pt-new-db" not in await couch.all_dbs() and other in await couch.all_dbs()
    # medic: what CouchDB lets its members read
    assert (await client.get("/medic/_security", headers=officer)).status == 200
    assert (await client.get("/medic/_index", headers=officer)).status == 200
    listed = await client.get("/medic/_design_docs", headers=officer)
    assert listed.status == (200 if await on_couchdb(couch) else 404)
    assert (await client.get("/medic/_local_docs", headers=officer)).status == 403, "users' checkpoints are apart"
    copied = await client.request("COPY", "/medic/settings", headers={**officer, "Destination": "pt-copy"})
    assert copied.status == 403 and await couch.db(config.db_medic).get_or_none("pt-copy") is None


async def test_offline_users_meet_the_firewall(client, config, couch, make_user):
    chw = basic(await make_user("pt-chw", ["chw"]))
    for method, path, body in [
        ("GET", "/_all_dbs", None), ("GET", "/_uuids", None), ("GET", "/_users/_all_docs", None),
        ("GET", "/medic-sentinel", None), ("GET", "/medic-vault/x", None), ("PUT", "/pt-new-db", None),
        ("GET", "/api/v1/nothing", None), ("POST", "/medic/_purge", {"x": ["1-a"]}),
        ("POST", "/medic/_find", {"selector": {}}), ("POST", "/medic/_explain", {"selector": {}}),
        ("GET", "/medic/_design/medic-client/_view/contacts_by_type", None),
        ("POST", "/medic/_design/medic-client/_view/contacts_by_type", {"keys": []}),
        ("GET", "/medic/_design/medic/_list/x/y", None), ("GET", "/medic/_index", None),
        ("GET", "/medic/_security", None), ("POST", "/medic/_ensure_full_commit", None),
        ("POST", "/medic/_design_docs", {"keys": []}), ("DELETE", "/api/v1/settings", None),
    ]:
        response = await client.request(method, path, json=body, headers=chw)
        assert response.status == 403 and await response.json() == FIREWALL, (method, path)
    for path in ("/medic/_local_docs", "/medic/_design_docs", "/medic/_revs_limit"):
        response = await client.get(path, headers=chw)
        assert response.status == 403 and await response.json() == INSUFFICIENT, path
    assert (await (await client.get("/dbinfo", headers=chw)).json())["uuid"], "cht-core passes it on for all"
    assert (await client.get("/medic/_design/medic-client", headers=chw)).status == 200


async def test_offline_missing_revs_are_revs_diff_of_their_set(client, config, couch, make_user):
    chw = basic(await make_user("pt-chw-revs", ["chw"]))
    outsider = await couch.db(config.db_medic).put({"_id": "pt-outsider", "type": "data_record"})
    settings_rev = (await couch.db(config.db_medic).get("settings"))["_rev"]
    asked = {"settings": [settings_rev, "9-unknown"], "pt-outsider": [outsider["rev"]]}
    missing = await client.post("/medic/_missing_revs", json=asked, headers=chw)
    diff = await (await client.post("/medic/_revs_diff", json=asked, headers=chw)).json()
    assert missing.status == 200
    assert (await missing.json())["missing_revs"] == {k: v["missing"] for k, v in diff.items()}
    assert (await missing.json())["missing_revs"]["pt-outsider"] == [outsider["rev"]], "as if never seen"


async def test_anonymous_callers_are_not_logged_in(client):
    for method, path in (("GET", "/_all_dbs"), ("GET", "/medic-sentinel"), ("GET", "/api/v1/nothing"),
                         ("GET", "/"), ("PUT", "/pt-new-db"), ("POST", "/medic/_purge")):
        response = await client.request(method, path, headers=JSON)
        assert response.status == 401 and await response.json() == UNAUTHORIZED, path


async def test_unknown_paths_are_404_as_cht_answers_them(client, config):
    admin = admin_headers(config)
    for path in ("/api/v1/nothing", "/api/v9/users", "/v6/nothing", "/Not-A-Name", "/favicon.ico"):
        response = await client.get(path, headers=admin)  # never sent: CouchDB would look for a database
        assert response.status == 404 and await response.json() == NO_DATABASE, path
    forwarded = await client.get("/no-such-db-at-all", headers=admin)  # the database's own 404
    assert forwarded.status == 404 and (await forwarded.json())["error"] == "not_found"
    wrong = await client.delete("/api/v1/settings", headers=admin)
    assert wrong.status == 405 and wrong.headers["Allow"] == "GET, HEAD, PUT"
    session = await client.put("/_session", headers=admin)
    assert session.status == 405, "a path the API serves keeps its methods"


async def test_secrets_never_leak(client, config, couch, make_user, caplog):
    """Neither the caller's credentials nor the API's own reach CouchDB's answers or the logs: a show
    function that echoes the request it was given sees no Authorization header and no cookie."""
    admin = admin_headers(config)
    echo = {"_id": "_design/pt-echo", "shows": {
        "req": "function(doc, req) { return JSON.stringify({headers: req.headers, cookie: req.cookie}); }"}}
    assert (await client.put("/medic-sentinel/_design/pt-echo", json=echo, headers=admin)).status == 201
    assert (await client.put("/medic/_design/pt-echo", json=echo, headers=admin)).status == 201
    officer = basic(await make_user("pt-quiet-officer", ["program_officer"]))
    secrets = [config.couch_password, PASSWORD, admin["Authorization"].split()[1], officer["Authorization"].split()[1],
               "pt-session-cookie"]
    with caplog.at_level(logging.DEBUG):
        answers = [await client.get("/medic-sentinel/_design/pt-echo/_show/req", headers=admin),
                   await client.get("/medic/_design/pt-echo/_show/req",
                                    headers={**officer, "Cookie": "AuthSession=pt-session-cookie"}),
                   await client.get("/_all_dbs", headers=admin), await client.get("/_users/_all_docs?limit=1", headers=admin),
                   await client.get("/_all_dbs", headers=officer)]
        for response in answers:
            body = await response.text()
            if response.status == 200 and "_show" in str(response.url):
                assert "authorization" not in body.lower() and "AuthSession" not in body, body
            for secret in secrets:
                assert secret not in body, (str(response.url), secret)
                assert all(secret not in value for value in response.headers.values())
            assert "Set-Cookie" not in response.headers and "CouchDB" not in response.headers.get("Server", "")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in logged, secret


class Cuttable:
    """A TCP relay to the database that can be cut, to make it unreachable mid-test on either server. Once cut
    it keeps its port (so nothing else takes it) and drops every connection at once."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.is_cut = False

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while not self.is_cut and (data := await source.read(65536)):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.is_cut = True
        for writer in self.writers:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.cut()
        self.server.close()
        await self.server.wait_closed()


async def test_an_unreachable_database_is_503_with_retry_after(config):
    backend = urlsplit(config.couch_url)
    relay = Cuttable(backend.hostname, backend.port)
    port = await relay.start()
    app = create_app(config.replace(couch_url=f"http://127.0.0.1:{port}", auth_cache_seconds=60, couch_timeout=3))
    try:
        async with TestClient(TestServer(app)) as client:
            admin = admin_headers(config)
            assert (await client.get("/medic-sentinel", headers=admin)).status == 200  # credentials now remembered
            relay.cut()
            for path in ("/medic-sentinel", "/_all_dbs", "/_users/_all_docs"):
                down = await client.get(path, headers=admin)
                assert down.status == 503 and down.headers["Retry-After"], path
                answer = await down.json()
                assert answer["error"] == "service_unavailable" and "Traceback" not in answer["reason"], answer
    finally:
        await relay.close()
