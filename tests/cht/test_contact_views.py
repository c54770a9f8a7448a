"""The contact and report views in ddocs/ answer the key shapes CHT (and cht-conf) query."""

import pytest

from api.cht.visibility import replication_keys

DOCS = [
    {"_id": "dh", "type": "district_hospital", "name": "Dist", "place_id": "111"},
    {"_id": "hc", "type": "health_center", "name": "Center", "parent": {"_id": "dh"}},
    {"_id": "area", "type": "contact", "contact_type": "chp_area", "name": "Area", "parent": {"_id": "hc", "parent": {"_id": "dh"}}},
    {"_id": "kid", "type": "person", "name": "Kid Name", "patient_id": "555", "phone": "+254 712-345 678",
     "phone_alternate": "0799 000111", "parent": {"_id": "area", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}},
    {"_id": "pat", "type": "contact", "contact_type": "patient", "name": "Pat", "patient_id": 777,
     "parent": {"_id": "hc", "parent": {"_id": "dh"}}},
    {"_id": "r1", "type": "data_record", "form": "P", "reported_date": 30, "fields": {"patient_id": "555", "note": "Fever"},
     "contact": {"_id": "kid", "parent": {"_id": "area"}}},
    {"_id": "r2", "type": "data_record", "form": "V", "reported_date": 10,
     "fields": {"patient_uuid": "pat", "place_uuid": "area", "needs_signoff": True},
     "contact": {"_id": "kid", "parent": {"_id": "area", "parent": {"_id": "hc"}}}},
    {"_id": "r3", "type": "data_record", "form": "P", "reported_date": 20, "patient_id": "555",
     "errors": [{"code": "registration_not_found"}], "contact": {"_id": "kid"}},
    {"_id": "sms", "type": "data_record", "sms_message": {"message": "hi"}, "contact": {"_id": "kid"}},
    {"_id": "out", "type": "data_record", "kujua_message": True,
     "tasks": [{"messages": [{"contact": {"_id": "pat"}}]}]},
    {"_id": "orphan", "type": "data_record", "form": "Z", "reported_date": 1},
    {"_id": "t1", "type": "task", "user": "org.couchdb.user:u"},
    {"_id": "g1", "type": "target", "owner": "kid"},
    {"_id": "form:P", "type": "form"},
    {"_id": "resources"},
    {"_id": "misc", "type": "feedback"},
]


@pytest.fixture
async def db(couch, config):
    db = couch.db(config.db_medic)
    if await db.get_or_none("dh") is None:
        await db.bulk_docs([dict(d) for d in DOCS])
    return db


async def _keys(db, ddoc, view, **params):
    rows = (await db.view(ddoc, view, **params))["rows"]
    return sorted((str(r["key"]), r["id"]) for r in rows)


async def test_contacts_by_type_and_parent(db):
    rows = (await db.view("medic-client", "contacts_by_type", key=["chp_area"]))["rows"]
    assert [r["id"] for r in rows] == ["area"]
    assert [r["id"] for r in (await db.view("medic-client", "contacts_by_type", key=["person"]))["rows"]] == ["kid"]
    assert (await db.view("medic-client", "contacts_by_type", key=["person"]))["rows"][0]["value"] == \
        "false false 3 kid name"
    rows = (await db.view("medic-client", "contacts_by_parent", startkey=["hc"], endkey=["hc", {}]))["rows"]
    assert sorted((tuple(r["key"]), r["id"]) for r in rows) == [(("hc", "chp_area"), "area"), (("hc", "patient"), "pat")]
    rows = (await db.view("medic", "contacts_by_type_id", startkey=["patient"], endkey=["patient", {}]))["rows"]
    assert [r["key"] for r in rows] == [["patient", "pat"]]


async def test_contacts_by_reference_and_phone(db):
    rows = (await db.view("medic-client", "contacts_by_reference",
                          keys=[["shortcode", "555"], ["shortcode", "777"], ["shortcode", "111"]]))["rows"]
    assert [r["id"] for r in rows] == ["kid", "pat", "dh"]
    rows = (await db.view("medic-client", "contacts_by_phone", keys=["+254712345678", "0799000111"]))["rows"]
    assert [(r["key"], r["id"]) for r in rows] == [("+254712345678", "kid"), ("0799000111", "kid")]


async def test_freetext_views(db):
    rows = (await db.view("medic-client", "contacts_by_freetext", startkey=["kid"], endkey=["kid\ufff0"]))["rows"]
    assert {r["id"] for r in rows} == {"kid"}
    exact = (await db.view("medic-client", "contacts_by_freetext", key=["patient_id:777"]))["rows"]
    assert [r["id"] for r in exact] == ["pat"]
    typed = (await db.view("medic-client", "contacts_by_type_freetext", key=["chp_area", "area"]))["rows"]
    assert [r["id"] for r in typed] == ["area"]
    by_contact = (await db.view("medic-client", "reports_by_freetext", key=["contact:kid"]))["rows"]
    assert sorted(r["id"] for r in by_contact) == ["r1", "r2", "r3"]
    fever = (await db.view("medic-client", "reports_by_freetext", key=["fever"]))["rows"]
    assert [r["id"] for r in fever] == ["r1"]
    assert (await db.view("medic-client", "reports_by_freetext", key=["form:p"]))["rows"]


async def test_report_views(db):
    rows = (await db.view("medic-client", "reports_by_form", key=["P"], reduce=False))["rows"]
    assert sorted(r["id"] for r in rows) == ["r1", "r3"]
    groups = (await db.view("medic-client", "reports_by_form", group=True))["rows"]
    # CHT's view: forms only (an incoming message without a form is no report), counted
    assert [(g["key"], g["value"]) for g in groups] == [(["P"], 2), (["V"], 1), (["Z"], 1)]
    dates = (await db.view("medic-client", "reports_by_date"))["rows"]
    assert [r["id"] for r in dates] == ["orphan", "r2", "r3", "r1"]
    subjects = await _keys(db, "medic-client", "reports_by_subject")
    assert subjects == [("555", "r1"), ("555", "r3"), ("area", "r2"), ("pat", "r2")]


async def test_contacts_by_depth(db):
    rows = (await db.view("medic", "contacts_by_depth", startkey=["hc", 0], endkey=["hc", 1]))["rows"]
    assert sorted((r["key"][1], r["id"], r["value"].get("shortcode")) for r in rows) == \
        [(0, "hc", None), (1, "area", None), (1, "pat", 777)]
    deep = (await db.view("medic", "contacts_by_depth", key=["dh", 3]))["rows"]
    assert [(r["id"], r["value"]) for r in deep] == [("kid", {"shortcode": "555"})]
    everything = (await db.view("medic", "contacts_by_depth", key=["dh"]))["rows"]
    assert sorted(r["id"] for r in everything) == ["area", "dh", "hc", "kid", "pat"]


async def test_docs_by_replication_key_matches_python(db):
    rows = (await db.view("medic", "docs_by_replication_key"))["rows"]
    ours = {d["_id"] for d in DOCS}
    from_view = sorted((r["id"], r["key"], tuple(sorted(r["value"].items()))) for r in rows if r["id"] in ours)
    from_python = sorted((d["_id"], key, tuple(sorted(value.items())))
                         for d in DOCS for key, value in replication_keys(d))
    assert from_view == from_python
    keys = {r["id"]: r["key"] for r in rows}
    assert keys["r1"] == "555" and keys["r3"] == "kid" and keys["orphan"] == "_unassigned"
    assert keys["form:P"] == "_all" and keys["resources"] == "_all" and keys["out"] == "pat"
    assert "misc" not in keys and keys["settings"] == "_all"


# Docs at the edges of CHT's rules: JavaScript truthiness, keys that are numbers, strict private and sign-off.
EDGE_DOCS = [
    {"_id": "vk-ext", "type": "ui-extension"},
    {"_id": "extension-libs"},
    {"_id": "vk-zero", "type": "data_record", "form": "E", "fields": {"patient_id": 0, "place_id": 42},
     "contact": {"_id": "kid"}},
    {"_id": "vk-obj", "type": "data_record", "form": "E", "fields": {"patient_id": {"a": 1}}, "contact": "kid"},
    {"_id": "vk-private", "type": "data_record", "form": "E", "fields": {"patient_id": "555", "private": "true",
                                                                        "needs_signoff": "yes"},
     "contact": {"_id": "kid", "parent": {"_id": "area"}}},
    {"_id": "vk-truthy", "type": "data_record", "form": "E", "fields": {"patient_id": "555", "private": 1,
                                                                       "needs_signoff": "true"},
     "contact": {"_id": "kid", "parent": {"_id": "area", "parent": {"_id": "hc"}}}},
    {"_id": "vk-string-contact", "type": "data_record", "form": "E", "errors": [{"code": "invalid_patient_id"}],
     "fields": {"patient_id": "555", "needs_signoff": True}, "contact": "kid"},
    {"_id": "vk-task", "type": "task", "user": 12},
    {"_id": "vk-target", "type": "target", "owner": ""},
    {"_id": "vk-place", "type": "clinic", "contact": {"_id": "kid"}, "parent": {"_id": "hc"}},
    {"_id": "vk-place-2", "type": "contact", "contact_type": "x", "contact": "pat"},
    {"_id": "vk-null", "type": "person", "contact": None, "patient_id": ""},
]


async def test_edge_docs_replication_keys_and_primary_contacts(db):
    await db.bulk_docs([dict(d) for d in EDGE_DOCS])
    ours = {d["_id"] for d in EDGE_DOCS}
    rows = (await db.view("medic", "docs_by_replication_key"))["rows"]
    from_view = sorted((r["id"], r["key"], tuple(sorted(r["value"].items()))) for r in rows if r["id"] in ours)
    from_python = sorted((d["_id"], key, tuple(sorted(value.items())))
                         for d in EDGE_DOCS for key, value in replication_keys(d))
    assert from_view == from_python
    keys = {r["id"]: r["key"] for r in rows}
    assert keys["vk-ext"] == keys["extension-libs"] == "_all"
    assert keys["vk-zero"] == "42" and keys["vk-obj"] == "[object Object]" and keys["vk-task"] == "12"
    values = {r["id"]: r["value"] for r in rows}
    assert values["vk-private"].get("private") and "needs_signoff" not in values["vk-private"]
    assert "private" not in values["vk-truthy"] and values["vk-truthy"]["needs_signoff"]
    assert "vk-target" not in keys
    depth = {r["id"]: r["value"] for r in (await db.view("medic", "contacts_by_depth", key=["hc", 1]))["rows"]}
    assert depth["vk-place"] == {"primary_contact": "kid"}
    null = (await db.view("medic", "contacts_by_depth", key=["vk-null", 0]))["rows"]
    assert [r["value"] for r in null] == [{"primary_contact": None}]
    primary = (await db.view("medic", "contacts_by_primary_contact", keys=["kid", "pat"]))["rows"]
    assert sorted((r["key"], r["id"]) for r in primary) == [("kid", "vk-place"), ("pat", "vk-place-2")]
