"""What makes a user request valid, as CHT decides it: names, roles (and CHT's online role), required fields,
passwords, login by SMS and OIDC, and where a user's place and contact may be. Checked before anything is
written; shared by creation (``create``) and updates (``writes``).

CHT checks a new user in this order, and so does ``check_new``: missing fields, login by SMS, OIDC, the
password, the user name. Any role is accepted; two refusals are Jamii's own, for security: roles starting
with ``_`` (CouchDB's) and ``admin``/``_admin`` given by a caller who is not an admin.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from api import passwords, schemas
from api.auth import ADMIN_ROLES, Principal
from api.cht import phones
from api.cht.contact_types import is_person, is_place
from api.cht.contacts.writes import ContactWriter
from api.cht.lineage import lineage_ids
from api.cht.visibility import Scope, contact_visible
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, NotFound, ServiceUnavailable
from api.permissions import ONLINE_ROLE, has_online_role, roles_have, roles_offline

from . import token_login

USERNAME_RE = re.compile(r"^[a-z0-9_-]+$")
# CHT's field lists, in CHT's order (its "One of the following fields are required" message lists them so).
USER_EDITABLE = ("password", "known", "place", "contact", "type", "roles", "oidc_username")
SETTINGS_EDITABLE = ("fullname", "email", "phone", "known", "external_id", "type", "roles")
UPDATE_FIELDS = tuple(dict.fromkeys((*USER_EDITABLE, *SETTINGS_EDITABLE, "token_login", "language")))
SETTINGS_ONLY = ("fullname", "email", "phone", "external_id")
# What a user may change on themself without update permission (language is accepted and ignored, as in CHT).
SELF_EDITABLE = frozenset({"fullname", "email", "phone", "known", "password", "token_login", "language"})
# CHT's deprecated user types and the roles they stand for.
LEGACY_TYPES = {
    "national-manager": ["kujua_user", "data_entry", "national_admin"],
    "district-manager": ["kujua_user", "data_entry", "district_admin"],
    "facility-manager": ["kujua_user", "data_entry"],
    "data-entry": ["data_entry"],
    "analytics": ["kujua_analytics"],
    "gateway": ["kujua_gateway"],
}
SSO_WITH_PASSWORD = "Cannot set password or token_login with oidc_username."
SSO_DISABLED = "Cannot set oidc_username when OIDC Login is not enabled."


def user_error(message: str, key: str | None = None, params: Mapping[str, Any] | None = None, *,
               status: int = 400, field_name: str | None = None) -> JamiiError:
    """CHT's error shape: ``{"code", "error": {"message", "translationKey"[, "translationParams"]}}``, or
    ``{"code", "error": "<message>"}`` where CHT gives no translation key."""
    error: Any = message
    if key is not None:
        error = {"message": message, "translationKey": key}
        if params:
            error["translationParams"] = dict(params)
    cls = {400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict}[status]
    return cls(message, field=field_name, body={"code": status, "error": error})


def inline_error(exc: JamiiError) -> Any:
    """What a bulk create answers for a user that failed: CHT's translation object, or the message."""
    if isinstance(exc.body, Mapping) and isinstance(exc.body.get("error"), Mapping):
        return exc.body["error"]
    return exc.message


@dataclass
class Invalid:
    """Why one user of a create request is refused before anything is written."""

    fields: list[str]
    message: str
    key: str | None
    params: dict[str, Any] = field(default_factory=dict)
    bulk_text: bool = False  # CHT answers it as a plain message in a bulk create

    def error(self) -> JamiiError:
        return user_error(self.message, self.key, self.params, field_name=self.fields[0] if self.fields else None)

    def inline(self) -> Any:
        return self.message if self.bulk_text else inline_error(self.error())


def roles_of(data: Mapping[str, Any]) -> list[str]:
    """The roles a request gives: the deprecated ``type`` wins (with the roles CHT's legacy types imply)."""
    kind = data.get("type")
    if isinstance(kind, str) and kind:
        return [kind, *LEGACY_TYPES.get(kind, [])]
    if isinstance(data.get("roles"), list):
        return [r for r in data["roles"] if isinstance(r, str)]
    return []


def offline_roles(roles: list[str], settings: Mapping[str, Any]) -> bool:
    """CHT's rule when writing a user: offline unless an admin role or ``mm-online`` is there, when one of the
    roles is configured offline or none is configured at all (an unknown role is offline)."""
    return bool(roles) and not has_online_role(roles) and roles_offline(roles, settings)


def with_online_role(roles: list[str], settings: Mapping[str, Any]) -> list[str]:
    """The roles as CHT stores them: ``mm-online`` added to an online user's, removed from an offline one's."""
    if offline_roles(roles, settings):
        return [r for r in roles if r != ONLINE_ROLE]
    return roles if ONLINE_ROLE in roles else [*roles, ONLINE_ROLE]


def may_have_places(roles: list[str], settings: Mapping[str, Any]) -> bool:
    """CHT's rule for users with several places: their roles must hold ``can_have_multiple_places``."""
    return roles_have(roles, ["can_have_multiple_places"], settings)


def password_change_required(data: Mapping[str, Any], roles: list[str], settings: Mapping[str, Any], *,
                             full_access: bool, enabling_token: bool) -> bool:
    """CHT's rule, for a write that sets a password: ``false`` when asked for, when a user changes their own
    password, when token login is being enabled, or when the roles hold ``can_skip_password_change``."""
    if data.get("password_change_required") is False or not full_access or enabling_token:
        return False
    return not roles_have(roles, ["can_skip_password_change"], settings)


def sso_enabled(settings: Mapping[str, Any]) -> bool:
    return bool(settings.get("oidc_provider"))


def role_problem(roles: list[str], principal: Principal) -> Invalid | None:
    """Jamii's two refusals (CHT accepts any role): CouchDB's ``_`` roles, and admin roles from non-admins."""
    for role in roles:
        if role.startswith("_") and role not in ADMIN_ROLES:
            return Invalid(["roles"], f"Role {role} is reserved by CouchDB", "roles.invalid", {"role": role})
        if role in ADMIN_ROLES and not principal.is_admin:
            return Invalid(["roles"], "Only administrators may give the admin role", "roles.admin")
    return None


def _blank(value: Any) -> bool:
    """CHT's idea of a missing field: falsy, an array with no truthy item, an object with no truthy value."""
    if not value:
        return True
    if isinstance(value, list):
        return not any(value)
    if isinstance(value, dict):
        return not any(value.values())
    return False


def missing_fields(data: Mapping[str, Any], roles: list[str], settings: Mapping[str, Any]) -> list[str]:
    required = ["username"]
    if token_login.will_enable(data, settings):
        required.append("phone")
    elif not data.get("oidc_username"):
        required.append("password")
    if not roles:
        required.append("type or roles")
    elif offline_roles(roles, settings):
        required += ["place", "contact"]
    return [f for f in required if f == "type or roles" or _blank(data.get(f))]


def check_new(data: Any, settings: Mapping[str, Any], principal: Principal) -> Invalid | None:
    """Everything that can be checked of a new user without the database, in CHT's order."""
    if not isinstance(data, dict):
        return Invalid([], "A user must be a JSON object", "user.invalid")
    problems = schemas.errors("user_create", data)
    if problems:  # types CHT would crash on (a 500 there)
        name, message = problems[0]
        return Invalid([name.split(".")[0]] if name else [], f"{name}: {message}" if name else message,
                       "field.invalid", {"field": name})
    roles = roles_of(data)
    problem = role_problem(roles, principal)
    if problem:
        return problem
    missing = missing_fields(data, roles, settings)
    if missing:
        return Invalid(missing, "Missing required fields: " + ", ".join(missing), "fields.required",
                       {"fields": ", ".join(missing)}, bulk_text=True)
    token = token_login.will_enable(data, settings)
    if token and phones.normalize(data.get("phone"), settings) is None:
        return Invalid(["phone"], "A valid phone number is required for SMS login.",
                       "configuration.enable.token.login.phone", bulk_text=True)
    if data.get("oidc_username"):
        if data.get("password") or token or data.get("token_login") is True:
            return Invalid(["oidc_username"], SSO_WITH_PASSWORD, None)
        if not sso_enabled(settings):
            return Invalid(["oidc_username"], SSO_DISABLED, None)
    elif not token:
        weak = passwords.problem(data["password"])
        if weak:
            return Invalid(["password"], weak.message, weak.key, weak.params)
    if not isinstance(data["username"], str) or not USERNAME_RE.match(data["username"]):
        return Invalid(["username"], "Invalid user name. Valid characters are lower case letters, numbers, "
                       "underscore (_), and hyphen (-).", "username.invalid")
    return None


def check_places(data: Mapping[str, Any]) -> Invalid | None:
    """Jamii's checks of inline place and contact objects (v1/v2 creation), after ``check_new``."""
    place, contact = data.get("place"), data.get("contact")
    if isinstance(place, dict) and "contact" in place and contact is not None:
        return Invalid(["place.contact"], "Give the user's contact as contact, not place.contact",
                       "configuration.user.place.contact")
    if isinstance(contact, dict) and not (contact.get("parent") is None or isinstance(contact["parent"], str)):
        return Invalid(["contact.parent"], "contact.parent must be the id of an existing place",
                       "configuration.user.place.contact")
    return None


def facility_list(place: Any) -> list[str] | None:
    """CHT's ``facility_id`` for a request's ``place``: the ids (objects give their ``_id``) of a string, an
    object or a list; None when none is left."""
    items = place if isinstance(place, list) else [place]
    ids = [item.get("_id") if isinstance(item, Mapping) else item for item in items]
    ids = [i for i in ids if i]
    return ids or None


@contextlib.contextmanager
def fields_under(prefix: str) -> Iterator[None]:
    """Name a contact error's field by its path in the user body (``place.parent``, ``contact.name``)."""
    try:
        yield
    except JamiiError as exc:
        if exc.field and not exc.field.startswith(("contact", "place")):
            exc.field = f"{prefix}.{exc.field}"
        elif exc.field == "place" and prefix == "contact":
            exc.field = "contact.parent"
        raise


def name_taken(name: str) -> JamiiError:
    return user_error(f'Username "{name}" already taken.', "username.taken", {"username": name},
                      field_name="username")


def write_error(name: str, result: Mapping[str, Any]) -> JamiiError:
    if result.get("error") == "conflict":
        return name_taken(name)
    return ServiceUnavailable(f"CouchDB refused the write ({result.get('error')}); the user was not created")


def existing_place(writer: ContactWriter, settings: Mapping[str, Any], scope: Scope, place_id: str,
                   path: str = "place", message: str = "Failed to find place.") -> dict[str, Any]:
    """The place a user is to be given, read by ``writer.prepare``: it must be a place the caller sees."""
    doc = writer.existing(place_id)
    if doc is None or not is_place(settings, doc) or not contact_visible(scope, doc):
        raise NotFound(message)
    return doc


def existing_contact(writer: ContactWriter, settings: Mapping[str, Any], scope: Scope, contact_id: str,
                     place_ids: list[str], message: str = "Failed to find person.") -> dict[str, Any]:
    """The person a user is to be given: one the caller sees, within one of ``place_ids``."""
    doc = writer.existing(contact_id)
    if doc is None or not contact_visible(scope, doc):
        raise NotFound(message)
    if not is_person(settings, doc):
        raise user_error("Wrong type, contact is not a person.", "contact.type.wrong", field_name="contact")
    if not set(place_ids) & set(lineage_ids(doc)):
        raise not_within()
    return doc


def not_within() -> JamiiError:
    return user_error("Contact is not within place.", "configuration.user.place.contact", field_name="contact")
