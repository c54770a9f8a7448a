"""GET|POST hydrate and contacts-by-phone: order, missing docs, phone formats, errors, online-only."""

import json
from urllib.parse import quote

import phonenumbers
import pytest

from tests.helpers import admin_headers, basic
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    return make_world(config, districts=1, centers=2, clinics=2, people=10, reports_per_clinic=3)


async def test_hydrate_keeps_request_order_and_marks_missing(client, world, config):
    h = world.h
    ids = [h.people[4], "missingId", h.reports[0], h.clinics[1], h.people[4]]
    response = await client.get(f"/api/v1/hydrate?doc_ids={quote(json.dumps(ids))}", headers=admin_headers(config))
    assert response.status == 200
    body = await response.json()
    assert [entry["id"] for entry in body] == ids
    assert body[1] == {"id": "missingId", "error": "not_found"}
    person, report, clinic = body[0]["doc"], body[2]["doc"], body[3]["doc"]
    assert person["parent"]["name"] == h.by_id[h.by_id[h.people[4]]["parent"]["_id"]]["name"]
    assert report["contact"]["name"] and report["patient"]["patient_id"] == h.by_id[h.reports[0]]["fields"]["patient_id"]
    assert clinic["contact"]["name"] == h.by_id[h.by_id[h.clinics[1]]["contact"]["_id"]]["name"]
    assert body[4] == body[0]
    posted = await client.post("/api/v1/hydrate", json={"doc_ids": ids}, headers=admin_headers(config))
    assert await posted.json() == body


DOC_IDS_ERROR = {"error": "bad_request", "reason": "`doc_ids` parameter must be a json array."}


@pytest.mark.parametrize("query", ["", "?doc_ids=", "?doc_ids=nope", "?doc_ids=%7B%7D", "?doc_ids=%5B1%5D"])
async def test_hydrate_get_errors(client, config, query):
    response = await client.get(f"/api/v1/hydrate{query}", headers=admin_headers(config))
    assert response.status == 400 and await response.json() == DOC_IDS_ERROR  # CHT's CouchDB-style body


@pytest.mark.parametrize("body", [{}, {"doc_ids": "x"}, [], {"doc_ids": [""]}])
async def test_hydrate_post_errors(client, config, body):
    response = await client.post("/api/v1/hydrate", json=body, headers=admin_headers(config))
    assert response.status == 400 and await response.json() == DOC_IDS_ERROR


async def test_hydrate_nothing_is_an_empty_list(client, config):
    assert await (await client.get("/api/v1/hydrate?doc_ids=%5B%5D", headers=admin_headers(config))).json() == []
    posted = await client.post("/api/v1/hydrate", json={"doc_ids": []}, headers=admin_headers(config))
    assert posted.status == 200 and await posted.json() == []


async def test_hydrate_and_phone_are_online_only(client, world):
    chw = basic(world.users["chw"])
    ids = quote(json.dumps([world.h.people[0]]))
    assert (await client.get(f"/api/v1/hydrate?doc_ids={ids}", headers=chw)).status == 403
    assert (await client.post("/api/v1/hydrate", json={"doc_ids": [world.h.people[0]]}, headers=chw)).status == 403
    firewall = await client.get("/api/v1/contacts-by-phone?phone=0712345678", headers=chw)
    assert firewall.status == 403 and await firewall.json() == {
        "code": 403, "error": "forbidden", "details": "Offline users are not allowed access to this endpoint"}
    assert (await client.get(f"/api/v1/hydrate?doc_ids={ids}")).status == 401
    analyst = basic(world.users["analyst"])
    assert (await client.get(f"/api/v1/hydrate?doc_ids={ids}", headers=analyst)).status == 200


def _e164(raw):
    return phonenumbers.format_number(phonenumbers.parse(raw, "KE"), phonenumbers.PhoneNumberFormat.E164)


async def test_contacts_by_phone_in_any_format(client, world, config, couch):
    h, admin = world.h, admin_headers(config)
    person = h.by_id[h.people[6]]
    number = _e164(person["phone"])
    twin = {"_id": "phone-twin", "type": "person", "name": "Twin", "reported_date": 1,
            "phone": "n/a", "phone_alternate": "0" + number[4:7] + " " + number[7:],
            "parent": person["parent"]}
    await couch.db(config.db_medic).put(twin)
    expected = sorted({d["_id"] for d in h.docs if d.get("phone") and _e164(d["phone"]) == number} | {"phone-twin"})
    for written in (number, number[1:], f"+{number[1:4]} ({number[4:7]}) {number[7:10]}-{number[10:]}",
                    "0" + number[4:], f'"{number}"'):
        response = await client.get(f"/api/v1/contacts-by-phone?phone={quote(written)}", headers=admin)
        assert response.status == 200, (written, await response.text())
        body = await response.json()
        assert body["ok"] is True and sorted(d["_id"] for d in body["docs"]) == expected
    doc = next(d for d in body["docs"] if d["_id"] == person["_id"])
    assert doc["parent"]["name"] == h.by_id[person["parent"]["_id"]]["name"]
    posted = await client.post("/api/v1/contacts-by-phone", json={"phone": number}, headers=admin)
    assert sorted(d["_id"] for d in (await posted.json())["docs"]) == expected


@pytest.mark.parametrize("phone, status", [("", 400), ("not a phone", 400), ("12", 400), ("+254 700 000 001", 404),
                                           ("+40 (21) 222-3333", 404)])
async def test_contacts_by_phone_errors(client, config, world, phone, status):
    response = await client.get(f"/api/v1/contacts-by-phone?phone={quote(phone)}", headers=admin_headers(config))
    assert response.status == status, await response.text()
    # CHT's CouchDB-style bodies
    invalid = {"error": "bad_request", "reason": "`phone` parameter is required and must be a valid phone number"}
    assert await response.json() == (invalid if status == 400 else {"error": "not_found",
                                                                     "reason": "no matches found"})
    missing = await client.get("/api/v1/contacts-by-phone", headers=admin_headers(config))
    assert missing.status == 400 and await missing.json() == invalid
    for body in ({}, {"phone": 5}, []):
        posted = await client.post("/api/v1/contacts-by-phone", json=body, headers=admin_headers(config))
        assert posted.status == 400 and await posted.json() == invalid
