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
from api.cht.visibility import Scope
from api.couch import Database
from api.errors import BadRequest, Conflict, JamiiError, NotFound

from . import token_login
from .rules import (
    SELF_EDITABLE,
    SETTINGS_ONLY,
    UPDATE_FIELDS,
    existing_contact,
    existing_place,
    facility_list,
    may_have_places,
    offline_roles,
    password_change_required,
    role_problem,
    roles_of,
    sso_enabled,
    SSO_DISABLED,
    SSO_WITH_PASSWORD,
    user_error,
    with_online_role,
)
from .create import oidc_taken, truthy
from .users import Dbs, by_field, facility_ids, not_found, synced_settings, user_id

log = logging.getLogger("jamii.users")

CONFLICT_RETRIES = 3
NEED_ONE = ", ".join(UPDATE_FIELDS)


def illegal_for_self(data: Mapping[str, Any]) -> list[str]:
    """The keys a user may not change on themself (CHT answers them with a 401)."""
    return [k for k in data if k not in SELF_EDITABLE]


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

    async def update(self, name: str, data: dict[str, Any], *, full_access: bool) -> dict[str, Any]:
        """``POST /api/v1|v3/users/{name}``, checked in CHT's order (the caller's rights are the handler's)."""
        if data.get("place", ...) is not None and data.get("contact", ...) is not None and \
                not any(data.get(k) is not None for k in UPDATE_FIELDS):
            raise user_error("One of the following fields are required: " + NEED_ONE, "fields.one.required",
                             {"fields": NEED_ONE})
        problems = schemas.errors("user_update", data)
        if problems:  # types CHT would fail on with a 500
            where, message = problems[0]
            raise BadRequest(f"{where}: {message}" if where else message, field=where or None)
        if data.get("password"):
            weak = passwords.problem(data["password"])
            if weak:
                raise user_error(weak.message, weak.key, weak.params, field_name="password")
        roles = roles_of(data) if ("type" in data or "roles" in data) else None
        if roles is not None:
            problem = role_problem(roles, self.principal)
            if problem:
                raise problem.error()
        for _ in range(CONFLICT_RETRIES):
            user_doc = await self.dbs.users.get_or_none(user_id(name))
            if user_doc is None:
                raise not_found(name, "users")
            settings_doc = await self.dbs.medic.get_or_none(user_id(name))
            if settings_doc is None:
                raise not_found(name, "medic")
            try:
                return await self._update(name, data, roles, user_doc, settings_doc, full_access)
            except _Retry:
                continue
        raise Conflict("The user was changed by someone else at the same time; try again")

    async def _update(self, name: str, data: dict[str, Any], roles: list[str] | None, user_doc: dict[str, Any],
                      settings_doc: dict[str, Any], full_access: bool) -> dict[str, Any]:
        previous = dict(settings_doc)
        user_new, settings_new = dict(user_doc), synced_settings(user_doc, settings_doc)
        final_roles = with_online_role(roles, self.settings) if roles is not None else \
            list(user_doc.get("roles") or [])
        if data.get("password"):
            user_new["password"] = data["password"]
            user_new["password_change_required"] = password_change_required(
                data, final_roles, self.settings, full_access=full_access,
                enabling_token=token_login.will_enable(data, self.settings))
        for key in SETTINGS_ONLY:
            if key in data:
                settings_new[key] = data[key]
        if "known" in data:
            user_new["known"] = settings_new["known"] = data["known"]
        if "oidc_username" in data:
            user_new["oidc_username"] = data["oidc_username"]
            settings_new["oidc_login"] = bool(data["oidc_username"])
        if roles is not None:
            user_new["roles"] = settings_new["roles"] = final_roles
        if "place" in data:
            user_new["facility_id"] = settings_new["facility_id"] = facility_list(data["place"])
        if "contact" in data:
            contact = data["contact"]
            contact_id = (contact.get("_id") if isinstance(contact, Mapping) else contact) if truthy(contact) else None
            user_new["contact_id"] = settings_new["contact_id"] = contact_id
        now = dt.datetime.now(dt.timezone.utc)
        token = self._update_token(data, user_doc, user_new, settings_new, now)
        await self._update_oidc(data, user_new)
        await self._check_place_contact(data, user_new, final_roles)
        if user_new.get("password") and name in await self.dbs.users.couch.config_section("admins"):
            raise user_error("Admin passwords must be changed manually in the database")
        saved_settings = await self._put_or_retry(self.dbs.medic, settings_new)
        try:
            saved_user = await self._put_or_retry(self.dbs.users, user_new)
        except Exception:
            await self._restore(previous, settings_new)
            raise
        reply: dict[str, Any] = {"user": {"id": saved_user["id"], "rev": saved_user["rev"]},
                                 "user-settings": {"id": saved_settings["id"], "rev": saved_settings["rev"]}}
        if (token or data.get("token_login") is False) and user_doc.get("token_login"):
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

    async def _check_place_contact(self, data: dict[str, Any], user_new: dict[str, Any], roles: list[str]) -> None:
        """CHT's checks of a new ``place`` (existing places; several need ``can_have_multiple_places``; none for an
        offline user is refused) and ``contact`` (a person within one of the user's places)."""
        place, contact = data.get("place", ...), data.get("contact", ...)
        places = user_new.get("facility_id") if truthy(place) and place is not ... else None
        if place is not ... and truthy(place):
            if not places:
                raise user_error("Invalid facilities list", "field is required", {"field": "Place"},
                                 field_name="place")
            if isinstance(place, list) and len(place) > 1 and not may_have_places(roles, self.settings):
                raise user_error("This user cannot have multiple places", "field is required", {"field": "Place"},
                                 field_name="place")
        elif place is None and offline_roles(roles, self.settings):
            raise user_error("Place field is required for offline users", "field is required", {"field": "Place"},
                             field_name="place")
        contact_id = user_new.get("contact_id") if contact is not ... and truthy(contact) else None
        if not places and not contact_id:
            return
        writer = ContactWriter(self.dbs.medic, self.settings, self.principal, self.scope, codes=self.dbs.sentinel)
        await writer.prepare([{"place": p} for p in places or []] + [{"contact": contact_id}])
        for place_id in places or []:
            existing_place(writer, self.settings, self.scope, place_id, message=f"Failed to find place {place_id}")
        if contact_id:
            existing_contact(writer, self.settings, self.scope, contact_id, facility_ids(user_new.get("facility_id")),
                             message=f"Contact not found [{contact_id}].")

    async def _update_oidc(self, data: dict[str, Any], user_new: dict[str, Any]) -> None:
        """CHT's SSO checks on the user as it will be, when the request touches how they log in."""
        if not {"oidc_username", "password", "token_login"} & set(data):
            return
        if user_new.get("oidc_username") and (
                data.get("token_login") or (user_new.get("token_login") and data.get("token_login") is not False)):
            raise user_error("Cannot set token_login with oidc_username.")
        value = user_new.get("oidc_username")
        if not value:
            return
        if data.get("password") or data.get("token_login") is True:
            raise user_error(SSO_WITH_PASSWORD)
        if not sso_enabled(self.settings):
            raise user_error(SSO_DISABLED)
        owners = [d["_id"] for d in await by_field(self.dbs.users, "oidc_username", [value])
                  if d["_id"] != user_new["_id"]]
        if owners:
            raise oidc_taken(value, owners[0])
        user_new["password"] = passwords.generate()
        user_new["password_change_required"] = False

    def _update_token(self, data: dict[str, Any], user_doc: dict[str, Any], user_new: dict[str, Any],
                      settings_new: dict[str, Any], now: dt.datetime) -> str | None:
        """CHT's token_login rules: ``true`` is ignored where login by SMS is not configured; ``false`` turns it
        off (and needs a new password or an oidc_username); returns a new token when one is to be sent."""
        if data.get("token_login") is False:
            if user_doc.get("token_login"):
                if not (data.get("password") or data.get("oidc_username")):
                    raise user_error("Password is required when disabling token login.", "password.length.minimum",
                                     field_name="password")
                user_new.pop("token_login", None)
                settings_new.pop("token_login", None)
            return None
        if not token_login.will_enable(data, self.settings):
            return None
        phone = phones.normalize(settings_new.get("phone"), self.settings)
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

    async def delete(self, name: str) -> list[dict[str, Any]]:
        """The user can no longer log in; their person and place stay. Settings are kept, marked inactive.
        CHT's answer: the two CouchDB write results, ``_users`` first."""
        try:
            user_doc = await self.dbs.users.get(user_id(name))
        except NotFound as exc:  # CouchDB's reason: "missing", or "deleted" for a user deleted before
            raise NotFound(exc.message) from None
        deleted = await self.dbs.users.delete(user_doc["_id"], user_doc["_rev"])
        reply: list[dict[str, Any]] = [{"ok": True, "id": deleted["id"], "rev": deleted["rev"]}]
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
                    reply.append({"ok": True, "id": saved["id"], "rev": saved["rev"]})
                    break
                except Conflict:
                    continue
        except JamiiError as exc:
            log.error("user %s deleted but its user-settings doc was not marked inactive: %s", name, exc)
        if len(reply) == 1:
            log.error("user %s deleted; the user-settings doc %s was not marked inactive; scripts/repair_users.py "
                      "will", name, user_id(name))
        return reply


class _Retry(Exception):
    """A write lost a race with another writer: read again and reapply."""
