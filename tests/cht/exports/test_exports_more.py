"""The messages, contacts, feedback and user-devices exports against the real server."""

from __future__ import annotations

import json
import re

import pytest
from defusedxml.ElementTree import fromstring

from api.cht.exports import users_meta
from tests.cht.exports.test_exports_reports import cht_csv
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
    {"_id": "feedback-2024-01-06T10:00:00.000Z-b2", "type": "feedback", "meta": {"time": "2024-01-06T10:00:00.000Z", "user": {"name": "bob"},
                                                 "version": "4.5.0", "url": "http://x/#/messages\u0002"},
     "info": {"message": "Button <b>, \"broken\"\u0001"}},
    {"_id": "feedback-2024-01-05T10:00:00.000Z-a1", "type": "feedback", "meta": {"time": "2024-01-05T10:00:00.000Z", "user": {"name": "alice"},
                                                 "version": "4.5.0", "url": "http://x/#/reports", "source": "manual"},
     "info": {"message": "slow"}},
    {"_id": "not-feedback", "type": "user-settings", "name": "x"},
    {"_id": "fb-other", "type": "feedback", "meta": {"time": "2024-01-01T00:00:00.000Z"}, "info": {}},
]

CHROME_WV = ("Mozilla/5.0 (Linux; Android 10; SM-A105F Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Version/4.0 Chrome/120.0.6099.210 Mobile Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


def _telemetry(user, device, year, month, day, ua=None, apk=None, android=None, cht="4.5.0", rev="3-abc"):
    device_doc = {}
    if ua:
        device_doc["userAgent"] = ua
    if apk or android:
        device_doc["deviceInfo"] = {"app": {"version": apk}, "software": {"androidVersion": android},
                                    "storage": {"free": 1000, "total": 32000}}
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
    return cht_csv(text)


async def _get(client, path, headers, status=200):
    response = await client.get(path, headers=headers)
    text = await response.text()
    assert response.status == status, text
    return response, text


# -- messages ---------------------------------------------------------------------------------------


async def test_messages_columns_and_rows(client, data, users):
    response, text = await _get(client, "/api/v2/export/messages", basic(users["po"]))
    assert re.fullmatch(r"attachment; filename=messages-\d{12}\.csv", response.headers["Content-Disposition"])
    assert text.split("\n")[0] == ("id,patient_id,reported_date,from,type,state,received,scheduled,pending,sent,"
                                   "cleared,muted,message_id,sent_by,to_phone,content")
    rows = _csv(text)
    got = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [(r["id"], r["content"]) for r in got] == [
        ("m-report", "Thanks Alice, \"P\" received"), ("m-report", "Visit due"), ("m-report", "Hi"),
        ("m-report", "P 12345 Mary"), ("m-incoming", "hello, there"), ("m-reply", "Thank you")]
    sent, scheduled, translated, incoming_form, incoming, reply = got
    assert sent["patient_id"] == "12345" and sent["reported_date"] == str(BASE)
    assert sent["from"] == "+254711000001" and sent["message_id"] == "u-1"
    assert sent["type"] == "Task Message" and sent["state"] == "sent"
    assert sent["pending"] == str(BASE + 1000) and sent["sent"] == str(BASE + 3000)
    assert sent["to_phone"] == "+254722000000" and sent["sent_by"] == "" and sent["received"] == ""
    assert scheduled["type"] == "ANC Reminders" and scheduled["state"] == "scheduled"
    assert scheduled["scheduled"] == str(BASE + 31 * DAY + 8 * 3600000)
    assert translated["type"] == "Reminder"
    assert incoming_form["type"] == "Message" and incoming_form["sent_by"] == "+254711000001"
    assert incoming_form["received"] == str(BASE) and incoming_form["to_phone"] == ""
    assert incoming["state"] == "received" and incoming["message_id"] == ""
    assert reply["type"] == "Automated Reply" and reply["sent"] == str(BASE + 2 * DAY)
    assert reply["to_phone"] == "+254799000000"
    # the exact line, as cht-core writes it: missing dates are the empty string (""), missing values empty
    assert ('"m-report","12345",1704067200000,"+254711000001","Task Message","sent","","",1704067201000,'
            '1704067203000,"","","u-1",,"+254722000000","Thanks Alice, \\"P\\" received"\n') in text


async def test_messages_dates_and_filters(client, data, users):
    _, text = await _get(client, "/api/v2/export/messages?options[humanReadable]=true", basic(users["po"]))
    rows = [dict(zip(_csv(text)[0], r)) for r in _csv(text)[1:]]
    assert rows[0]["reported_date"] == "2024-01-01T00:00:00.000Z"
    assert rows[0]["sent"] == "2024-01-01T00:00:03.000Z"
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


async def test_contacts_csv_whatever_accept_says(client, data, users):
    stored = {d["_id"]: d for d in [await data.get(c["_id"]) for c in CONTACTS]}
    for accept in ("application/json", "text/csv", "*/*", None):
        headers = {**basic(users["po"]), **({"Accept": accept} if accept else {})}
        response, text = await _get(client, "/api/v2/export/contacts", headers)
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8", accept
        assert re.fullmatch(r"attachment; filename=contacts-\d{12}\.csv", response.headers["Content-Disposition"])
        rows = _csv(text)
        assert rows[0] == ["id", "rev", "name", "patient_id", "type", "contact_type", "place_id"]
        assert sorted(r[0] for r in rows[1:]) == sorted(stored)
    chw = stored["m-chw1"]
    assert f'"m-chw1","{chw["_rev"]}","Alice Wanjiru","12345","person",,\n' in text
    area = stored["m-area"]
    assert f'"m-area","{area["_rev"]}","Area Kusini",,"contact","chw_area",\n' in text


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
    ids = [r[0] for r in _csv(text)[1:]]
    assert sorted(ids) == expected and len(ids) == len(set(ids))
    response = await client.post("/api/v2/export/contacts", json={"filters": body}, headers=basic(users["po"]))
    assert sorted(r[0] for r in _csv(await response.text())[1:]) == expected


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
    newest, oldest = FEEDBACK[0], FEEDBACK[1]
    # as cht-core: feedback- docs only, newest id first, the stored time, info as JSON with its commas escaped
    assert text == ("id,reported_date,user,app_version,url,info\n"
                    f'"{newest["_id"]}","2024-01-06T10:00:00.000Z","bob","4.5.0","http://x/#/messages\u0002",'
                    r'"{\"message\":\"Button <b>\, \\"broken\\"\u0001\"}"' "\n"
                    f'"{oldest["_id"]}","2024-01-05T10:00:00.000Z","alice","4.5.0","http://x/#/reports",'
                    '"{\\"message\\":\\"slow\\"}"\n')
    _, text = await _get(client, "/api/v2/export/feedback?tz=-120&skip_header_row=true&locale=fr",
                         basic(users["national"]))
    rows = _csv(text)
    assert rows[1][:2] == [oldest["_id"], "2024-01-05T12:00:00.000+02:00"]
    _, text = await _get(client, "/api/v2/export/feedback?locale=fr&tz=60", basic(users["national"]))
    rows = _csv(text)
    assert rows[0] == ["id", "Date", "Usager", "app_version", "url", "info"]
    assert rows[2][1] == "2024-01-05T09:00:00.000-01:00"


async def test_feedback_xml(client, data, users):
    response, text = await _get(client, "/api/v2/export/feedback?format=xml", basic(users["national"]))
    assert response.headers["Content-Type"] == "application/vnd.ms-excel; charset=utf-8"
    assert response.headers["Content-Disposition"].endswith(".xml")
    root = fromstring(text.encode())
    ns = {"ss": "urn:schemas-microsoft-com:office:spreadsheet"}
    rows = [[d.text or "" for d in row.findall("ss:Cell/ss:Data", ns)]
            for row in root.findall("ss:Worksheet/ss:Table/ss:Row", ns)]
    assert rows[0] == list(users_meta.FEEDBACK_COLUMNS)
    assert rows[2][0] == FEEDBACK[1]["_id"] and len(rows) == 3
    assert json.loads(rows[1][5]) == FEEDBACK[0]["info"]
    assert rows[1][4] == "http://x/#/messages"  # a control character XML cannot hold is dropped


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
    assert re.fullmatch(r"attachment; filename=user-devices-\d{12}\.json", response.headers["Content-Disposition"])
    # as cht-core: bowser's browser names and full versions, values a device did not report left out
    assert json.loads(text) == [
        {"user": "alice", "deviceId": "d1", "date": "2024-01-20",
         "browser": {"name": "Chrome", "version": "120.0.6099.210"},
         "apk": "v1.0.4-4", "android": "10", "cht": "4.5.0", "settings": "7-def", "storageFree": 1000,
         "storageTotal": 32000},
        {"user": "alice", "deviceId": "d2", "date": "2024-02-01", "browser": {"name": "Firefox", "version": "121.0"},
         "cht": "4.5.0", "settings": "3-abc"},
        {"user": "bob", "deviceId": "d3", "date": "2024-01-09", "browser": {}, "cht": "4.5.0", "settings": "3-abc"},
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
