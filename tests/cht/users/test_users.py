"""POST/GET/DELETE /api/v1|v2/users: create one or many, read, update (self rules), delete."""

import pytest

from api import passwords
from api.cht.user_meta.names import escape_username, user_db_name
from api.couch import basic_auth
from tests.helpers import admin_headers, basic

from .world import make_users_world

GOOD = "Kit-Amani-2024!"


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


async def _count(couch, config):
    return (await couch.db(config.db_medic).info())["doc_count"]


async def _login(client, name, password):
    response = await client.post("/_session", json={"name": name, "password": password})
    return response.status


async def test_create_one_with_new_place_and_contact(client, uw, config, couch):
    center = uw.h.centers[0]
    name = uw.name("mary")
    response = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "password": GOOD, "username": name, "type": "chw", "fullname": "Mary Anyango", "ignored": "x",
        "place": {"name": "Mary's Area", "type": "clinic", "parent": center},
        "contact": {"name": "Mary Anyango", "phone": "+254712345678"}})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert list(body) == ["contact", "user", "user-settings"]  # CHT's order
    assert body["user"]["id"] == body["user-settings"]["id"] == f"org.couchdb.user:{name}"
    user_doc = await couch.db(config.db_users).get(body["user"]["id"])
    settings_doc = await couch.db(config.db_medic).get(body["user-settings"]["id"])
    contact = await couch.db(config.db_medic).get(body["contact"]["id"])
    place = await couch.db(config.db_medic).get(user_doc["facility_id"][0])
    assert user_doc["roles"] == ["chw"] and user_doc["contact_id"] == contact["_id"] and "ignored" not in user_doc
    assert settings_doc["type"] == "user-settings" and settings_doc["fullname"] == "Mary Anyango"
    assert (settings_doc["facility_id"], settings_doc["contact_id"]) == ([place["_id"]], contact["_id"])
    assert place["contact"]["_id"] == contact["_id"] and place["parent"]["_id"] == center
    assert contact["parent"]["_id"] == place["_id"]
    assert await _login(client, name, GOOD) == 200



async def test_an_offline_user_gets_a_meta_database_when_created(client, uw, config, couch):
    """Issue 22: made with the user, so it is there before the device's first sync; online users get none."""
    clinic = uw.h.by_id[uw.h.clinics[0]]
    offline, online = uw.name("meta-made"), uw.name("meta-online")
    for name, body in ((offline, {"roles": ["chw"], "place": clinic["_id"],
                                  "contact": {"name": "Meta Made", "phone": "+254712345670"}}),
                       (online, {"roles": ["program_officer"]})):
        made = await client.post("/api/v1/users", headers=admin_headers(config),
                                 json={"password": GOOD, "username": name, **body})
        assert made.status == 200, await made.text()
    db = couch.db(user_db_name(config.db_medic, offline))
    assert await db.exists() and (await db.get("_design/medic-user"))["_id"] == "_design/medic-user"
    security = (await couch.request("GET", db.path + "/_security"))[1]
    assert security["members"]["names"] == [offline]
    read = await client.get(f"/medic-user-{escape_username(offline)}-meta/", headers=basic(offline, GOOD))
    assert read.status == 200, "the owner reads it without making it first"
    assert not await couch.db(user_db_name(config.db_medic, online)).exists()

async def test_create_with_existing_place_and_contact(client, uw, config, couch):
    clinic = uw.h.by_id[uw.h.clinics[1]]
    resident = next(d for d in uw.h.children(clinic["_id"]) if d["type"] == "person")
    name = uw.name("existing")
    response = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "password": GOOD, "username": name, "roles": ["chw"], "place": clinic["_id"], "contact": resident["_id"]})
    assert response.status == 200, await response.text()
    assert (await response.json())["contact"]["id"] == resident["_id"]
    place = await couch.db(config.db_medic).get(clinic["_id"])
    assert place["contact"]["_id"] == clinic["contact"]["_id"]  # an existing place keeps its primary contact
    elsewhere = uw.h.by_id[uw.h.clinics[0]]["contact"]["_id"]
    outside = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "password": GOOD, "username": uw.name("outside"), "roles": ["chw"], "place": clinic["_id"],
        "contact": elsewhere})
    assert outside.status == 400
    assert (await outside.json())["error"]["translationKey"] == "configuration.user.place.contact"
    new_person = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "password": GOOD, "username": uw.name("newperson"), "roles": ["chw"], "place": clinic["_id"],
        "contact": {"name": "Baraka"}})
    assert new_person.status == 200
    person = await couch.db(config.db_medic).get((await new_person.json())["contact"]["id"])
    assert person["parent"]["_id"] == clinic["_id"]


async def test_username_taken_is_the_spec_body(client, uw, config):
    name = uw.name("taken")
    first = await client.post("/api/v1/users", headers=admin_headers(config),
                              json={"password": GOOD, "username": name, "roles": ["program_officer"]})
    assert first.status == 200
    again = await client.post("/api/v1/users", headers=admin_headers(config),
                              json={"password": GOOD, "username": name, "roles": ["program_officer"]})
    assert again.status == 400
    body = await again.json()
    assert body["code"] == 400 and body["error"] == {
        "message": f'Username "{name}" already taken.', "translationKey": "username.taken",
        "translationParams": {"username": name}}


@pytest.mark.parametrize("body, key", [
    ({"username": "PREFIXa", "roles": ["program_officer"]}, "fields.required"),
    ({"username": "PREFIXb", "roles": ["program_officer"], "password": "short"}, "password.length.minimum"),
    ({"username": "PREFIXc", "roles": ["program_officer"], "password": "password1"}, "password.weak"),
    ({"username": "PREFIXd", "roles": ["chw"], "password": GOOD}, "fields.required"),
    ({"username": "Bad Name", "roles": ["program_officer"], "password": GOOD}, "username.invalid"),
    ({"username": "PREFIXe", "roles": ["nope"], "password": GOOD}, "fields.required"),  # unknown: offline
    ({"username": "PREFIXf", "roles": ["program_officer"], "token_login": True}, "fields.required"),
    ({"username": "PREFIXg", "roles": ["program_officer"], "token_login": True, "phone": "12"},
     "configuration.enable.token.login.phone"),
    ({"username": "PREFIXh", "roles": ["program_officer"], "password": GOOD, "oidc_username": "h@x.org"},
     None),
    ({"username": "PREFIXi", "roles": "chw", "password": GOOD}, "field.invalid"),
])
async def test_invalid_single_user_is_400_and_writes_nothing(client, uw, config, couch, body, key):
    body = {k: v.replace("PREFIX", uw.prefix) if isinstance(v, str) else v for k, v in body.items()}
    before = await _count(couch, config)
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=body)
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["translationKey"] == key if key else error == "Cannot set password or token_login with oidc_username."
    assert await _count(couch, config) == before


async def test_many_are_created_each_on_its_own(client, uw, config, couch):
    """CHT creates the valid users of an array and answers per user (200 whatever happened)."""
    before = await _count(couch, config)
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=[
        {"fullname": "no one"}, {"username": uw.name("half")},
        {"username": uw.name("fine"), "password": GOOD, "roles": ["program_officer"]},
        {"username": uw.name("weak"), "password": "12345678", "roles": ["program_officer"]}])
    assert response.status == 200
    body = await response.json()
    assert body[0] == {"error": "Missing required fields: username, password, type or roles"}
    assert body[1] == {"error": "Missing required fields: password, type or roles"}
    assert set(body[2]) == {"user", "user-settings"}
    assert body[3] == {"error": {"message": "The password is too easy to guess. Include a range of types of "
                                            "characters to increase the score.", "translationKey": "password.weak"}}
    assert await _count(couch, config) == before + 1
    assert await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{uw.name('fine')}") is not None
    assert await (await client.post("/api/v1/users", headers=admin_headers(config), json=[])).json() == []


async def test_many_with_failures_inline_in_request_order(client, uw, config, couch):
    center = uw.h.centers[1]
    users = [
        {"username": uw.name("bulk1"), "password": GOOD, "roles": ["chw"], "place": {
            "name": "Bulk area", "type": "clinic", "parent": center}, "contact": {"name": "Bulk One"}},
        {"username": uw.name("bulk2"), "password": GOOD, "roles": ["chw"], "place": "no-such-place",
         "contact": {"name": "Lost"}},
        {"username": uw.name("bulk1"), "password": GOOD, "roles": ["program_officer"]},
        {"username": uw.name("bulk3"), "password": GOOD, "roles": ["program_officer"]},
    ]
    before = await _count(couch, config)
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=users)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert list(body[0]) == ["contact", "user", "user-settings"]
    assert body[1] == {"error": "Failed to find place."}
    assert body[2] == {"error": {"message": f'Username "{uw.name("bulk1")}" already taken.',
                                 "translationKey": "username.taken", "translationParams": {"username": uw.name("bulk1")}}}
    assert set(body[3]) == {"user-settings", "user"}
    # one place, one person, two user-settings: the failed users left nothing behind
    assert await _count(couch, config) == before + 4
    assert await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{uw.name('bulk2')}") is None


async def test_permissions(client, uw, config):
    users = uw.world.users
    body = {"username": uw.name("perm"), "password": GOOD, "roles": ["program_officer"]}
    assert (await client.post("/api/v1/users", json=body)).status == 401
    for path in ("/api/v1/users", "/api/v2/users", f"/api/v2/users/{users['po']}"):
        refused = await client.get(path, headers=basic(users["chw"]))
        assert refused.status == 403 and await refused.json() == {"code": 403, "error": "Insufficient privileges"}
    assert (await client.post("/api/v1/users", json=body, headers=basic(users["po"]))).status == 403
    assert (await client.delete(f"/api/v1/users/{users['po']}", headers=basic(users["chw"]))).status == 403
    assert (await client.post(f"/api/v1/users/{users['po']}", json={"fullname": "x"},
                              headers=basic(users["chw"]))).status == 403
    national = basic(users["national"])
    assert (await client.post("/api/v1/users", json=body, headers=national)).status == 200
    admin_role = await client.post("/api/v1/users", headers=national, json={
        "username": uw.name("sneaky"), "password": GOOD, "roles": ["admin"]})
    # Jamii's own refusal (CHT lets anyone who may create users make an admin)
    assert admin_role.status == 400 and (await admin_role.json())["error"]["translationKey"] == "roles.admin"
    assert (await client.get("/api/v2/users", headers=national)).status == 200


async def test_list_and_get(client, uw, config):
    clinic = uw.h.by_id[uw.h.clinics[0]]
    name = uw.name("listed")
    created = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["chw"], "place": clinic["_id"],
        "contact": clinic["contact"]["_id"], "fullname": "Listed One", "email": "l@example.org", "phone": "0712000111"})
    assert created.status == 200
    v2 = await (await client.get("/api/v2/users", headers=admin_headers(config))).json()
    mine = next(u for u in v2 if u["username"] == name)
    assert mine["id"] == f"org.couchdb.user:{name}" and mine["roles"] == ["chw"]
    assert mine["fullname"] == "Listed One" and mine["email"] == "l@example.org"
    # CHT's shape: place is the list of the place docs as stored (not hydrated), contact the person doc
    assert mine["place"] == [clinic] and mine["contact"]["_id"] == clinic["contact"]["_id"]
    assert mine["contact"]["type"] == "person" and "type" not in mine
    assert "inconsistencies" not in mine
    fixture_user = next(u for u in v2 if u["username"] == uw.world.users["po"])
    assert fixture_user["inconsistencies"] == [f"the user-settings doc org.couchdb.user:{uw.world.users['po']} "
                                               "is missing"]
    v1 = await (await client.get("/api/v1/users", headers=admin_headers(config))).json()
    old = next(u for u in v1 if u["username"] == name)
    assert old["type"] == "chw" and "roles" not in old
    by_place = await (await client.get(f"/api/v2/users?facility_id={clinic['_id']}",
                                       headers=admin_headers(config))).json()
    assert name in [u["username"] for u in by_place]
    assert all(clinic["_id"] in [p["_id"] for p in u["place"]] for u in by_place)
    by_contact = await (await client.get(f"/api/v2/users?contact_id={clinic['contact']['_id']}",
                                         headers=admin_headers(config))).json()
    assert name in [u["username"] for u in by_contact]
    both = await (await client.get(f"/api/v2/users?contact_id={clinic['contact']['_id']}&facility_id=nope",
                                   headers=admin_headers(config))).json()
    assert both == []
    v1_filtered = await (await client.get(f"/api/v1/users?facility_id={clinic['_id']}",
                                          headers=admin_headers(config))).json()
    assert [u["username"] for u in v1_filtered] == [u["username"] for u in by_place]
    one = await client.get(f"/api/v2/users/{name}", headers=admin_headers(config))
    assert one.status == 200 and await one.json() == mine
    missing = await client.get(f"/api/v2/users/{uw.name('ghost')}", headers=admin_headers(config))
    assert missing.status == 404 and await missing.json() == {
        "code": 404, "error": f"Failed to find user with name [{uw.name('ghost')}] in the [users] database."}
    half = await client.get(f"/api/v2/users/{uw.world.users['po']}", headers=admin_headers(config))
    assert half.status == 404 and (await half.json())["error"].endswith("in the [medic] database.")


async def test_admin_update_and_self_update_rules(client, uw, config, couch):
    name = uw.name("selfie")
    clinic, other = uw.h.by_id[uw.h.clinics[0]], uw.h.by_id[uw.h.clinics[1]]
    assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["chw"], "place": clinic["_id"],
        "contact": clinic["contact"]["_id"]})).status == 200
    moved = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={
        "place": other["_id"], "contact": other["contact"]["_id"], "fullname": "Moved"})
    assert moved.status == 200, await moved.text()
    assert set(await moved.json()) == {"user", "user-settings"}
    user_doc = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert user_doc["facility_id"] == settings_doc["facility_id"] == [other["_id"]]
    assert settings_doc["fullname"] == "Moved"
    bad = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config),
                            json={"contact": clinic["contact"]["_id"]})
    assert bad.status == 400 and (await bad.json())["error"]["message"] == "Contact is not within place."
    nothing = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"colour": "red"})
    assert nothing.status == 400 and (await nothing.json())["error"]["translationKey"] == "fields.one.required"
    # the user themself
    me = basic(name, GOOD)
    assert (await client.post(f"/api/v1/users/{name}", json={"fullname": "Me"}, headers=me)).status == 200
    for field, value in (("roles", ["national_admin"]), ("type", "national_admin"), ("place", clinic["_id"]),
                         ("contact", clinic["contact"]["_id"])):
        refused = await client.post(f"/api/v1/users/{name}", json={field: value}, headers=me)
        # CHT answers these with its 401 (and the header that logs the web app out)
        assert refused.status == 401 and await refused.json() == {"code": 401, "error": "unauthorized"}
        assert refused.headers["logout-authorization"] == "CHT-Core API"
    session = await client.post("/_session", json={"name": name, "password": GOOD})
    cookie = {"Cookie": f"AuthSession={session.cookies['AuthSession'].value}"}
    assert (await client.post(f"/api/v1/users/{name}", json={"fullname": "Cookie"}, headers=cookie)).status == 200
    by_cookie = await client.post(f"/api/v1/users/{name}", json={"password": "Another-pass-77"}, headers=cookie)
    assert by_cookie.status == 403 and await by_cookie.json() == {
        "code": 403, "error": "You must authenticate with Basic Auth to modify your password"}
    by_basic = await client.post(f"/api/v1/users/{name}", json={"password": "Another-pass-77"}, headers=me)
    assert by_basic.status == 200
    assert await _login(client, name, "Another-pass-77") == 200 and await _login(client, name, GOOD) == 401
    ghost = await client.post(f"/api/v1/users/{uw.name('ghost')}", json={"fullname": "x"},
                              headers=admin_headers(config))
    assert ghost.status == 404 and (await ghost.json())["error"].endswith("in the [users] database.")


async def test_update_with_a_list_of_places(client, uw, config, couch):
    """CHT's users with several places (cht-conf's upload-docs sends the places left after a delete)."""
    first, second = uw.h.by_id[uw.h.clinics[0]], uw.h.by_id[uw.h.clinics[1]]
    supervisor, chw = uw.name("multi-sup"), uw.name("multi-chw")
    for name, role in ((supervisor, "chw_supervisor"), (chw, "chw")):
        assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
            "username": name, "password": GOOD, "roles": [role], "place": first["_id"],
            "contact": first["contact"]["_id"]})).status == 200
    both = await client.post(f"/api/v1/users/{supervisor}", headers=admin_headers(config),
                             json={"place": [first["_id"], second["_id"]]})
    assert both.status == 200, await both.text()
    for db in (config.db_users, config.db_medic):
        assert (await couch.db(db).get(f"org.couchdb.user:{supervisor}"))["facility_id"] == [first["_id"], second["_id"]]
    listed = await (await client.get(f"/api/v2/users?facility_id={second['_id']}", headers=admin_headers(config))).json()
    assert supervisor in [u["username"] for u in listed] and chw not in [u["username"] for u in listed]
    one = await client.post(f"/api/v1/users/{supervisor}", headers=admin_headers(config), json={"place": [first["_id"]]})
    assert one.status == 200
    assert (await couch.db(config.db_users).get(f"org.couchdb.user:{supervisor}"))["facility_id"] == [first["_id"]]
    # several places need can_have_multiple_places; every id must be a place; nothing is written otherwise
    refused = await client.post(f"/api/v1/users/{chw}", headers=admin_headers(config),
                                json={"place": [first["_id"], second["_id"]]})
    assert refused.status == 400 and (await refused.json())["error"] == {
        "message": "This user cannot have multiple places", "translationKey": "field is required",
        "translationParams": {"field": "Place"}}
    missing = await client.post(f"/api/v1/users/{supervisor}", headers=admin_headers(config),
                                json={"place": [first["_id"], "no-such-place"]})
    assert missing.status == 404 and await missing.json() == {"code": 404, "error": "Failed to find place no-such-place"}
    empty = await client.post(f"/api/v1/users/{supervisor}", headers=admin_headers(config), json={"place": []})
    assert empty.status == 400 and (await empty.json())["error"]["message"] == "Invalid facilities list"
    bad = await client.post(f"/api/v1/users/{supervisor}", headers=admin_headers(config), json={"place": [7]})
    assert bad.status == 400 and (await bad.json())["field"].startswith("place")
    assert (await couch.db(config.db_users).get(f"org.couchdb.user:{chw}"))["facility_id"] == [first["_id"]]
    assert (await couch.db(config.db_users).get(f"org.couchdb.user:{supervisor}"))["facility_id"] == [first["_id"]]


async def test_delete(client, uw, config, couch):
    name = uw.name("leaving")
    clinic = uw.h.by_id[uw.h.clinics[1]]
    created = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["chw"], "place": clinic["_id"], "contact": {"name": "Leaver"}})
    person_id = (await created.json())["contact"]["id"]
    assert await _login(client, name, GOOD) == 200
    response = await client.delete(f"/api/v1/users/{name}", headers=admin_headers(config))
    assert response.status == 200
    answer = await response.json()  # CHT's: the two CouchDB write results
    assert [(r["ok"], r["id"]) for r in answer] == [(True, f"org.couchdb.user:{name}")] * 2
    assert await _login(client, name, GOOD) == 401
    assert (await client.get("/api/v1/settings", headers={"Authorization": basic_auth(name, GOOD)})).status == 401
    settings_doc = await couch.db(config.db_medic).get(f"org.couchdb.user:{name}")
    assert settings_doc["inactive"] is True and settings_doc["deletion_date"] > 0
    assert await couch.db(config.db_medic).get_or_none(person_id) is not None
    assert await couch.db(config.db_medic).get_or_none(clinic["_id"]) is not None
    again = await client.delete(f"/api/v1/users/{name}", headers=admin_headers(config))
    # CouchDB's reason, relayed as CHT relays it: "deleted" (pouchdb-server says "missing")
    assert again.status == 404 and (await again.json())["error"] in ("deleted", "missing")
    never = await client.delete(f"/api/v1/users/{uw.name('never-was')}", headers=admin_headers(config))
    assert never.status == 404 and await never.json() == {"code": 404, "error": "missing"}
    # as in CHT, the name stays taken while the user-settings doc is kept
    reborn = await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["program_officer"]})
    assert reborn.status == 400 and (await reborn.json())["error"]["translationKey"] == "username.taken"


@pytest.mark.parametrize("password, score", [
    ("Secret_1", 52), ("Qwerty12", 54), ("pass1234!", 55), ("aB3$aB3$", 61), ("password", 22), ("12345678", 24),
    ("abcdefgh", 24), ("abcdEFGH", 39), ("abcd1234", 39), ("aaaaaaaa1A", 46), ("swizzlesticks", 31),
    ("\u00e9_\u00e9_\u00e9_\u00e9_", 12), ("\U0001f600\U0001f600\U0001f600ab1", 49), (12345678, 0), (None, 0),
])
def test_password_score_is_chts(password, score):
    """The scores simple-password-tester gives (UTF-16 units: an emoji counts twice)."""
    assert passwords.score(password) == score


def test_passwords():
    assert passwords.problem("Secret_1") is None and passwords.problem("Kit-Amani-2024!") is None
    assert passwords.problem("Short1!").key == "password.length.minimum"
    assert passwords.problem("\U0001f600\U0001f600\U0001f600ab1").key == "password.weak"  # 9 units: long enough
    assert passwords.problem("\U0001f600\U0001f600ab").key == "password.length.minimum"  # 6 units
    assert passwords.problem(12345678).key == "password.weak"  # not a string: CHT scores it 0
    assert passwords.problem("password").key == "password.weak"
    made = {passwords.generate() for _ in range(20)}
    assert len(made) == 20 and all(passwords.problem(p) is None and len(p) == 24 for p in made)


async def test_lists_are_read_and_streamed_page_by_page(client, uw, config, monkeypatch):
    from api.cht.users import users

    everyone = await (await client.get("/api/v2/users", headers=admin_headers(config))).json()
    monkeypatch.setattr(users, "PAGE", 2)
    paged = await (await client.get("/api/v2/users", headers=admin_headers(config))).json()
    assert len(everyone) > 4 and [u["id"] for u in paged] == [u["id"] for u in everyone]
    assert len({u["id"] for u in paged}) == len(paged)
