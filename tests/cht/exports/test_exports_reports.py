"""The reports export against the real server: columns, every CHT search filter, GET and POST, dates,
errors, permissions, and a client that goes away mid-export."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import datetime, timezone

import aiohttp
import pytest

from api.cht.exports import formats, reports
from api.cht.reports import search as report_search
from api.errors import ServiceUnavailable
from tests.helpers import admin_headers, basic
from tests.world import make_users

DAY = 86400000
BASE = 1704067200000  # 2024-01-01T00:00:00Z

PLACES = [
    {"_id": "x-dh1", "type": "district_hospital", "name": "North District"},
    {"_id": "x-hc1", "type": "health_center", "name": "Center One", "parent": {"_id": "x-dh1"}},
    {"_id": "x-cl1", "type": "clinic", "name": "Clinic A", "parent": {"_id": "x-hc1", "parent": {"_id": "x-dh1"}}},
    {"_id": "x-chw1", "type": "person", "name": "Alice Wanjiru",
     "parent": {"_id": "x-cl1", "parent": {"_id": "x-hc1", "parent": {"_id": "x-dh1"}}}},
    {"_id": "x-dh2", "type": "district_hospital", "name": "South District"},
    {"_id": "x-hc2", "type": "health_center", "name": "Center Two", "parent": {"_id": "x-dh2"}},
    {"_id": "x-chw2", "type": "person", "name": "Bob \"Bobby\" Otieno",
     "parent": {"_id": "x-hc2", "parent": {"_id": "x-dh2"}}},
]
CHW1 = {"_id": "x-chw1", "parent": {"_id": "x-cl1", "parent": {"_id": "x-hc1", "parent": {"_id": "x-dh1"}}}}
CHW2 = {"_id": "x-chw2", "parent": {"_id": "x-hc2", "parent": {"_id": "x-dh2"}}}


def _reports() -> list[dict]:
    docs = []
    for i in range(40):
        doc = {"_id": f"x-p{i:03d}", "type": "data_record", "form": "P", "reported_date": BASE + i * DAY,
               "from": "+254700000001", "contact": CHW1,
               "fields": {"patient_name": f"Mary Jane {i}", "lmp": i % 40,
                          "danger_signs": {"fever": "yes" if i % 3 == 0 else "no", "cough": i % 2 == 0},
                          "visits": [1, 2], "note": "line one\nline, \"two\""},
               "errors": [{"code": "sys.missing_fields"}] if i % 5 == 0 else []}
        if i % 4 == 1:
            doc["verified"] = True
        elif i % 4 == 2:
            doc["verified"] = False
        if i % 10 == 0:
            doc["patient_id"] = f"5{i:04d}"
        docs.append(doc)
    for i in range(25):
        docs.append({"_id": f"x-v{i:03d}", "type": "data_record", "form": "V", "reported_date": BASE + i * DAY + 5,
                     "contact": CHW2, "fields": {"visit_type": "home" if i % 2 else "clinic visit",
                                                 "temperature": 36.5 + i / 10}, "errors": []})
    docs.append({"_id": "x-sms", "type": "data_record", "sms_message": {"message": "hello"}, "from": "+2547",
                 "reported_date": BASE})
    docs.append({"_id": "x-nocontact", "type": "data_record", "form": "V", "reported_date": BASE + 3,
                 "fields": {"visit_type": "orphan"}})
    return docs


REPORTS = _reports()
FORM_REPORTS = [d for d in REPORTS if d.get("form")]


@pytest.fixture(scope="module")
def users(config):
    return make_users(config, {"po": (["program_officer"], {}), "analyst": (["analytics"], {}),
                               "chw": (["chw"], {"facility_id": "x-cl1"}), "national": (["national_admin"], {})})


@pytest.fixture
async def data(couch, config):
    db = couch.db(config.db_medic)
    if await db.get_or_none("x-dh1") is None:
        await db.bulk_docs([dict(d) for d in PLACES + REPORTS])
    return db


def cht_csv(text: str) -> list[list[str]]:
    """Lines of cht-core's CSV back into cells: a quoted cell (``\\"`` for a quote, anything else as it is),
    or a bare one; a line ends with ``\\n`` outside quotes."""
    rows, row, cell, quoted, i = [], [], "", None, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\" and text[i + 1:i + 2] == '"':
                cell += '"'
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                cell += c
        elif c == '"' and cell == "":
            quoted = True
        elif c == ",":
            row.append(cell)
            cell = ""
        elif c == "\n":
            row.append(cell)
            rows.append(row)
            row, cell = [], ""
        else:
            cell += c
        i += 1
    assert not row and not cell, "the text does not end with a line end"
    return rows


def _parse(text: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    rows = cht_csv(text)
    header, body = rows[0], rows[1:]
    return header, {row[0]: dict(zip(header, row)) for row in body}


async def _export(client, headers, query="", method="get", body=None):
    if method == "get":
        response = await client.get("/api/v2/export/reports" + query, headers=headers)
    else:
        response = await client.post("/api/v2/export/reports", json=body, headers=headers)
    text = await response.text()
    assert response.status == 200, text
    return response, text


async def test_columns_and_values_match_the_documents(client, data, users):
    response, text = await _export(client, basic(users["po"]))
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert re.fullmatch(r"attachment; filename=reports-\d{12}\.csv", response.headers["Content-Disposition"])
    assert text.endswith("\n") and "\r" not in text
    header, rows = _parse(text)
    # as cht-core: the columns come from one report per form, the first by id: for V that is x-nocontact, which
    # has no temperature, so there is no temperature column
    assert header == reports.REPORT_COLUMNS + [
        "danger_signs.cough", "danger_signs.fever", "lmp", "note", "patient_name", "visit_type", "visits"]
    assert sorted(rows) == sorted(d["_id"] for d in FORM_REPORTS)
    names = {p["_id"]: p["name"] for p in PLACES}
    for doc in FORM_REPORTS:
        row = rows[doc["_id"]]
        assert row["form"] == doc["form"]
        assert row["reported_date"] == str(doc["reported_date"])
        assert row["patient_id"] == doc.get("patient_id", "")
        assert row["from"] == doc.get("from", "")
        chain = []
        node = doc.get("contact")
        while node:
            chain.append(names[node["_id"]])
            node = node.get("parent")
        chain += [""] * 4
        assert [row["contact.name"], row["contact.parent.name"], row["contact.parent.parent.name"],
                row["contact.parent.parent.parent.name"]] == chain[:4]
        fields = doc["fields"]
        if doc["form"] == "P":
            assert row["patient_name"] == fields["patient_name"]
            assert row["lmp"] == str(fields["lmp"])
            assert row["danger_signs.fever"] == fields["danger_signs"]["fever"]
            assert row["danger_signs.cough"] == ("true" if fields["danger_signs"]["cough"] else "false")
            assert json.loads(row["visits"]) == [1, 2]
            assert row["note"] == "line one\nline, \"two\""
            assert row["visit_type"] == ""
        else:
            assert row["visit_type"] == fields["visit_type"]
    # reports come in date order when no filter picks another index
    dates = [int(r["reported_date"]) for r in rows.values()]
    assert dates == sorted(dates)


async def test_human_readable_dates(client, data, users):
    _, text = await _export(client, basic(users["po"]), "?options[humanReadable]=true")
    _, rows = _parse(text)
    assert rows["x-p001"]["reported_date"] == "2024-01-02T00:00:00.000Z"
    _, text = await _export(client, basic(users["po"]), method="post", body={"options": {"humanReadable": False}})
    assert _parse(text)[1]["x-p001"]["reported_date"] == str(BASE + DAY)


def _expect(pred) -> list[str]:
    return sorted(d["_id"] for d in FORM_REPORTS if pred(d))


def _lineage(doc):
    ids, node = [], doc.get("contact")
    while node:
        ids.append(node["_id"])
        node = node.get("parent")
    return ids


CASES = [
    ("?filters[forms][selected][0][code]=V", {"forms": {"selected": [{"code": "V"}]}},
     lambda d: d["form"] == "V"),
    ("?filters[forms][selected][0][code]=V&filters[forms][selected][1][code]=P",
     {"forms": {"selected": [{"code": "V"}, {"code": "P"}]}}, lambda d: True),
    (f"?filters[date][from]={BASE + 10 * DAY}&filters[date][to]={BASE + 12 * DAY}",
     {"date": {"from": BASE + 10 * DAY, "to": BASE + 12 * DAY}},
     lambda d: BASE + 10 * DAY <= d["reported_date"] <= BASE + 12 * DAY),
    ("?filters[date][from]=2024-01-20T00:00:00Z", {"date": {"from": "2024-01-20T00:00:00Z"}},
     lambda d: d["reported_date"] >= BASE + 19 * DAY),
    ("?filters[facilities][selected][0]=x-hc1", {"facilities": {"selected": ["x-hc1"]}},
     lambda d: "x-hc1" in _lineage(d)),
    ("?filters[facilities][selected][0]=x-dh2&filters[facilities][selected][1]=x-hc2&filters[facilities]"
     "[selected][2]=x-dh1", {"facilities": {"selected": ["x-dh2", "x-hc2", "x-dh1"]}},
     lambda d: bool(_lineage(d))),
    ("?filters[valid]=true", {"valid": True}, lambda d: not d.get("errors")),
    ("?filters[valid]=false", {"valid": False}, lambda d: bool(d.get("errors"))),
    ("?filters[verified]=true", {"verified": [True]}, lambda d: d.get("verified") is True),
    ("?filters[verified][0]=false&filters[verified][1]=", {"verified": [False, None]},
     lambda d: d.get("verified") is not True),
    ("?filters[search]=mary", {"search": "mary"}, lambda d: d["form"] == "P"),
    ("?filters[search]=visit_type:home", {"search": "visit_type:home"},
     lambda d: d["fields"].get("visit_type") == "home"),
    ("?filters[search]=clin%20VISIT", {"search": "clin VISIT"},
     lambda d: d["fields"].get("visit_type") == "clinic visit"),
    ("?filters[search]=jane%20lmp:12%2012", {"search": "jane lmp:12 12"}, lambda d: d["_id"] == "x-p012"),
    ("?filters[search]=&filters[forms][selected][0][code]=P&filters[valid]=true&filters[facilities][selected][0]"
     f"=x-cl1&filters[date][from]={BASE}&filters[date][to]={BASE + 20 * DAY}",
     {"search": "", "forms": {"selected": [{"code": "P"}]}, "valid": True, "facilities": {"selected": ["x-cl1"]},
      "date": {"from": BASE, "to": BASE + 20 * DAY}},
     lambda d: d["form"] == "P" and not d["errors"] and d["reported_date"] <= BASE + 20 * DAY),
    ("?filters[forms][selected][0][code]=V&filters[search]=clinic",
     {"forms": {"selected": [{"code": "V"}]}, "search": "clinic"},
     lambda d: d["form"] == "V" and d["fields"].get("visit_type") == "clinic visit"),
    ("?filters[forms][selected][0][code]=P&filters[forms][options][0]=P&filters[forms][options][1]=V",
     {"forms": {"selected": [{"code": "P"}], "options": ["P", "V"]}}, lambda d: d["form"] == "P"),
    ("?filters[forms][selected][0][code]=P&filters[forms][options][0]=P",
     {"forms": {"selected": [{"code": "P"}], "options": ["P"]}}, lambda d: True),
]


@pytest.mark.parametrize("query,body,pred", CASES, ids=[c[0][:60] for c in CASES])
async def test_filters_by_get_and_post(client, data, users, query, body, pred):
    expected = _expect(pred)
    _, text = await _export(client, basic(users["po"]), query)
    got = sorted(_parse(text)[1])
    assert got == expected
    _, text = await _export(client, basic(users["po"]), method="post", body={"filters": body})
    assert sorted(_parse(text)[1]) == expected


async def test_no_duplicates_when_a_report_is_under_two_selected_places(client, data, users):
    _, text = await _export(client, basic(users["po"]), method="post",
                            body={"filters": {"facilities": {"selected": ["x-hc1", "x-dh1", "x-cl1"]}}})
    rows = cht_csv(text)[1:]
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) == 40


async def test_the_narrowest_view_is_chosen(data):
    from api.cht.exports.params import report_filters
    filters = report_filters({"filters": {"forms": {"selected": [{"code": "P"}]}, "search": "visit_type:home"}}, 0)
    plan = await report_search.choose(data, filters)
    assert plan.name == "term" and plan.size == 12
    filters = report_filters({"filters": {"date": {"from": BASE, "to": BASE + 2}, "forms": {
        "selected": [{"code": "P"}]}}}, 0)
    plan = await report_search.choose(data, filters)
    assert plan.name == "form" and plan.size == 1  # the form's index is bounded by the dates too
    filters = report_filters({"filters": {"search": "mary", "facilities": {"selected": ["x-hc2"]}}}, 0)
    plan = await report_search.choose(data, filters)
    assert plan.name == "place" and plan.size == 25
    filters = report_filters({"filters": {"search": "mary", "facilities": {"selected": ["x-dh1", "x-dh2"]}}}, 0)
    plan = await report_search.choose(data, filters)
    assert plan.name == "word" and plan.size == 40  # 40 "mary" rows against 65 under the two districts


@pytest.mark.parametrize("query,field", [
    ("?filters[date][from]=yesterday", "filters.date.from"),
    ("?filters[date][from]=20&filters[date][to]=10", "filters.date.from"),
    ("?filters[valid]=maybe", "filters.valid"),
    ("?filters[verified]=perhaps", "filters.verified.0"),
    ("?filters[colour]=red", "filters.colour"),
    ("?filters[forms][selected][0][code]=", "filters.forms.selected.0.code"),
    ("?filters[forms][chosen]=P", "filters.forms.chosen"),
    ("?options[humanReadable]=sure", "options.humanReadable"),
    ("?options[limit]=5", "options.limit"),
    ("?filters=x&filters[a]=b", "filters[a]"),
    ("?filters[a=b", "filters[a"),
])
async def test_bad_parameters_are_400_naming_the_field(client, data, users, query, field):
    response = await client.get("/api/v2/export/reports" + query, headers=basic(users["po"]))
    assert response.status == 400
    body = await response.json()
    assert body["field"] == field, body


async def test_bad_post_bodies(client, users):
    response = await client.post("/api/v2/export/reports", data="[1]", headers={
        **basic(users["po"]), "Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["field"] == "body"
    response = await client.post("/api/v2/export/reports", data="{", headers={
        **basic(users["po"]), "Content-Type": "application/json"})
    assert response.status == 400
    response = await client.post("/api/v2/export/reports", json={"filters": []}, headers=basic(users["po"]))
    assert (await response.json())["field"] == "filters"


async def test_permissions(client, data, users, config):
    assert (await client.get("/api/v2/export/reports")).status == 401
    assert (await client.get("/api/v2/export/reports", headers=basic(users["analyst"]))).status == 403
    offline = await client.get("/api/v2/export/reports", headers=basic(users["chw"]))
    assert offline.status == 403 and (await offline.json())["error"] == "Insufficient privileges"  # as cht-core's
    assert (await client.get("/api/v2/export/reports", headers=basic(users["national"]))).status == 200
    assert (await client.get("/api/v2/export/reports", headers=admin_headers(config))).status == 200
    # can_export_all alone is enough
    admin = admin_headers(config)
    current = await (await client.get("/api/v1/settings", headers=admin)).json()
    permissions = {**current["permissions"], "can_export_all": ["analytics"]}
    assert (await client.put("/api/v1/settings", json={"permissions": permissions}, headers=admin)).status == 200
    try:
        assert (await client.get("/api/v2/export/reports", headers=basic(users["analyst"]))).status == 200
    finally:
        await client.put("/api/v1/settings?replace=true", json={"permissions": current["permissions"]},
                         headers=admin)


async def test_empty_result_is_a_header_only(client, data, users):
    _, text = await _export(client, basic(users["po"]), "?filters[forms][selected][0][code]=NOPE")
    header, rows = _parse(text)
    assert header == reports.REPORT_COLUMNS and rows == {}


async def test_couchdb_failing_before_and_during_the_export(client, data, users, monkeypatch):
    async def down(*args, **kwargs):
        raise ServiceUnavailable("CouchDB unreachable: ClientConnectorError")

    with monkeypatch.context() as patched:
        patched.setattr(reports, "report_field_columns", down)
        response = await client.get("/api/v2/export/reports", headers=basic(users["po"]))
        assert response.status == 503 and (await response.json())["code"] == 503
    calls = []
    real_page = report_search.page

    async def second_page_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise ServiceUnavailable("CouchDB unreachable: ServerDisconnectedError")
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(report_search, "page", second_page_fails)
    monkeypatch.setattr(report_search, "PAGE_SIZE", 10)
    response = await client.get("/api/v2/export/reports", headers=basic(users["po"]))
    assert response.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()  # cut off: never mistaken for a whole file
    monkeypatch.undo()
    _, text = await _export(client, basic(users["po"]))
    assert len(_parse(text)[1]) == len(FORM_REPORTS)


async def test_a_client_that_goes_away_leaves_the_server_healthy(client, couch, config, data, users, caplog,
                                                               monkeypatch):
    monkeypatch.setattr(report_search, "PAGE_SIZE", 20)
    db = couch.db(config.db_medic)
    many = [{"_id": f"x-many{i:04d}", "type": "data_record", "form": "M", "reported_date": BASE + i,
             "contact": CHW1, "fields": {"text": "x" * 2000}} for i in range(600)]
    await db.bulk_docs(many)
    caplog.set_level(logging.INFO, logger="jamii.streaming")
    response = await client.get("/api/v2/export/reports?filters[forms][selected][0][code]=M",
                                headers=basic(users["po"]))
    assert response.status == 200
    first = await response.content.read(1000)
    assert first.startswith(b"_id,form")
    response.close()  # the client hangs up mid-export
    for _ in range(100):
        if any("went away" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.1)
    stopped = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
    assert stopped, "the export did not notice the client leaving"
    # it stopped early: far fewer pages than the 30 the export has
    pages = int(stopped[0].split("after ")[1].split(" ")[0])
    assert pages < 25
    # and the server goes on answering, the same export included
    _, text = await _export(client, basic(users["po"]), "?filters[forms][selected][0][code]=M")
    assert len(_parse(text)[1]) == 600
    assert (await client.get("/api/v2/monitoring")).status == 200


def test_dates_in_cells():
    assert formats.export_date(BASE, True) == "2024-01-01T00:00:00.000Z"
    assert formats.export_date("2024-01-01T03:00:00+03:00", False) == BASE
    assert formats.export_date("2024-01-01T00:00:00.250Z", True) == "2024-01-01T00:00:00.250Z"
    assert formats.export_date(None, True) == "" and formats.export_date("soon", True) == "soon"
    assert formats.iso(BASE, 120) == "2024-01-01T02:00:00.000+02:00"
    assert formats.filename("reports", "csv", datetime(2024, 5, 6, 7, 8, tzinfo=timezone.utc).timestamp()) == \
        "reports-202405060708.csv"


# -- as cht-core writes it (api/src/services/export-data.js; its test: export-data.spec.js) ------------------------

HEAD = ("_id,form,patient_id,reported_date,from,contact.name,contact.parent.name,contact.parent.parent.name,"
        "contact.parent.parent.parent.name")


async def _only_form(client, users, couch, config, docs, form):
    await couch.db(config.db_medic).bulk_docs([dict(d) for d in docs])
    _, text = await _export(client, basic(users["po"]), method="post",
                            body={"filters": {"forms": {"selected": [{"code": form}]}}})
    return text


async def test_cells_are_quoted_and_escaped_as_cht(client, data, users, couch, config):
    report = {"_id": "r-1", "type": "data_record", "form": "cht-escape",
              "fields": {"list": [1, 2], "empty": "", "flag": False, "mixed": [1, {"a": None}, 'say "hi"'],
                         "quote": 'He said "yes"', "none": None, "zero": 0}}
    text = await _only_form(client, users, couch, config, [report], "cht-escape")
    assert text == (HEAD + ",empty,flag,list,mixed,none,quote,zero\n"
                    '"r-1","cht-escape",,"",,,,,,"",false,"[1,2]","[1,{\\"a\\":null},\\"say \\\\"hi\\\\"\\"]",,'
                    '"He said \\"yes\\"",0\n')


async def test_fields_and_contacts_as_cht(client, data, users, couch, config):
    """One report per form gives the field columns (the first by id); an object where that report had a
    value prints as [object Object]; commas, newlines and backslashes stay inside the quotes."""
    docs = [{"_id": "cht-a1", "type": "data_record", "form": "cht-a", "patient_id": "p1", "from": "+254700000009",
             "reported_date": 1517443200000, "contact": CHW1, "fields": {"x": "1", "y": {"z": "2"}}},
            {"_id": "cht-a2", "type": "data_record", "form": "cht-a", "reported_date": 1517529600000,
             "fields": {"x": {"deep": 1}, "y": {"z": "a,b\nc\\d"}, "extra": "not a column"}}]
    text = await _only_form(client, users, couch, config, docs, "cht-a")
    lines = text.split("\n")
    assert lines[0] == HEAD + ",x,y.z"
    assert '"cht-a1","cht-a","p1",1517443200000,"+254700000009","Alice Wanjiru","Clinic A","Center One",' \
        '"North District","1","2"' in lines
    assert '"cht-a2","cht-a",,1517529600000,,,,,,[object Object],"a,b' in text
    assert 'c\\d"\n' in text


async def test_formula_cells_are_neutralised(client, data, users, couch, config):
    """Issue 23: the one deliberate difference from cht-core's CSV."""
    docs = [{"_id": "cht-f1", "type": "data_record", "form": "cht-f", "from": "+254700111222",
             "fields": {"link": '=HYPERLINK("http://evil.example","x")', "sum": "@SUM(A1:A2)", "cmd": "+1+cmd|'/C calc'!A0",
                        "neg": "-2.5", "dash": "-x", "tab": "\t=1", "cr": "\r=1", "phone": "+254 700 111 222",
                        "n": -3}}]
    text = await _only_form(client, users, couch, config, docs, "cht-f")
    header, rows = _parse(text)
    row = rows["cht-f1"]
    assert row["link"] == "'=HYPERLINK(\"http://evil.example\",\"x\")" and row["sum"] == "'@SUM(A1:A2)"
    assert row["cmd"] == "'+1+cmd|'/C calc'!A0" and row["dash"] == "'-x"
    assert row["tab"] == "'\t=1" and row["cr"] == "'\r=1"
    assert row["neg"] == "-2.5" and row["phone"] == "+254 700 111 222" and row["n"] == "-3"
    assert row["from"] == "+254700111222"


async def test_unknown_export_type(client, users):
    for headers in ({}, basic(users["po"])):
        for method in ("get", "post"):
            response = await client.request(method, "/api/v2/export/nope", headers={**headers, "Accept": "application/json"})
            assert response.status == 404
            assert await response.json() == {"code": 404, "error": 'Invalid export type "nope"'}
