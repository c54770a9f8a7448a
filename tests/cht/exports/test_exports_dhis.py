"""The DHIS2 export: targets aggregated per organisation unit, checked against DHIS2's dataValueSet structure."""

from __future__ import annotations

import re
import time

import pytest

from api import schemas
from api.cht.exports import dhis
from api.cht.exports.params import DhisFilters, Options
from api.errors import BadRequest
from tests.helpers import admin_headers, basic
from tests.world import make_users

DATA_SET = "VMuFODsyWaO"
OTHER_SET = "OtherSet123"
EMPTY_SET = "EmptySet123"
BIRTHS, VISITS, OTHER = "kB0ZBFisE0e", "pikOziyCXbM", "Xyz12345678"
DH1_UNIT, HC1_UNIT, HC1_OTHER_UNIT = "KbY9DJ8mBkx", "QwErTy12345", "ZzZzZ123456"
JAN = 1704067200000 + 15 * 86400000  # 2024-01-16

SETTINGS = {
    "dhis_data_sets": [{"id": DATA_SET, "translation_key": "dhis.set.monthly"},
                       {"id": OTHER_SET, "translation_key": "dhis.set.other"},
                       {"id": EMPTY_SET, "translation_key": "dhis.set.empty"}],
    "tasks": {"targets": {"items": [
        {"id": "births", "type": "count", "dhis": {"dataElement": BIRTHS}},
        {"id": "visits", "type": "count", "dhis": {"dataElement": VISITS, "dataSet": DATA_SET,
                                                   "categoryOptionCombo": "HllvX50cXC0", "unknown": "dropped"}},
        {"id": "other", "type": "count", "dhis": [{"dataElement": OTHER, "dataSet": OTHER_SET}]},
        {"id": "no-dhis", "type": "count"},
    ]}},
}

DOCS = [
    {"_id": "d-dh1", "type": "district_hospital", "name": "North District", "dhis": {"orgUnit": DH1_UNIT}},
    {"_id": "d-hc1", "type": "health_center", "name": "Center One", "parent": {"_id": "d-dh1"},
     "dhis": [{"orgUnit": HC1_UNIT, "dataSet": DATA_SET}, {"orgUnit": HC1_OTHER_UNIT, "dataSet": OTHER_SET}]},
    {"_id": "d-chw1", "type": "person", "name": "Alice", "parent": {"_id": "d-hc1", "parent": {"_id": "d-dh1"}}},
    {"_id": "d-chw3", "type": "person", "name": "Carol", "parent": {"_id": "d-hc1", "parent": {"_id": "d-dh1"}}},
    {"_id": "d-dh2", "type": "district_hospital", "name": "South"},
    {"_id": "d-chw2", "type": "person", "name": "Bob", "parent": {"_id": "d-dh2"}},
    {"_id": "target~2024-01~d-chw1~org.couchdb.user:alice", "type": "target", "owner": "d-chw1",
     "user": "org.couchdb.user:alice", "reporting_period": "2024-01",
     "targets": [{"id": "births", "value": {"pass": 2, "total": 3}}, {"id": "visits", "value": {"pass": 5, "total": 5}},
                 {"id": "other", "value": {"total": 9}}, {"id": "no-dhis", "value": {"total": 50}}]},
    {"_id": "target~2024-01~d-chw3~org.couchdb.user:carol", "type": "target", "owner": "d-chw3",
     "targets": [{"id": "births", "value": {"pass": 1, "total": 1}}, {"id": "visits", "value": {"total": "x"}}]},
    {"_id": "target~2024-01~d-chw2~org.couchdb.user:bob", "type": "target", "owner": "d-chw2",
     "targets": [{"id": "births", "value": {"total": 7}}]},
    {"_id": "target~2024-02~d-chw1~org.couchdb.user:alice", "type": "target", "owner": "d-chw1",
     "targets": [{"id": "births", "value": {"total": 100}}]},
    {"_id": "messages-en", "type": "translations", "code": "en", "generic": {"dhis.set.monthly": "CHW monthly"}},
]


@pytest.fixture(scope="module")
def users(config):
    return make_users(config, {"po": (["program_officer"], {}), "chw": (["chw"], {"facility_id": "d-hc1"}),
                               "national": (["national_admin"], {})})


@pytest.fixture
async def data(client, couch, config):
    db = couch.db(config.db_medic)
    if await db.get_or_none("d-dh1") is None:
        await db.bulk_docs([dict(d) for d in DOCS])
        response = await client.put("/api/v1/settings", json=SETTINGS, headers=admin_headers(config))
        assert response.status == 200
    return db


def _values(result):
    return sorted((v["orgUnit"], v["dataElement"], v["value"], v.get("categoryOptionCombo"))
                  for v in result["dataValues"])


async def test_targets_are_summed_per_org_unit(client, data, users):
    response = await client.get(f"/api/v2/export/dhis?filters[dataSet]={DATA_SET}&filters[date][from]={JAN}",
                                headers=basic(users["national"]))
    assert response.status == 200, await response.text()
    assert re.fullmatch(r"attachment; filename=dhis-\d{12}\.json", response.headers["Content-Disposition"])
    result = await response.json()
    assert schemas.errors("dhis_data_value_set", result) == []
    assert result["dataSet"] == DATA_SET and result["period"] == "202401"
    assert result["completeDate"] == time.strftime("%Y-%m-%d", time.gmtime())
    # Alice (3 births, 5 visits) and Carol (1 birth) are below both units; Bob has no unit; February is out
    assert _values(result) == [
        (DH1_UNIT, BIRTHS, "4", None), (DH1_UNIT, VISITS, "5", "HllvX50cXC0"),
        (HC1_UNIT, BIRTHS, "4", None), (HC1_UNIT, VISITS, "5", "HllvX50cXC0")]


async def test_post_other_data_set_and_org_unit(client, data, users):
    response = await client.post("/api/v2/export/dhis", headers=basic(users["national"]), json={
        "filters": {"dataSet": OTHER_SET, "date": {"from": "2024-01-31T23:00:00Z"}}})
    result = await response.json()
    assert schemas.errors("dhis_data_value_set", result) == []
    assert _values(result) == sorted([(DH1_UNIT, BIRTHS, "4", None), (DH1_UNIT, OTHER, "9", None),
                                      (HC1_OTHER_UNIT, BIRTHS, "4", None), (HC1_OTHER_UNIT, OTHER, "9", None)])
    response = await client.get(f"/api/v2/export/dhis?dataSet={DATA_SET}&date.from={JAN}&orgUnit={HC1_UNIT}",
                                headers=basic(users["national"]))
    result = await response.json()
    assert schemas.errors("dhis_data_value_set", result) == []
    assert result["orgUnit"] == HC1_UNIT
    assert _values(result) == [(HC1_UNIT, BIRTHS, "4", None), (HC1_UNIT, VISITS, "5", "HllvX50cXC0")]
    response = await client.get(f"/api/v2/export/dhis?dataSet={DATA_SET}&date.from=2023-06-01&orgUnit={HC1_UNIT}",
                                headers=basic(users["national"]))
    assert _values(await response.json()) == [(HC1_UNIT, BIRTHS, "0", None), (HC1_UNIT, VISITS, "0", "HllvX50cXC0")]


async def test_human_readable(client, data, users):
    response = await client.get(f"/api/v2/export/dhis?filters[dataSet]={DATA_SET}&filters[date][from]={JAN}"
                                "&options[humanReadable]=true", headers=basic(users["national"]))
    result = await response.json()
    assert result["dataSet"] == "CHW monthly"
    assert _values(result) == [("Center One", "births", "4", None), ("Center One", "visits", "5", "HllvX50cXC0"),
                               ("North District", "births", "4", None),
                               ("North District", "visits", "5", "HllvX50cXC0")]
    assert schemas.errors("dhis_data_value_set", result)  # names are not DHIS2 ids: not an import


@pytest.mark.parametrize("query,field,message", [
    (f"?filters[date][from]={JAN}", "filters.dataSet", 'filter "dataSet" is required'),
    (f"?filters[dataSet]={DATA_SET}", "filters.date.from", 'filter "date.from" is required'),
    (f"?filters[dataSet]=nope&filters[date][from]={JAN}", "filters.dataSet", 'dataSet "nope" is not defined'),
    (f"?filters[dataSet]={DATA_SET}&filters[date][from]=last-month", "filters.date.from", None),
])
async def test_errors(client, data, users, query, field, message):
    response = await client.get("/api/v2/export/dhis" + query, headers=basic(users["national"]))
    assert response.status == 400
    body = await response.json()
    assert body["field"] == field
    if message:
        assert body["error"] == message


async def test_a_data_set_no_target_feeds():
    settings = {"dhis_data_sets": [{"id": EMPTY_SET}], "tasks": {"targets": {"items": [
        {"id": "a", "dhis": {"dataElement": BIRTHS, "dataSet": DATA_SET}}, {"id": "b", "dhis": {"dataSet": EMPTY_SET}}]}}}
    with pytest.raises(BadRequest) as caught:
        await dhis.data_value_set(None, settings, DhisFilters(EMPTY_SET, JAN, None), Options(), {})
    assert caught.value.message == f'dataSet "{EMPTY_SET}" has no dataElements'
    assert dhis.target_definitions(SETTINGS, EMPTY_SET) == [("births", {"dataElement": BIRTHS})]


async def test_permissions(client, data, users):
    query = f"?filters[dataSet]={DATA_SET}&filters[date][from]={JAN}"
    assert (await client.get("/api/v2/export/dhis" + query)).status == 401
    assert (await client.get("/api/v2/export/dhis" + query, headers=basic(users["po"]))).status == 403
    assert (await client.get("/api/v2/export/dhis" + query, headers=basic(users["chw"]))).status == 403
