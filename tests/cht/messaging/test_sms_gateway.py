"""POST /api/sms, the cht-gateway protocol, against the real server."""

import asyncio
import datetime as dt
import time

import pytest

from api.cht import messages
from api.cht.messaging import gateway as sms
from api.cht.messaging.records import gateway_doc_id
from tests.helpers import admin_headers, basic, user_prefix

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture
async def gateway(make_user, couch, config):
    name = user_prefix(config) + "gw"
    if not await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{name}"):
        await make_user("gw", ["gateway"])
    return basic(name)


@pytest.fixture
async def medic(couch, config):
    return couch.db(config.db_medic)


@pytest.fixture(autouse=True)
async def gateway_settings(client, config):
    await client.put("/api/v1/settings?replace=true", headers=admin_headers(config), json={
        "sms": {"outgoing_service": "cht-gateway"},
        "forms": {"YYYZ": {"fields": {"nurse": {"type": "string", "required": True},
                                      "week": {"type": "integer"}}}}})


async def pending_docs(medic, prefix, count, per_doc=1, to="0712345678"):
    """Docs with pending outgoing messages; returns every message uuid."""
    docs, uuids = [], []
    for i in range(count):
        doc = {"_id": f"{prefix}-{i}", "type": "data_record", "reported_date": 1}
        for j in range(per_doc):
            uuid = messages.message_uuid(prefix, i, j)
            messages.add_task(doc, messages.new_task(to, f"hello {i}.{j}", uuid, NOW))
            uuids.append(uuid)
        docs.append(doc)
    results = await medic.bulk_docs(docs)
    assert all(r.get("ok") for r in results)
    return uuids


async def drain(client, gateway):
    """Poll until nothing is handed out; returns every message handed out."""
    out = []
    while True:
        response = await client.post("/api/sms", json={}, headers=gateway)
        assert response.status == 200
        batch = (await response.json())["messages"]
        if not batch:
            return out
        out.extend(batch)


async def test_connection_test_and_permissions(client, gateway, make_user, config):
    response = await client.get("/api/sms", headers=gateway)
    assert response.status == 200 and await response.json() == {"medic-gateway": True}
    chw = basic(await make_user("gw-chw", ["chw"]))
    assert (await client.get("/api/sms")).status == 401
    assert (await client.get("/api/sms", headers=chw)).status == 403
    assert (await client.post("/api/sms", json={}, headers=chw)).status == 403
    assert (await client.post("/api/sms", json={})).status == 401
    assert (await client.post("/api/sms", json={}, headers=admin_headers(config))).status == 200


async def test_incoming_messages_are_stored_once(client, gateway, medic):
    body = {"messages": [
        {"id": "gw-in-1", "from": "0722000111", "content": "1!YYYZ!Sam#23", "sms_sent": 1,
         "sms_received": 1700000000000},
        {"id": "gw-in-2", "from": "+254722000111", "content": "Hello there"},
        {"id": "gw-in-3", "from": "+254722000111"},
        {"id": "gw-in-4"},
        {"id": "gw-in-1", "from": "0722000111", "content": "1!YYYZ!Sam#23"},
    ]}
    response = await client.post("/api/sms", json=body, headers=gateway)
    assert response.status == 200 and await response.json() == {"messages": []}
    report = await medic.get(gateway_doc_id("gw-in-1"))
    assert report["form"] == "YYYZ" and report["fields"] == {"nurse": "Sam", "week": 23}
    assert report["from"] == "+254722000111" and report["reported_date"] == 1700000000000
    assert report["sms_message"]["gateway_ref"] == "gw-in-1"
    plain = await medic.get(gateway_doc_id("gw-in-2"))
    assert "form" not in plain and plain["sms_message"]["message"] == "Hello there"
    empty = await medic.get(gateway_doc_id("gw-in-3"))
    assert empty["errors"][0]["code"] == "sys.empty"
    assert await medic.get_or_none(gateway_doc_id("gw-in-4")) is None
    rev = report["_rev"]
    await asyncio.gather(*(client.post("/api/sms", json=body, headers=gateway) for _ in range(5)))
    assert (await medic.get(gateway_doc_id("gw-in-1")))["_rev"] == rev


async def test_timestamps_may_be_strings(client, gateway, medic):
    """cht-conf's upload-sms-from-csv sends the CSV's text; an unusable value means "now", never a refusal."""
    body = {"messages": [
        {"id": "gw-ts-1", "from": "+254722000111", "content": "a", "sms_sent": "1700000000000",
         "sms_received": "1700000300000"},
        {"id": "gw-ts-2", "from": "+254722000111", "content": "b", "sms_received": "2023-11-14T22:13:20Z"},
        {"id": "gw-ts-3", "from": "+254722000111", "content": "c", "sms_received": "yesterday"},
    ]}
    before = int(time.time() * 1000)
    response = await client.post("/api/sms", json=body, headers=gateway)
    assert response.status == 200
    assert (await medic.get(gateway_doc_id("gw-ts-1")))["reported_date"] == 1700000300000
    assert (await medic.get(gateway_doc_id("gw-ts-2")))["reported_date"] == 1700000000000
    assert (await medic.get(gateway_doc_id("gw-ts-3")))["reported_date"] >= before
    refused = await client.post("/api/sms", json={"messages": [{"id": "x", "sms_sent": True}]}, headers=gateway)
    assert refused.status == 400 and (await refused.json())["field"] == "messages.0.sms_sent"


async def test_pending_messages_are_handed_out_once_and_marked(client, gateway, medic):
    uuids = await pending_docs(medic, "out", 3)
    response = await client.post("/api/sms", json={}, headers=gateway)
    handed = (await response.json())["messages"]
    assert sorted(m["id"] for m in handed) == sorted(uuids)
    assert {m["to"] for m in handed} == {"+254712345678"}
    assert {m["content"] for m in handed} == {"hello 0.0", "hello 1.0", "hello 2.0"}
    doc = await medic.get("out-0")
    assert doc["tasks"][0]["state"] == "forwarded-to-gateway"
    assert [h["state"] for h in doc["tasks"][0]["state_history"]] == ["pending", "forwarded-to-gateway"]
    assert await drain(client, gateway) == []


async def test_concurrent_polls_never_share_a_message(client, gateway, medic):
    uuids = await pending_docs(medic, "race", 40, per_doc=2)

    async def poller():
        return await drain(client, gateway)

    batches = await asyncio.gather(*(poller() for _ in range(8)))
    handed = [m["id"] for batch in batches for m in batch]
    assert len(handed) == len(set(handed)), "a message was handed out twice"
    assert sorted(handed) == sorted(uuids)


def short_writes(monkeypatch, db, count):
    """The first ``count`` writes through ``db`` ask for one copy more than there are: Apache CouchDB (a node
    or a cluster) answers 202 (``accepted``), as a cluster does when a copy is slow to take a write."""
    real = db._write_params
    calls = []

    async def params(given):
        out = await real(given)
        if len(calls) < count:
            out["w"] = out.get("w", 1) + 1
        calls.append(out)
        return out
    monkeypatch.setattr(db, "_write_params", params)
    return calls


async def test_a_claim_taken_by_fewer_copies_is_confirmed_before_it_is_handed_out(client, gateway, medic, monkeypatch):
    if not await medic.couch.is_apache_couchdb():
        pytest.skip("pouchdb-server ignores w: its writes are never 202")
    await drain(client, gateway)
    uuids = await pending_docs(medic, "fewer", 2)
    short_writes(monkeypatch, medic, 1)
    handed = await sms.claim_outgoing(medic, {})
    assert sorted(m["id"] for m in handed) == sorted(uuids)
    doc = await medic.get("fewer-0", conflicts=True)
    assert doc["_rev"].startswith("3-"), "the 202 claim, then its confirmation written on top of it"
    assert not doc.get("_conflicts") and doc["tasks"][0]["state"] == "forwarded-to-gateway"


async def test_an_unconfirmed_claim_hands_nothing_out_until_redelivery(client, gateway, medic, monkeypatch):
    """The cluster test once saw two claims told 202 each settle as the winner: a claim no live copy but some
    took is never handed out; its messages wait for ``gateway_redeliver_minutes``, then go out once."""
    if not await medic.couch.is_apache_couchdb():
        pytest.skip("pouchdb-server ignores w: its writes are never 202")
    await drain(client, gateway)
    uuids = await pending_docs(medic, "unconfirmed", 2)
    short_writes(monkeypatch, medic, 10)
    assert await sms.claim_outgoing(medic, {}) == []
    doc = await medic.get("unconfirmed-0", conflicts=True)
    assert doc["tasks"][0]["state"] == "forwarded-to-gateway" and not doc.get("_conflicts")
    monkeypatch.undo()
    assert await drain(client, gateway) == [], "not before the redelivery window"
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=16)
    handed = [m["id"] for m in await sms.claim_outgoing(medic, {}, now=later, limit=10_000) if m["id"] in uuids]
    assert sorted(handed) == sorted(uuids)
    again = await sms.claim_outgoing(medic, {}, now=later, limit=10_000)
    assert not [m for m in again if m["id"] in uuids], "handed out once"


async def test_status_updates_move_the_state_with_history(client, gateway, medic):
    [uuid] = await pending_docs(medic, "status", 1)
    await drain(client, gateway)
    updates = [{"id": uuid, "status": s} for s in ("UNSENT", "PENDING", "SENT", "DELIVERED")]
    response = await client.post("/api/sms", json={"updates": updates}, headers=gateway)
    assert response.status == 200
    task = (await medic.get("status-0"))["tasks"][0]
    assert task["state"] == "delivered"
    assert [h["state"] for h in task["state_history"]] == [
        "pending", "forwarded-to-gateway", "received-by-gateway", "forwarded-by-gateway", "sent", "delivered"]
    # as cht-core: every report is applied in the order it comes, a late SENT after DELIVERED included
    late = [{"id": uuid, "status": "SENT"}, {"id": "no-such", "status": "SENT"}]
    assert (await client.post("/api/sms", json={"updates": late}, headers=gateway)).status == 200
    task = (await medic.get("status-0"))["tasks"][0]
    assert task["state"] == "sent" and task["state_history"][-1]["state"] == "sent"
    again = await client.post("/api/sms", json={"updates": [{"id": uuid, "status": "SENT"}]}, headers=gateway)
    assert again.status == 200  # the same state again, without details: nothing recorded
    assert len((await medic.get("status-0"))["tasks"][0]["state_history"]) == len(task["state_history"])


@pytest.mark.parametrize("update, details", [
    ({"status": "WEIRD"}, {"gateway_status": "WEIRD"}),
    ({"status": "sent"}, {"gateway_status": "sent"}),  # statuses are read as written, as cht-core
    ({"status": None}, {"gateway_status": None}),
    ({}, {}),
])
async def test_unknown_or_missing_status_is_recorded_unrecognised(client, gateway, medic, update, details):
    [uuid] = await pending_docs(medic, "odd", 1)
    await drain(client, gateway)
    response = await client.post("/api/sms", json={"updates": [{"id": uuid, **update}]}, headers=gateway)
    assert response.status == 200 and "messages" in await response.json()
    task = (await medic.get("odd-0"))["tasks"][0]
    assert task["state"] == "unrecognised" and task["state_details"] == details
    last = task["state_history"][-1]
    assert last["state"] == "unrecognised" and last["state_details"] == details and last["timestamp"].endswith("Z")
    # a report with details is recorded every time, as cht-core
    await client.post("/api/sms", json={"updates": [{"id": uuid, **update}]}, headers=gateway)
    assert len((await medic.get("odd-0"))["tasks"][0]["state_history"]) == len(task["state_history"]) + 1
    await medic.delete("odd-0", (await medic.get("odd-0"))["_rev"])


async def test_failed_with_reason(client, gateway, medic):
    [uuid] = await pending_docs(medic, "failing", 1)
    await drain(client, gateway)
    updates = [{"id": uuid, "status": "FAILED", "reason": "generic failure"}]
    await client.post("/api/sms", json={"updates": updates}, headers=gateway)
    task = (await medic.get("failing-0"))["tasks"][0]
    assert task["state"] == "failed" and task["state_details"] == {"reason": "generic failure"}
    await client.post("/api/sms", json={"updates": [{"id": uuid, "status": "SENT"}]}, headers=gateway)
    assert (await medic.get("failing-0"))["tasks"][0]["state"] == "sent"  # the gateway retried


async def test_quiet_handed_out_messages_are_handed_out_again(client, gateway, medic):
    now = dt.datetime.now(dt.timezone.utc)  # not the module's NOW: the suite may have run for many minutes
    long_ago = now - dt.timedelta(minutes=30)
    doc = {"_id": "quiet", "type": "data_record"}
    task = messages.new_task("+254712345678", "are you there", "quiet-1", long_ago)
    messages.set_state(task, "forwarded-to-gateway", long_ago)
    messages.add_task(doc, task)
    recent = messages.new_task("+254712345678", "just sent", "quiet-2", now)
    messages.set_state(recent, "forwarded-to-gateway", now)
    messages.add_task(doc, recent)
    await medic.put(doc)
    handed = await drain(client, gateway)
    assert [m["id"] for m in handed] == ["quiet-1"]
    assert (await medic.get("quiet"))["tasks"][0]["state_details"] == {"redelivered": 1}


async def test_unsendable_messages_fail_instead_of_blocking(client, gateway, medic):
    doc = {"_id": "unsendable", "type": "data_record"}
    messages.add_task(doc, messages.new_task("", "to nobody", "nobody-1", NOW))
    await medic.put(doc)
    assert await drain(client, gateway) == []
    task = (await medic.get("unsendable"))["tasks"][0]
    assert task["state"] == "failed" and task["state_details"] == "no recipient or no text"


async def test_no_hand_out_when_an_aggregator_sends(client, gateway, medic, config):
    await pending_docs(medic, "agg", 1)
    await client.put("/api/v1/settings", headers=admin_headers(config),
                     json={"sms": {"outgoing_service": "africas-talking"}})
    assert await drain(client, gateway) == []
    assert (await medic.get("agg-0"))["tasks"][0]["state"] == "pending"


@pytest.mark.parametrize("body, field", [
    ({"messages": "hello"}, "messages"),
    ({"updates": [1]}, "updates.0"),
    ({"messages": [{"from": 7}]}, "messages.0.from"),
])
async def test_bad_polls_are_400(client, gateway, body, field):
    response = await client.post("/api/sms", json=body, headers=gateway)
    assert response.status == 400 and (await response.json())["field"] == field


async def test_invalid_json_is_400(client, gateway):
    response = await client.post("/api/sms", data=b"{", headers={**gateway, "Content-Type": "application/json"})
    assert response.status == 400
