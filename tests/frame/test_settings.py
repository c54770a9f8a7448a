"""Settings GET/PUT with merge, replace and overwrite; validation; reload across processes."""

import asyncio

import pytest

from api.settings import SETTINGS_ID, default_settings, updated_settings, value_at, with_default_permissions
from tests.helpers import admin_headers, basic


def test_merge_replace_overwrite_rules():
    current = {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}
    body = {"a": {"x": 9}, "b": [7]}
    assert updated_settings(current, body, replace=False, overwrite=False) == \
        {"a": {"x": 9, "y": 2}, "b": [7], "c": 3}
    assert updated_settings(current, body, replace=True, overwrite=False) == \
        {"a": {"x": 9}, "b": [7], "c": 3}
    assert updated_settings(current, body, replace=True, overwrite=True) == body
    assert updated_settings(current, body, replace=False, overwrite=True) == body
    assert current == {"a": {"x": 1, "y": 2}, "b": [1, 2], "c": 3}


def test_default_permissions_fill_the_gaps():
    defaults = {"can_a": ["x"], "can_b": ["y"]}
    assert with_default_permissions({"locale": "en"}, defaults) == {"locale": "en", "permissions": defaults}
    assert with_default_permissions({"permissions": {"can_a": []}}, defaults) == \
        {"permissions": {"can_a": [], "can_b": ["y"]}}


@pytest.fixture
async def admin(config):
    return admin_headers(config)


async def _stored(couch, config):
    return (await couch.db(config.db_medic).get(SETTINGS_ID))["settings"]


async def test_get_returns_the_stored_settings(client, admin, couch, config):
    response = await client.get("/api/v1/settings", headers=admin)
    assert response.status == 200
    assert await response.json() == await _stored(couch, config)


async def test_put_merges_by_default(client, admin, couch, config):
    response = await client.put("/api/v1/settings", json={"roles": {"extra_role": {"offline": False}}},
                                headers=admin)
    assert await response.json() == {"success": True, "updated": True, "upgraded": True}
    roles = (await _stored(couch, config))["roles"]
    assert "extra_role" in roles and "chw" in roles
    again = await client.put("/api/v1/settings", json={"roles": {"extra_role": {"offline": False}}},
                             headers=admin)
    assert await again.json() == {"success": True, "updated": False, "upgraded": False}


async def test_put_replace_replaces_given_properties(client, admin, couch, config):
    response = await client.put("/api/v1/settings?replace=true",
                                json={"roles": {"only_role": {"offline": True}}}, headers=admin)
    assert await response.json() == {"success": True, "updated": True, "upgraded": True}
    stored = await _stored(couch, config)
    assert stored["roles"] == {"only_role": {"offline": True}}
    assert "permissions" in stored


async def test_put_overwrite_replaces_everything(client, admin, couch, config):
    before = await _stored(couch, config)
    response = await client.put("/api/v1/settings?overwrite=true&replace=true", json={"locale": "sw"},
                                headers=admin)
    assert (await response.json())["updated"] is True
    # as in CHT, the default permissions are filled in after every update
    assert await _stored(couch, config) == {"locale": "sw", "permissions": default_settings()["permissions"]}
    restore = await client.put("/api/v1/settings?overwrite=true", json=before, headers=admin)
    assert restore.status == 200


@pytest.mark.parametrize("body, field", [
    ({"roles": {"chw": {"offline": "yes"}}}, "roles.chw.offline"),
    ({"permissions": {"can_x": "chw"}}, "permissions.can_x"),
    ({"contact_types": [{"name": "no id"}]}, "contact_types.0.id"),
])
async def test_invalid_settings_are_refused_naming_the_field(client, admin, couch, config, body, field):
    before = await _stored(couch, config)
    response = await client.put("/api/v1/settings", json=body, headers=admin)
    assert response.status == 400
    error = await response.json()
    assert error["field"] == field and field in error["error"]
    assert await _stored(couch, config) == before


@pytest.mark.parametrize("data", [b"{not json", b"", b"[1, 2]", b"\xff\xfe"])
async def test_malformed_bodies_are_400(client, admin, data):
    response = await client.put("/api/v1/settings", data=data,
                                headers={**admin, "Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["code"] == 400


async def test_query_flags_are_read_as_cht_reads_them(client, admin, couch, config):
    """Any non-empty value is true (CHT reads the raw query string): ``replace=false`` replaces."""
    await client.put("/api/v1/settings", json={"_sandbox": {"a": 1, "b": 2}}, headers=admin)
    merged = await client.put("/api/v1/settings?replace=", json={"_sandbox": {"a": 3}}, headers=admin)
    assert merged.status == 200 and (await _stored(couch, config))["_sandbox"] == {"a": 3, "b": 2}
    for value in ("false", "0", "maybe"):
        await client.put("/api/v1/settings", json={"_sandbox": {"a": 1, "b": 2}}, headers=admin)
        replaced = await client.put(f"/api/v1/settings?replace={value}", json={"_sandbox": {"a": 4}}, headers=admin)
        assert replaced.status == 200 and (await _stored(couch, config))["_sandbox"] == {"a": 4}, value


async def test_missing_default_permissions_are_filled_in(client, admin, couch, config):
    before = await _stored(couch, config)
    defaults = default_settings()["permissions"]
    trimmed = {k: v for k, v in before["permissions"].items() if k != "can_view_users"}
    trimmed["can_export_all"] = ["chw_supervisor"]
    response = await client.put("/api/v1/settings?replace=1", json={"permissions": trimmed}, headers=admin)
    assert await response.json() == {"success": True, "updated": True, "upgraded": True}
    stored = (await _stored(couch, config))["permissions"]
    assert stored["can_view_users"] == defaults["can_view_users"] and stored["can_export_all"] == ["chw_supervisor"]
    await client.put("/api/v1/settings?replace=1", json={"permissions": before["permissions"]}, headers=admin)


async def test_permission_rules(client, admin, make_user, config):
    """``can_edit`` and ``can_configure`` are both needed; 401 asks for Basic credentials (CHT's prompt)."""
    settings = await (await client.get("/api/v1/settings", headers=admin)).json()
    roles = {**settings["roles"], "configurer": {"name": "configurer", "offline": False}}
    permissions = {**settings["permissions"], "can_configure": [*settings["permissions"]["can_configure"],
                                                                "configurer"]}
    assert (await client.put("/api/v1/settings", json={"roles": roles, "permissions": permissions},
                             headers=admin)).status == 200
    configurer = basic(await make_user("configurer", ["configurer"]))
    refused = await client.put("/api/v1/settings", json={"locale": "en"}, headers=configurer)
    assert refused.status == 403 and await refused.json() == {"code": 403, "error": "Insufficient privileges"}
    edit = {**permissions, "can_edit": [*permissions["can_edit"], "configurer"]}
    await client.put("/api/v1/settings", json={"permissions": edit}, headers=admin)
    allowed = await client.put("/api/v1/settings", json={"locale": "en"}, headers=configurer)
    assert allowed.status == 200, await allowed.text()
    for method in ("GET", "PUT"):
        anonymous = await client.request(method, "/api/v1/settings", json={})
        assert anonymous.status == 401 and await anonymous.json() == {"code": 401, "error": "unauthorized"}
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="Medic Web Services"'
        assert anonymous.headers["logout-authorization"] == "CHT-Core API"


async def test_change_made_elsewhere_is_seen(client, admin, couch, config):
    db = couch.db(config.db_medic)
    doc = await db.get(SETTINGS_ID)
    doc["settings"]["locale"] = "fr"
    await db.put(doc)
    for _ in range(50):
        current = await (await client.get("/api/v1/settings", headers=admin)).json()
        if current["locale"] == "fr":
            break
        await asyncio.sleep(0.1)
    assert current["locale"] == "fr"


@pytest.mark.parametrize("data", [b'{"locale": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}'])
async def test_non_json_numbers_are_400(client, admin, data):
    response = await client.put("/api/v1/settings", data=data, headers={**admin, "Content-Type": "application/json"})
    assert response.status == 400 and "not a JSON value" in (await response.json())["error"]


REWRITE = "/medic/_design/medic/_rewrite"


async def test_couchdb_app_paths_read_and_update_settings(client, admin, couch, config):
    """The paths cht-conf uses: ``{settings, meta, schema}`` and ``{success, updated}`` (replace=1)."""
    read = await client.get(f"{REWRITE}/app_settings/medic", headers=admin)
    assert read.status == 200
    assert await read.json() == {"settings": await _stored(couch, config), "meta": {}, "schema": {}}
    role, value = next(iter((await _stored(couch, config))["roles"].items()))
    part = await (await client.get(f"{REWRITE}/app_settings/medic/roles.{role}", headers=admin)).json()
    assert part["settings"] == value
    assert (await (await client.get(f"{REWRITE}/app_settings/medic/contact_types.0.id", headers=admin)).json()
            )["settings"] == "district_hospital"
    missing = await (await client.get(f"{REWRITE}/app_settings/medic/no.such.path", headers=admin)).json()
    assert missing["settings"] == {}
    superscript = await client.get(f"{REWRITE}/app_settings/medic/contact_types.\u00b2", headers=admin)
    assert superscript.status == 200 and (await superscript.json())["settings"] == {}

    before = await _stored(couch, config)
    body = {"locale_outgoing": "sw", "roles": {**before["roles"], "cht_conf_role": {"offline": False}}}
    put = await client.put(f"{REWRITE}/update_settings/medic?replace=1", json=body, headers=admin)
    assert put.status == 200 and await put.json() == {"success": True, "updated": True}
    stored = await _stored(couch, config)
    assert stored["locale_outgoing"] == "sw" and "cht_conf_role" in stored["roles"]
    assert stored["permissions"] == before["permissions"], "replace: only the given properties"
    again = await client.put(f"{REWRITE}/update_settings/medic?replace=1", json=body, headers=admin)
    assert await again.json() == {"success": True, "updated": False}


async def test_couchdb_app_paths_errors_are_chts(client, admin, couch, config, make_user):
    """CHT answers its deprecated paths' errors as its API's: ``{code, error}``."""
    before = await _stored(couch, config)
    bad = await client.put(f"{REWRITE}/update_settings/medic?replace=1",
                           json={"roles": {"chw": {"offline": "yes"}}}, headers=admin)
    assert bad.status == 400
    error = await bad.json()
    assert error["code"] == 400 and "roles.chw.offline" in error["error"]
    assert await _stored(couch, config) == before
    chw = basic(await make_user("rewrite-chw", ["chw"]))
    assert (await client.get(f"{REWRITE}/app_settings/medic", headers=chw)).status == 200, "any user reads"
    refused = await client.put(f"{REWRITE}/update_settings/medic", json={"locale": "sw"}, headers=chw)
    assert refused.status == 403 and await refused.json() == {"code": 403, "error": "Insufficient privileges"}
    anonymous = await client.get(f"{REWRITE}/app_settings/medic")
    assert anonymous.status == 401 and await anonymous.json() == {"code": 401, "error": "unauthorized"}
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="Medic Web Services"'


async def test_deprecated_transitions(client, make_user):
    chw = basic(await make_user("transitions-chw", ["chw"]))
    response = await client.get("/api/v1/settings/deprecated-transitions", headers=chw)
    assert response.status == 200
    listed = {t["name"]: t for t in await response.json()}
    assert set(listed) == {"update_notifications", "generate_patient_id_on_people"}
    assert all(t["deprecated"] is True and t["deprecationMessage"] for t in listed.values())
    assert 'Please use "muting" transition instead.' in listed["update_notifications"]["deprecationMessage"]
    assert (await client.get("/api/v1/settings/deprecated-transitions")).status == 401


def test_value_at_follows_dotted_paths():
    settings = {"a": {"b": [{"c": 1}, False]}, "n": None}
    assert value_at(settings, "a.b.0.c") == 1
    assert value_at(settings, "a.b.1") is False, "a real false stays false"
    assert value_at(settings, "a.b.2") == {} and value_at(settings, "a.x") == {} and value_at(settings, "n") == {}
