"""GET report (with contact, patient and place; visibility) and report id searches."""

import pytest

from api.schemas import errors as schema_errors
from tests.helpers import admin_headers, basic
from tests.world import make_world


@pytest.fixture(scope="module")
def world(config):
    return make_world(config, districts=1, centers=2, clinics=3, people=8, reports_per_clinic=12)


def test_generated_reports_match_the_report_schema(world):
    for report_id in world.h.reports:
        assert schema_errors("report", world.h.by_id[report_id]) == []


async def test_get_report_as_stored_and_with_lineage(client, world, config):
    h, admin = world.h, admin_headers(config)
    report = h.by_id[h.reports[4]]
    assert await (await client.get(f"/api/v1/report/{report['_id']}", headers=admin)).json() == report
    body = await (await client.get(f"/api/v1/report/{report['_id']}?with_lineage=true", headers=admin)).json()
    chw = h.by_id[report["contact"]["_id"]]
    clinic = h.by_id[chw["parent"]["_id"]]
    assert body["contact"]["name"] == chw["name"]
    assert body["contact"]["parent"]["name"] == clinic["name"]
    assert body["contact"]["parent"]["parent"]["contact"]["_id"] == h.by_id[clinic["parent"]["_id"]]["contact"]["_id"]
    patient = next(d for d in h.docs if d.get("patient_id") == report["fields"]["patient_id"])
    assert body["patient"]["_id"] == patient["_id"] and body["patient"]["parent"]["name"] == clinic["name"]
    assert "place" not in body


async def test_report_place_by_short_id(client, world, config, couch):
    h = world.h
    clinic = h.by_id[h.clinics[1]]
    doc = {"_id": "report-about-a-place", "type": "data_record", "form": "V", "reported_date": 5,
           "fields": {"place_id": clinic["place_id"]}, "contact": {"_id": clinic["contact"]["_id"]}}
    await couch.db(config.db_medic).put(doc)
    body = await (await client.get("/api/v1/report/report-about-a-place?with_lineage=true",
                                   headers=admin_headers(config))).json()
    assert body["place"]["_id"] == clinic["_id"] and body["place"]["contact"]["name"]
    assert "patient" not in body


async def test_not_a_report_is_404(client, world, config):
    for doc_id in ("nothing-here", world.h.people[0], "settings"):
        response = await client.get(f"/api/v1/report/{doc_id}", headers=admin_headers(config))
        assert response.status == 404 and await response.json() == {"code": 404, "error": "Report not found"}


async def test_report_permissions(client, world):
    """Online users with can_view_reports only, as in CHT (offline users read reports on their device)."""
    h = world.h
    report = h.reports[0]
    assert (await client.get(f"/api/v1/report/{report}")).status == 401
    assert (await client.get(f"/api/v1/report/{report}", headers=basic(world.users["gateway"]))).status == 403
    mine = next(r for r in h.reports if h.by_id[r]["contact"]["_id"] == world.chw_contact)
    for who in ("chw", "sup"):
        assert (await client.get(f"/api/v1/report/{mine}", headers=basic(world.users[who]))).status == 403
    assert (await client.get(f"/api/v1/report/{mine}", headers=basic(world.users["analyst"]))).status == 200


async def test_report_uuid_search(client, world, config):
    h, admin = world.h, admin_headers(config)
    by_chw = sorted(r for r in h.reports if h.by_id[r]["contact"]["_id"] == world.chw_contact)
    response = await client.get(f"/api/v1/report/uuid?freetext=contact:{world.chw_contact}", headers=admin)
    body = await response.json()
    assert sorted(body["data"]) == by_chw and body["cursor"] is None
    visits = sorted(h.reports)
    ids, cursor = [], None
    while True:
        url = "/api/v1/report/uuid?freetext=VISIT&limit=7" + (f"&cursor={cursor}" if cursor else "")
        body = await (await client.get(url, headers=admin)).json()
        ids += body["data"]
        cursor = body["cursor"]
        if not cursor:
            break
    assert sorted(ids) == visits  # every id once, across pages too
    assert (await client.get("/api/v1/report/uuid?freetext=visit", headers=basic(world.users["chw"]))).status == 403
