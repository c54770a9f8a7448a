"""GET contact/person/place (with lineage, visibility), person/place pages, contact id searches."""

import pytest

from api.couch import Couch
from tests.helpers import admin_headers, basic
from tests.hierarchy import build, load
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    return make_world(config)


def _words(doc):
    out = set()
    for key, value in doc.items():
        lower = key.lower()
        if not value or lower in ("_id", "_rev", "type", "refid", "geolocation") or lower.endswith("_date"):
            continue
        if isinstance(value, str):
            out.update(w for w in value.lower().split() if len(w) > 2)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            out.add(f"{lower}:{str(value).lower()}")
    out.add(doc["type"] if doc["type"] != "contact" else doc["contact_type"])
    return out


async def test_get_person_place_and_contact(client, world, config):
    h, admin = world.h, admin_headers(config)
    person = h.by_id[h.people[5]]
    response = await client.get(f"/api/v1/person/{person['_id']}", headers=admin)
    assert response.status == 200
    body = await response.json()
    assert body == person
    clinic = h.by_id[h.clinics[3]]
    assert await (await client.get(f"/api/v1/place/{clinic['_id']}", headers=admin)).json() == clinic
    for doc_id in (person["_id"], clinic["_id"]):
        assert (await client.get(f"/api/v1/contact/{doc_id}", headers=admin)).status == 200


@pytest.mark.parametrize("path, kind", [("person", "Person"), ("place", "Place"), ("contact", "Contact")])
async def test_missing_or_wrong_kind_is_404(client, world, config, path, kind):
    h, admin = world.h, admin_headers(config)
    wrong = {"person": h.clinics[0], "place": h.people[0], "contact": h.reports[0]}[path]
    for doc_id in ("no-such-doc", wrong, "settings"):
        response = await client.get(f"/api/v1/{path}/{doc_id}", headers=admin)
        assert response.status == 404
        assert await response.json() == {"code": 404, "error": f"{kind} not found"}


async def test_with_lineage_hydrates_parents_and_their_contacts(client, world, config):
    h = world.h
    person = h.by_id[h.people[40]]
    response = await client.get(f"/api/v1/person/{person['_id']}?with_lineage=true", headers=admin_headers(config))
    body = await response.json()
    clinic = h.by_id[person["parent"]["_id"]]
    center = h.by_id[clinic["parent"]["_id"]]
    district = h.by_id[center["parent"]["_id"]]
    assert body["parent"]["name"] == clinic["name"] and body["parent"]["_rev"] == clinic["_rev"]
    assert body["parent"]["contact"] == h.by_id[clinic["contact"]["_id"]]
    assert body["parent"]["parent"]["name"] == center["name"]
    assert body["parent"]["parent"]["contact"]["name"] == h.by_id[center["contact"]["_id"]]["name"]
    assert body["parent"]["parent"]["parent"]["name"] == district["name"]
    assert "parent" not in body["parent"]["parent"]["parent"]
    place = await (await client.get(f"/api/v1/place/{clinic['_id']}?with_lineage=true",
                                    headers=admin_headers(config))).json()
    assert place["contact"] == h.by_id[clinic["contact"]["_id"]]
    assert place["parent"]["contact"]["_id"] == center["contact"]["_id"]
    bad = await client.get(f"/api/v1/place/{clinic['_id']}?with_lineage=maybe", headers=admin_headers(config))
    assert bad.status == 400 and (await bad.json())["field"] == "with_lineage"


async def test_permissions_for_reads(client, world):
    person = world.h.people[0]
    assert (await client.get(f"/api/v1/person/{person}")).status == 401
    denied = await client.get(f"/api/v1/person/{person}", headers=basic(world.users["gateway"]))
    assert denied.status == 403 and await denied.json() == {"code": 403, "error": "Insufficient privileges"}
    assert (await client.get(f"/api/v1/person/{person}", headers=basic(world.users["analyst"]))).status == 200


async def test_offline_users_see_only_their_area(client, world):
    h, chw = world.h, basic(world.users["chw"])
    clinic = h.by_id[world.chw_clinic]
    mine = [d for d in h.children(clinic["_id"]) if d["type"] == "person"]
    assert (await client.get(f"/api/v1/place/{clinic['_id']}", headers=chw)).status == 200
    assert (await client.get(f"/api/v1/person/{mine[3]['_id']}", headers=chw)).status == 200
    other = next(p for p in h.people if h.by_id[p]["parent"]["_id"] != clinic["_id"])
    for doc_id in (other, clinic["parent"]["_id"], h.districts[0], h.clinics[1]):
        response = await client.get(f"/api/v1/contact/{doc_id}", headers=chw)
        assert response.status == 404, doc_id
    hydrated = await (await client.get(f"/api/v1/person/{mine[3]['_id']}?with_lineage=true", headers=chw)).json()
    assert hydrated["parent"]["name"] == clinic["name"]
    # the health center and district are above the CHW's place: ids only, nothing else leaks
    assert hydrated["parent"]["parent"] == clinic["parent"]
    sup = basic(world.users["sup"])
    center_people = [p for p in h.people if h.by_id[p]["parent"].get("parent", {}).get("_id") == world.sup_center]
    assert (await client.get(f"/api/v1/person/{center_people[-1]}", headers=sup)).status == 200
    assert (await client.get(f"/api/v1/place/{h.centers[1]}", headers=sup)).status == 404


async def _all_pages(client, path, headers, limit):
    ids, cursor, pages = [], None, 0
    while True:
        url = f"{path}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=headers)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body["data"]) <= limit
        ids.extend(d if isinstance(d, str) else d["_id"] for d in body["data"])
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            return ids, pages


async def test_person_pages_cover_every_person_once(client, world, config):
    ids, pages = await _all_pages(client, "/api/v1/person?type=person", admin_headers(config), 500)
    assert sorted(ids) == sorted(world.h.people) and len(ids) == len(set(ids))
    assert pages == len(world.h.people) // 500 + 1
    default = await (await client.get("/api/v1/person?type=person", headers=admin_headers(config))).json()
    assert len(default["data"]) == 100 and default["cursor"]
    assert all(d["type"] == "person" for d in default["data"])


async def test_place_pages_and_exact_last_page(client, world, config):
    ids, pages = await _all_pages(client, "/api/v1/place?type=clinic", admin_headers(config), 16)
    assert len(world.h.clinics) % 16 == 0
    assert sorted(ids) == sorted(world.h.clinics) and pages == len(world.h.clinics) // 16  # no empty last page
    centers = await (await client.get(f"/api/v1/place?type=health_center&limit={len(world.h.centers)}",
                                      headers=admin_headers(config))).json()
    assert len(centers["data"]) == len(world.h.centers) and centers["cursor"] is None


async def test_cursor_is_stable_while_contacts_are_added(client, world, config):
    admin = admin_headers(config)
    first = await (await client.get("/api/v1/place?type=district_hospital&limit=1", headers=admin)).json()
    extra = build(seed=99, districts=3, centers=0, clinics=0, people=0)
    new_districts = [d for d in extra.docs if d["type"] == "district_hospital"]
    async with Couch.from_config(config) as couch:
        await load(couch.db(config.db_medic), extra)
    seen = [first["data"][0]["_id"]]
    cursor = first["cursor"]
    while cursor:
        body = await (await client.get(f"/api/v1/place?type=district_hospital&limit=1&cursor={cursor}",
                                       headers=admin)).json()
        seen.extend(d["_id"] for d in body["data"])
        cursor = body["cursor"]
    assert len(seen) == len(set(seen))
    assert set(world.h.districts) <= set(seen)
    after_first = {d["_id"] for d in new_districts if d["_id"] > seen[0]}
    assert after_first <= set(seen)
    async with Couch.from_config(config) as couch:
        await couch.db(config.db_medic).bulk_docs([{**d, "_deleted": True} for d in extra.docs])


@pytest.mark.parametrize("url, field", [
    ("/api/v1/person", "type"),
    ("/api/v1/person?type=clinic", "type"),
    ("/api/v1/place?type=person", "type"),
    ("/api/v1/place?type=nope", "type"),
    ("/api/v1/person?type=person&limit=0", "limit"),
    ("/api/v1/person?type=person&limit=x", "limit"),
    ("/api/v1/person?type=person&limit=10001", "limit"),
    ("/api/v1/person?type=person&cursor=not-a-cursor", "cursor"),
    ("/api/v1/person?type=person&cursor=WyJjbGluaWMiLCJ4Il0", "cursor"),
])
async def test_page_errors(client, world, config, url, field):
    response = await client.get(url, headers=admin_headers(config))
    assert response.status == 400
    assert (await response.json())["field"] == field


async def test_lists_and_searches_are_for_online_users(client, world):
    chw = basic(world.users["chw"])
    for url in ("/api/v1/person?type=person", "/api/v1/place?type=clinic", "/api/v1/contact/uuid?type=person"):
        response = await client.get(url, headers=chw)
        assert response.status == 403, url
    ok = await client.get("/api/v1/person?type=person&limit=1", headers=basic(world.users["po"]))
    assert ok.status == 200


async def test_contact_uuid_by_type_and_freetext(client, world, config):
    h, admin = world.h, admin_headers(config)
    ids, _ = await _all_pages(client, "/api/v1/contact/uuid?type=clinic", admin, 10000)
    assert sorted(ids) == sorted(h.clinics)
    contacts = [d for d in h.docs if d["type"] != "data_record"]
    expected = sorted(d["_id"] for d in contacts if any(w.startswith("baraka") for w in _words(d)))
    found, pages = await _all_pages(client, "/api/v1/contact/uuid?freetext=BARAKA", admin, 10000)
    assert sorted(found) == expected and len(expected) > 50 and pages == 1
    paged, pages = await _all_pages(client, "/api/v1/contact/uuid?freetext=baraka", admin, 37)
    assert sorted(set(paged)) == expected and pages > 1
    typed = sorted(d["_id"] for d in contacts if d["type"] == "clinic" and
                   any(w.startswith("baraka") for w in _words(d)))
    both, _ = await _all_pages(client, "/api/v1/contact/uuid?type=clinic&freetext=baraka", admin, 10000)
    assert sorted(both) == typed
    person = h.by_id[h.people[77]]
    exact, _ = await _all_pages(client, f"/api/v1/contact/uuid?freetext=patient_id:{person['patient_id']}",
                                admin, 10)
    assert exact == [person["_id"]]


@pytest.mark.parametrize("query, field", [
    ("", "type"), ("freetext=ab", "freetext"), ("freetext=a%20bc", "freetext"), ("type=nope", "type"),
    ("type=person&limit=-1", "limit"), ("freetext=abc&cursor=%25%25", "cursor"),
])
async def test_contact_uuid_errors(client, world, config, query, field):
    response = await client.get(f"/api/v1/contact/uuid?{query}", headers=admin_headers(config))
    assert response.status == 400
    assert (await response.json())["field"] == field
