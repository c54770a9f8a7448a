"""The CouchDB layer against the real server: typed errors, bulk order, views, changes."""

import asyncio

import pytest

from api.couch import Couch, CouchError, bulk_get_leaves, match_results, winning_leaf
from api.errors import Conflict, NotFound, ServiceUnavailable
from scripts.couchdb import free_port


@pytest.fixture
def db(couch, config):
    return couch.db(config.db_medic)


async def test_get_put_delete_and_typed_errors(db):
    doc = {"_id": "couch-layer-1", "type": "thing", "n": 1}
    result = await db.put(doc)
    assert result["ok"] and doc["_rev"] == result["rev"]
    assert (await db.get("couch-layer-1"))["n"] == 1
    with pytest.raises(Conflict):
        await db.put({"_id": "couch-layer-1", "n": 2})
    await db.delete("couch-layer-1", doc["_rev"])
    with pytest.raises(NotFound):
        await db.get("couch-layer-1")
    assert await db.get_or_none("couch-layer-1") is None


async def test_ids_with_slashes_and_unicode_round_trip(db):
    doc_id = "a/b c?d#é"
    await db.put({"_id": doc_id, "x": 1})
    assert (await db.get(doc_id))["_id"] == doc_id


async def test_bulk_docs_results_follow_request_order(db):
    docs = [{"_id": f"bulk-{i:04d}", "i": i} for i in range(1000)]
    docs[500] = {"i": 500}  # no id: the layer assigns one
    results = await db.bulk_docs(docs)
    assert len(results) == 1000
    assert [r["id"] for r in results] == [d["_id"] for d in docs]
    assert all(r.get("ok") for r in results)
    again = await db.bulk_docs([{"_id": "bulk-0001"}, {"_id": "bulk-new"}])
    assert again[0]["error"] == "conflict" and again[1]["ok"]


def test_match_results_reorders_by_id():
    docs = [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]
    results = [{"id": "c", "rev": "3"}, {"id": "a", "rev": "1"}]
    assert match_results(docs, results) == [
        {"id": "a", "rev": "1"},
        {"id": "b", "error": "unknown_error", "reason": "no result from CouchDB"},
        {"id": "c", "rev": "3"},
    ]


async def test_all_docs_and_get_many(db):
    await db.bulk_docs([{"_id": "many-1"}, {"_id": "many-2"}])
    found = await db.get_many(["many-2", "missing", "many-1"])
    assert set(found) == {"many-1", "many-2"}


def _leaf(doc_id: str, history: list[str], **body):
    """A revision with its history (newest first), as a replicator writes it."""
    return {"_id": doc_id, "_rev": f"{len(history)}-{history[0]}",
            "_revisions": {"start": len(history), "ids": history}, **body}


async def test_get_many_serves_the_revision_couchdb_serves(db):
    """``_bulk_get`` answers every leaf of a conflicted doc: the one kept is the one a GET returns, and a doc
    whose winner is a deletion is left out, as is a deleted doc."""
    a, b, c, f, one = "a" * 32, "b" * 32, "c" * 32, "f" * 32, "1" * 32
    await db.bulk_docs([_leaf("leaves", [a, c], side="a"), _leaf("leaves", [f, c], side="f"),
                        _leaf("leaves", [one, b, c], _deleted=True),
                        _leaf("all-gone", [c], _deleted=True)], new_edits=False)
    stored = await db.put({"_id": "many-deleted"})
    await db.delete("many-deleted", stored["rev"])
    found = await db.get_many(["leaves", "all-gone", "many-deleted", "_design", "_local/none", ""])
    assert found["leaves"] == await db.get("leaves") and found["leaves"]["side"] == "f"
    assert set(found) == {"leaves"}, "deleted, missing and impossible ids are left out"


def test_the_winning_leaf_is_ranked_as_couchdb_ranks_it():
    live_low, live_high = {"_rev": "2-" + "0" * 32}, {"_rev": "2-" + "e" * 32}
    assert winning_leaf([live_low, live_high]) is live_high
    assert winning_leaf([{"_rev": "9-" + "f" * 32, "_deleted": True}, live_low]) is live_low
    assert winning_leaf([{"_rev": "10-" + "0" * 32}, {"_rev": "9-" + "f" * 32}])["_rev"].startswith("10-")
    assert winning_leaf([{"_rev": "1-a", "_deleted": True}]) is None
    assert winning_leaf([None]) is None and winning_leaf([]) is None


def test_a_bulk_get_error_is_not_taken_for_a_missing_doc():
    """Only ``not_found`` means missing; an error reading a copy, or an id left unanswered, fails the read."""
    missing = {"error": {"id": "b", "rev": "undefined", "error": "not_found", "reason": "missing"}}
    illegal = {"error": {"id": "_design", "rev": None, "error": "illegal_docid", "reason": "underscore"}}
    body = {"results": [{"id": "a", "docs": [{"ok": {"_id": "a", "_rev": "1-x"}}]},
                        {"id": "b", "docs": [missing]}, {"id": "c", "docs": [{}]},  # c: pouchdb-server's
                        {"id": "_design", "docs": [illegal]}]}
    assert bulk_get_leaves(body, ["a", "b", "c", "_design"]) == \
        {"a": [{"_id": "a", "_rev": "1-x"}], "b": [], "c": [], "_design": []}
    failed = {"results": [{"id": "a", "docs": [{"error": {"id": "a", "error": "timeout", "reason": "copy"}}]}]}
    with pytest.raises(ServiceUnavailable, match="timeout"):
        bulk_get_leaves(failed, ["a"])
    with pytest.raises(ServiceUnavailable, match="left out 1"):
        bulk_get_leaves({"results": body["results"][:1]}, ["a", "b"])


async def test_get_many_reads_more_ids_than_one_bulk_get_takes(db, monkeypatch):
    monkeypatch.setattr("api.couch.BULK_GET_AT_ONCE", 3)
    await db.bulk_docs([{"_id": f"chunked-{i}"} for i in range(7)])
    found = await db.get_many([f"chunked-{i}" for i in range(8)])
    assert sorted(found) == [f"chunked-{i}" for i in range(7)]


async def test_view_with_keys_and_paging(db):
    await db.bulk_docs([{"_id": f"typed-{i}", "type": "pager"} for i in range(25)])
    rows = (await db.view("medic-client", "doc_by_type", key=["pager"]))["rows"]
    assert len(rows) == 25
    by_keys = await db.view("medic-client", "doc_by_type", keys=[["pager"], ["nothing"]])
    assert len(by_keys["rows"]) == 25
    paged = [row["id"] async for row in db.iter_view("medic-client", "doc_by_type", page_size=7,
                                                    startkey=["pager"], endkey=["pager"])]
    assert paged == sorted(f"typed-{i}" for i in range(25))


async def test_changes_longpoll_times_out_on_our_side(db):
    since = (await db.info())["update_seq"]
    body = await db.changes(since=since, feed="longpoll", timeout=1000, client_timeout=1)
    assert body["results"] == []
    # seqs are opaque: CouchDB lists a clustered seq's shards in an order of its own in GET /db and in
    # _changes, so the two strings may differ for one position. What matters: nothing follows it.
    assert await db.pending_changes(body["last_seq"]) == 0


async def test_pending_changes_counts_what_follows_a_seq(db):
    since = (await db.info())["update_seq"]
    await db.bulk_docs([{"_id": f"pending-{i}"} for i in range(12)])
    assert await db.pending_changes(since) == 12
    assert await db.pending_changes((await db.info())["update_seq"]) == 0


async def test_local_docs_overwrite(db):
    await db.put_local("layer-test", {"seq": 1})
    await db.put_local("layer-test", {"seq": 2})
    assert (await db.get_local("layer-test"))["seq"] == 2


async def test_attachments_round_trip(db):
    doc = {"_id": "with-attachment"}
    await db.put(doc)
    result = await db.put_attachment("with-attachment", "x.xml", b"<x/>", "application/xml", doc["_rev"])
    assert result["ok"]
    body, content_type = await db.get_attachment("with-attachment", "x.xml")
    assert body == b"<x/>" and content_type.startswith("application/xml")


async def test_bad_requests_are_couch_errors(db):
    with pytest.raises(CouchError) as raised:
        await db.put({"_id": "_reserved"})
    assert raised.value.couch_status == 400 and raised.value.status == 500


async def test_unreachable_server_is_service_unavailable():
    async with Couch(f"http://127.0.0.1:{free_port()}", "admin", "x", timeout=2) as couch:
        with pytest.raises(ServiceUnavailable):
            await couch.info()
        with pytest.raises(ServiceUnavailable):
            await couch.db("medic").get("x")


async def test_concurrent_requests_share_the_pool(db):
    await db.put({"_id": "pool-doc"})
    docs = await asyncio.gather(*(db.get("pool-doc") for _ in range(50)))
    assert all(d["_id"] == "pool-doc" for d in docs)


async def test_config_section_reads_the_server_configuration(couch):
    # CouchDB 3 at /_node/_local/_config, pouchdb-server at /_config: both set the server's uuid.
    assert (await couch.config_section("couchdb")).get("uuid")
    assert await couch.config_section("no-such-section-anywhere") == {}
