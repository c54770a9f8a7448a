"""What makes a user request valid: names, roles, required fields, passwords, and where a user's place and
contact may be. Checked before anything is written; shared by creation (``create``) and updates (``writes``)."""

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
from api.permissions import has_permission, is_offline

from . import token_login

USERNAME_RE = re.compile(r"^[a-z0-9_-]{1,100}$")
SETTINGS_ONLY = ("fullname", "email", "phone", "language", "external_id")
SELF_EDITABLE = frozenset({"password", "known", "fullname", "email", "phone", "token_login", "language"})
UPDATABLE = SELF_EDITABLE | {"place", "contact", "type", "roles", "external_id", "oidc_username",
                             "password_change_required"}


def user_error(message: str, key: str, params: Mapping[str, Any] | None = None, *, status: int = 400,
               field_name: str | None = None) -> JamiiError:
    """CHT's error shape: ``{"code", "error": {"message", "translationKey", "translationParams"}}``."""
    error = {"message": message, "translationKey": key}
    if params:
        error["translationParams"] = dict(params)
    cls = {400: BadRequest, 403: Forbidden, 404: NotFound, 409: Conflict}[status]
    return cls(message, field=field_name, body={"code": status, "error": error})


@dataclass
class Invalid:
    """Why one user of a create request is refused before anything is written."""

    fields: list[str]
    message: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    missing: bool = False

    def error(self) -> JamiiError:
        return user_error(self.message, self.key, self.params, field_name=self.fields[0] if self.fields else None)


def roles_of(data: Mapping[str, Any]) -> list[str]:
    if isinstance(data.get("roles"), list):
        return [r for r in data["roles"] if isinstance(r, str)]
    if isinstance(data.get("type"), str) and data["type"]:
        return [data["type"]]  # deprecated: the type names the role
    return []


def offline_roles(roles: list[str], settings: Mapping[str, Any]) -> bool:
    return bool(roles) and not ADMIN_ROLES.intersection(roles) and is_offline(Principal("-", tuple(roles)), settings)


def may_have_places(roles: list[str], settings: Mapping[str, Any]) -> bool:
    """CHT's rule for users with several places: their roles must hold ``can_have_multiple_places``."""
    return bool(ADMIN_ROLES.intersection(roles)) or has_permission(
        Principal("-", tuple(roles)), "can_have_multiple_places", settings)


def role_problem(roles: list[str], settings: Mapping[str, Any], principal: Principal) -> Invalid | None:
    configured = settings.get("roles") if isinstance(settings.get("roles"), Mapping) else {}
    for role in roles:
        if role.startswith("_"):
            return Invalid(["roles"], f"Role {role} is reserved by CouchDB", "roles.invalid", {"role": role})
        if role in ADMIN_ROLES:
            if not principal.is_admin:
                return Invalid(["roles"], "Only administrators may give the admin role", "roles.admin")
        elif role not in configured:
            return Invalid(["roles"], f"Unknown role {role}: configure it in the app settings' roles first",
                           "roles.unknown", {"role": role})
    return None


def check_new(data: Any, settings: Mapping[str, Any], principal: Principal) -> Invalid | None:
    """Everything that can be checked of a new user without the database."""
    if not isinstance(data, dict):
        return Invalid([], "A user must be a JSON object", "user.invalid")
    problems = schemas.errors("user_create", data)
    if problems:
        name, message = problems[0]
        return Invalid([name.split(".")[0]] if name else [], f"{name}: {message}" if name else message,
                       "field.invalid", {"field": name})
    roles = roles_of(data)
    problem = role_problem(roles, settings, principal)
    if problem:
        return problem
    token = data.get("token_login") is True
    required = ["username", "phone" if token else None,
                None if token or data.get("oidc_username") else "password"]
    if offline_roles(roles, settings):
        required += ["place", "contact"]
    missing = [f for f in required if f and not data.get(f)]
    if not roles:
        missing.append("type or roles")
    if missing:
        return Invalid(missing, "Missing required fields: " + ", ".join(missing), "fields.required",
                       {"fields": ", ".join(missing)}, missing=True)
    if not USERNAME_RE.match(data["username"]):
        return Invalid(["username"], "Invalid user name. Valid characters are lower case letters, numbers, "
                       "underscore (_), and hyphen (-).", "username.invalid")
    if data.get("oidc_username") and (data.get("password") or token):
        return Invalid(["oidc_username"], "Either OIDC Login only or Token/Password Login is allowed",
                       "oidc_username.exclusive")
    if token:
        if not token_login.enabled(settings):
            return Invalid(["token_login"], "Login by SMS is not enabled: set token_login.enabled in the app "
                           "settings", "configuration.enable.token.login")
        if phones.normalize(data.get("phone"), settings) is None:
            return Invalid(["phone"], "A valid phone number is required for SMS login.",
                           "configuration.enable.token.login.phone")
    elif not data.get("oidc_username"):
        weak = passwords.problem(data["password"], [data["username"], data.get("fullname"), data.get("email")])
        if weak:
            return Invalid(["password"], weak.message, weak.key, weak.params)
    place, contact = data.get("place"), data.get("contact")
    if isinstance(place, dict) and "contact" in place and contact is not None:
        return Invalid(["place.contact"], "Give the user's contact as contact, not place.contact",
                       "configuration.user.place.contact")
    if isinstance(contact, dict) and not (contact.get("parent") is None or isinstance(contact["parent"], str)):
        return Invalid(["contact.parent"], "contact.parent must be the id of an existing place",
                       "configuration.user.place.contact")
    return None


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
                   path: str = "place") -> dict[str, Any]:
    """The place a user is to be given, read by ``writer.prepare``: it must be a place the caller sees."""
    doc = writer.existing(place_id)
    if doc is None or not is_place(settings, doc) or not contact_visible(scope, doc):
        raise NotFound("Failed to find place.", field=path)
    return doc


def existing_contact(writer: ContactWriter, settings: Mapping[str, Any], scope: Scope, contact_id: str,
                     place_id: str | None) -> None:
    """The person a user is to be given: one the caller sees, within ``place_id`` when it is given."""
    doc = writer.existing(contact_id)
    if doc is None or not contact_visible(scope, doc):
        raise NotFound("Failed to find contact.", field="contact")
    if not is_person(settings, doc):
        raise user_error("Wrong type, contact is not a person.", "contact.type.wrong", field_name="contact")
    if place_id is not None:
        within(doc, place_id)


def within(doc: Mapping[str, Any], place_id: str) -> None:
    if place_id not in lineage_ids(doc):
        raise user_error("Contact is not within place.", "configuration.user.place.contact",
                         field_name="contact")
