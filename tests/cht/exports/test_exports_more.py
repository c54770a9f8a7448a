"""The messages, contacts, feedback and user-devices exports against the real server."""

from __future__ import annotations

import csv
import io
import json

import pytest
from defusedxml.ElementTree import fromstring

from api.cht.exports import users_meta
from tests.helpers import admin_headers, basic
from tests.world import make_users

DAY = 86400000
BASE = 1704067200000  # 2024-01-01T00:00:00Z
CHW1 = {"_id": "m-chw1", "parent": {"_id": "m-cl1"}}

CONTACTS = [
    {"_id": "m-cl1", "type": "clinic", "name": "Clinic Moja", "place_id": "70001", "reported_date": 1},
    {"_id": "m-chw1", "type": "person", "name": "Alice Wanjiru", "patient_id": "12345", "parent": {"_id": "m-cl1"},
     "phone": "+254711000001", "reported_date": 1},
    {"_id": "m-chw2", "type": "person", "name": "Ali Alison", "parent": {"_id": "m-cl1"}, "reported_date": 1},
    {"_id": "m-area", "type": "contact", "contact_type": "chw_area", "name": "Area Kusini",
     "parent": {"_id": "m-cl1"}, "reported_date": 1},
]

SENT_TASK = {"messages": [{"uuid": "u-1", "to": "+254722000000", "message": "Thanks Alice, \"P\" received"}],
             "state": "sent", "state_history": [
                 {"state": "pending", "timestamp": "2024-01-01T00:00:01.000Z"},
                 {"state": "forwarded-to-gateway", "timestamp": "2024-01-01T00:00:02.000Z"},
                 {"state": "sent", "timestamp": "2024-01-01T00:00:03.000Z"}]}
SCHEDULED = {"messages": [{"uuid": "u-2", "to": "+254733000000", "message": "Visit due"}], "state": "scheduled",
             "due": "2024-02-01T08:00:00.000Z", "type": "ANC Reminders",
             "state_history": [{"state": "scheduled", "timestamp": "2024-01-01T00:00:04.000Z"}]}
TRANSLATED = {"messages": [{"uuid": "u-3", "to": "+254744000000", "message": "Hi",
                            "contact": {"_id": "m-chw2"}}], "state": "pending",
              "translation_key": "messages.reminder",
              "state_history": [{"state": "pending", "timestamp": "2024-01-01T00:00:05.000Z"}]}

MESSAGE_DOCS = [
    {"_id": "m-report", "type": "data_record", "form": "P", "from": "+254711000001", "contact": CHW1,
     "reported_date": BASE, "fields": {"patient_id": "12345"}, "tasks": [SENT_TASK],
     "scheduled_tasks": [SCHEDULED, TRANSLATED], "sms_message": {"message": "P 12345 Mary", "from": "+254711000001"}},
    {"_id": "m-incoming", "type": "data_record", "from": "+254799000000", "contact": {"_id": "m-chw2"},
     "reported_date": BASE + DAY, "sms_message": {"message": "hello, there"}},
    {"_id": "m-reply", "type": "data_record", "from": "+254799000000", "reported_date": BASE + 2 * DAY,
     "responses": [{"to": "+254799000000", "message": "Thank you"}]},
    {"_id": "m-silent", "type": "data_record", "form": "P", "reported_date": BASE, "tasks": []},
    {"_id": "messages-en", "type": "translations", "code": "en", "generic": {"messages.reminder": "Reminder"}},
    {"_id": "messages-fr", "type": "translations", "code": "fr",
     "generic": {"reported_date": "Date", "user": "Utilisateur"}, "custom": {"user": "Usager"}},
]

FEEDBACK = [
    {"_id": "fb-2", "type": "feedback", "meta": {"time": "2024-01-06T10:00:00.000Z", "user": {"name": "bob"},
                                                 "version": "4.5.0", "url": "http://x/#/messages\u0002"},
     "info": {"message": "Button <b>, \"broken\"\u0001"}},
    {"_id": "fb-1", "type": "feedback", "meta": {"time": "2024-01-05T10:00:00.000Z", "user": {"name": "alice"},
                                                 "version": "4.5.0", "url": "http://x/#/reports", "source": "manual"},
     "info": {"message": "slow"}},
    {"_id": "not-feedback", "type": "user-settings", "name": "x"},
]

CHROME_WV = ("Mozilla/5.0 (Linux; Android 10; SM-A105F Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Version/4.0 Chrome/120.0.6099.210 Mobile Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def _telemetry(user, device, year, month, day, ua=None, apk=None, android=None, cht="4.5.0", rev="3-abc"):
    device_doc = {}
    if ua:
        device_doc["userAgent"] = ua
    if apk or android:
        device_doc["deviceInfo"] = {"app": {"version": apk}, "software": {"androidVersion": android}}
    return {"_id": f"telemetry-{year}-{month}-{day}-{user}-{device}", "type": "telemetry",
            "metadata": {"year": year, "month": month, "day": day, "user": user, "deviceId": device,
                         "versions": {"app": cht, "settings": rev}},
            "metrics": {}, "device": device_doc}


TELEMETRY = [
    _telemetry("alice", "d1", 2024, 1, 5, FIREFOX, cht="4.4.0"),
    _telemetry("alice", "d1", 2024, 1, 20, CHROME_WV, "v1.0.4-4", "10", cht="4.5.0", rev="7-def"),
    _telemetry("alice", "d1", 2023, 12, 31, FIREFOX, cht="4.3.0"),
    _telemetry("alice", "d2", 2024, 2, 1, FIREFOX),
    _telemetry("bob", "d3", 2024, 1, 9),
    {"_id": "telemetry-bad", "type": "telemetry", "metadata": {"user": "carol"}},
]


@pytest.fixture(scope="module")
def users(config):
    return make_users(config, {"po": (["program_officer"], {}), "analyst": (["analytics"], {}),
                               "chw": (["chw"], {"facility_id": "m-cl1"}), "national": (["national_admin"], {})})


@pytest.fixture
async def data(couch, config):
    db = couch.db(config.db_medic)
    if await db.get_or_none("m-cl1") is None:
        await db.bulk_docs([dict(d) for d in CONTACTS + MESSAGE_DOCS])
        await couch.db(config.db_users_meta).bulk_docs([dict(d) for d in FEEDBACK + TELEMETRY])
    return db


def _csv(text):
    return list(csv.reader(io.StringIO(text, newline="")))


async def _get(client, path, headers, status=200):
    response = await client.get(path, headers=headers)
    text = await response.text()
    assert response.status == status, text
    return response, text


# -- messages ---------------------------------------------------------------------------------------


async def test_messages_columns_and_rows(client, data, users):
    response, text = await _get(client, "/api/v2/export/messages", basic(users["po"]))
    assert response.headers["Content-Disposition"].startswith('attachment; filename="messages-')
    rows = _csv(text)
    states = ["Scheduled", "Pending", "Forwarded To Gateway", "Received By Gateway", "Forwarded By Gateway", "Sent",
              "Delivered", "Failed", "Muted", "Cleared", "Denied", "Duplicate"]
    assert rows[0] == ["Record UUID", "Patient ID", "Reported Date", "From", "Contact Name", "Message Type",
                       "Message State", "Received Timestamp"] + [f"{s} Timestamp" for s in states] + [
                          "Sent By", "To Phone", "Message Body"]
    got = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [(r["Record UUID"], r["Message Body"]) for r in got] == [
        ("m-report", "Thanks Alice, \"P\" received"), ("m-report", "Visit due"), ("m-report", "Hi"),
        ("m-report", "P 12345 Mary"), ("m-incoming", "hello, there"), ("m-reply", "Thank you")]
    sent, scheduled, translated, incoming_form, incoming, reply = got
    assert sent["Patient ID"] == "12345" and sent["Reported Date"] == str(BASE)
    assert sent["From"] == "+254711000001" and sent["Contact Name"] == "Alice Wanjiru"
    assert sent["Message Type"] == "Task Message" and sent["Message State"] == "sent"
    assert sent["Pending Timestamp"] == str(BASE + 1000) and sent["Sent Timestamp"] == str(BASE + 3000)
    assert sent["Forwarded To Gateway Timestamp"] == str(BASE + 2000) and sent["Delivered Timestamp"] == ""
    assert sent["To Phone"] == "+254722000000" and sent["Sent By"] == "" and sent["Received Timestamp"] == ""
    assert scheduled["Message Type"] == "ANC Reminders" and scheduled["Message State"] == "scheduled"
    assert scheduled["Scheduled Timestamp"] == str(BASE + 31 * DAY + 8 * 3600000)
    assert translated["Message Type"] == "Reminder" and translated["Contact Name"] == "Ali Alison"
    assert incoming_form["Message Type"] == "Message" and incoming_form["Sent By"] == "+254711000001"
    assert incoming_form["Received Timestamp"] == str(BASE) and incoming_form["To Phone"] == ""
    assert incoming["Contact Name"] == "Ali Alison" and incoming["Message State"] == "received"
    assert reply["Message Type"] == "Automated Reply" and reply["Sent Timestamp"] == str(BASE + 2 * DAY)
    assert reply["Contact Name"] == "" and reply["To Phone"] == "+254799000000"


async def test_messages_dates_and_filters(client, data, users):
    _, text = await _get(client, "/api/v2/export/messages?options[humanReadable]=true", basic(users["po"]))
    rows = [dict(zip(_csv(text)[0], r)) for r in _csv(text)[1:]]
    assert rows[0]["Reported Date"] == "2024-01-01T00:00:00.000Z"
    assert rows[0]["Sent Timestamp"] == "2024-01-01T00:00:03.000Z"
    response = await client.post("/api/v2/export/messages", headers=basic(users["po"]),
                                  json={"filters": {"date": {"from": BASE + DAY, "to": BASE + DAY}}})
    body = _csv(await response.text())
    assert [r[0] for r in body[1:]] == ["m-incoming"]
    response = await client.get("/api/v2/export/messages?filters[forms][selected][0][code]=P",
                                headers=basic(users["po"]))
    assert response.status == 400 and (await response.json())["field"] == "filters.forms"


async def test_messages_permissions(client, data, users):
    await _get(client, "/api/v2/export/messages", basic(users["analyst"]), 403)
    await _get(client, "/api/v2/export/messages", basic(users["chw"]), 403)
    await _get(client, "/api/v2/export/messages", basic(users["national"]))


# -- contacts ----------------------------------------------------------------------------------------


async def test_contacts_json(client, data, users):
    response, text = await _get(client, "/api/v2/export/contacts", basic(users["po"]))
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="contacts-')
    items = json.loads(text)
    stored = {d["_id"]: d for d in [await data.get(c["_id"]) for c in CONTACTS]}
    assert sorted(i["id"] for i in items) == sorted(stored)
    for item in items:
        doc = stored[item["id"]]
        assert item == {"id": doc["_id"], "rev": doc["_rev"], "name": doc["name"],
                        "patient_id": doc.get("patient_id"), "type": doc["type"],
                        "contact_type": doc.get("contact_type"), "place_id": doc.get("place_id")}


@pytest.mark.parametrize("query,body,expected", [
    ("?filters[search]=alice", {"search": "alice"}, ["m-chw1"]),
    ("?filters[search]=ali", {"search": "ali"}, ["m-chw1", "m-chw2"]),
    ("?filters[search]=ali%20alison", {"search": "ali alison"}, ["m-chw2"]),
    ("?filters[search]=patient_id:12345", {"search": "patient_id:12345"}, ["m-chw1"]),
    ("?filters[search]=kusini&filters[types][selected][0]=chw_area",
     {"search": "kusini", "types": {"selected": ["chw_area"]}}, ["m-area"]),
    ("?filters[types][selected][0]=person", {"types": {"selected": ["person"]}}, ["m-chw1", "m-chw2"]),
    ("?filters[search]=nobody", {"search": "nobody"}, []),
])
async def test_contacts_filters(client, data, users, query, body, expected):
    _, text = await _get(client, "/api/v2/export/contacts" + query, basic(users["po"]))
    ids = [i["id"] for i in json.loads(text)]
    assert sorted(ids) == expected and len(ids) == len(set(ids))
    response = await client.post("/api/v2/export/contacts", json={"filters": body}, headers=basic(users["po"]))
    assert sorted(i["id"] for i in await response.json()) == expected


async def test_contacts_errors_and_permissions(client, data, users):
    response = await client.get("/api/v2/export/contacts?filters[forms][selected][0]=x", headers=basic(users["po"]))
    assert response.status == 400 and (await response.json())["field"] == "filters.forms"
    await _get(client, "/api/v2/export/contacts", basic(users["analyst"]), 403)
    await _get(client, "/api/v2/export/contacts", basic(users["chw"]), 403)
    assert (await client.get("/api/v2/export/contacts")).status == 401


# -- feedback ---------------------------------------------------------------------------------------


async def test_feedback_csv(client, data, users):
    response, text = await _get(client, "/api/v2/export/feedback", basic(users["national"]))
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = _csv(text)
    assert rows[0] == ["id", "reported_date", "user", "app_version", "url", "info"]
    assert rows[1] == ["fb-1", "2024-01-05T10:00:00.000Z", "alice", "4.5.0", "http://x/#/reports",
                       '{"message":"slow"}']
    assert rows[2][0] == "fb-2" and json.loads(rows[2][5]) == FEEDBACK[0]["info"]
    assert len(rows) == 3
    _, text = await _get(client, "/api/v2/export/feedback?tz=-120&skip_header_row=true&locale=fr",
                         basic(users["national"]))
    rows = _csv(text)
    assert rows[0][:2] == ["fb-1", "2024-01-05T12:00:00.000+02:00"]
    _, text = await _get(client, "/api/v2/export/feedback?locale=fr&tz=60", basic(users["national"]))
    rows = _csv(text)
    assert rows[0] == ["id", "Date", "Usager", "app_version", "url", "info"]
    assert rows[1][1] == "2024-01-05T09:00:00.000-01:00"


async def test_feedback_xml(client, data, users):
    response, text = await _get(client, "/api/v2/export/feedback?format=xml", basic(users["national"]))
    assert response.headers["Content-Type"] == "application/vnd.ms-excel; charset=utf-8"
    assert response.headers["Content-Disposition"].endswith('.xml"')
    root = fromstring(text.encode())
    ns = {"ss": "urn:schemas-microsoft-com:office:spreadsheet"}
    rows = [[d.text or "" for d in row.findall("ss:Cell/ss:Data", ns)]
            for row in root.findall("ss:Worksheet/ss:Table/ss:Row", ns)]
    assert rows[0] == list(users_meta.FEEDBACK_COLUMNS)
    assert rows[1][0] == "fb-1" and len(rows) == 3
    assert json.loads(rows[2][5]) == FEEDBACK[0]["info"]
    assert rows[2][4] == "http://x/#/messages"  # a control character XML cannot hold is dropped


@pytest.mark.parametrize("query,field", [("?format=pdf", "format"), ("?tz=abc", "tz"), ("?tz=5000", "tz"),
                                         ("?skip_header_row=maybe", "skip_header_row"), ("?locale=../x", "locale")])
async def test_feedback_bad_parameters(client, data, users, query, field):
    response = await client.get("/api/v2/export/feedback" + query, headers=basic(users["national"]))
    assert response.status == 400 and (await response.json())["field"] == field


async def test_feedback_permissions(client, data, users, config):
    await _get(client, "/api/v2/export/feedback", basic(users["po"]), 403)
    await _get(client, "/api/v2/export/feedback", basic(users["chw"]), 403)
    await _get(client, "/api/v2/export/feedback", admin_headers(config))


# -- user devices --------------------------------------------------------------------------------------


async def test_user_devices(client, data, users):
    response, text = await _get(client, "/api/v2/export/user-devices", basic(users["national"]))
    assert response.headers["Content-Disposition"].startswith('attachment; filename="user-devices-')
    assert json.loads(text) == [
        {"user": "alice", "deviceId": "d1", "date": "2024-01-20",
         "browser": {"name": "Chrome Mobile WebView", "version": "120.0.6099"},
         "apk": "v1.0.4-4", "android": "10", "cht": "4.5.0", "settings": "7-def"},
        {"user": "alice", "deviceId": "d2", "date": "2024-02-01", "browser": {"name": "Firefox", "version": "121.0"},
         "apk": None, "android": None, "cht": "4.5.0", "settings": "3-abc"},
        {"user": "bob", "deviceId": "d3", "date": "2024-01-09", "browser": {"name": None, "version": None},
         "apk": None, "android": None, "cht": "4.5.0", "settings": "3-abc"},
    ]
    response = await client.post("/api/v2/export/user-devices", headers=basic(users["national"]))
    assert len(await response.json()) == 3


async def test_user_devices_permissions(client, data, users):
    await _get(client, "/api/v2/export/user-devices", basic(users["po"]), 403)
    await _get(client, "/api/v2/export/user-devices", basic(users["chw"]), 403)


async def test_user_devices_page_boundaries(couch, config, data, monkeypatch):
    """Rows of one device split across pages still give one entry per device."""
    monkeypatch.setattr(users_meta, "PAGE_SIZE", 1)
    chunks = [c async for c in users_meta.user_devices_json(couch.db(config.db_users_meta))]
    devices = json.loads("".join(chunks))
    assert [(d["user"], d["deviceId"], d["date"]) for d in devices] == [
        ("alice", "d1", "2024-01-20"), ("alice", "d2", "2024-02-01"), ("bob", "d3", "2024-01-09")]
    assert len(chunks) > 3
