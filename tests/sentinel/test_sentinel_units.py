"""Pure parts of the transitions: validation rules, templates, recipients, schedules, memory."""

from __future__ import annotations

import datetime as dt

import pytest

from sentinel import messaging, schedules, validation
from sentinel.reports import silence
from sentinel.transitions import Context
from sentinel.transitions.registration import parse_params, set_birth_date, set_expected_date
from sentinel.workspace import Memory, phone_view_keys

UTC = dt.timezone.utc


@pytest.mark.parametrize("rule, value, ok", [
    ("lenMin(2) && lenMax(5)", "abc", True),
    ("lenMin(2) && lenMax(5)", "a", False),
    ("lenMin(2) && lenMax(5)", "abcdef", False),
    ("integer && between(1, 45)", "12", True),
    ("integer && between(1, 45)", "46", False),
    ("integer && between(1, 45)", "1.5", False),
    ("regex('^[0-9]{5}$')", "12345", True),
    ("regex('^[0-9]{5}$')", "1234", False),
    ("(alpha || integer) && !equals('x')", "abc", True),
    ("(alpha || integer) && !equals('x')", "x", False),
    ("email", "a@b.org", True),
    ("lenMin(1)", None, False),
    ("unique('patient_id')", "anything", True),  # needs the database in CHT: passes
    ("min(3) && max(4)", "3.5", True),
])
def test_validation_rules(rule, value, ok):
    assert validation.rule_passes(rule, value) is ok


def test_validation_failures_read_fields_then_the_doc():
    config = {"validations": {"list": [
        {"property": "patient_name", "rule": "lenMin(2)", "message": [{"content": "bad", "locale": "en"}]},
        {"property": "form", "rule": "equals('P')"}]}}
    assert [f["property"] for f in validation.failures(config, {"form": "P", "fields": {"patient_name": "X"}})] \
        == ["patient_name"]
    assert validation.failures({}, {}) == []


@pytest.mark.parametrize("expr, ok", [
    ("", True), ("doc.fields.delivery_date", True), ("!doc.fields.delivery_date", False),
    ("fields.kind == 'new'", True), ("doc.fields.kind != 'new'", False), ("doc.fields.count == 3", True),
    ("delivery_date", True), ("doc.fields.missing", False), ("doc.a && doc.b", False),
])
def test_bool_expr_subset(expr, ok):
    doc = {"fields": {"delivery_date": "2026-01-01", "kind": "new", "count": "3"}}
    assert validation.bool_expr(expr, doc) is ok


def test_templates():
    context = {"patient_name": "Mary", "contact": {"name": "Amani"}, "due": "2026-03-04T09:00:00.000Z",
               "when": 1767225600000}
    assert messaging.render("Hi {{contact.name}}, {{ patient_name }} {{missing}}!", context) == "Hi Amani, Mary !"
    assert messaging.render("Due {{#date}}{{due}}{{/date}}", context) == "Due 04-Mar-2026"
    assert messaging.render("At {{#datetime}}{{when}}{{/datetime}}", context) == "At 01-Jan-2026 00:00"


def ctx(**settings):
    return Context(None, None, settings, now=dt.datetime(2026, 1, 5, 12, tzinfo=UTC))  # type: ignore[arg-type]


def test_message_text_by_locale_and_translation_key():
    config = {"message": [{"locale": "en", "content": "Hello"}, {"locale": "sw", "content": "Habari"}]}
    assert messaging.text_of(config, ctx(), "sw") == "Habari"
    assert messaging.text_of(config, ctx(), "fr") == "Hello"
    c = ctx()
    c.translations = {"sw": {"sms_received": "Imepokelewa"}}
    assert messaging.text_of({"translation_key": "sms_received"}, c, "sw") == "Imepokelewa"
    assert messaging.text_of({"translation_key": "sms_received"}, c, "en").startswith("SMS message received")


def test_recipients():
    doc = {"from": "+254712000001", "fields": {"phone": "0712000009"}, "patient": {"phone": "+254712000002"},
           "contact": {"phone": "+254712000003", "parent": {
               "type": "clinic", "contact": {"phone": "+254712000004"}, "parent": {
                   "type": "health_center", "contact": {"phone": "+254712000005"}, "parent": {
                       "type": "district_hospital", "contact": {"phone": "+254712000006"}}}}}}
    settings = {"default_country_code": 254}
    assert messaging.recipient(doc, None, settings) == "+254712000001"
    assert messaging.recipient(doc, "patient", settings) == "+254712000002"
    assert messaging.recipient(doc, "parent", settings) == "+254712000004"
    assert messaging.recipient(doc, "grandparent", settings) == "+254712000005"
    assert messaging.recipient(doc, "district", settings) == "+254712000006"
    assert messaging.recipient(doc, "fields.phone", settings) == "+254712000009"
    assert messaging.recipient(doc, "+254712000010", settings) == "+254712000010"
    assert messaging.recipient({"contact": {"phone": "+254712000003"}}, "reporting_unit", settings) == \
        "+254712000003"


def test_deny_rules():
    settings = {"gateway_number": "+254700000000", "outgoing_deny_list": "+25479, 999",
                "outgoing_deny_shorter_than": 6, "outgoing_deny_with_alphas": True, "default_country_code": 254}
    assert messaging.outgoing_allowed("+254712000001", settings)
    assert not messaging.outgoing_allowed("0700000000", settings), "the gateway itself"
    assert not messaging.outgoing_allowed("+254790000000", settings)
    assert not messaging.outgoing_allowed("12345", settings)
    assert not messaging.outgoing_allowed("SAFCOM", settings)


def test_schedule_due_dates():
    start = dt.datetime(2026, 1, 7, 15, 30, tzinfo=UTC)  # a Wednesday
    assert schedules.due_date(start, {"offset": "2 weeks"}) == dt.datetime(2026, 1, 21, 15, 30, tzinfo=UTC)
    assert schedules.due_date(start, {"offset": "1 month", "send_time": "09:00"}) == \
        dt.datetime(2026, 2, 7, 9, 0, tzinfo=UTC)
    assert schedules.due_date(start, {"offset": "1 days", "send_time": "09:00 +03:00"}) == \
        dt.datetime(2026, 1, 8, 6, 0, tzinfo=UTC)
    assert schedules.due_date(start, {"offset": "1 weeks", "send_day": "monday"}) == \
        dt.datetime(2026, 1, 12, 15, 30, tzinfo=UTC)
    assert schedules.due_date(start, {"offset": "soon"}) is None
    assert schedules.add_offset(dt.datetime(2026, 1, 31, tzinfo=UTC), 1, "month") == dt.datetime(2026, 2, 28,
                                                                                                  tzinfo=UTC)


def test_assign_schedule_skips_past_groups_and_is_idempotent():
    schedule = {"name": "S", "messages": [
        {"group": 1, "offset": "1 days", "message": "a"}, {"group": 1, "offset": "20 days", "message": "b"},
        {"group": 2, "offset": "30 days", "message": "c {{patient_name}}"}]}
    c = ctx()
    doc = {"_id": "r1", "from": "+254712000001", "reported_date": int(dt.datetime(2026, 1, 1, tzinfo=UTC)
                                                                        .timestamp() * 1000),
           "patient": {"name": "Ann", "muted": "2026-01-02"}}
    assert schedules.assign(doc, c, schedule) is True
    assert [(t["group"], t["state"], t["messages"][0]["message"]) for t in doc["scheduled_tasks"]] == \
        [(2, "muted", "c Ann")], "group 1 began in the past; a muted patient's messages are muted"
    assert schedules.assign(doc, c, schedule) is False
    started = dict(schedule, start_mid_group=True)
    fresh = {k: v for k, v in doc.items() if k != "scheduled_tasks"}
    schedules.assign(fresh, c, started)
    assert [t["group"] for t in fresh["scheduled_tasks"]] == [1, 2]


def test_silence_for_clears_whole_groups():
    c = ctx()
    tasks = [{"group": g, "type": "S", "state": s, "due": d} for g, s, d in [
        (1, "scheduled", "2026-01-08T00:00:00.000Z"), (1, "scheduled", "2026-01-20T00:00:00.000Z"),
        (2, "scheduled", "2026-02-01T00:00:00.000Z"), (1, "sent", "2026-01-01T00:00:00.000Z")]]
    registration = {"_id": "reg", "scheduled_tasks": tasks}
    report = {"_id": "visit", "reported_date": int(dt.datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)}
    assert silence(registration, report, c, "S", "7 days") is True
    assert [t["state"] for t in tasks] == ["cleared", "cleared", "scheduled", "sent"]
    assert tasks[0]["cleared_by"] == "visit"
    assert silence(registration, report, c, "S", "7 days") is False
    assert silence(registration, report, c, "S", None) is True and tasks[2]["state"] == "cleared"


def test_registration_params_and_dates():
    assert parse_params('{"patient_id_field": "external_id"}') == {"patient_id_field": "external_id"}
    assert parse_params("ANC, PNC") == ["ANC", "PNC"]
    assert parse_params("") == {}
    doc = {"reported_date": int(dt.datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp() * 1000),
           "fields": {"lmp": 4, "age_in_years": 2}}
    set_expected_date(doc)
    assert doc["lmp_date"] == "2026-02-01T00:00:00Z" and doc["expected_date"] == "2026-11-08T00:00:00Z"
    set_birth_date(doc)
    assert doc["birth_date"] == "2024-03-01T00:00:00Z"


def test_phone_keys_mirror_the_view_and_memory_forgets_what_a_contact_changes():
    assert phone_view_keys({"phone": " +254 712-000 001", "phone_alternate": "07"}) == {"+254712000001"}
    memory = Memory()
    memory.answer("12345", "c1")
    memory.answer("99999", None)
    memory.seen({"_id": "c2", "type": "person", "patient_id": "99999"}, "c2", False)
    assert "99999" not in memory.by_shortcode, "a nobody answer a new contact may contradict"
    memory.seen({"_id": "c1", "type": "person", "patient_id": "55555"}, "c1", False)
    assert "12345" not in memory.by_shortcode
    memory.registrations["12345"] = []
    memory.seen({"_id": "r", "type": "data_record", "form": "P", "fields": {"patient_id": "12345"}}, "r", True)
    assert memory.registrations["12345"] == ["r"]
