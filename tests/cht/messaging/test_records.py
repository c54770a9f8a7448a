"""POST /api/v2/records (and v1): reports from JSON and from SMS text, against the real server."""

import pytest

from tests.helpers import admin_headers, basic

FORMS = {
    "TEST": {  # cht-core's own test form (tests/integration/api/controllers/records.spec.js)
        "meta": {"code": "TEST"},
        "fields": {"some_data": {"type": "string", "required": True}, "a_number": {"type": "integer", "required": True},
                   "a_boolean": {"type": "boolean"}, "another_boolean": {"type": "boolean"},
                   "an_optional_date": {"type": "date"}},
    },
    "YYYZ": {
        "meta": {"code": "YYYZ", "label": "ANC visit"},
        "fields": {
            "nurse": {"type": "string", "labels": {"tiny": "N"}, "required": True, "position": 0},
            "week": {"type": "integer", "labels": {"tiny": "W"}, "range": [1, 53], "required": True, "position": 1},
            "year": {"type": "integer", "labels": {"tiny": "Y"}, "position": 2},
            "visit": {"type": "string", "labels": {"tiny": "V"}, "position": 3},
        },
    },
    "REG": {
        "meta": {"code": "REG"},
        "fields": {
            "name": {"type": "string", "labels": {"tiny": "N"}, "required": True},
            "lmp": {"type": "date", "labels": {"tiny": "L"}},
            "phone": {"type": "phone_number", "labels": {"tiny": "P"}},
            "referred": {"type": "boolean", "labels": {"tiny": "R"}},
            "month": {"type": "month", "labels": {"tiny": "M"}},
            "details.notes": {"type": "string", "labels": {"tiny": "X"}},
        },
    },
}


@pytest.fixture
async def forms(client, config):
    response = await client.put("/api/v1/settings", json={"forms": FORMS}, headers=admin_headers(config))
    assert response.status == 200


@pytest.fixture
async def medic(couch, config):
    return couch.db(config.db_medic)


async def record_count(medic):
    rows = (await medic.view("medic-client", "doc_by_type", key=["data_record"]))["rows"]
    return len(rows)


async def post_sms(client, config, **fields):
    return await client.post("/api/v2/records", data=fields, headers=admin_headers(config))


async def test_sms_muvuku_as_in_the_spec(client, config, forms, medic):
    # The spec's body, byte for byte: its unescaped "+" decodes to a space, read back as the "+" it was.
    response = await client.post("/api/v1/records", data=b"message=1!YYYZ!Sam#23#2015#ANC&from=+5511943348031"
                                                         b"&sent_timestamp=1352399720000",
                                 headers={**admin_headers(config),
                                          "Content-Type": "application/x-www-form-urlencoded"})
    body = await response.json()
    assert response.status == 200 and body["success"] is True
    doc = await medic.get(body["id"])
    assert doc["type"] == "data_record" and doc["form"] == "YYYZ"
    assert doc["fields"] == {"nurse": "Sam", "week": 23, "year": 2015, "visit": "ANC"}
    assert doc["from"] == "+5511943348031" and doc["reported_date"] == 1352399720000
    assert doc["errors"] == [] and doc["tasks"] == []
    assert doc["sms_message"]["message"] == "1!YYYZ!Sam#23#2015#ANC"
    assert doc["sms_message"]["form"] == "YYYZ"


async def test_sms_textforms_and_compact(client, config, forms, medic):
    keyed = await post_sms(client, config, message="reg n Jane Doe # l 2024-01-15 # p 0712345678 # r 1 # m 2 # x ok",
                           **{"from": "0722000111"})
    doc = await medic.get((await keyed.json())["id"])
    assert doc["from"] == "+254722000111"  # settings default_country_code 254
    assert doc["fields"] == {"name": "Jane Doe", "lmp": 1705276800000, "phone": "+254712345678",
                             "referred": True, "month": 2, "details": {"notes": "ok"}}
    compact = await post_sms(client, config, message='YYYZ "Sam O" 23 2015 ANC and more', **{"from": "+254722000111"})
    doc = await medic.get((await compact.json())["id"])
    assert doc["fields"] == {"nurse": "Sam O", "week": 23, "year": 2015, "visit": "ANC and more"}
    assert doc["errors"] == []


async def test_sms_with_problems_is_stored_with_its_errors(client, config, forms, medic):
    response = await post_sms(client, config, message="1!YYYZ!Sam#99#2015#ANC#surplus", **{"from": "+254722000111"})
    doc = await medic.get((await response.json())["id"])
    assert [e["code"] for e in doc["errors"]] == ["sys.invalid_fields", "extra_fields"]
    assert doc["fields"] == {"nurse": "Sam", "year": 2015, "visit": "ANC"}
    missing = await post_sms(client, config, message="YYYZ", **{"from": "+254722000111"})
    doc = await medic.get((await missing.json())["id"])
    assert doc["errors"][0]["code"] == "sys.missing_fields" and doc["errors"][0]["fields"] == ["nurse", "week"]


async def test_unknown_forms_and_plain_messages_are_kept(client, config, forms, medic):
    unknown = await post_sms(client, config, message="1!NOPE!a#b", **{"from": "MPESA"})
    doc = await medic.get((await unknown.json())["id"])
    assert "form" not in doc and doc["errors"][0]["code"] == "sys.form_not_found"
    assert doc["from"] == "MPESA"  # not a phone number: kept as sent
    plain = await post_sms(client, config, message="Hello, is the clinic open?", **{"from": "+254722000111"})
    doc = await medic.get((await plain.json())["id"])
    assert "form" not in doc and doc["errors"] == [] and doc["sms_message"]["message"].startswith("Hello")
    empty = await post_sms(client, config, message="", **{"from": ""})
    doc = await medic.get((await empty.json())["id"])
    assert doc["errors"][0]["code"] == "sys.empty"


@pytest.mark.parametrize("fields, field", [
    ({"message": "x"}, "from"),
    ({"from": "+254722000111"}, "message"),
    ({"message": "x", "from": "+1", "sent_timestamp": "yesterday"}, "sent_timestamp"),
])
async def test_sms_bad_input_is_400(client, config, forms, medic, fields, field):
    before = await record_count(medic)
    response = await post_sms(client, config, **fields)
    assert response.status == 400 and (await response.json())["field"] == field
    assert await record_count(medic) == before


async def _post_json(client, config, body):
    response = await client.post("/api/v2/records", headers=admin_headers(config), json=body)
    return response.status, await response.json()


async def test_json_as_cht_stores_it(client, config, forms, medic):
    status, body = await _post_json(client, config, {
        "_meta": {"form": "TEST", "from": "+447765902000"}, "some_data": "hello", "a_number": 42,
        "a_boolean": False, "another_boolean": 0, "an_optional_date": "2018-11-10"})
    assert status == 200 and body == {"success": True, "id": body["id"]}
    doc = await medic.get(body["id"])
    assert doc["type"] == "data_record" and doc["form"] == "TEST" and doc["from"] == "+447765902000"
    assert doc["fields"] == {"some_data": "hello", "a_number": 42, "a_boolean": False, "another_boolean": False,
                             "an_optional_date": 1541808000000}
    assert doc["errors"] == [] and doc["tasks"] == []
    assert doc["sms_message"] == {"form": "TEST", "from": "+447765902000"} and "locale" not in doc


async def test_json_missing_required_field_is_stored_with_an_error(client, config, forms, medic):
    """cht-core saves the report and answers 200, with the problem in ``errors`` (not a 400)."""
    status, body = await _post_json(client, config, {
        "_meta": {"form": "TEST", "from": "+447765902000"}, "a_number": 42, "an_optional_date": "2018-11-10"})
    assert status == 200 and body["success"] is True
    doc = await medic.get(body["id"])
    assert doc["fields"] == {"a_number": 42, "an_optional_date": 1541808000000}
    assert doc["errors"] == [{"code": "sys.missing_fields", "message": "Missing or invalid fields: some_data."}]
    status, body = await _post_json(client, config, {"_meta": {"form": "test"}})
    doc = await medic.get(body["id"])
    assert doc["form"] == "TEST" and doc["fields"] == {}
    assert doc["errors"] == [{"code": "sys.missing_fields",
                              "message": "Missing or invalid fields: some_data,a_number."}]


async def test_json_wrong_types_and_unknown_fields(client, config, forms, medic):
    status, body = await _post_json(client, config, {
        "_meta": {"form": "TEST"}, "some_data": 5, "a_number": "42", "a_boolean": "yes", "extra": 1})
    assert status == 200
    doc = await medic.get(body["id"])
    assert doc["fields"] == {"some_data": 5, "a_number": "42", "a_boolean": "yes"}  # kept as sent; extra dropped
    assert doc["errors"] == [
        {"code": "sys.incorrect_type", "message": "Incorrect type of field some_data, expected string."},
        {"code": "sys.incorrect_type", "message": "Incorrect type of field a_number, expected integer."},
        {"code": "sys.incorrect_type", "message": "Incorrect type of field a_boolean, expected boolean."}]
    # names are not case-sensitive; of two case variants the last one given wins, as in CHT
    status, body = await _post_json(client, config, {"_meta": {"form": "TEST"}, "some_data": 5,
                                                     "SOME_DATA": "text", "a_number": 1})
    doc = await medic.get(body["id"])
    assert doc["fields"] == {"some_data": "text", "a_number": 1} and doc["errors"] == []


async def test_json_error_messages_in_the_reports_language(client, config, forms, medic):
    await medic.put({"_id": "messages-fr", "type": "translations", "code": "fr",
                     "generic": {"sys.missing_fields": "Champs manquants : {{fields}}."}})
    status, body = await _post_json(client, config, {"_meta": {"form": "TEST", "locale": "fr"}, "a_number": 1})
    doc = await medic.get(body["id"])
    assert doc["errors"] == [{"code": "sys.missing_fields", "message": "Champs manquants : some_data."}]


async def test_json_as_in_the_spec(client, config, forms, medic):
    status, body = await _post_json(client, config, {
        "Nurse": "Sam", "WEEK": 23, "year": 2015, "visit": "ANC",
        "_meta": {"form": "yyyz", "reported_date": 1352399720000, "from": "0722000111", "locale": "fr"}})
    assert status == 200 and body["success"] is True
    doc = await medic.get(body["id"])
    assert doc["form"] == "YYYZ" and doc["fields"] == {"nurse": "Sam", "week": 23, "year": 2015, "visit": "ANC"}
    assert doc["reported_date"] == 1352399720000 and doc["from"] == "+254722000111" and doc["errors"] == []
    assert doc["sms_message"] == {"form": "YYYZ", "reported_date": 1352399720000, "from": "0722000111",
                                  "locale": "fr"}


async def test_json_types_and_dates(client, config, forms, medic):
    status, body = await _post_json(client, config, {
        "name": "Jane", "lmp": "2024-01-15", "referred": 1, "details.notes": "ok",
        "_meta": {"form": "REG", "reported_date": "2016-07-01T13:48:24Z"}})
    doc = await medic.get(body["id"])
    assert doc["fields"] == {"name": "Jane", "lmp": 1705276800000, "referred": True}
    assert doc["reported_date"] == 1467380904000 and "from" not in doc
    status, body = await _post_json(client, config, {"name": "Jo", "lmp": "someday", "_meta": {"form": "REG"}})
    doc = await medic.get(body["id"])
    assert status == 200 and doc["fields"] == {"name": "Jo", "lmp": None} and doc["errors"] == []


@pytest.mark.parametrize("body, message", [
    ({"nurse": "Sam"}, "Missing _meta property."),
    ({"_meta": None, "nurse": "Sam"}, "Missing _meta property."),
    ({"_meta": {}}, "Missing required field: form"),
    ({"_meta": {"form": ""}}, "Missing required field: form"),
    ({"_meta": "YYYZ"}, "Missing required field: form"),
    ({"_meta": {"form": "nope"}}, "Form not found: NOPE"),
])
async def test_json_without_a_known_form_is_400_and_stores_nothing(client, config, forms, medic, body, message):
    """cht-core answers these with 500 and the message; Jamii with 400 and the same message (deliberate)."""
    before = await record_count(medic)
    status, answer = await _post_json(client, config, body)
    assert status == 400 and answer["error"] == message
    assert await record_count(medic) == before


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b""])
async def test_invalid_json_is_400(client, config, forms, data):
    response = await client.post("/api/v2/records", data=data,
                                 headers={**admin_headers(config), "Content-Type": "application/json"})
    assert response.status == 400 and (await response.json())["field"] == "body"


async def test_other_content_types_are_400(client, config, forms):
    response = await client.post("/api/v2/records", data=b"1!YYYZ!Sam#23",
                                 headers={**admin_headers(config), "Content-Type": "text/plain"})
    assert response.status == 400 and (await response.json())["field"] == "Content-Type"


async def test_permissions(client, config, forms, make_user):
    analyst = await make_user("rec-analyst", ["analytics"])
    clerk = await make_user("rec-clerk", ["data_entry"])
    body = {"_meta": {"form": "YYYZ"}, "nurse": "Sam", "week": 3}
    assert (await client.post("/api/v2/records", json=body)).status == 401
    assert (await client.post("/api/v2/records", json=body, headers=basic(analyst))).status == 403
    assert (await client.post("/api/v2/records", json=body, headers=basic(clerk))).status == 200


class Probe:
    """A stand-in transition: marks the reports it is shown."""

    name = "probe_records"

    def filter(self, doc, ctx):
        return doc.get("type") == "data_record" and doc.get("form") == "YYYZ"

    async def run(self, doc, ctx):
        if doc.get("probed"):
            return False
        doc["probed"] = True
        return True


async def test_records_are_picked_up_by_the_sentinel(client, config, couch, forms, medic):
    from api.settings import SettingsStore
    from sentinel.engine import Engine
    from sentinel.worker import Worker

    await client.put("/api/v1/settings", json={"transitions": {"probe_records": True}}, headers=admin_headers(config))
    by_sms = await post_sms(client, config, message="1!YYYZ!Ann#4", **{"from": "+254722000111"})
    by_json = await client.post("/api/v2/records", headers=admin_headers(config),
                                json={"_meta": {"form": "YYYZ"}, "nurse": "Ann", "week": 4})
    ids = [(await by_sms.json())["id"], (await by_json.json())["id"]]
    engine = Engine(couch, config, SettingsStore(medic), [Probe()])
    worker = Worker(couch, config, engine.process_batch, batch_size=1000, wait_seconds=0.5)
    while await worker.step():
        pass
    for doc_id in ids:
        assert (await medic.get(doc_id))["probed"] is True


@pytest.mark.parametrize("settings, field", [
    ({"forms": {"X": {"fields": {"a": {"type": "integer", "range": [1]}}}}}, "forms.X.fields.a.range"),
    ({"forms": {"X": {"fields": {"a": {"required": "yes"}}}}}, "forms.X.fields.a.required"),
    ({"sms": {"outgoing_service": "carrier-pigeon"}}, "sms.outgoing_service"),
    ({"sms": {"rapidpro": {"url": "textit.in"}}}, "sms.rapidpro.url"),
])
async def test_form_and_sms_settings_are_checked(client, config, settings, field):
    response = await client.put("/api/v1/settings", json=settings, headers=admin_headers(config))
    assert response.status == 400 and (await response.json())["field"] == field
