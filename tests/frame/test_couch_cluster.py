"""The CouchDB layer on a cluster: writes with ``w`` = the live copies, claims that one racer wins, reads sent
once more after a node went away. On one node or pouchdb-server the same calls behave as they always did;
on Apache CouchDB's cluster (``COUCH_URL`` of a node of a 3-node cluster) the races are real."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time

import pytest

from api.couch import Couch, replayable, winning_rev
from api.errors import ServiceUnavailable
from scripts.couchdb import free_port


def test_only_reads_are_replayable():
    assert replayable("GET", "/medic/doc") and replayable("HEAD", "/medic")
    for path in ("/medic/_all_docs", "/medic/_bulk_get", "/medic/_find", "/medic/_changes",
                 "/medic/_revs_diff", "/medic/_design/medic/_view/contacts_by_type",
                 "/medic/_design/medic/_view/x/queries", "/medic/_all_docs?include_docs=true"):
        assert replayable("POST", path), path
    for method, path in (("POST", "/medic/_bulk_docs"), ("PUT", "/medic/doc"), ("DELETE", "/medic/doc"),
                         ("POST", "/medic"), ("POST", "/medic/_design/medic/_update/x"), ("POST", "/_session")):
        assert not replayable(method, path), (method, path)


def test_the_winning_revision_is_couchdbs():
    assert winning_rev([{"_rev": "2-aaa"}, {"_rev": "2-bbb"}]) == "2-bbb"  # same length: greatest id
    assert winning_rev([{"_rev": "3-aaa"}, {"_rev": "2-fff"}]) == "3-aaa"  # the longest history
    assert winning_rev([{"_rev": "10-a"}, {"_rev": "9-f"}]) == "10-a"  # numbers, not text
    assert winning_rev([{"_rev": "5-fff", "_deleted": True}, {"_rev": "2-aaa"}]) == "2-aaa"  # alive first


async def test_write_quorum_is_the_live_copies(couch, config):
    quorum = await couch.write_quorum(config.db_medic)
    info = await couch.db(config.db_medic).info()
    copies = (info.get("cluster") or {}).get("n")
    if not isinstance(copies, int) or copies < 2:
        assert quorum is None  # one node or pouchdb-server: CouchDB's own default
    else:
        members = await couch.get_json("/_membership")
        live = sorted(set(members["all_nodes"]) & set(members["cluster_nodes"]))
        assert quorum == min(copies, len(live))
        # a node in maintenance mode (a returning node catching up) refuses the copies it is sent: not counted
        path = f"/_node/{live[-1]}/_config/couchdb/maintenance_mode"
        await couch.request("PUT", path, json_body="true")
        try:
            async with Couch.from_config(config) as fresh:
                assert await fresh.write_quorum(config.db_medic) == min(copies, len(live) - 1)
        finally:
            await couch.request("PUT", path, json_body="false")


def test_doc_writes_passed_on_are_told_the_quorum():
    """The admin pass-through adds ``w`` to doc writes only (found by the suite on the cluster: an admin's
    design doc upload, told 201 by two copies, was missing from the next one-copy read)."""
    from api.cht.replication.proxy import _is_doc_write

    for method, parts in (("PUT", ["medic", "doc"]), ("PUT", ["medic", "_design", "x"]), ("DELETE", ["medic", "doc"]),
                          ("PUT", ["medic", "doc", "file.txt"]), ("COPY", ["medic", "doc"]), ("POST", ["medic"]),
                          ("POST", ["medic", "_bulk_docs"])):
        assert _is_doc_write(method, parts), (method, parts)
    for method, parts in (("PUT", ["medic"]), ("DELETE", ["medic"]), ("PUT", ["medic", "_security"]),
                          ("PUT", ["medic", "_local", "x"]), ("POST", ["medic", "_all_docs"]),
                          ("POST", ["medic", "_find"]), ("PUT", ["_users", "org.couchdb.user:a"]),
                          ("GET", ["medic", "doc"]), ("POST", ["medic", "_bulk_get"])):
        assert not _is_doc_write(method, parts), (method, parts)


async def test_a_claim_is_won_by_at_most_one_racer(couch, config):
    """On one node exactly one racer wins. On a cluster racers that split the copies are each told 202, and
    a 202 wins only once confirmed as the doc's one leaf (``Database.confirm``): then none may win, never two."""
    db = couch.db(config.db_sentinel)
    one_node = await couch.write_quorum(db.name) is None
    for round_ in range(20):
        doc_id = f"claim-race-{round_}"
        won = await asyncio.gather(*(db.claim({"_id": doc_id, "by": k}) for k in range(3)))
        assert sum(won) == 1 if one_node else sum(won) <= 1, won
        stored = await db.get(doc_id, conflicts=True)
        if any(won):
            assert stored["by"] == won.index(True)
        assert not stored.get("_conflicts"), "the losers' leaves are gone"
    # an update of a known revision, too
    base = await db.get("claim-race-0")
    won = await asyncio.gather(*(db.claim({**base, "by": 10 + k}) for k in range(3)))
    assert sum(won) == 1 if one_node else sum(won) <= 1, won


async def test_claim_many_reports_each_doc(couch, config):
    db = couch.db(config.db_sentinel)
    await db.put({"_id": "claim-many-taken"})
    won = await db.claim_many([{"_id": "claim-many-free"}, {"_id": "claim-many-taken"}])
    assert won == [True, False]


async def two_leaves(db, doc_id):
    """A doc with two conflicting leaves, ``2-aaa`` and ``2-fff`` (CouchDB's winner), made from ``1-abc`` as two
    claims told 202 on a cluster leave it; built with ``new_edits=false``, so it runs on any server."""
    await db.bulk_docs([{"_id": doc_id, "_rev": "1-abc", "_revisions": {"start": 1, "ids": ["abc"]}}],
                       new_edits=False)
    leaves = [{"_id": doc_id, "_rev": f"2-{rid}", "by": rid,
               "_revisions": {"start": 2, "ids": [rid, "abc"]}} for rid in ("aaa", "fff")]
    await db.bulk_docs(leaves, new_edits=False)


async def test_settling_two_leaves_keeps_couchdbs_winner_and_deletes_the_loser(couch, config):
    """Two claims told 202 on a cluster leave two leaves: each racer settles, the winner by CouchDB's rule
    wins, the loser deletes its own leaf."""
    db = couch.db(config.db_sentinel)
    await two_leaves(db, "settle-two")
    assert not await db.settle("settle-two", "2-aaa"), "the loser"
    assert await db.settle("settle-two", "2-fff"), "CouchDB's winner"
    stored = await db.get("settle-two", conflicts=True)
    assert stored["_rev"] == "2-fff" and not stored.get("_conflicts"), "the loser's leaf is gone, the doc kept"


async def test_settling_alone_refuses_a_winner_among_conflicts(couch, config):
    """A hand-out acts only on a leaf that is the doc's one live leaf: the winner of a conflict cannot know
    whether its competitor already handed the same messages out. It keeps its leaf; the loser deletes its own."""
    db = couch.db(config.db_sentinel)
    await two_leaves(db, "settle-alone")
    assert not await db.settle("settle-alone", "2-fff", 0, alone=True), "CouchDB's winner, but not alone"
    assert not await db.settle("settle-alone", "2-aaa", 0, alone=True), "the loser"
    stored = await db.get("settle-alone", conflicts=True)
    assert stored["_rev"] == "2-fff" and not stored.get("_conflicts"), "the winner's leaf is kept"
    assert await db.settle("settle-alone", "2-fff", 0, alone=True), "alone once the loser's leaf is gone"


def test_a_claim_waits_as_long_as_writes_take_now():
    """A competing claim issued before ours returned lands about as late as writes land now: the cluster
    test saw a message handed out twice when writes took 3-9 s and claims settled after 0.5 s."""
    couch = Couch("http://127.0.0.1:9", None, None)
    assert couch.settle_wait() == 0.5
    couch._note_write(0.2)
    assert couch.settle_wait() == 0.5
    couch._note_write(4.0)
    couch._note_write(1.0)
    assert couch.settle_wait() == 4.0, "the slowest recent write"
    couch._note_write(60.0)
    assert couch.settle_wait() == 10.0, "bounded"


async def test_a_claims_read_is_the_newest_copy(couch, config):
    db = couch.db(config.db_sentinel)
    await db.put({"_id": "latest-read", "n": 1})
    doc = await db.get("latest-read")
    await db.put({**doc, "n": 2})
    assert (await db.get_many(["latest-read", "latest-missing"], latest=True)) == {
        "latest-read": await db.get("latest-read")}


async def test_a_read_answered_nodedown_twice_is_sent_a_third_time(aiohttp_server):
    """Found by the cluster test: reads in flight when a node was SIGKILLed got CouchDB's 500 "nodedown" on the
    retry too. A stand-in for the coordinator answers it twice (the HTTP exchange is real)."""
    from aiohttp import web

    asked = []

    async def doc(request: web.Request) -> web.Response:
        asked.append(request.method)
        if request.method == "GET" and len(asked) <= 2:
            return web.json_response({"error": "nodedown", "reason": "progress not possible"}, status=500)
        if request.method == "PUT":
            return web.json_response({"error": "nodedown", "reason": "progress not possible"}, status=500)
        return web.json_response({"_id": "x", "_rev": "1-a"})

    app = web.Application()
    app.router.add_route("*", "/db/x", doc)
    server = await aiohttp_server(app)
    async with Couch(str(server.make_url("")).rstrip("/"), "admin", "pw") as couch:
        assert (await couch.db("db").get("x"))["_rev"] == "1-a"
        assert couch.retries == 2
        with pytest.raises(ServiceUnavailable):
            await couch.db("db").put({"_id": "x"}, w=1)
        assert couch.retries == 2 and asked.count("PUT") == 1, "a write is never sent twice"


@pytest.fixture
def haproxy_without_nodes(tmp_path):
    """A real HAProxy (the Debian package) whose only CouchDB is gone: it answers 503 itself."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if binary is None:
        pytest.skip("HAProxy is not installed")
    port, gone = free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(f"""defaults
    mode http
    timeout connect 200ms
    timeout client 5s
    timeout server 5s
frontend couchdb
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    server gone 127.0.0.1:{gone}
""")
    proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and proc.poll() is None, "haproxy did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


async def test_a_read_is_sent_once_more_after_a_proxys_5xx_and_a_write_never(haproxy_without_nodes):
    async with Couch(haproxy_without_nodes, "admin", "pw") as couch:
        with pytest.raises(ServiceUnavailable):
            await couch.db("db").get("x")
        assert couch.retries == 1
        with pytest.raises(ServiceUnavailable):
            await couch.db("db").put({"_id": "x"}, w=1)
        assert couch.retries == 1, "a write is never sent twice"
