"""The SMS parser, pure and fast: Muvuku, labelled Muvuku, Textforms and compact Textforms, every field type."""

import datetime as dt

import pytest

from api.cht import phones
from api.cht.messaging.sms_parser import Invalid, convert, find_form, form_code, parse

SETTINGS = {
    "default_country_code": 254,
    "locale": "en",
    "forms": {
        "VISIT": {
            "meta": {"code": "VISIT"},
            "fields": {
                "nurse": {"type": "string", "labels": {"tiny": {"en": "N", "fr": "I"}, "short": "Nurse"},
                          "length": [2, 20], "required": True, "position": 0},
                "week": {"type": "integer", "labels": {"tiny": "W"}, "range": [1, 53], "required": True,
                         "position": 1},
                "visit_date": {"type": "date", "labels": {"tiny": "D"}, "position": 2},
                "referred": {"type": "boolean", "labels": {"tiny": "R"}, "position": 3},
                "month": {"type": "month", "labels": {"tiny": "M"}, "position": 4},
                "phone": {"type": "phone_number", "labels": {"tiny": "P"}, "position": 5},
                "visit.kind": {"type": "string", "labels": {"tiny": "K"}, "position": 6,
                               "list": [["anc", {"en": "Antenatal"}], ["pnc", "Postnatal"]]},
                "notes": {"type": "string", "labels": {"tiny": "X"}, "position": 7},
            },
        },
        "off": {"meta": {"code": "OFF"}, "fields": {"reason": {"type": "string", "labels": {"tiny": "R"}}}},
    },
}
MAR_1 = int(dt.datetime(2015, 3, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
FULL = {"nurse": "Sam", "week": 23, "visit_date": MAR_1, "referred": True, "month": 3, "phone": "+254712345678",
        "visit": {"kind": "Antenatal"}, "notes": "all well"}


def codes(parsed):
    return [e["code"] for e in parsed.errors]


def test_muvuku_every_type():
    parsed = parse("1!VISIT!Sam#23#2015-03-01#1#3#0712 345678#anc#all well", SETTINGS)
    assert (parsed.form, parsed.format, parsed.errors) == ("VISIT", "muvuku", [])
    assert parsed.fields == FULL


def test_labelled_muvuku():
    parsed = parse(r"J1!visit!N#Sam#W#23#X#a \# b", SETTINGS)
    assert parsed.format == "javarosa" and parsed.errors == []
    assert parsed.fields == {"nurse": "Sam", "week": 23, "notes": "a # b"}


def test_textforms_every_type_any_case_and_order():
    parsed = parse("visit w23 # n Sam # d 2015-03-01 # R 1 # m 3 # p +254712345678 # k ANC # x all well", SETTINGS)
    assert (parsed.form, parsed.format, parsed.errors) == ("VISIT", "textforms", [])
    assert parsed.fields == FULL


def test_textforms_accepts_field_keys_and_other_locales_labels():
    parsed = parse("VISIT nurse Sam # week 7 # I ignored", SETTINGS)
    assert parsed.fields == {"nurse": "Sam", "week": 7}
    assert codes(parsed) == ["extra_fields"] and parsed.errors[0]["values"] == ["I"]


def test_compact_textforms_with_quotes_and_a_trailing_string():
    parsed = parse('VISIT "Sam Otieno" 23 2015-03-01 0 12 0712345678 pnc the rest of it', SETTINGS)
    assert (parsed.format, parsed.errors) == ("compact", [])
    assert parsed.fields == {"nurse": "Sam Otieno", "week": 23, "visit_date": MAR_1, "referred": False,
                             "month": 12, "phone": "+254712345678", "visit": {"kind": "Postnatal"},
                             "notes": "the rest of it"}


def test_missing_required_fields_are_errors():
    parsed = parse("1!VISIT!#", SETTINGS)
    assert parsed.form == "VISIT"
    assert parsed.errors == [{"code": "sys.missing_fields", "message": "Missing fields: nurse, week.",
                              "fields": ["nurse", "week"]}]


@pytest.mark.parametrize("message, field", [
    ("1!VISIT!S#23", "nurse"),                   # too short
    ("1!VISIT!Sam#99", "week"),                  # out of range
    ("1!VISIT!Sam#two", "week"),                 # not a number
    ("1!VISIT!Sam#2#2015-02-30", "visit_date"),  # no such day
    ("1!VISIT!Sam#2##maybe", "referred"),
    ("1!VISIT!Sam#2###13", "month"),
    ("1!VISIT!Sam#2####12", "phone"),
    ("1!VISIT!Sam#2#####xyz", "visit.kind"),
])
def test_invalid_values_are_errors_naming_the_field(message, field):
    parsed = parse(message, SETTINGS)
    assert codes(parsed) == ["sys.invalid_fields"]
    assert parsed.errors[0]["fields"] == [field] and field in parsed.errors[0]["details"]


def test_surplus_values_are_errors_but_the_rest_is_kept():
    parsed = parse("1!OFF!holiday#extra#more", SETTINGS)
    assert parsed.fields == {"reason": "holiday"}
    assert parsed.errors[0]["code"] == "extra_fields" and parsed.errors[0]["values"] == ["extra", "more"]
    compact = parse("OFF away", {"forms": {"OFF": {"fields": {"n": {"type": "integer"}}}}})
    assert compact.fields == {} and codes(compact) == ["sys.invalid_fields"]
    surplus = parse("OFF 1 2 3", {"forms": {"OFF": {"fields": {"n": {"type": "integer"}}}}})
    assert surplus.fields == {"n": 1} and surplus.errors[0]["values"] == ["2", "3"]


def test_unknown_forms():
    muvuku = parse("1!NOPE!a#b", SETTINGS)
    assert muvuku.form is None and codes(muvuku) == ["sys.form_not_found"] and muvuku.code == "NOPE"
    plain = parse("Hello nurse, the clinic is closed", SETTINGS)
    assert (plain.form, plain.errors) == (None, [])
    strict = parse("Hello nurse", {**SETTINGS, "forms_only_mode": True})
    assert codes(strict) == ["sys.form_not_found"] and strict.code == "HELLO"


@pytest.mark.parametrize("message", ["", "   ", "\u200b", None])
def test_empty_messages(message):
    assert codes(parse(message, SETTINGS)) == ["sys.empty"]


def test_form_code_and_lookup():
    assert form_code("1!anc!x") == "ANC"
    assert form_code("  visit-N Sam") == "VISIT"
    assert form_code(None) is None
    assert find_form(SETTINGS["forms"], "Off")[0] == "off"
    assert find_form(SETTINGS["forms"], "missing") is None


def test_position_orders_fields_over_listing_order():
    settings = {"forms": {"A": {"fields": {"b": {"type": "integer", "position": 1},
                                           "a": {"type": "string", "position": 0}}}}}
    assert parse("1!A!x#5", settings).fields == {"a": "x", "b": 5}


def test_devanagari_digits_and_invisible_characters():
    parsed = parse("1!VISIT!Sam\u200b#२३", SETTINGS)
    assert parsed.fields == {"nurse": "Sam", "week": 23}


@pytest.mark.parametrize("spec, value, expected", [
    ({"type": "integer"}, 5.0, 5),
    ({"type": "integer"}, "-3", -3),
    ({"type": "date"}, 1425168000000, 1425168000000),
    ({"type": "date"}, "2015-03-01T00:00:00Z", MAR_1),
    ({"type": "date"}, "1425168000000", 1425168000000),
    ({"type": "boolean"}, 0, False),
    ({"type": "boolean"}, "Yes", True),
    ({"type": "string"}, 23, "23"),
    ({"type": "bsDate"}, " 2072-01-01 ", "2072-01-01"),
])
def test_convert(spec, value, expected):
    assert convert(spec, value, SETTINGS) == expected


@pytest.mark.parametrize("spec, value", [
    ({"type": "integer"}, True), ({"type": "integer"}, 2.5), ({"type": "date"}, "yesterday"),
    ({"type": "boolean"}, 2), ({"type": "string"}, ["a"]), ({"type": "phone_number"}, "12"),
])
def test_convert_refuses(spec, value):
    with pytest.raises(Invalid):
        convert(spec, value, SETTINGS)


def test_phone_normalisation_follows_settings():
    assert phones.normalize("0712 345 678", {"default_country_code": 254}) == "+254712345678"
    assert phones.normalize("+1 415 555 2671", {"default_country_code": 254}) == "+14155552671"
    assert phones.normalize("MPESA", {"default_country_code": 254}) is None
    assert phones.normalize("0712345678", {}) is None  # no country to read it in
    assert phones.normalize("+2547123456789", {"phone_validation": "full"}) is None  # possible, not valid
    assert phones.normalize("+2547123456789", {"phone_validation": "partial"}) == "+2547123456789"
    assert phones.normalize("+254 712 34", {"phone_validation": "partial"}) is None
    assert phones.normalize("+254 712 34", {"phone_validation": "none"}) == "+25471234"
