"""RapidPro and Africa's Talking: webhooks through the API, and the sentinel's sender against a local fake."""

import datetime as dt
import logging

import pytest
from aiohttp import web

from api.cht import messages
from api.cht.messaging.records import gateway_doc_id
from api.credentials import CredentialStore
from api.settings import SettingsStore
from sentinel import sms_sender
from sentinel.app import build
from tests.helpers import admin_headers

INCOMING = "incoming-shared-key-9f8e"
OUTGOING = "outgoing-api-key-1a2b"
def now() -> dt.datetime:
    """The time when asked, not when the module was imported: the suite runs for many minutes."""
    return dt.datetime.now(dt.timezone.utc)


@pytest.fixture
async def store(couch, config):
    return CredentialStore.from_config(couch, config)


@pytest.fixture
async def keys(store):
    for name in ("rapidpro:incoming", "africastalking.com:incoming"):
        await store.set(name, INCOMING)
    for name in ("rapidpro:outgoing", "africastalking.com:outgoing"):
        await store.set(name, OUTGOING)


@pytest.fixture
async def medic(couch, config):
    return couch.db(config.db_medic)


@pytest.fixture(autouse=True)
async def nothing_pending(medic):
    """Each test starts with no message waiting (the module's databases are shared)."""
    rows = (await medic.view("medic", "messages_by_state", reduce=False, startkey=["pending"], endkey=["pending", {}]))["rows"]
    docs = list((await medic.get_many(row["id"] for row in rows)).values())
    for doc in docs:
        for task in doc.get("tasks") or []:
            if task.get("state") == "pending":
                messages.set_state(task, "cleared", now())
    await medic.bulk_docs(docs)


async def set_sms(client, config, sms_settings):
    response = await client.put("/api/v1/settings?replace=true", json={"sms": sms_settings},
                                headers=admin_headers(config))
    assert response.status == 200


async def outgoing_docs(medic, prefix, count, state="pending", gateway_ref=None):
    docs, uuids = [], []
    for i in range(count):
        uuid = messages.message_uuid(prefix, i)
        task = messages.new_task("0712345678" if i % 2 else "+254712000000", f"msg {prefix} {i}", uuid, now())
        if state != "pending":
            messages.set_state(task, state, now())
        if gateway_ref:
            task["gateway_ref"] = f"{gateway_ref}{i}"
        doc = {"_id": f"{prefix}-{i}", "type": "data_record"}
        messages.add_task(doc, task)
        docs.append(doc)
        uuids.append(uuid)
    assert all(r.get("ok") for r in await medic.bulk_docs(docs))
    return uuids


async def task_of(medic, doc_id):
    return (await medic.get(doc_id))["tasks"][0]


# -- webhooks --------------------------------------------------------------------------


async def test_rapidpro_incoming(client, keys, medic, caplog):
    body = {"id": "rp-1", "from": "0722000111", "content": "Hello from RapidPro"}
    headers = {"Authorization": f"Token {INCOMING}"}
    with caplog.at_level(logging.DEBUG):
        response = await client.post("/api/v1/sms/rapidpro/incoming-messages", json=body, headers=headers)
    assert response.status == 200 and await response.json() == {"saved": 1, "duplicates": 0}
    doc = await medic.get(gateway_doc_id("rp-1"))
    assert doc["from"] == "+254722000111" and doc["sms_message"]["message"] == "Hello from RapidPro"
    again = await client.post("/api/v2/sms/rapidpro/incoming-messages", json=body, headers=headers)
    assert await again.json() == {"saved": 0, "duplicates": 1}
    legacy = await client.post("/api/v1/sms/radpidpro/incoming-messages", json={**body, "id": "rp-2"},
                               headers=headers)
    assert legacy.status == 200 and (await legacy.json())["saved"] == 1
    assert INCOMING not in caplog.text


async def test_africastalking_incoming_form_encoded_with_key_in_query(client, keys, medic):
    response = await client.post(f"/api/v1/sms/africastalking/incoming-messages?key={INCOMING}", data={
        "id": "ATXid_1", "from": "+254722000111", "to": "40123", "text": "1!P!Mary#12", "date": "2024-01-01"})
    assert response.status == 200 and (await response.json())["saved"] == 1
    doc = await medic.get(gateway_doc_id("ATXid_1"))
    assert doc["form"] == "P" and doc["fields"] == {"patient_name": "Mary", "lmp": 12}


@pytest.mark.parametrize("path, headers, status", [
    ("/api/v1/sms/rapidpro/incoming-messages", {}, 401),
    ("/api/v1/sms/rapidpro/incoming-messages", {"Authorization": "Token wrong"}, 401),
    ("/api/v1/sms/rapidpro/incoming-messages", {"Authorization": f"Bearer {INCOMING}"}, 401),
    ("/api/v1/sms/africastalking/incoming-messages?key=wrong", {}, 401),
    ("/api/v1/sms/nexmo/incoming-messages", {"Authorization": f"Token {INCOMING}"}, 404),
    ("/api/v1/sms/rapidpro/outgoing", {"Authorization": f"Token {INCOMING}"}, 404),
])
async def test_webhook_refusals(client, keys, path, headers, status):
    response = await client.post(path, json={"id": "x", "from": "+1", "content": "x"}, headers=headers)
    assert response.status == status


async def forget(couch, config, name):
    """Remove a credential (the API has no delete: an admin removes the vault doc)."""
    vault = couch.db(config.db_vault)
    doc = await vault.get_or_none(f"credential:{name}")
    if doc:
        await vault.delete(doc["_id"], doc["_rev"])


async def test_webhook_without_a_configured_key_is_forbidden(client, couch, config):
    await forget(couch, config, "rapidpro:incoming")
    response = await client.post("/api/v1/sms/rapidpro/incoming-messages", json={"id": "x", "from": "+1"},
                                 headers={"Authorization": "Token anything"})
    assert response.status == 403


@pytest.mark.parametrize("body, field", [
    ({"from": "+1", "content": "x"}, "id"),
    ({"id": "x", "content": "x"}, "from"),
    ({"id": "x", "from": ["+1"]}, "from"),
])
async def test_webhook_bad_bodies(client, keys, body, field):
    response = await client.post("/api/v1/sms/rapidpro/incoming-messages", json=body,
                                 headers={"Authorization": f"Token {INCOMING}"})
    assert response.status == 400 and (await response.json())["field"] == field


async def test_delivery_reports(client, keys, medic):
    await outgoing_docs(medic, "dlr-at", 2, state="forwarded-by-gateway", gateway_ref="ATXid_dlr")
    ok = await client.post(f"/api/v1/sms/africastalking/delivery-reports?key={INCOMING}",
                           data={"id": "ATXid_dlr0", "status": "Success"})
    assert ok.status == 200 and await ok.json() == {"saved": 1}
    assert (await task_of(medic, "dlr-at-0"))["state"] == "delivered"
    failed = await client.post(f"/api/v1/sms/africastalking/delivery-reports?key={INCOMING}",
                               data={"id": "ATXid_dlr1", "status": "Failed", "failureReason": "InsufficientCredit"})
    assert failed.status == 200
    task = await task_of(medic, "dlr-at-1")
    assert task["state"] == "failed" and task["state_details"] == "InsufficientCredit"
    unknown = await client.post(f"/api/v1/sms/africastalking/delivery-reports?key={INCOMING}",
                                data={"id": "ATXid_dlr1", "status": "Lost"})
    assert unknown.status == 400 and (await unknown.json())["field"] == "status"
    nobody = await client.post(f"/api/v1/sms/africastalking/delivery-reports?key={INCOMING}",
                               data={"id": "no-such-ref", "status": "Success"})
    assert await nobody.json() == {"saved": 0}

    await outgoing_docs(medic, "dlr-rp", 1, state="received-by-gateway", gateway_ref="77")
    rp = await client.post("/api/v1/sms/rapidpro/delivery-reports", json={"id": 770, "status": "wired"},
                           headers={"Authorization": f"Token {INCOMING}"})
    assert rp.status == 200
    assert (await task_of(medic, "dlr-rp-0"))["state"] == "forwarded-by-gateway"


# -- the sender ------------------------------------------------------------------------


class FakeAggregators:
    """RapidPro's and Africa's Talking's APIs, as much of them as the sender uses."""

    def __init__(self):
        self.broadcasts = []
        self.at_messages = []
        self.polls = []
        self.at_status = {}  # number -> status code
        self.rapidpro_status = {}  # broadcast id -> status
        self.fail_with = None

    def app(self):
        app = web.Application()
        app.router.add_post("/api/v2/broadcasts.json", self.broadcast)
        app.router.add_get("/api/v2/messages.json", self.messages)
        app.router.add_post("/version1/messaging", self.messaging)
        return app

    async def broadcast(self, request):
        if self.fail_with:
            return web.json_response({"detail": "down"}, status=self.fail_with)
        if request.headers.get("Authorization") != f"Token {OUTGOING}":
            return web.json_response({"detail": "Invalid token"}, status=403)
        body = await request.json()
        self.broadcasts.append(body)
        return web.json_response({"id": 1000 + len(self.broadcasts), "urns": body["urns"], "text": body["text"],
                                  "status": "queued"}, status=201)

    async def messages(self, request):
        broadcast = request.query["broadcast"]
        self.polls.append(broadcast)
        return web.json_response({"results": [{"status": self.rapidpro_status.get(broadcast, "queued")}]})

    async def messaging(self, request):
        if request.headers.get("apiKey") != OUTGOING:
            return web.Response(text="The supplied authentication is invalid", status=401)
        form = await request.post()
        self.at_messages.append(dict(form))
        code = self.at_status.get(form["to"], 101)
        status = {101: "Success", 403: "InvalidPhoneNumber", 405: "InsufficientBalance"}[code]
        return web.json_response({"SMSMessageData": {"Message": "Sent to 1/1", "Recipients": [{
            "statusCode": code, "number": form["to"], "status": status, "cost": "KES 0.8000",
            "messageId": f"ATXid_{len(self.at_messages)}" if code == 101 else "None"}]}}, status=201)


@pytest.fixture
async def fake(aiohttp_server):
    fake = FakeAggregators()
    fake.server = await aiohttp_server(fake.app())
    fake.url = str(fake.server.make_url("")).rstrip("/")
    return fake


async def run_sender(couch, config):
    settings = SettingsStore(couch.db(config.db_medic))
    return await sms_sender.send_pending(couch, config, settings, CredentialStore.from_config(couch, config))


async def test_the_job_is_registered(couch, config):
    _, jobs = build(couch, config, SettingsStore(couch.db(config.db_medic)))
    assert "send-sms" in [job.name for job in jobs]


async def test_rapidpro_send_and_poll(client, config, couch, medic, keys, fake):
    await set_sms(client, config, {"outgoing_service": "rapidpro", "rapidpro": {"url": fake.url}})
    uuids = await outgoing_docs(medic, "rp-out", 3)
    assert await run_sender(couch, config) == 3
    assert sorted(b["text"] for b in fake.broadcasts) == ["msg rp-out 0", "msg rp-out 1", "msg rp-out 2"]
    assert {b["urns"][0] for b in fake.broadcasts} == {"tel:+254712345678", "tel:+254712000000"}
    task = await task_of(medic, "rp-out-0")
    assert task["state"] == "received-by-gateway" and task["gateway_ref"].startswith("10")
    assert [h["state"] for h in task["state_history"]] == ["pending", "forwarded-to-gateway", "received-by-gateway"]
    assert {str(1001 + i) for i in range(3)} <= set(fake.polls)  # asked at once about each

    fake.rapidpro_status[task["gateway_ref"]] = "delivered"
    fake.broadcasts.clear()
    assert await run_sender(couch, config) == 0
    assert fake.broadcasts == []  # nothing sent twice
    assert (await task_of(medic, "rp-out-0"))["state"] == "delivered"
    assert len(uuids) == 3


async def test_rapidpro_down_puts_messages_back(client, config, couch, medic, keys, fake):
    await set_sms(client, config, {"outgoing_service": "rapidpro", "rapidpro": {"url": fake.url}})
    await outgoing_docs(medic, "rp-down", 2)
    fake.fail_with = 503
    assert await run_sender(couch, config) == 0
    task = await task_of(medic, "rp-down-0")
    assert task["state"] == "pending" and "503" in task["state_details"]
    fake.fail_with = None
    assert await run_sender(couch, config) == 2
    assert (await task_of(medic, "rp-down-1"))["state"] == "received-by-gateway"


async def test_rapidpro_unreachable(client, config, couch, medic, keys):
    await set_sms(client, config, {"outgoing_service": "rapidpro", "rapidpro": {"url": "http://127.0.0.1:9"}})
    await outgoing_docs(medic, "rp-gone", 1)
    assert await run_sender(couch, config) == 0
    assert (await task_of(medic, "rp-gone-0"))["state"] == "pending"


async def test_africastalking_send(client, config, couch, medic, keys, fake):
    await set_sms(client, config, {"outgoing_service": "africas-talking", "reply_to": "40123",
                                   "africas_talking": {"username": "sandbox", "url": fake.url + "/version1/messaging"}})
    await outgoing_docs(medic, "at-out", 2)
    fake.at_status["+254712345678"] = 403  # the odd-numbered doc's recipient
    assert await run_sender(couch, config) == 2
    sent = await task_of(medic, "at-out-0")
    assert sent["state"] == "sent" and sent["gateway_ref"].startswith("ATXid_")
    refused = await task_of(medic, "at-out-1")
    assert refused["state"] == "failed" and refused["state_details"] == "InvalidPhoneNumber"
    assert {m["username"] for m in fake.at_messages} == {"sandbox"}
    assert {m["from"] for m in fake.at_messages} == {"40123"}


async def test_africastalking_without_credit_stops_and_retries_later(client, config, couch, medic, keys, fake):
    await set_sms(client, config, {"outgoing_service": "africas-talking",
                                   "africas_talking": {"username": "jamii", "url": fake.url + "/version1/messaging"}})
    await outgoing_docs(medic, "at-credit", 3)
    fake.at_status.update({"+254712000000": 405, "+254712345678": 405})
    assert await run_sender(couch, config) == 0
    assert len(fake.at_messages) == 1  # stopped after the first refusal
    states = [(await task_of(medic, f"at-credit-{i}"))["state"] for i in range(3)]
    assert states == ["pending"] * 3


async def test_nothing_is_sent_without_configuration(client, config, couch, medic, store, fake):
    await outgoing_docs(medic, "unconf", 1)
    await set_sms(client, config, {"outgoing_service": "cht-gateway"})
    assert await run_sender(couch, config) == 0
    await set_sms(client, config, {"outgoing_service": "rapidpro"})  # no url
    await store.set("rapidpro:outgoing", OUTGOING)
    assert await run_sender(couch, config) == 0
    await set_sms(client, config, {"outgoing_service": "africas-talking", "africas_talking": {"username": "x",
                                                                                             "url": fake.url}})
    await forget(couch, config, "africastalking.com:outgoing")
    assert await run_sender(couch, config) == 0
    assert (await task_of(medic, "unconf-0"))["state"] == "pending"
    assert fake.broadcasts == [] and fake.at_messages == []
