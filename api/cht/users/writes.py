"""Updating and deleting users (``_users`` doc + ``user-settings`` doc, see ``users``): one user at a time,
re-read and re-applied when another writer got there first."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Mapping

from api import passwords, schemas
from api.auth import Principal
from api.cht import phones
from api.cht.contacts.writes import ContactWriter
from api.cht.lineage import lineage_ids
from api.cht.visibility import Scope
from api.couch import Database
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, NotFound

from . import token_login
from .rules import (
    SELF_EDITABLE,
    SETTINGS_ONLY,
    UPDATABLE,
    Invalid,
    existing_contact,
    existing_place,
    may_have_places,
    offline_roles,
    role_problem,
    roles_of,
    user_error,
)
from .users import Dbs, by_field, facility_ids, synced_settings, user_id

log = logging.getLogger("jamii.users")

CONFLICT_RETRIES = 3


class UserWriter:
    """Updates and deletes users for one request: the caller, the settings, and where the token-login link
    points."""

    def __init__(self, dbs: Dbs, settings: Mapping[str, Any], principal: Principal, scope: Scope,
                 request_base: str = "http://localhost"):
        self.dbs = dbs
        self.settings = settings
        self.principal = principal
        self.scope = scope
        self.request_base = request_base

    async def update(self, name: str, data: Any, *, full_access: bool) -> dict[str, Any]:
        """``POST /api/v1/users/{name}``: change what ``data`` names (only some fields on oneself)."""
        if not isinstance(data, dict) or not data:
            raise BadRequest("Request body must be a non-empty JSON object", field="body")
        if not full_access:
            illegal = sorted(k for k in data if k not in SELF_EDITABLE)
            if illegal:
                raise Forbidden("You do not have permission to modify: " + ",".join(illegal), field=illegal[0])
        if not any(k in UPDATABLE for k in data):
            fields = ", ".join(sorted(UPDATABLE))
            raise user_error("One of the following fields are required: " + fields, "fields.one.required",
                             {"fields": fields})
        problems = schemas.errors("user_update", data)
        if problems:
            where, message = problems[0]
            raise BadRequest(f"{where}: {message}" if where else message, field=where or None)
        if data.get("password"):
            weak = passwords.problem(data["password"], [name, data.get("fullname"), data.get("email")])
            if weak:
                raise user_error(weak.message, weak.key, weak.params, field_name="password")
        for _ in range(CONFLICT_RETRIES):
            user_doc = await self.dbs.users.get_or_none(user_id(name))
            if user_doc is None:
                raise NotFound("Failed to find user.")
            settings_doc = await self.dbs.medic.get_or_none(user_id(name))
            try:
                return await self._update(name, data, user_doc, settings_doc, full_access)
            except _Retry:
                continue
        raise Conflict("The user was changed by someone else at the same time; try again")

    async def _update(self, name: str, data: dict[str, Any], user_doc: dict[str, Any],
                      settings_doc: dict[str, Any] | None, full_access: bool) -> dict[str, Any]:
        previous = dict(settings_doc) if settings_doc else None
        settings_new = synced_settings(user_doc, settings_doc)  # an update also repairs a diverged pair
        user_new = dict(user_doc)
        roles = roles_of(data) if ("roles" in data or "type" in data) else list(user_doc.get("roles") or [])
        if "roles" in data or "type" in data:
            problem = role_problem(roles, self.settings, self.principal)
            if problem or not roles:
                raise (problem or Invalid(["roles"], "roles must not be empty", "roles.invalid")).error()
        user_new["roles"] = settings_new["roles"] = roles
        await self._update_place_contact(data, user_new, settings_new, roles)
        for key in SETTINGS_ONLY:
            if key in data:
                if data[key] is None:
                    settings_new.pop(key, None)
                else:
                    settings_new[key] = data[key]
        if "known" in data:
            user_new["known"] = settings_new["known"] = data["known"]
        if "password_change_required" in data:
            user_new["password_change_required"] = data["password_change_required"]
        await self._update_oidc(name, data, user_new, settings_new)
        if data.get("password"):
            user_new["password"] = data["password"]
            if "password_change_required" not in data:
                user_new["password_change_required"] = name != self.principal.name
        now = dt.datetime.now(dt.timezone.utc)
        token = self._update_token(data, user_doc, user_new, settings_new, now)
        saved_settings = await self._put_or_retry(self.dbs.medic, settings_new)
        try:
            saved_user = await self._put_or_retry(self.dbs.users, user_new)
        except Exception:
            await self._restore(previous, settings_new)
            raise
        reply: dict[str, Any] = {"user": {"id": saved_user["id"], "rev": saved_user["rev"]},
                                 "user-settings": {"id": saved_settings["id"], "rev": saved_settings["rev"]}}
        if data.get("token_login") is not None and user_doc.get("token_login"):
            await token_login.clear_messages(self.dbs.medic, user_doc, now)
        if token:
            reply["token_login"] = {"expiration_date": user_new["token_login"]["expiration_date"]}
            try:
                await self.dbs.medic.put(token_login.sms_doc(token, user_doc["_id"], settings_new["phone"],
                                                             self.settings, self.request_base, now))
            except JamiiError as exc:
                log.error("user %s: token login SMS not written: %s", name, exc)
                reply["token_login"]["error"] = ("the login SMS could not be queued; update the user with "
                                                 "token_login: true to send a new link")
        return reply

    async def _update_place_contact(self, data: dict[str, Any], user_new: dict[str, Any],
                                    settings_new: dict[str, Any], roles: list[str]) -> None:
        place, contact = data.get("place", ...), data.get("contact", ...)
        if isinstance(place, dict) or isinstance(contact, dict):
            raise BadRequest("Creating or modifying people and places through a user update is not supported; "
                             "give ids", field="place" if isinstance(place, dict) else "contact")
        if isinstance(place, list) and len(place) > 1 and not may_have_places(roles, self.settings):
            raise user_error("This user cannot have multiple places", "permission.multiple.places",
                             field_name="place")
        for doc in (user_new, settings_new):
            for value, key in ((place, "facility_id"), (contact, "contact_id")):
                if value is None:
                    doc.pop(key, None)
                elif isinstance(value, (str, list)):
                    doc[key] = value
        places = [place] if isinstance(place, str) else place if isinstance(place, list) else []
        if places or isinstance(contact, str):
            final_contact = user_new.get("contact_id")
            writer = ContactWriter(self.dbs.medic, self.settings, self.principal, self.scope,
                               codes=self.dbs.sentinel)
            final = final_contact if isinstance(final_contact, str) else None
            await writer.prepare([{"place": p} for p in places] + [{"contact": final}])
            for place_id in places:
                existing_place(writer, self.settings, self.scope, place_id)
            if isinstance(final_contact, str):
                existing_contact(writer, self.settings, self.scope, final_contact, None)
                places = facility_ids(user_new.get("facility_id"))
                if places and not set(places) & set(lineage_ids(writer.existing(final_contact) or {})):
                    raise user_error("Contact is not within place.", "configuration.user.place.contact",
                                     field_name="contact")
        if offline_roles(roles, self.settings):
            for key, label in (("facility_id", "Place"), ("contact_id", "Contact")):
                if not user_new.get(key):
                    raise user_error(f"{label} field is required for offline users", "field is required",
                                     {"field": label}, field_name=label.lower())

    async def _update_oidc(self, name: str, data: dict[str, Any], user_new: dict[str, Any],
                           settings_new: dict[str, Any]) -> None:
        if "oidc_username" not in data:
            return
        value = data["oidc_username"]
        if not value:
            user_new.pop("oidc_username", None)
            settings_new.pop("oidc_username", None)
            return
        if data.get("password") or data.get("token_login") is True:
            raise user_error("Either OIDC Login only or Token/Password Login is allowed",
                             "oidc_username.exclusive", field_name="oidc_username")
        owners = [d.get("name") for d in await by_field(self.dbs.users, "oidc_username", [value])]
        if any(owner != name for owner in owners):
            raise user_error(f'oidc_username "{value}" is already used by another user', "oidc_username.taken",
                             {"oidc_username": value}, field_name="oidc_username")
        if user_new.get("oidc_username") != value:
            user_new["password"] = passwords.generate()
        user_new["oidc_username"] = settings_new["oidc_username"] = value
        user_new.pop("token_login", None)
        settings_new.pop("token_login", None)

    def _update_token(self, data: dict[str, Any], user_doc: dict[str, Any], user_new: dict[str, Any],
                      settings_new: dict[str, Any], now: dt.datetime) -> str | None:
        """The spec's token_login table; returns a new token when one is to be sent."""
        wanted = data.get("token_login")
        if wanted is False:
            if user_doc.get("token_login"):
                if not data.get("password"):
                    raise user_error("Password is required when disabling token login.", "password.length.minimum",
                                     field_name="password")
                user_new.pop("token_login", None)
                settings_new.pop("token_login", None)
            return None
        if wanted is not True:
            return None
        token_login.require_enabled(self.settings)
        phone = phones.normalize(data.get("phone", settings_new.get("phone")), self.settings)
        if phone is None:
            raise user_error("A valid phone number is required for SMS login.",
                             "configuration.enable.token.login.phone", field_name="phone")
        settings_new["phone"] = phone
        token = token_login.new_token()
        token_login.activate(user_new, settings_new, token, int(now.timestamp() * 1000))
        user_new["password"] = passwords.generate()
        return token

    @staticmethod
    async def _put_or_retry(db: Database, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            return await db.put(doc)
        except Conflict:
            raise _Retry() from None

    async def _restore(self, previous: dict[str, Any] | None, written: dict[str, Any]) -> None:
        """Put the settings doc back as it was (the ``_users`` write that should follow it failed)."""
        if "_rev" not in written:
            return
        try:
            if previous is None:
                await self.dbs.medic.delete(written["_id"], written["_rev"])
            else:
                await self.dbs.medic.put({**previous, "_rev": written["_rev"]})
        except JamiiError as exc:
            log.error("could not undo the user-settings change of %s (%s); scripts/repair_users.py will",
                      written["_id"], exc)

    async def delete(self, name: str) -> dict[str, Any]:
        """The user can no longer log in; their person and place stay. Settings are kept, marked inactive."""
        user_doc = await self.dbs.users.get_or_none(user_id(name))
        if user_doc is None:
            raise NotFound("Failed to find user.")
        deleted = await self.dbs.users.delete(user_doc["_id"], user_doc["_rev"])
        reply: dict[str, Any] = {"user": {"id": deleted["id"], "rev": deleted["rev"]}}
        now = dt.datetime.now(dt.timezone.utc)
        try:
            await token_login.clear_messages(self.dbs.medic, user_doc, now)
            for _ in range(CONFLICT_RETRIES):
                settings_doc = await self.dbs.medic.get_or_none(user_id(name))
                if settings_doc is None:
                    break
                settings_doc.update(inactive=True, deletion_date=int(now.timestamp() * 1000))
                settings_doc.pop("token_login", None)
                try:
                    saved = await self.dbs.medic.put(settings_doc)
                    reply["user-settings"] = {"id": saved["id"], "rev": saved["rev"]}
                    break
                except Conflict:
                    continue
        except JamiiError as exc:
            log.error("user %s deleted but its user-settings doc was not marked inactive: %s", name, exc)
        if "user-settings" not in reply:
            reply["inconsistencies"] = [f"the user-settings doc {user_id(name)} was not marked inactive; "
                                        "scripts/repair_users.py will"]
        return reply


class _Retry(Exception):
    """A write lost a race with another writer: read again and reapply."""
