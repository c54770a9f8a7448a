"""Export parameters (form-style nesting, filter checks) and the freetext mirrors against the real views."""

from __future__ import annotations

import pytest

from api.cht.exports.params import (
    contact_filters,
    dhis_filters,
    message_filters,
    options,
    parse_form,
    report_filters,
)
from api.cht.reports import freetext
from api.errors import BadRequest
from api.timestamps import to_ms


def test_form_style_names_nest_like_qs():
    parsed = parse_form([
        ("filters[forms][selected][0][code]", "P"), ("filters[forms][selected][1][code]", "V"),
        ("filters[search]", ""), ("options[humanReadable]", "true"), ("filters[verified][]", "true"),
        ("filters[verified][]", ""), ("date.from", "5"), ("format", "csv"), ("tz", "1"), ("tz", "2"),
        ("filters[facilities][selected][10]", "b"), ("filters[facilities][selected][2]", "a"),
    ])
    assert parsed == {
        "filters": {"forms": {"selected": [{"code": "P"}, {"code": "V"}]}, "search": "",
                    "verified": ["true", ""], "facilities": {"selected": ["a", "b"]}},
        "options": {"humanReadable": "true"}, "date": {"from": "5"}, "format": "csv", "tz": ["1", "2"]}


@pytest.mark.parametrize("name", ["[a]", "a[b", "a]b", "a[b]c", ".a", "a" + "[b]" * 9])
def test_malformed_names(name):
    with pytest.raises(BadRequest) as caught:
        parse_form([(name, "1")])
    assert caught.value.field == name


def test_superscript_digits_are_names_not_indexes():
    """Found by fuzzing: ``filters[³]`` passed str.isdigit() and then broke int() (500)."""
    assert parse_form([("filters[\u00b3]", "x")]) == {"filters": {"\u00b3": "x"}}
    with pytest.raises(BadRequest):
        to_ms("\u00b2", "date")


def test_a_value_and_an_object_under_one_name_conflict():
    with pytest.raises(BadRequest):
        parse_form([("filters", "x"), ("filters[a]", "b")])
    with pytest.raises(BadRequest):
        parse_form([("filters[a]", "b"), ("filters", "x")])


def test_report_filters_take_typed_and_string_values():
    now = 10_000
    typed = report_filters({"filters": {"forms": {"selected": [{"code": "P"}, "V", {"code": "P"}]},
                                        "date": {"from": 5}, "valid": True, "verified": [True, None],
                                        "facilities": {"selected": ["f1"]}, "search": " Mary  ab key:Va "}}, now)
    text = report_filters(parse_form([
        ("filters[forms][selected][0][code]", "P"), ("filters[forms][selected][1]", "V"),
        ("filters[date][from]", "5"), ("filters[valid]", "TRUE"), ("filters[verified][0]", "true"),
        ("filters[verified][1]", ""), ("filters[facilities][selected][0]", "f1"),
        ("filters[search]", " Mary  ab key:Va ")]), now)
    assert typed == text
    assert typed.forms == ("P", "V") and typed.date.start == 5 and typed.date.end == now
    assert typed.words == ("mary", "key:va") and typed.verified == frozenset({True, None})
    assert report_filters({}, now).forms is None and not report_filters({}, now).date.given
    assert report_filters({"filters": {"date": {"to": "1970-01-01T00:00:01Z"}}}, now).date.start == 0
    assert report_filters({"filters": {"forms": {"selected": []}}}, now).forms is None


def test_other_filters():
    assert options({"options": {"humanReadable": "true"}}).human_readable
    assert not options({}).human_readable
    assert contact_filters({"filters": {"search": "Jim", "types": {"selected": ["person"]}}}).words == ("jim",)
    assert message_filters({"filters": {"date": {"from": 1, "to": 2}}}, 5).end == 2
    found = dhis_filters({"dataSet": "ds", "date": {"from": "2024-02-10T00:00:00Z"}})
    assert (found.data_set, found.month_of, found.org_unit) == ("ds", 1707523200000, None)
    found = dhis_filters({"filters": {"dataSet": "ds", "date": {"from": 5}, "orgUnit": "ou"}})
    assert found.org_unit == "ou"
    for raw, field in [({}, "filters.dataSet"), ({"filters": {"dataSet": "x"}}, "filters.date.from"),
                       ({"filters": {"dataSet": ["x"]}}, "filters.dataSet"),
                       ({"filters": {"search": 5, "x": 1}}, "filters.search")]:
        with pytest.raises(BadRequest) as caught:
            dhis_filters(raw)
        assert caught.value.field == field or caught.value.field.startswith("filters.")


def test_freetext_words_mirror_the_map_functions():
    report = {"_id": "R1", "type": "data_record", "form": "P", "reported_date": 5, "content": "skip me",
              "fields": {"Patient_Name": "Mary  Jane", "age": 30, "ratio": 2.0, "zero": 0, "flag": True,
                         "lmp_date": "2020", "nested": {"no": "thing"}}, "contact": {"_id": "CHW"}}
    assert freetext.report_words(report) == {
        "form:p", "mary", "jane", "patient_name:mary  jane", "age:30", "ratio:2", "contact:chw"}
    assert freetext.report_words({"type": "data_record"}) == set()
    person = {"_id": "c", "type": "contact", "contact_type": "chw", "name": "Jo Anne", "geolocation": "x y"}
    assert freetext.contact_words(person) == {"anne", "chw", "name:jo anne", "contact_type:chw"}
    assert freetext.contact_words({"type": "feedback"}) == set()
    assert freetext.first_match("jan", {"jane", "janet", "mary"}) == "jane"
    assert freetext.first_match("age:30", {"age:30"}) == "age:30" and freetext.matches("jo", {"jon"})


DOCS = [
    {"_id": "fw1", "type": "data_record", "form": "P", "reported_date": 1, "from": "+2547 11",
     "fields": {"patient_name": "Mary  Jane", "Age": 30, "ratio": 2.5, "zero": 0, "flag": True, "x_date": "d",
                "deep": {"a": "b"}, "note": "  Lots   of   words\tand\nlines  "}, "contact": {"_id": "Chw-1"},
     "content": "hidden", "refid": "r"},
    {"_id": "fw2", "type": "data_record", "form": "V", "reported_date": 2, "fields": {}, "verified": True},
    {"_id": "fw3", "type": "person", "name": "Amina Said", "phone": "+254 700", "patient_id": 12345,
     "date_of_birth": "2000", "parent": {"_id": "p"}},
    {"_id": "fw4", "type": "contact", "contact_type": "chw_area", "name": "Area 51", "notes": "x"},
]


async def test_mirrors_equal_the_views(couch, config):
    db = couch.db(config.db_medic)
    await db.bulk_docs([dict(d) for d in DOCS])
    for doc in DOCS:
        for view, mirror in (("reports_by_freetext", freetext.report_words),
                             ("contacts_by_freetext", freetext.contact_words)):
            rows = (await db.view("medic-client", view))["rows"]
            assert {r["key"][0] for r in rows if r["id"] == doc["_id"]} == mirror(doc), (view, doc["_id"])
