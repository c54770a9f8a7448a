"""POST people, places and places/{id}: hierarchy rules, nested creates (all or nothing), short ids, rights."""

import re
import time

import pytest

from api.auth import Principal
from api.cht.contacts import writes as contact_writes
from api.cht.contacts.writes import ContactWriter
from api.cht.visibility import UNRESTRICTED
from api.errors import Conflict
from api.settings import default_settings
from tests.helpers import admin_headers, basic
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    return make_world(config, districts=1, centers=2, clinics=2, people=4, reports_per_clinic=0)


async def _doc_count(couch, config):
    return (await couch.db(config.db_medic).info())["doc_count"]


async def _get(couch, config, doc_id):
    return await couch.db(config.db_medic).get(doc_id)


async def test_person_in_an_existing_place(client, world, config, couch):
    clinic = world.h.by_id[world.h.clinics[1]]
    before = int(time.time() * 1000)
    response = await client.post("/api/v1/people", json={"name": "Samuel", "place": clinic["_id"],
                                                          "phone": "+254712000001", "sex": "male"},
                                 headers=admin_headers(config))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert set(body) == {"ok", "id", "rev"} and body["rev"].startswith("1-")
    person = await _get(couch, config, body["id"])
    assert person["type"] == "person" and person["name"] == "Samuel" and person["sex"] == "male"
    assert person["parent"] == {"_id": clinic["_id"], "parent": clinic["parent"]}
    assert before <= person["reported_date"] <= int(time.time() * 1000)
    assert re.fullmatch(r"\d{5,}", person["patient_id"])
    lookup = await client.get(f"/api/v1/contact/uuid?freetext=patient_id:{person['patient_id']}",
                              headers=admin_headers(config))
    assert (await lookup.json())["data"] == [body["id"]]


async def test_person_with_a_new_place_hierarchy(client, world, config, couch):
    response = await client.post("/api/v1/people", headers=admin_headers(config), json={
        "name": "Hannah", "phone": "+2548277210095", "reported_date": "2016-07-01T13:48:24Z",
        "place": {"name": "CHP Area One", "type": "health_center",
                  "parent": {"name": "CHP Branch One", "type": "district_hospital"}}})
    assert response.status == 200, await response.text()
    body = await response.json()
    person = await _get(couch, config, body["id"])
    center = await _get(couch, config, person["parent"]["_id"])
    district = await _get(couch, config, center["parent"]["_id"])
    assert body["place"] == {"id": center["_id"], "rev": center["_rev"]}
    assert person["reported_date"] == 1467380904000
    assert (center["type"], center["name"], district["type"]) == ("health_center", "CHP Area One", "district_hospital")
    assert person["parent"] == {"_id": center["_id"], "parent": {"_id": district["_id"]}}
    assert "parent" not in district and center["place_id"] != district["place_id"]


async def test_place_with_new_parent_and_new_contact(client, world, config, couch):
    response = await client.post("/api/v1/places", headers=admin_headers(config), json={
        "name": "CHP Area Two", "type": "health_center", "reported_date": 1467383343484,
        "parent": {"name": "CHP Branch Two", "type": "district_hospital"},
        "contact": {"name": "Paul", "phone": "+254883720611"}})
    assert response.status == 200, await response.text()
    body = await response.json()
    place = await _get(couch, config, body["id"])
    paul = await _get(couch, config, place["contact"]["_id"])
    assert body["contact"] == {"id": paul["_id"], "rev": paul["_rev"]}
    assert place["reported_date"] == 1467383343484
    assert place["contact"] == {"_id": paul["_id"], "parent": {"_id": place["_id"], "parent": place["parent"]}}
    assert paul["type"] == "person" and paul["parent"] == {"_id": place["_id"], "parent": place["parent"]}
    hydrated = await (await client.get(f"/api/v1/place/{place['_id']}?with_lineage=true",
                                       headers=admin_headers(config))).json()
    assert hydrated["contact"]["name"] == "Paul" and hydrated["parent"]["name"] == "CHP Branch Two"


async def test_place_with_existing_parent_and_contact(client, world, config, couch):
    center = world.h.by_id[world.h.centers[0]]
    someone = world.h.by_id[world.h.people[3]]
    response = await client.post("/api/v1/places", headers=admin_headers(config), json={
        "name": "Busia Clinic", "type": "clinic", "parent": center["_id"], "contact": someone["_id"],
        "external_id": "B-1"})
    body = await response.json()
    place = await _get(couch, config, body["id"])
    assert place["parent"] == {"_id": center["_id"], "parent": center["parent"]}
    assert place["contact"] == {"_id": someone["_id"], "parent": someone["parent"]}
    assert place["external_id"] == "B-1" and "contact" not in body


@pytest.mark.parametrize("body, status, field, message", [
    ({"name": "X", "type": "health_center", "parent": {"name": "Y", "type": "clinic",
                                                       "parent": {"name": "Z", "type": "district_hospital"}}},
     400, "parent.parent", 'Clinics should have "health_center" parent type.'),
    ({"name": "X", "type": "health_center", "parent": "CLINIC"}, 400, "parent",
     'Health Centers should have "district_hospital" parent type.'),
    ({"name": "X", "type": "clinic"}, 400, "parent", 'Clinics should have "health_center" parent type.'),
    ({"name": "X", "type": "district_hospital", "parent": "CENTER"}, 400, "parent",
     "District Hospitals should not have a parent."),
    ({"name": "X", "type": "person", "parent": "CENTER"}, 400, "type", "Wrong type, person is not a place type."),
    ({"name": "X", "type": "nope"}, 400, "type", "Wrong type, nope is not a place type."),
    ({"name": "X", "type": "contact"}, 400, "contact_type", None),
    ({"type": "clinic", "parent": "CENTER"}, 400, "name", None),
    ({"name": "X", "type": "clinic", "parent": 7}, 400, "parent", None),
    ({"name": "X", "type": "clinic", "parent": "missing-place"}, 404, "parent", None),
    ({"name": "X", "type": "clinic", "parent": "PERSON"}, 404, "parent", None),
    ({"name": "X", "type": "clinic", "parent": "CENTER", "contact": "CENTER"}, 404, "contact", None),
    ({"name": "X", "type": "clinic", "parent": "CENTER", "_id": "_mine"}, 400, None, None),  # CHT keeps other ids
    ({"name": "X", "type": "clinic", "parent": "CENTER", "reported_date": "yesterday"}, 400, "reported_date", None),
    ({"name": "X", "type": "clinic", "parent": "CENTER", "place_id": "DUP"}, 409, "place_id", None),
])
async def test_bad_places_are_refused_and_nothing_is_written(client, world, config, couch, body, status, field,
                                                             message):
    h = world.h
    names = {"CLINIC": h.clinics[0], "CENTER": h.centers[0], "PERSON": h.people[0],
             "DUP": h.by_id[h.clinics[0]]["place_id"]}

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return names.get(value, value) if isinstance(value, str) else value

    before = await _doc_count(couch, config)
    response = await client.post("/api/v1/places", json=fill(body), headers=admin_headers(config))
    assert response.status == status, await response.text()
    error = await response.json()
    if field:
        assert error["field"] == field
    if message:
        assert error["error"] == message
    assert await _doc_count(couch, config) == before


@pytest.mark.parametrize("body, field", [
    ({"place": "x"}, "name"), ({"name": ""}, "name"), ({"name": "A", "type": "clinic"}, "type"),
    ({"name": "A", "parent": "x"}, "parent"), ({"name": "A", "place": {"name": "P"}}, "place.type"),
    ({"name": "A", "type": "contact", "contact_type": "health_center"}, "type"),
])
async def test_bad_people_are_refused(client, world, config, couch, body, field):
    before = await _doc_count(couch, config)
    response = await client.post("/api/v1/people", json=body, headers=admin_headers(config))
    assert response.status == 400, await response.text()
    assert (await response.json())["field"] == field
    assert await _doc_count(couch, config) == before
    for raw in (b"[]", b"{nope", b""):
        bad = await client.post("/api/v1/people", data=raw, headers=admin_headers(config))
        assert bad.status == 400


async def test_configured_contact_types(client, world, config, couch):
    settings = default_settings()
    types = settings["contact_types"] + [{"id": "chp_area", "parents": ["health_center"]},
                                         {"id": "patient", "parents": ["chp_area"], "person": True}]
    assert (await client.put("/api/v1/settings", json={"contact_types": types},
                             headers=admin_headers(config))).status == 200
    try:
        response = await client.post("/api/v1/people", headers=admin_headers(config), json={
            "name": "Asha", "type": "contact", "contact_type": "patient",
            "place": {"name": "Area 9", "type": "contact", "contact_type": "chp_area", "parent": world.h.centers[1]}})
        assert response.status == 200, await response.text()
        person = await _get(couch, config, (await response.json())["id"])
        assert (person["type"], person["contact_type"]) == ("contact", "patient")
        area = await _get(couch, config, person["parent"]["_id"])
        assert (area["type"], area["contact_type"]) == ("contact", "chp_area")
        listed = await (await client.get("/api/v1/place?type=chp_area", headers=admin_headers(config))).json()
        assert [d["_id"] for d in listed["data"]] == [area["_id"]]
        wrong = await client.post("/api/v1/people", headers=admin_headers(config), json={
            "name": "B", "type": "contact", "contact_type": "patient", "place": world.h.clinics[0]})
        assert (await wrong.json())["error"] == 'patient should have "chp_area" parent type.'
    finally:
        await client.put("/api/v1/settings?replace=true", json={"contact_types": default_settings()["contact_types"]},
                         headers=admin_headers(config))


async def test_short_ids_must_be_unique(client, world, config, couch):
    taken = world.h.by_id[world.h.people[1]]["patient_id"]
    before = await _doc_count(couch, config)
    response = await client.post("/api/v1/people", json={"name": "Dup", "patient_id": taken,
                                                          "place": world.h.clinics[0]},
                                 headers=admin_headers(config))
    assert response.status == 409 and (await response.json())["field"] == "patient_id"
    twice = await client.post("/api/v1/places", headers=admin_headers(config), json={
        "name": "A", "type": "health_center", "place_id": "555555",
        "parent": {"name": "B", "type": "district_hospital", "place_id": "555555"}})
    assert twice.status == 409
    assert await _doc_count(couch, config) == before
    chosen = await client.post("/api/v1/people", json={"name": "Own code", "patient_id": 777777,
                                                        "place": world.h.clinics[0]}, headers=admin_headers(config))
    assert (await _get(couch, config, (await chosen.json())["id"]))["patient_id"] == "777777"


async def test_a_failed_bulk_write_is_undone(config, couch, world, monkeypatch):
    existing = world.h.people[0]
    fresh = iter(["fresh-district-1", existing])
    monkeypatch.setattr(contact_writes, "new_id", lambda: next(fresh))
    db = couch.db(config.db_medic)
    writer = ContactWriter(db, default_settings(), Principal("admin", ("_admin",)), UNRESTRICTED,
                           codes=couch.db(config.db_sentinel))
    with pytest.raises(Conflict):
        await writer.create_place({"name": "D", "type": "district_hospital", "contact": {"name": "Boss"}})
    assert await db.get_or_none("fresh-district-1") is None
    assert (await db.get(existing))["name"] == world.h.by_id[existing]["name"]


async def test_create_permissions_and_areas(client, world, config):
    h = world.h
    own_clinic, other_clinic = world.chw_clinic, next(c for c in h.clinics if c != world.chw_clinic)
    assert (await client.post("/api/v1/people", json={"name": "A"})).status == 401
    assert (await client.post("/api/v1/people", json={"name": "A"}, headers=basic(world.users["analyst"]))).status == 403
    chw = basic(world.users["chw"])
    ok = await client.post("/api/v1/people", json={"name": "New baby", "place": own_clinic}, headers=chw)
    assert ok.status == 200, await ok.text()
    outside = await client.post("/api/v1/people", json={"name": "B", "place": other_clinic}, headers=chw)
    assert outside.status == 404
    nested = await client.post("/api/v1/people", headers=chw, json={
        "name": "C", "place": {"name": "Sub", "type": "clinic", "parent": h.centers[0]}})
    assert nested.status == 403 and (await nested.json())["error"] == "Insufficient privileges"
    assert (await client.post("/api/v1/places", json={"name": "x", "type": "clinic", "parent": h.centers[0]},
                              headers=chw)).status == 403
    sup = basic(world.users["sup"])
    mine = await client.post("/api/v1/places", json={"name": "Sup clinic", "type": "clinic",
                                                      "parent": world.sup_center}, headers=sup)
    assert mine.status == 200
    other_center = next(c for c in h.centers if c != world.sup_center)
    assert (await client.post("/api/v1/places", json={"name": "x", "type": "clinic", "parent": other_center},
                              headers=sup)).status == 404
    top = await client.post("/api/v1/places", json={"name": "x", "type": "district_hospital"}, headers=sup)
    assert top.status == 403
    no_people = await client.post("/api/v1/places", headers=basic(world.users["national"]), json={
        "name": "x", "type": "clinic", "parent": world.sup_center, "contact": {"name": "p"}})
    assert no_people.status == 200


async def test_update_place_name_and_contact(client, world, config, couch):
    clinic_id = world.h.clinics[1]
    admin = admin_headers(config)
    response = await client.post(f"/api/v1/places/{clinic_id}", json={"name": "Renamed", "notes": "n"}, headers=admin)
    assert response.status == 200, await response.text()
    body = await response.json()
    clinic = await _get(couch, config, clinic_id)
    assert body == {"id": clinic_id, "rev": clinic["_rev"]} and clinic["name"] == "Renamed" and clinic["notes"] == "n"
    person = world.h.by_id[world.h.people[2]]
    await client.post(f"/api/v1/places/{clinic_id}", json={"contact": person["_id"]}, headers=admin)
    assert (await _get(couch, config, clinic_id))["contact"] == {"_id": person["_id"], "parent": person["parent"]}
    response = await client.post(f"/api/v1/places/{clinic_id}", json={"contact": {"name": "Fresh CHW"}}, headers=admin)
    clinic = await _get(couch, config, clinic_id)
    new_contact = await _get(couch, config, clinic["contact"]["_id"])
    assert new_contact["name"] == "Fresh CHW"
    assert new_contact["parent"] == {"_id": clinic_id, "parent": clinic["parent"]}
    assert clinic["_rev"] == (await response.json())["rev"]


@pytest.mark.parametrize("body, status, field", [
    ({}, 400, None), ({"parent": "elsewhere"}, 400, "parent"), ({"type": "health_center"}, 400, "type"),
    ({"contact": "no-such-person"}, 404, "contact"), ({"name": 3}, 400, "name"), ({"_rev": "1-x"}, 400, None),
])
async def test_update_place_errors(client, world, config, couch, body, status, field):
    clinic_id = world.h.clinics[0]
    before = await _get(couch, config, clinic_id)
    response = await client.post(f"/api/v1/places/{clinic_id}", json=body, headers=admin_headers(config))
    assert response.status == status, await response.text()
    if field:
        assert (await response.json())["field"] == field
    assert (await _get(couch, config, clinic_id))["_rev"] == before["_rev"]


async def test_update_place_not_found_and_rights(client, world, config):
    admin = admin_headers(config)
    for doc_id in ("missing", world.h.people[0]):
        assert (await client.post(f"/api/v1/places/{doc_id}", json={"name": "x"}, headers=admin)).status == 404
    chw = basic(world.users["chw"])
    assert (await client.post(f"/api/v1/places/{world.chw_clinic}", json={"name": "x"}, headers=chw)).status == 403
    sup = basic(world.users["sup"])
    other = next(c for c in world.h.clinics if world.h.by_id[c]["parent"]["_id"] != world.sup_center)
    assert (await client.post(f"/api/v1/places/{other}", json={"name": "x"}, headers=sup)).status == 404
    mine = next(c for c in world.h.clinics if world.h.by_id[c]["parent"]["_id"] == world.sup_center)
    assert (await client.post(f"/api/v1/places/{mine}", json={"name": "Sup's"}, headers=sup)).status == 200


