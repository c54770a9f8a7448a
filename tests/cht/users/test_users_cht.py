"""Users as cht-core answers them (issue 20, class 1), asserted through HTTP: CHT's own user factory, inline
``_id``s, any role and CHT's online role, CHT's password rule, per-user bulk answers, v2 single objects, v3 users
with several places, reading oneself, update rules and their bodies."""

import pytest

from tests.helpers import admin_headers, basic

from .world import make_users_world

GOOD = "Secret_1"  # cht-core's user factory's password: CHT accepts it (score 52)
WEAK = {"message": "The password is too easy to guess. Include a range of types of characters to increase the score.",
        "translationKey": "password.weak"}
SHORT = {"message": "The password must be at least 8 characters long.", "translationKey": "password.length.minimum",
         "translationParams": {"minimum": 8}}


@pytest.fixture(scope="module")
def uw(config):
    return make_users_world(config)


async def _docs(couch, config, name):
    uid = f"org.couchdb.user:{name}"
    return await couch.db(config.db_users).get(uid), await couch.db(config.db_medic).get(uid)


async def _count(couch, config):
    return (await couch.db(config.db_medic).info())["doc_count"]


async def test_chts_factory_user_is_created_with_its_ids(client, uw, config, couch):
    """The user of cht-core's own test factory: its place and contact are created with the ids they carry."""
    district = uw.h.districts[0]
    name, place_id, person_id = uw.name("user1"), uw.name("hc1"), uw.name("fixture:user:user1")
    body = {"username": name, "password": GOOD, "roles": ["chw"], "known": True, "phone": "+12068881234",
            "place": {"_id": place_id, "type": "health_center", "name": "Health Center 1", "parent": district},
            "contact": {"_id": person_id, "name": "OfflineUser", "phone": "+12068881234"}}
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=body)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert list(answer) == ["contact", "user", "user-settings"] and answer["contact"]["id"] == person_id
    medic = couch.db(config.db_medic)
    place, person = await medic.get(place_id), await medic.get(person_id)
    assert place["parent"]["_id"] == district and place["contact"]["_id"] == person_id
    assert person["parent"]["_id"] == place_id and person["type"] == "person"
    user_doc, settings_doc = await _docs(couch, config, name)
    assert user_doc["facility_id"] == settings_doc["facility_id"] == [place_id]
    assert user_doc["roles"] == settings_doc["roles"] == ["chw"]  # offline: no mm-online
    assert user_doc["known"] is True and user_doc["password_change_required"] is True
    assert "oidc_username" not in settings_doc and "language" not in settings_doc

    before = await _count(couch, config)
    again = await client.post("/api/v1/users", headers=admin_headers(config),
                              json={**body, "username": uw.name("user2"), "contact": {"name": "Other"}})
    assert again.status == 409 and await again.json() == {"code": 409, "error": "Document update conflict."}
    assert await _count(couch, config) == before
    assert await couch.db(config.db_users).get_or_none(f"org.couchdb.user:{uw.name('user2')}") is None


async def test_people_and_places_keep_the_id_given(client, uw, config, couch):
    clinic, center = uw.h.clinics[0], uw.h.centers[0]
    person = await client.post("/api/v1/people", headers=admin_headers(config),
                               json={"_id": uw.name("pp1"), "name": "A", "place": clinic})
    assert person.status == 200, await person.text()
    answer = await person.json()
    assert answer["ok"] is True and answer["id"] == uw.name("pp1")
    place = await client.post("/api/v1/places", headers=admin_headers(config), json={
        "_id": uw.name("pl1"), "name": "B", "type": "clinic", "parent": {"_id": center},
        "contact": {"_id": uw.name("pc1"), "name": "C"}})
    assert place.status == 200, await place.text()
    answer = await place.json()
    assert answer["ok"] is True and answer["id"] == uw.name("pl1") and answer["contact"]["id"] == uw.name("pc1")
    stored = await couch.db(config.db_medic).get(uw.name("pl1"))
    assert stored["parent"]["_id"] == center and stored["contact"]["_id"] == uw.name("pc1")
    with_place = await client.post("/api/v1/people", headers=admin_headers(config), json={
        "_id": uw.name("pp2"), "name": "D", "place": {"_id": uw.name("pl2"), "name": "E", "type": "clinic",
                                                       "parent": center}})
    assert with_place.status == 200 and await couch.db(config.db_medic).get_or_none(uw.name("pl2")) is not None
    for body in ({"_id": "_bad", "name": "x", "place": clinic}, {"_id": "", "name": "x", "place": clinic}):
        assert (await client.post("/api/v1/people", headers=admin_headers(config), json=body)).status == 400
    taken = await client.post("/api/v1/people", headers=admin_headers(config),
                              json={"_id": uw.name("pp1"), "name": "again", "place": clinic})
    assert taken.status == 409 and await taken.json() == {"code": 409, "error": "Document update conflict."}


async def test_any_role_is_accepted_and_online_users_get_mm_online(client, uw, config, couch):
    admin = admin_headers(config)

    async def create(short, **fields):
        return await client.post("/api/v1/users", headers=admin,
                                 json={"username": uw.name(short), "password": GOOD, **fields})

    assert (await create("r1", roles=["program_officer", "mm-online"])).status == 200
    assert (await _docs(couch, config, uw.name("r1")))[0]["roles"] == ["program_officer", "mm-online"]
    assert (await create("r2", roles=["national_admin"])).status == 200
    for doc in await _docs(couch, config, uw.name("r2")):
        assert doc["roles"] == ["national_admin", "mm-online"]
    assert (await create("r3", roles=["chw", "mm-online"])).status == 200  # online: no place needed
    unknown = await create("r4", roles=["brand_new_role"])  # an unknown role is offline
    assert unknown.status == 400 and await unknown.json() == {"code": 400, "error": {
        "message": "Missing required fields: place, contact", "translationKey": "fields.required",
        "translationParams": {"fields": "place, contact"}}}
    clinic = uw.h.by_id[uw.h.clinics[1]]
    placed = await create("r4", roles=["brand_new_role"], place=clinic["_id"], contact=clinic["contact"]["_id"])
    assert placed.status == 200 and (await _docs(couch, config, uw.name("r4")))[0]["roles"] == ["brand_new_role"]
    legacy = await create("r5", type="district-manager")
    assert legacy.status == 200
    # data_entry is configured online, so the user is online
    assert (await _docs(couch, config, uw.name("r5")))[0]["roles"] == [
        "district-manager", "kujua_user", "data_entry", "district_admin", "mm-online"]
    # the online user is online at request time too (mm-online, whatever the roles' settings say)
    online = await client.get("/api/v1/hydrate?doc_ids=%5B%5D", headers=basic(uw.name("r3"), GOOD))
    assert online.status == 200
    offline = await client.get("/api/v1/hydrate?doc_ids=%5B%5D", headers=basic(uw.name("r4"), GOOD))
    assert offline.status == 403
    # Jamii's two refusals, for security
    reserved = await create("r6", roles=["_reader"])
    assert reserved.status == 400 and (await reserved.json())["error"]["translationKey"] == "roles.invalid"
    national = basic(uw.world.users["national"])
    sneaky = await client.post("/api/v1/users", headers=national,
                               json={"username": uw.name("r7"), "password": GOOD, "roles": ["admin"]})
    assert sneaky.status == 400 and (await sneaky.json())["error"]["translationKey"] == "roles.admin"


@pytest.mark.parametrize("password, error", [("Secret_1", None), ("Qwerty12", None), ("pass1234!", None),
                                             ("password", WEAK), ("abcdEFGH", WEAK), ("aaaaaaaa1A", WEAK),
                                             ("Short1!", SHORT)])
async def test_passwords_as_cht_judges_them(client, uw, config, password, error):
    name = uw.name(f"pw{abs(hash(password)) % 10**8}")
    response = await client.post("/api/v1/users", headers=admin_headers(config),
                                 json={"username": name, "password": password, "roles": ["program_officer"]})
    if error is None:
        assert response.status == 200, await response.text()
    else:
        assert response.status == 400 and await response.json() == {"code": 400, "error": error}


async def test_bulk_answers_each_user(client, uw, config, couch):
    center = uw.h.centers[1]
    good = {"password": GOOD, "roles": ["program_officer"]}
    response = await client.post("/api/v1/users", headers=admin_headers(config), json=[
        {"username": uw.name("b1"), **good},
        {"username": "bad/name", **good},
        {"username": uw.name("b2"), "password": "password", "roles": ["program_officer"]},
        {"username": uw.name("b3"), "roles": ["program_officer"]},
        {"username": uw.name("b1"), **good},
        {"username": uw.name("b4"), "password": GOOD, "roles": ["chw"], "place": "no-such-place",
         "contact": {"name": "Lost"}},
        {"username": uw.name("b5"), "password": GOOD, "roles": ["chw"], "place": center, "contact": "no-such-person"},
        {"username": uw.name("b6"), **good},
    ])
    assert response.status == 200
    body = await response.json()
    assert list(body[0]) == ["user", "user-settings"] and list(body[7]) == ["user", "user-settings"]
    assert body[1:7] == [
        {"error": {"message": "Invalid user name. Valid characters are lower case letters, numbers, underscore (_), "
                              "and hyphen (-).", "translationKey": "username.invalid"}},
        {"error": WEAK},
        {"error": "Missing required fields: password"},
        {"error": {"message": f'Username "{uw.name("b1")}" already taken.', "translationKey": "username.taken",
                   "translationParams": {"username": uw.name("b1")}}},
        {"error": "Failed to find place."},
        {"error": "Failed to find person."},
    ]


async def test_v2_takes_one_user_or_many(client, uw, config, couch):
    single = await client.post("/api/v2/users", headers=admin_headers(config),
                               json={"username": uw.name("v2one"), "password": GOOD, "roles": ["program_officer"]})
    assert single.status == 200 and list(await single.json()) == ["user", "user-settings"]
    refused = await client.post("/api/v2/users", headers=admin_headers(config),
                                json={"username": uw.name("v2two"), "password": "password", "roles": ["program_officer"]})
    assert refused.status == 400 and await refused.json() == {"code": 400, "error": WEAK}
    many = await client.post("/api/v2/users", headers=admin_headers(config),
                             json=[{"username": uw.name("v2three"), "password": GOOD, "roles": ["program_officer"]}])
    assert many.status == 200 and list((await many.json())[0]) == ["user", "user-settings"]


async def test_v3_users_with_several_places(client, uw, config, couch):
    first, second = uw.h.by_id[uw.h.clinics[0]], uw.h.by_id[uw.h.clinics[1]]
    center = uw.h.by_id[uw.h.centers[0]]
    places = [first["_id"], second["_id"], center["_id"]]
    settings = await (await client.get("/api/v1/settings", headers=admin_headers(config))).json()
    permission = {"can_have_multiple_places": [*settings["permissions"]["can_have_multiple_places"], "national_admin"]}
    await client.put("/api/v1/settings", headers=admin_headers(config), json={"permissions": permission})
    name = uw.name("v3multi")
    made = await client.post("/api/v3/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["national_admin"], "place": places,
        "contact": first["contact"]["_id"]})
    assert made.status == 200, await made.text()
    assert list(await made.json()) == ["user", "user-settings"]  # v3 answers no contact
    for doc in await _docs(couch, config, name):
        assert doc["facility_id"] == places and doc["roles"] == ["national_admin", "mm-online"]
        assert doc["contact_id"] == first["contact"]["_id"]
    assert (await couch.db(config.db_medic).get(first["_id"]))["contact"] == first["contact"]  # untouched

    async def refused(body):
        response = await client.post("/api/v3/users", headers=admin_headers(config), json={"password": GOOD, **body})
        return response.status, await response.json()

    status, error = await refused({"username": uw.name("v3chw"), "roles": ["chw"], "place": places,
                                   "contact": first["contact"]["_id"]})
    assert (status, error["error"]) == (400, {"message": "This user cannot have multiple places",
                                              "translationKey": "field is required",
                                              "translationParams": {"field": "Place"}})
    status, error = await refused({"username": uw.name("v3empty"), "roles": ["national_admin"], "place": []})
    assert status == 400 and error["error"]["message"] == "Invalid facilities list"
    status, error = await refused({"username": uw.name("v3blank"), "roles": ["chw"], "place": [""],
                                   "contact": first["contact"]["_id"]})
    assert status == 400 and error["error"]["message"] == "Missing required fields: place"
    status, error = await refused({"username": uw.name("v3lost"), "roles": ["national_admin"],
                                   "place": ["no-such-place"]})
    assert (status, error) == (404, {"code": 404, "error": "Failed to find place no-such-place"})
    status, error = await refused({"username": uw.name("v3nobody"), "roles": ["national_admin"],
                                   "place": [first["_id"]], "contact": "no-such-person"})
    assert (status, error) == (404, {"code": 404, "error": "Contact not found [no-such-person]."})
    status, error = await refused({"username": uw.name("v3far"), "roles": ["national_admin"],
                                   "place": [first["_id"]], "contact": second["contact"]["_id"]})
    assert status == 400 and error["error"]["translationKey"] == "configuration.user.place.contact"

    chw = uw.name("v3one")
    assert (await client.post("/api/v3/users", headers=admin_headers(config), json={
        "username": chw, "password": GOOD, "roles": ["national_admin"], "place": first["_id"]})).status == 200
    moved = await client.post(f"/api/v3/users/{chw}", headers=admin_headers(config), json={"place": places})
    assert moved.status == 200 and set(await moved.json()) == {"user", "user-settings"}
    for doc in await _docs(couch, config, chw):
        assert doc["facility_id"] == places


async def test_reading_one_user(client, uw, config, couch):
    name = uw.name("reader")
    clinic = uw.h.by_id[uw.h.clinics[0]]
    assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": name, "password": GOOD, "roles": ["chw"], "place": clinic["_id"],
        "contact": clinic["contact"]["_id"], "fullname": "R", "external_id": None})).status == 200
    place = await couch.db(config.db_medic).get(clinic["_id"])
    person = await couch.db(config.db_medic).get(clinic["contact"]["_id"])
    user_doc = (await _docs(couch, config, name))[0]
    expected = {"id": f"org.couchdb.user:{name}", "rev": user_doc["_rev"], "username": name, "fullname": "R",
                "place": [place], "roles": ["chw"], "contact": person, "external_id": None}
    admin = await client.get(f"/api/v2/users/{name}", headers=admin_headers(config))
    assert await admin.json() == expected and list(await admin.json()) == list(expected)
    himself = await client.get(f"/api/v2/users/{name}", headers=basic(name, GOOD))
    assert himself.status == 200 and await himself.json() == expected
    other = await client.get(f"/api/v2/users/{name}", headers=basic(uw.world.users["po"]))
    assert other.status == 403 and await other.json() == {"code": 403, "error": "Insufficient privileges"}
    nobody = await client.get(f"/api/v2/users/{uw.name('nobody')}", headers=basic(uw.world.users["chw"]))
    assert nobody.status == 403  # refused before anything is looked up
    online = uw.name("placeless")
    assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
        "username": online, "password": GOOD, "roles": ["program_officer"]})).status == 200
    shown = await (await client.get(f"/api/v2/users/{online}", headers=admin_headers(config))).json()
    assert shown["place"] is None and "contact" not in shown


async def test_update_rules_and_bodies(client, uw, config, couch):
    name, other = uw.name("upd"), uw.name("upd-other")
    clinic = uw.h.by_id[uw.h.clinics[0]]
    for who in (name, other):
        assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
            "username": who, "password": GOOD, "roles": ["chw"], "place": clinic["_id"],
            "contact": clinic["contact"]["_id"]})).status == 200
    not_him = await client.post(f"/api/v1/users/{other}", headers=basic(name, GOOD), json={"fullname": "x"})
    assert not_him.status == 403 and await not_him.json() == {
        "code": 403, "error": "You do not have permissions to modify this person"}
    wrong = await client.post(f"/api/v1/users/{name}", headers=basic(name, "Wrong-pass1"), json={"fullname": "x"})
    assert wrong.status == 401
    need = ("password, known, place, contact, type, roles, oidc_username, fullname, email, phone, external_id, "
            "token_login, language")
    colour = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"colour": "red"})
    assert colour.status == 400 and await colour.json() == {"code": 400, "error": {
        "message": f"One of the following fields are required: {need}", "translationKey": "fields.one.required",
        "translationParams": {"fields": need}}}
    for body in (b"{}", b""):
        empty = await client.post(f"/api/v1/users/{name}", data=body,
                                  headers={**admin_headers(config), "Content-Type": "application/json"})
        assert empty.status == 400 and (await empty.json())["error"] == (
            "Request body is empty or Content-Type header was not set to application/json.")
    as_object = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config),
                                  json={"place": {"_id": clinic["_id"], "name": "ignored"}, "external_id": None})
    assert as_object.status == 200
    user_doc, settings_doc = await _docs(couch, config, name)
    assert user_doc["facility_id"] == [clinic["_id"]] and settings_doc["external_id"] is None  # null kept
    offline_no_place = await client.post(f"/api/v1/users/{name}", headers=admin_headers(config), json={"place": None})
    assert offline_no_place.status == 400 and (await offline_no_place.json())["error"] == {
        "message": "Place field is required for offline users", "translationKey": "field is required",
        "translationParams": {"field": "Place"}}
    language = await client.post(f"/api/v1/users/{name}", headers=basic(name, GOOD), json={"language": "fr"})
    assert language.status == 200  # accepted and ignored, as in CHT


async def test_password_change_required_follows_can_skip_password_change(client, uw, config, couch):
    settings = await (await client.get("/api/v1/settings", headers=admin_headers(config))).json()
    await client.put("/api/v1/settings", headers=admin_headers(config),
                     json={"permissions": {"can_skip_password_change": ["analytics"]}})
    try:
        skip, keep, told = uw.name("pcr-skip"), uw.name("pcr-keep"), uw.name("pcr-told")
        for who, roles, extra in ((skip, ["analytics"], {}), (keep, ["program_officer"], {}),
                                  (told, ["program_officer"], {"password_change_required": False})):
            assert (await client.post("/api/v1/users", headers=admin_headers(config), json={
                "username": who, "password": GOOD, "roles": roles, **extra})).status == 200
        assert (await _docs(couch, config, skip))[0]["password_change_required"] is False
        assert (await _docs(couch, config, keep))[0]["password_change_required"] is True
        assert (await _docs(couch, config, told))[0]["password_change_required"] is False
        await client.post(f"/api/v1/users/{told}", headers=admin_headers(config), json={"password": "Another_2"})
        assert (await _docs(couch, config, told))[0]["password_change_required"] is True  # an admin set it
        await client.post(f"/api/v1/users/{told}", headers=basic(told, "Another_2"), json={"password": "Another_3"})
        assert (await _docs(couch, config, told))[0]["password_change_required"] is False  # they set it
    finally:
        await client.put("/api/v1/settings?replace=1", headers=admin_headers(config),
                         json={"permissions": settings["permissions"]})
