"""cht-core's data endpoints (``/api/v1/contact``, ``/person``, ``/place``, ``/report``) as cht-core answers them:
numeric cursors, CHT's checks and messages, creates and updates, online users only.

The expectations come from cht-core's controllers and ``shared-libs/cht-datasource`` (and its integration
tests ``tests/integration/api/controllers/{person,place,contact,report}.spec.js``).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse

import pytest

from api.couch import Couch
from tests.helpers import admin_headers, basic
from tests.world import make_users

JSON = {"Accept": "application/json"}

# district d1 > centre hc1 > clinics c1, c2; seven people in c1 (as in CHT's person.spec.js), one in c2
PLACES = [
    {"_id": "d1", "type": "district_hospital", "name": "District One", "contact": {"_id": "p-d1", "parent": {"_id": "d1"}}},
    {"_id": "hc1", "type": "health_center", "name": "Centre", "parent": {"_id": "d1"}},
    {"_id": "c1", "type": "clinic", "name": "Clinic One", "parent": {"_id": "hc1", "parent": {"_id": "d1"}},
     "contact": {"_id": "p1", "parent": {"_id": "c1", "parent": {"_id": "hc1", "parent": {"_id": "d1"}}}}},
    {"_id": "c2", "type": "clinic", "name": "Clinic Two", "parent": {"_id": "hc1", "parent": {"_id": "d1"}}},
]
C1 = {"_id": "c1", "parent": {"_id": "hc1", "parent": {"_id": "d1"}}}
PEOPLE = [{"_id": f"p{i}", "type": "person", "name": f"Person {i}", "parent": C1, "reported_date": 1000 + i}
          for i in range(1, 8)]
OTHERS = [
    {"_id": "p-d1", "type": "person", "name": "Manager", "parent": {"_id": "d1"}},
    {"_id": "p-c2", "type": "person", "name": "Baraka Barakazi", "role": "barakat", "parent": {"_id": "c2"}},
    {"_id": "r1", "type": "data_record", "form": "visit_followup", "reported_date": 5, "fields": {"a": 1},
     "contact": {"_id": "p1", "parent": C1}},
    {"_id": "r2", "type": "data_record", "form": "pregnancy", "reported_date": 6, "fields": {"b": 2},
     "contact": {"_id": "p2", "parent": C1}},
    {"_id": "sms1", "type": "data_record", "from": "+254700000001", "sms_message": {"message": "hi"}},
    {"_id": "form:visit_followup", "type": "form", "internalId": "visit_followup"},
    {"_id": "form:pregnancy", "type": "form", "internalId": "pregnancy"},
]


@pytest.fixture(scope="module")
def world(config):
    users = make_users(config, {
        "po": (["program_officer", "mm-online"], {}),
        "reader": (["analytics", "mm-online"], {}),
        "noperm": (["gateway", "mm-online"], {}),
        "chw": (["chw"], {"facility_id": "c1", "contact_id": "p1"}),
    })

    async def go():
        async with Couch.from_config(config) as couch:
            results = await couch.db(config.db_medic).bulk_docs(
                [json.loads(json.dumps(d)) for d in PLACES + PEOPLE + OTHERS])
            assert all(r.get("ok") for r in results), results

    asyncio.run(go())
    return users


def _h(config, world, who="admin"):
    return {**JSON, **(admin_headers(config) if who == "admin" else basic(world[who]))}


async def _get(client, url, headers):
    response = await client.get(url, headers=headers)
    return response.status, await response.json()


async def _pages(client, path, headers, limit):
    """Every page of a listing: (items, cursors seen)."""
    items, cursors, cursor = [], [], None
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor is not None else "")
        status, body = await _get(client, url, headers)
        assert status == 200, body
        assert set(body) == {"data", "cursor"}
        items.extend(d if isinstance(d, str) else d["_id"] for d in body["data"])
        cursors.append(body["cursor"])
        cursor = body["cursor"]
        if cursor is None:
            return items, cursors
        assert len(body["data"]) == limit


# -- pages ----------------------------------------------------------------------------------------------


async def test_person_pages_have_numeric_cursors(client, config, world):
    headers = _h(config, world)
    status, first = await _get(client, "/api/v1/person?type=person&limit=4", headers)
    assert status == 200 and len(first["data"]) == 4 and first["cursor"] == "4"
    status, second = await _get(client, "/api/v1/person?type=person&limit=4&cursor=4", headers)
    assert status == 200 and len(second["data"]) == 4 and second["cursor"] == "8"
    status, third = await _get(client, "/api/v1/person?type=person&limit=4&cursor=8", headers)
    assert status == 200 and len(third["data"]) == 1 and third["cursor"] is None
    pages = first["data"] + second["data"] + third["data"]
    people = [d["_id"] for d in pages]
    assert sorted(people) == sorted(["p-c2", "p-d1"] + [p["_id"] for p in PEOPLE])  # nine people, once each
    assert all(d["type"] == "person" for d in pages)
    # in view order: doc id order within the type
    assert people == sorted(people)


async def test_an_exactly_full_last_page_is_followed_by_an_empty_one(client, config, world):
    items, cursors = await _pages(client, "/api/v1/person?type=person", _h(config, world), 3)
    assert cursors == ["3", "6", "9", None] and len(items) == 9 == len(set(items))
    status, last = await _get(client, "/api/v1/person?type=person&limit=3&cursor=9", _h(config, world))
    assert status == 200 and last == {"data": [], "cursor": None}


async def test_limit_has_no_maximum_and_takes_javascript_numbers(client, config, world):
    headers = _h(config, world)
    for limit in ("20000", "1e1", "10.0", "0x10", " 9 "):
        status, body = await _get(client, f"/api/v1/person?type=person&limit={urllib.parse.quote(limit)}", headers)
        assert status == 200 and len(body["data"]) == 9, limit
    status, body = await _get(client, "/api/v1/place?type=clinic", headers)
    assert status == 200 and [d["_id"] for d in body["data"]] == ["c1", "c2"] and body["cursor"] is None


@pytest.mark.parametrize("url, message", [
    ("/api/v1/person", "Invalid contact type [undefined]."),
    ("/api/v1/person?type=", 'Invalid contact type [""].'),
    ("/api/v1/person?type=clinic", "Invalid contact type [clinic]."),
    ("/api/v1/place?type=person", "Invalid contact type [person]."),
    ("/api/v1/person?type=person&limit=-1", 'The limit must be a positive integer: ["-1"].'),
    ("/api/v1/person?type=person&limit=0", 'The limit must be a positive integer: ["0"].'),
    ("/api/v1/person?type=person&limit=", 'The limit must be a positive integer: [""].'),
    ("/api/v1/person?type=person&limit=1.5", 'The limit must be a positive integer: ["1.5"].'),
    ("/api/v1/person?type=person&cursor=-1", 'The cursor must be a string or null for first page: ["-1"].'),
    ("/api/v1/person?type=person&cursor=", 'The cursor must be a string or null for first page: [""].'),
    ("/api/v1/person?type=person&cursor=abc", 'The cursor must be a string or null for first page: ["abc"].'),
    ("/api/v1/person?type=person&cursor=null", 'The cursor must be a string or null for first page: ["null"].'),
    # the configured type is checked after the cursor's shape and the limit, before the cursor's value
    ("/api/v1/place?type=nope&cursor=abc", "Invalid contact type [nope]."),
    ("/api/v1/place?type=nope&limit=0", 'The limit must be a positive integer: ["0"].'),
    ("/api/v1/contact", "Either query param ids or type is required"),
    ("/api/v1/contact?ids=,", 'Invalid ids [","].'),
    ("/api/v1/contact?type=nope", "Invalid contact type [nope]."),
    ("/api/v1/contact/uuid", "Either query param freetext or type is required"),
    ("/api/v1/contact/uuid?freetext=%20", 'Invalid freetext [" "].'),
    ("/api/v1/contact/uuid?freetext=ab", 'Invalid freetext ["ab"].'),
    ("/api/v1/contact/uuid?freetext=a%20bc", 'Invalid freetext ["a bc"].'),
    ("/api/v1/contact/uuid?type=nope", "Invalid contact type [nope]."),
    ("/api/v1/contact/uuid?type=person&limit=-1", 'The limit must be a positive integer: ["-1"].'),
    ("/api/v1/report/uuid", "Invalid freetext [undefined]."),
    ("/api/v1/report/uuid?form=", "Invalid forms [[]]."),
    ("/api/v1/report/uuid?form=,", "Invalid forms [[]]."),
    ("/api/v1/report/uuid?form=%20a", 'Invalid forms [[" a"]].'),
    ("/api/v1/report/uuid?freetext=abc&cursor=x", 'The cursor must be a string or null for first page: ["x"].'),
    ("/api/v1/report", "Query param ids is required"),
    ("/api/v1/report?ids=,,", 'Invalid ids [",,"].'),
])
async def test_query_errors_are_chts(client, config, world, url, message):
    status, body = await _get(client, url, _h(config, world))
    assert status == 400
    assert body["code"] == 400 and body["error"] == message


async def test_contacts_by_type_and_by_ids(client, config, world):
    headers = _h(config, world)
    status, body = await _get(client, "/api/v1/contact?type=clinic", headers)
    assert status == 200 and [d["_id"] for d in body["data"]] == ["c1", "c2"] and body["cursor"] is None
    status, body = await _get(client, "/api/v1/contact?ids=p3,c1,missing,r1,p3", headers)
    assert status == 200 and [d["_id"] for d in body["data"]] == ["p3", "c1"] and body["cursor"] is None
    status, body = await _get(client, "/api/v1/contact?ids=p3&ids=c2&ids=p4&limit=2", headers)
    assert [d["_id"] for d in body["data"]] == ["p3", "c2"] and body["cursor"] == "2"
    status, body = await _get(client, "/api/v1/contact?ids=p3&ids=c2&ids=p4&limit=2&cursor=2", headers)
    assert [d["_id"] for d in body["data"]] == ["p4"] and body["cursor"] is None
    # ids win over type
    status, body = await _get(client, "/api/v1/contact?ids=p5&type=clinic", headers)
    assert [d["_id"] for d in body["data"]] == ["p5"]


async def test_reports_by_ids(client, config, world):
    status, body = await _get(client, "/api/v1/report?ids=r2,p1,sms1,r1", _h(config, world))
    assert status == 200 and [d["_id"] for d in body["data"]] == ["r2", "r1"] and body["cursor"] is None


async def test_report_ids_by_form(client, config, world):
    headers = _h(config, world)
    for query in ("form=visit_followup,pregnancy", "form=visit_followup&form=pregnancy"):
        status, body = await _get(client, f"/api/v1/report/uuid?{query}", headers)
        assert status == 200 and body == {"data": ["r1", "r2"], "cursor": None}, query
    status, body = await _get(client, "/api/v1/report/uuid?form=pregnancy&form=visit_followup&limit=1", headers)
    assert body == {"data": ["r2"], "cursor": "1"}
    status, body = await _get(client, "/api/v1/report/uuid?form=pregnancy&form=visit_followup&limit=1&cursor=1",
                              headers)
    assert body == {"data": ["r1"], "cursor": "2"}
    # an incoming message has no form: no form called "message" to find it by
    status, body = await _get(client, "/api/v1/report/uuid?form=message", headers)
    assert body == {"data": [], "cursor": None}
    # freetext wins when both are given
    status, body = await _get(client, "/api/v1/report/uuid?freetext=form:pregnancy&form=visit_followup", headers)
    assert body == {"data": ["r2"], "cursor": None}


async def test_freetext_with_spaces_in_a_keyed_term(client, config, world):
    status, body = await _get(client, "/api/v1/contact/uuid?freetext=name:baraka%20barakazi", _h(config, world))
    assert status == 200 and body == {"data": ["p-c2"], "cursor": None}
    status, body = await _get(client, "/api/v1/contact/uuid?freetext=%20NAME:Baraka%20Barakazi%20",
                              _h(config, world))
    assert status == 200 and body == {"data": ["p-c2"], "cursor": None}


# -- single reads -------------------------------------------------------------------------------------------


async def test_single_reads_and_with_lineage(client, config, world):
    headers = _h(config, world)
    status, plain = await _get(client, "/api/v1/person/p3?with_lineage=maybe", headers)
    assert status == 200 and plain["parent"] == C1 and plain["name"] == "Person 3"
    status, hydrated = await _get(client, "/api/v1/person/p3?with_lineage=true", headers)
    assert hydrated["parent"]["name"] == "Clinic One" and hydrated["parent"]["parent"]["name"] == "Centre"
    for path, doc_id, name in (("contact", "r1", "Contact"), ("person", "c1", "Person"), ("place", "p1", "Place"),
                               ("report", "p1", "Report"), ("report", "sms1", "Report"),
                               ("contact", "nothing", "Contact")):
        status, body = await _get(client, f"/api/v1/{path}/{doc_id}", headers)
        assert status == 404 and body == {"code": 404, "error": f"{name} not found"}, (path, doc_id)
    status, report = await _get(client, "/api/v1/report/r1?with_lineage=true", headers)
    assert status == 200 and report["contact"]["name"] == "Person 1"


async def test_every_route_is_for_online_users_with_the_permission(client, config, world):
    gets = ["/api/v1/person/p1", "/api/v1/place/c1", "/api/v1/contact/p1", "/api/v1/report/r1",
            "/api/v1/person?type=person", "/api/v1/place?type=clinic", "/api/v1/contact?type=clinic",
            "/api/v1/contact/uuid?type=clinic", "/api/v1/report/uuid?freetext=abc", "/api/v1/report?ids=r1"]
    for url in gets:
        for who in ("chw", "noperm"):
            status, body = await _get(client, url, _h(config, world, who))
            assert status == 403 and body["code"] == 403, (url, who)
            assert body["error"].startswith("Insufficient privileges"), (url, who)
        assert (await client.get(url, headers=JSON)).status == 401, url
        assert (await client.get(url, headers=_h(config, world, "reader"))).status == 200, url


# -- creates and updates ---------------------------------------------------------------------------------


async def _send(client, method, url, headers, body):
    response = await client.request(method, url, headers={**headers, "Content-Type": "application/json"},
                                    data=json.dumps(body))
    return response.status, await response.json()


async def test_create_person_as_cht(client, config, world, couch):
    body = {"name": "Ann", "type": "person", "parent": "c1", "date_of_birth": "2000-01-31", "phone": "+254700111222",
            "patient_id": "12345", "sex": "female", "note": "extra fields are kept", "reported_date": 1700000000000}
    status, created = await _send(client, "POST", "/api/v1/person", _h(config, world, "po"), body)
    assert status == 200, created
    expected = {**body, "type": "contact", "contact_type": "person", "parent": C1}
    assert {k: v for k, v in created.items() if k not in ("_id", "_rev")} == expected
    stored = await couch.db(config.db_medic).get(created["_id"])
    assert stored == created
    status, dated = await _send(client, "POST", "/api/v1/person", _h(config, world),
                                {"name": "Bo", "type": "person", "parent": "c1",
                                 "reported_date": "2024-01-02T03:04:05.678Z"})
    assert status == 200 and dated["reported_date"] == 1704164645678


@pytest.mark.parametrize("body, message", [
    ("just text", "Person data not provided."),
    (None, "Person data not provided."),
    ([], "The [type] field must have a [string] value."),
    ({"name": "a", "parent": "c1"}, "The [type] field must have a [string] value."),
    ({"type": "person", "name": "  ", "parent": "c1"}, "The [name] field must have a [string] value."),
    ({"type": "person", "name": "a", "parent": "c1", "reported_date": "2024-01-01"},
     "Invalid reported_date. Expected format to be 'YYYY-MM-DDTHH:mm:ssZ', 'YYYY-MM-DDTHH:mm:ss.SSSZ', "
     "or a Unix epoch."),
    ({"type": "person", "name": "a", "parent": "c1", "_id": "x"}, "The [_id] field must not be set."),
    ({"type": "person", "name": "a", "parent": "c1", "_rev": "1-x"}, "The [_rev] field must not be set."),
    ({"type": "person", "name": "a"}, "The [parent] field must have a [string] value."),
    ({"type": "person", "name": "a", "parent": "c1", "phone": None}, "The [phone] field must have the type [string]."),
    ({"type": "person", "name": "a", "parent": "c1", "sex": 1}, "The [sex] field must have the type [string]."),
    ({"type": "person", "name": "a", "parent": "c1", "date_of_birth": "soon"},
     "The [date_of_birth] field must have a [date] value."),
    ({"type": "clinic", "name": "a", "parent": "c1"}, "[clinic] is not a valid person type."),
    ({"type": "person", "name": "a", "parent": "invalid-id"}, "Parent contact [invalid-id] not found."),
    ({"type": "person", "name": "a", "parent": "p1"}, "Parent contact of type [person] is not allowed for type [person]."),
    ({"type": "person", "name": "a", "parent": "r1"},
     "Parent contact of type [data_record] is not allowed for type [person]."),
])
async def test_create_person_errors(client, config, world, couch, body, message):
    before = (await couch.db(config.db_medic).info())["doc_count"]
    status, answer = await _send(client, "POST", "/api/v1/person", _h(config, world), body)
    assert status == 400 and answer["error"] == message
    assert (await couch.db(config.db_medic).info())["doc_count"] == before


async def test_writes_need_json_online_users_and_permission(client, config, world):
    body = {"type": "person", "name": "a", "parent": "c1"}
    response = await client.post("/api/v1/person", data=json.dumps(body),
                                 headers={**_h(config, world), "Content-Type": "text/plain"})
    assert response.status == 400 and (await response.json())["error"] == "Content-Type must be application/json"
    for method, url in (("POST", "/api/v1/person"), ("PUT", "/api/v1/person/p1"), ("POST", "/api/v1/place"),
                        ("PUT", "/api/v1/place/c1"), ("POST", "/api/v1/report"), ("PUT", "/api/v1/report/r1")):
        for who in ("chw", "reader"):
            status, answer = await _send(client, method, url, _h(config, world, who), body)
            assert status == 403 and answer["error"].startswith("Insufficient privileges"), (method, url, who)


async def test_create_place_as_cht(client, config, world):
    headers = _h(config, world, "po")
    status, place = await _send(client, "POST", "/api/v1/place", headers,
                                {"type": "clinic", "name": "New clinic", "parent": "hc1", "contact": "p2",
                                 "place_id": "777"})
    assert status == 200, place
    assert place["type"] == "contact" and place["contact_type"] == "clinic" and place["place_id"] == "777"
    assert place["parent"] == {"_id": "hc1", "parent": {"_id": "d1"}}
    assert place["contact"] == {"_id": "p2", "parent": C1}
    assert isinstance(place["reported_date"], int)
    status, top = await _send(client, "POST", "/api/v1/place", _h(config, world),
                              {"type": "district_hospital", "name": "Top"})
    assert status == 200 and "parent" not in top and "contact" not in top


@pytest.mark.parametrize("body, message", [
    ({"type": "person", "name": "p"}, "[person] is not a valid place type."),
    ({"type": "nope", "name": "p"}, "[nope] is not a valid place type."),
    ({"type": "district_hospital", "name": "p", "contact": "invalid-id"}, "Primary contact [invalid-id] not found."),
    ({"type": "district_hospital", "name": "p", "contact": "r1"}, "Primary contact [r1] not found."),
    ({"type": "district_hospital", "name": "p", "parent": "d1"},
     "Place type [district_hospital] does not support having a parent contact."),
    ({"type": "health_center", "name": "p"}, "Place type [health_center] requires a parent contact."),
    ({"type": "health_center", "name": "p", "parent": "p1"}, "Parent contact [p1] not found."),
    ({"type": "health_center", "name": "p", "parent": "c1"},
     "Parent contact of type [clinic] is not allowed for type [health_center]."),
    ({"type": "clinic", "name": "p", "parent": "hc1", "contact": 5}, "The [contact] field must have the type [string]."),
])
async def test_create_place_errors(client, config, world, body, message):
    status, answer = await _send(client, "POST", "/api/v1/place", _h(config, world), body)
    assert status == 400 and answer["error"] == message


async def test_update_person(client, config, world):
    headers = _h(config, world, "po")
    status, created = await _send(client, "POST", "/api/v1/person", headers,
                                  {"type": "person", "name": "Up", "parent": "c1"})
    assert status == 200
    uuid = created["_id"]
    changed = {**created, "name": "Up again", "extra": True}
    del changed["_id"]  # the id comes from the path
    status, updated = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, changed)
    assert status == 200 and updated["name"] == "Up again" and updated["_rev"] != created["_rev"]
    assert updated["_id"] == uuid and updated["extra"] is True
    status, answer = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, changed)  # the old _rev
    assert status == 400 and answer["error"] == "The [_rev] fields must not be changed."
    moved = {**updated, "parent": {"_id": "c2", "parent": {"_id": "hc1"}}}
    status, answer = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, moved)
    assert status == 400 and answer["error"] == "Parent lineage does not match."
    retyped = {**updated, "reported_date": 1, "type": "person"}
    status, answer = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, retyped)
    assert status == 400 and answer["error"] == "The [reported_date,type] fields must not be changed."
    status, answer = await _send(client, "PUT", "/api/v1/person/does-not-exist", headers,
                                 {**updated, "_id": "does-not-exist"})
    assert status == 404 and answer["error"] == "Person record [does-not-exist] not found."
    status, answer = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, {"name": "x"})
    assert status == 400 and answer["error"] == "Valid _id, _rev, and type fields must be provided."
    # a hydrated lineage is accepted and stored minified
    status, hydrated = await _get(client, f"/api/v1/person/{uuid}?with_lineage=true", headers)
    status, again = await _send(client, "PUT", f"/api/v1/person/{uuid}", headers, {**hydrated, "name": "Hydrated"})
    assert status == 200 and again["parent"]["name"] == "Clinic One"
    status, stored = await _get(client, f"/api/v1/person/{uuid}", headers)
    assert stored["parent"] == C1 and stored["name"] == "Hydrated"


async def test_update_place_contact_rules(client, config, world):
    headers = _h(config, world, "po")
    status, place = await _send(client, "POST", "/api/v1/place", headers,
                                {"type": "clinic", "name": "Rules", "parent": "hc1", "contact": "p3"})
    uuid = place["_id"]
    status, answer = await _send(client, "PUT", f"/api/v1/place/{uuid}", headers, {**place, "contact": "invalid-id"})
    assert status == 400 and answer["error"] == "No valid contact found for [invalid-id]."
    status, answer = await _send(client, "PUT", f"/api/v1/place/{uuid}", headers,
                                 {**place, "contact": {"_id": "p4", "parent": {"_id": "c2"}}})
    assert status == 400 and answer["error"] == \
        "The given contact lineage does not match the current lineage for that contact."
    status, updated = await _send(client, "PUT", f"/api/v1/place/{uuid}", headers, {**place, "contact": "p4"})
    assert status == 200 and updated["contact"] == {"_id": "p4", "parent": C1}
    without = {k: v for k, v in updated.items() if k != "contact"}
    status, removed = await _send(client, "PUT", f"/api/v1/place/{uuid}", headers, without)
    assert status == 200 and "contact" not in removed
    status, answer = await _send(client, "PUT", "/api/v1/place/p1", headers, {**removed, "_id": "p1"})
    assert status == 404 and answer["error"] == "Place record [p1] not found."


async def test_create_and_update_report(client, config, world):
    headers = _h(config, world, "po")
    status, report = await _send(client, "POST", "/api/v1/report", headers,
                                 {"form": "visit_followup", "contact": "p5", "fields": {"a": 1}})
    assert status == 200, report
    assert report["type"] == "data_record" and report["contact"] == {"_id": "p5", "parent": C1}
    assert report["fields"] == {"a": 1} and isinstance(report["reported_date"], int)
    for body, message in (({"form": "invalid-form", "contact": "p5"}, "Invalid form value [invalid-form]."),
                          ({"form": "visit_followup", "contact": "invalid-id"}, "Contact [invalid-id] not found."),
                          ({"form": "visit_followup", "contact": "p5", "type": "x"}, 'Report type must be "data_record".'),
                          ({"form": "visit_followup"}, "The [contact] field must have a [string] value."),
                          ({"contact": "p5"}, "The [form] field must have a [string] value.")):
        status, answer = await _send(client, "POST", "/api/v1/report", headers, body)
        assert status == 400 and answer["error"] == message, body
    uuid = report["_id"]
    dropped = {k: v for k, v in report.items() if k != "contact"}
    status, answer = await _send(client, "PUT", f"/api/v1/report/{uuid}", headers, dropped)
    assert status == 400 and answer["error"] == "A contact must be provided."
    status, answer = await _send(client, "PUT", f"/api/v1/report/{uuid}", headers, {**report, "form": "nope"})
    assert status == 400 and answer["error"] == "Invalid form value [nope]."
    status, updated = await _send(client, "PUT", f"/api/v1/report/{uuid}", headers,
                                  {**report, "form": "pregnancy", "fields": {"b": 3}})
    assert status == 200 and updated["form"] == "pregnancy" and updated["_rev"] != report["_rev"]
    status, answer = await _send(client, "PUT", "/api/v1/report/p1", headers, {**updated, "_id": "p1"})
    assert status == 404 and answer["error"] == "Report record [p1] not found."


# -- summaries (cht-core 5.3, shared-libs/summaries) --------------------------------------------------------


async def test_contact_and_report_summaries(client, config, world):
    headers = _h(config, world, "reader")
    status, body = await _send(client, "POST", "/api/v1/contact/summary", headers,
                               {"ids": ["p3", "c1", "r1", "missing", "p3"]})
    assert status == 200
    assert body == [{"_id": "p3", "_rev": body[0]["_rev"], "name": "Person 3", "type": "person",
                     "lineage": ["c1", "hc1", "d1"]},
                    {"_id": "c1", "_rev": body[1]["_rev"], "name": "Clinic One", "type": "clinic", "contact": "p1",
                     "lineage": ["hc1", "d1"]}]
    status, body = await _send(client, "POST", "/api/v1/report/summary", headers, {"ids": ["r1", "sms1", "p1"]})
    assert status == 200
    assert body == [{"_id": "r1", "_rev": body[0]["_rev"], "form": "visit_followup", "valid": True,
                     "reported_date": 5, "contact": "p1", "lineage": ["c1", "hc1", "d1"], "subject": {}}]
    status, body = await _send(client, "POST", "/api/v1/report/summary", headers, {"ids": []})
    assert status == 200 and body == []
    for path in ("contact", "report"):
        status, body = await _send(client, "POST", f"/api/v1/{path}/summary", headers, {"ids": ["a", ""]})
        assert status == 400 and body["error"] == 'Invalid identifiers [["a",""]].'
        status, body = await _send(client, "POST", f"/api/v1/{path}/summary", headers, {})
        assert status == 400 and body["error"] == "Invalid identifiers [undefined]."
        status, body = await _send(client, "POST", f"/api/v1/{path}/summary", _h(config, world, "chw"), {"ids": []})
        assert status == 403
