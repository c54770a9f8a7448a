"""GET contact/person/place (with lineage, visibility), person/place pages, contact id searches."""

import asyncio

import pytest

from api.couch import Couch
from tests.helpers import admin_headers, basic
from tests.hierarchy import build, load
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    made = make_world(config)

    async def warm():  # build the views once, so no request below waits for a whole index (COUCH_TIMEOUT)
        async with Couch.from_config(config) as couch:
            for view in ("contacts_by_type", "contacts_by_freetext", "contacts_by_type_freetext"):
                await couch.db(config.db_medic).view("medic-client", view, limit=1, timeout=600)

    asyncio.run(warm())
    return made


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
    plain = await client.get(f"/api/v1/place/{clinic['_id']}?with_lineage=maybe", headers=admin_headers(config))
    assert plain.status == 200 and await plain.json() == clinic  # as in CHT: only "true" asks for the lineage


async def test_permissions_for_reads(client, world):
    person = world.h.people[0]
    assert (await client.get(f"/api/v1/person/{person}")).status == 401
    denied = await client.get(f"/api/v1/person/{person}", headers=basic(world.users["gateway"]))
    assert denied.status == 403 and await denied.json() == {"code": 403, "error": "Insufficient privileges"}
    assert (await client.get(f"/api/v1/person/{person}", headers=basic(world.users["analyst"]))).status == 200


async def test_offline_users_may_not_read(client, world):
    """As in CHT, the data endpoints are for online users: an offline user reads from their device."""
    h, chw = world.h, basic(world.users["chw"])
    clinic = h.by_id[world.chw_clinic]
    mine = [d for d in h.children(clinic["_id"]) if d["type"] == "person"]
    for url in (f"/api/v1/place/{clinic['_id']}", f"/api/v1/person/{mine[3]['_id']}",
                f"/api/v1/contact/{mine[3]['_id']}?with_lineage=true", f"/api/v1/contact/{h.districts[0]}"):
        response = await client.get(url, headers=chw)
        assert response.status == 403, url


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
    # as in CHT: a full last page has a cursor, and the page after it is empty
    assert sorted(ids) == sorted(world.h.clinics) and pages == len(world.h.clinics) // 16 + 1
    centers = await (await client.get(f"/api/v1/place?type=health_center&limit={len(world.h.centers)}",
                                      headers=admin_headers(config))).json()
    assert len(centers["data"]) == len(world.h.centers) and centers["cursor"] == str(len(world.h.centers))


async def test_pages_see_contacts_added_after_the_cursor(client, world, config):
    admin = admin_headers(config)
    first = await (await client.get("/api/v1/place?type=district_hospital&limit=1", headers=admin)).json()
    assert first["cursor"] == "1"
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
    assert set(world.h.districts) <= set(seen)
    after_first = {d["_id"] for d in new_districts if d["_id"] > seen[0]}
    assert after_first <= set(seen)
    # one that sorts before the cursor shifts the skip: the first page's id comes again (docs/contacts.md)
    before_first = [d for d in new_districts if d["_id"] < seen[0]]
    assert len(seen) == len(set(seen)) + (1 if before_first else 0)
    async with Couch.from_config(config) as couch:
        await couch.db(config.db_medic).bulk_docs([{**d, "_deleted": True} for d in extra.docs])


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
    assert sorted(paged) == expected and pages > 1  # every id once, across pages too
    typed = sorted(d["_id"] for d in contacts if d["type"] == "clinic" and
                   any(w.startswith("baraka") for w in _words(d)))
    both, _ = await _all_pages(client, "/api/v1/contact/uuid?type=clinic&freetext=baraka", admin, 10000)
    assert sorted(both) == typed
    person = h.by_id[h.people[77]]
    exact, _ = await _all_pages(client, f"/api/v1/contact/uuid?freetext=patient_id:{person['patient_id']}",
                                admin, 10)
    assert exact == [person["_id"]]
