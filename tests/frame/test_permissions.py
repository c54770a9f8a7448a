"""The permission model: pure checks and the settings endpoint for each kind of caller."""

import time

import jwt
import pytest

from api.auth import Principal
from api.errors import Forbidden, Unauthorized
from api.permissions import firewall, has_permission, is_offline, require
from api.settings import default_settings
from tests.helpers import JWT_SECRET, basic

SETTINGS = default_settings()


def test_admins_have_every_permission():
    for roles in (("_admin",), ("admin",)):
        admin = Principal("root", roles)
        assert has_permission(admin, "can_anything_at_all", SETTINGS)
        assert not is_offline(admin, SETTINGS)


def test_roles_grant_what_settings_say():
    chw = Principal("chw", ("chw",))
    assert has_permission(chw, "can_view_contacts", SETTINGS)
    assert not has_permission(chw, "can_configure", SETTINGS)
    assert not has_permission(chw, "not_a_permission", SETTINGS)
    assert is_offline(chw, SETTINGS)


def test_unknown_roles_are_offline_and_get_nothing():
    stranger = Principal("x", ("made_up",))
    assert is_offline(stranger, SETTINGS)
    assert not has_permission(stranger, "can_view_contacts", SETTINGS)


def test_only_configured_roles_grant_permissions_and_mm_online_is_online():
    """As in CHT: a role missing from ``settings.roles`` grants nothing; ``mm-online`` makes a user online."""
    settings = {"roles": {"chw": {"offline": True}}, "permissions": {"can_x": ["chw", "ghost"]}}
    assert has_permission(Principal("a", ("chw",)), "can_x", settings)
    assert not has_permission(Principal("b", ("ghost",)), "can_x", settings)
    assert is_offline(Principal("c", ("chw",)), settings)
    assert not is_offline(Principal("d", ("chw", "mm-online")), settings)


def test_online_role():
    officer = Principal("po", ("program_officer",))
    assert not is_offline(officer, SETTINGS)
    assert has_permission(officer, "can_export_messages", SETTINGS)


def test_jwt_scopes_and_implied_permissions():
    reader = Principal("svc", method="jwt", scopes=frozenset({"read:foci"}))
    writer = Principal("svc", method="jwt", scopes=frozenset({"write:foci"}))
    assert has_permission(reader, "read:foci", SETTINGS) and not has_permission(reader, "write:foci", SETTINGS)
    assert has_permission(writer, "read:foci", SETTINGS)
    assert not has_permission(reader, "can_view_contacts", SETTINGS)


def test_require_raises_the_right_error():
    with pytest.raises(Unauthorized):
        require(None, SETTINGS, "can_view_contacts")
    with pytest.raises(Forbidden, match="^Insufficient privileges$"):
        require(Principal("chw", ("chw",)), SETTINGS, "can_configure")
    with pytest.raises(Forbidden, match="^Insufficient privileges$"):  # cht-core's assertPermissions
        require(Principal("chw", ("chw",)), SETTINGS, "can_view_contacts", online=True)
    with pytest.raises(Forbidden) as refused:
        firewall(Principal("chw", ("chw",)), SETTINGS)
    assert refused.value.to_body() == {"code": 403, "error": "forbidden",
                                       "details": "Offline users are not allowed access to this endpoint"}
    assert firewall(Principal("po", ("program_officer",)), SETTINGS)
    assert require(Principal("po", ("program_officer",)), SETTINGS, "can_view_contacts", online=True)


@pytest.mark.parametrize("roles, status", [
    (["chw"], 403),                 # offline user without can_configure
    (["program_officer"], 403),     # online user without it
    (["national_admin"], 200),      # granted by settings
    (["admin"], 200),               # admin role
])
async def test_settings_update_by_role(client, make_user, roles, status):
    name = await make_user(f"perm-{roles[0]}", roles)
    response = await client.put("/api/v1/settings", json={"locale": "en"}, headers=basic(name))
    assert response.status == status, await response.text()
    if status == 403:
        assert await response.json() == {"code": 403, "error": "Insufficient privileges"}


async def test_settings_update_by_jwt_scope(client):
    def token(scope):
        return jwt.encode({"sub": "svc", "scope": scope, "exp": int(time.time()) + 60}, JWT_SECRET,
                          algorithm="HS256")

    allowed = await client.put("/api/v1/settings", json={"locale": "en"},
                               headers={"Authorization": f"Bearer {token('can_edit can_configure')}"})
    assert allowed.status == 200
    refused = await client.put("/api/v1/settings", json={"locale": "en"},
                               headers={"Authorization": f"Bearer {token('read:foci')}"})
    assert refused.status == 403
