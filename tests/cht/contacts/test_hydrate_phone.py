"""GET|POST hydrate and contacts-by-phone: order, missing docs, phone formats, errors, online-only."""

import asyncio
import json
from urllib.parse import quote

import phonenumbers
import pytest

from api.couch import Couch
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


NOT_AN_ARRAY = {"error": "bad_request", "reason": "`doc_ids` parameter must be a json array."}


@pytest.mark.parametrize("query", ["", "?doc_ids=", "?doc_ids=nope", "?doc_ids=random%20string", "?doc_ids=%7B%7D",
                                   "?doc_ids=null", "?doc_ids=" + "%5B" * 2000])
async def test_hydrate_get_errors_are_chts(client, config, query):
    response = await client.get(f"/api/v1/hydrate{query}", headers=admin_headers(config))
    assert response.status == 400 and await response.json() == NOT_AN_ARRAY


@pytest.mark.parametrize("body", [{}, {"doc_ids": "x"}, {"doc_ids": {"a": 1}}, [], "x"])
async def test_hydrate_post_errors_are_chts(client, config, body):
    response = await client.post("/api/v1/hydrate", json=body, headers=admin_headers(config))
    assert response.status == 400 and await response.json() == NOT_AN_ARRAY


@pytest.mark.parametrize("ids", [[1], [""], [["a"]], ["a"] * 10001])
async def test_hydrate_ids_must_be_strings_and_at_most_10000(client, config, ids):
    """CHT answers 500 for non-string ids and has no limit: a deliberate difference, in CHT's error shape."""
    response = await client.post("/api/v1/hydrate", json={"doc_ids": ids}, headers=admin_headers(config))
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_request" and "doc_ids" in body["reason"]


async def test_hydrate_empty_list_query_first_and_repeated_parameter(client, world, config):
    admin = admin_headers(config)
    for response in (await client.get("/api/v1/hydrate?doc_ids=%5B%5D", headers=admin),
                     await client.post("/api/v1/hydrate", json={"doc_ids": []}, headers=admin)):
        assert response.status == 200 and await response.json() == []
    first, second = world.h.people[0], world.h.people[1]
    response = await client.post(f"/api/v1/hydrate?doc_ids={quote(json.dumps([first]))}",
                                 json={"doc_ids": [second]}, headers=admin)
    assert [e["id"] for e in await response.json()] == [first]  # the query wins, as in CHT
    response = await client.get(f"/api/v1/hydrate?doc_ids={first}&doc_ids={second}", headers=admin)
    assert [e["id"] for e in await response.json()] == [first, second]


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


# -- hydration as cht-core's lineage library fills docs (its tests: hydration.spec.js) ----------------------

C_LINEAGE = {"_id": "hy-C", "parent": {"_id": "hy-H", "parent": {"_id": "hy-D"}}}
FAMILY = [
    {"_id": "hy-D", "type": "district_hospital", "name": "D", "contact": {"_id": "hy-sD", "parent": {"_id": "hy-D"}}},
    {"_id": "hy-H", "type": "health_center", "name": "H", "parent": {"_id": "hy-D"},
     "contact": {"_id": "hy-sH", "parent": {"_id": "hy-H", "parent": {"_id": "hy-D"}}}},
    {"_id": "hy-C", "type": "clinic", "name": "C", "parent": {"_id": "hy-H", "parent": {"_id": "hy-D"}},
     "contact": {"_id": "hy-k", "parent": C_LINEAGE},
     "linked_docs": {"a": "hy-p1", "b": {"_id": "hy-H"}, "c": False, "d": [], "e": "nope"}},
    {"_id": "hy-sD", "type": "person", "name": "sD", "parent": {"_id": "hy-D"}},
    {"_id": "hy-sH", "type": "person", "name": "sH", "parent": {"_id": "hy-H", "parent": {"_id": "hy-D"}}},
    {"_id": "hy-k", "type": "person", "name": "k", "parent": C_LINEAGE},
    {"_id": "hy-p1", "type": "person", "name": "p1", "parent": C_LINEAGE, "linked_docs": {"x": "hy-C"}},
    {"_id": "hy-p2", "type": "person", "name": "p2", "parent": C_LINEAGE, "patient_id": "7001"},
    {"_id": "hy-r", "type": "data_record", "form": "visit", "fields": {"patient_id": "7001"},
     "contact": {"_id": "hy-k", "parent": C_LINEAGE}},
    {"_id": "hy-m", "type": "data_record", "contact": {"_id": "hy-k"}, "sms_message": {"message": "hi"}},
]


@pytest.fixture(scope="module")
def family(config, world):
    async def go():
        async with Couch.from_config(config) as couch:
            results = await couch.db(config.db_medic).bulk_docs(json.loads(json.dumps(FAMILY)))
            assert all(r.get("ok") for r in results)
            return await couch.db(config.db_medic).get_many([d["_id"] for d in FAMILY])
    return asyncio.run(go())


async def _hydrate(client, config, ids):
    response = await client.post("/api/v1/hydrate", json={"doc_ids": ids}, headers=admin_headers(config))
    assert response.status == 200
    return await response.json()


async def test_hydrate_fills_parents_contacts_and_linked_docs(client, config, family):
    [entry] = await _hydrate(client, config, ["hy-p1"])
    p1 = entry["doc"]
    clinic = p1["parent"]
    assert {k: v for k, v in clinic.items() if k not in ("parent", "contact", "linked_docs")} == \
        {k: v for k, v in family["hy-C"].items() if k not in ("parent", "contact", "linked_docs")}
    assert clinic["contact"] == family["hy-k"]
    assert clinic["linked_docs"] == {"a": family["hy-p1"], "b": family["hy-H"], "c": False, "d": [], "e": "nope"}
    assert clinic["parent"]["name"] == "H" and clinic["parent"]["contact"] == family["hy-sH"]
    assert clinic["parent"]["parent"]["name"] == "D" and clinic["parent"]["parent"]["contact"] == family["hy-sD"]
    assert "parent" not in clinic["parent"]["parent"]
    assert p1["linked_docs"] == {"x": family["hy-C"]}


async def test_hydrate_reports_get_contact_and_patient(client, config, family):
    entries = await _hydrate(client, config, ["hy-p2", "hy-H", "hy-r"])
    assert [e["id"] for e in entries] == ["hy-p2", "hy-H", "hy-r"]
    report = entries[2]["doc"]
    assert report["contact"]["name"] == "k" and report["contact"]["parent"]["name"] == "C"
    assert report["contact"]["parent"]["contact"]["_id"] == "hy-k"
    assert report["patient"]["_id"] == "hy-p2" and report["patient"]["parent"]["name"] == "C"
    assert entries[1]["doc"]["contact"] == family["hy-sH"]
    [one] = await _hydrate(client, config, ["hy-r"])
    assert one["doc"]["patient"]["_id"] == "hy-p2" and one["doc"]["contact"]["parent"]["parent"]["name"] == "H"


async def test_hydrate_one_doc_and_several_as_cht(client, config, family):
    [alone] = await _hydrate(client, config, ["hy-m"])
    assert alone["doc"] == family["hy-m"]  # one id: a record without a form comes as stored
    both = await _hydrate(client, config, ["hy-m", "hy-p1"])
    assert both[0]["doc"]["contact"]["name"] == "k"  # several ids: every data_record gets its contact
    repeated = await _hydrate(client, config, ["hy-p1", "nope", "hy-p1"])
    assert repeated[1] == {"id": "nope", "error": "not_found"} and repeated[0] == repeated[2]
    [place] = await _hydrate(client, config, ["hy-C"])
    assert place["doc"]["contact"] == family["hy-k"] and place["doc"]["linked_docs"]["a"] == family["hy-p1"]


async def test_with_lineage_reads_hydrate_as_hydrate_does(client, config, family):
    admin = admin_headers(config)
    person = await (await client.get("/api/v1/person/hy-p1?with_lineage=true", headers=admin)).json()
    [entry] = await _hydrate(client, config, ["hy-p1"])
    assert person == entry["doc"]
    report = await (await client.get("/api/v1/report/hy-r?with_lineage=true", headers=admin)).json()
    [entry] = await _hydrate(client, config, ["hy-r"])
    assert report == entry["doc"]


async def test_contacts_by_phone_one_match_is_hydrated_as_one_doc_and_the_query_wins(client, config, family, couch):
    """As cht-core: fetchHydratedDocs of the matches (one match: the one-doc mode), the query's phone first."""
    medic = couch.db(config.db_medic)
    await medic.put({"_id": "hy-phone", "type": "person", "name": "Phoned", "phone": "+254700999001",
                     "parent": C_LINEAGE, "linked_docs": {"home": "hy-C"}})
    response = await client.post("/api/v1/contacts-by-phone?phone=%2B254700999001", json={"phone": "+254711"},
                                 headers=admin_headers(config))
    assert response.status == 200
    [doc] = (await response.json())["docs"]
    assert doc["_id"] == "hy-phone" and doc["parent"]["name"] == "C" and doc["linked_docs"]["home"]["name"] == "C"
