"""Creating, updating and deleting users (``_users`` doc + ``user-settings`` doc, see ``api.cht.users.users``).

Creation is done in batches: every request is validated first (``check_new``,
no I/O), then each batch of users is written with a handful of requests
whatever its size: existing names, SSO names and referenced contacts are read
at once; new places and contacts go through ``ContactWriter`` (one
``_bulk_docs``); then all settings docs, then all ``_users`` docs, then the
login-by-SMS docs. A user that fails at a later step has its earlier docs
undone, so a failure costs that user only, and results come back per user in
request order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Mapping

from api import passwords, schemas
from api.auth import ADMIN_ROLES, Principal
from api.cht import phones
from api.cht.contact_types import is_person, is_place
from api.cht.contacts.writes import ContactWriter, Plan
from api.cht.lineage import lineage_ids
from api.cht.visibility import Scope, contact_visible
from api.couch import Database
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, NotFound, ServiceUnavailable
from api.permissions import has_permission, is_offline

from . import token_login
from .users import SETTINGS_TYPE, Dbs, by_field, facility_ids, synced_settings, user_id

log = logging.getLogger("jamii.users")

USERNAME_RE = re.compile(r"^[a-z0-9_-]{1,100}$")
SETTINGS_ONLY = ("fullname", "email", "phone", "language", "external_id")
SELF_EDITABLE = frozenset({"password", "known", "fullname", "email", "phone", "token_login", "language"})
UPDATABLE = SELF_EDITABLE | {"place", "contact", "type", "roles", "external_id", "oidc_username",
                             "password_change_required"}
BATCH = 100
CONFLICT_RETRIES = 3


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


def _roles_of(data: Mapping[str, Any]) -> list[str]:
    if isinstance(data.get("roles"), list):
        return [r for r in data["roles"] if isinstance(r, str)]
    if isinstance(data.get("type"), str) and data["type"]:
        return [data["type"]]  # deprecated: the type names the role
    return []


def _offline(roles: list[str], settings: Mapping[str, Any]) -> bool:
    return bool(roles) and not ADMIN_ROLES.intersection(roles) and is_offline(Principal("-", tuple(roles)), settings)


def _may_have_places(roles: list[str], settings: Mapping[str, Any]) -> bool:
    """CHT's rule for users with several places: their roles must hold ``can_have_multiple_places``."""
    return bool(ADMIN_ROLES.intersection(roles)) or has_permission(
        Principal("-", tuple(roles)), "can_have_multiple_places", settings)


def _role_problem(roles: list[str], settings: Mapping[str, Any], principal: Principal) -> Invalid | None:
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
    roles = _roles_of(data)
    problem = _role_problem(roles, settings, principal)
    if problem:
        return problem
    token = data.get("token_login") is True
    required = ["username", "phone" if token else None,
                None if token or data.get("oidc_username") else "password"]
    if _offline(roles, settings):
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


@dataclass
class _New:
    """One user of a create batch on its way through the steps."""

    index: int
    data: dict[str, Any]
    name: str
    roles: list[str]
    plan: Plan | None = None
    facility_id: str | None = None
    contact_id: str | None = None
    contact_result: dict[str, Any] | None = None
    token: str | None = None
    previous_settings: dict[str, Any] | None = None
    settings_doc: dict[str, Any] | None = None
    user_doc: dict[str, Any] | None = None
    error: JamiiError | None = None
    warning: str | None = None
    settings_written: bool = False


Progress = Callable[[list[Any]], Awaitable[None]]


class UserWriter:
    """User writes for one request: the caller, the settings, and where the token-login link points."""

    def __init__(self, dbs: Dbs, settings: Mapping[str, Any], principal: Principal, scope: Scope,
                 request_base: str = "http://localhost"):
        self.dbs = dbs
        self.settings = settings
        self.principal = principal
        self.scope = scope
        self.request_base = request_base

    # -- create -------------------------------------------------------------------

    async def create_many(self, items: list[dict[str, Any]], progress: Progress | None = None
                          ) -> list[dict[str, Any] | JamiiError]:
        """Create users that passed ``check_new``; per user, the CHT reply or the error that stopped it."""
        results: list[dict[str, Any] | JamiiError] = []
        names: set[str] = set()
        for start in range(0, len(items), BATCH):
            batch = [self._new(start + i, data) for i, data in enumerate(items[start:start + BATCH])]
            for user in batch:
                if user.name in names:
                    user.error = _taken(user.name)
                names.add(user.name)
            await self._create_batch(batch)
            results.extend(u.error if u.error else self._reply(u) for u in batch)
            if progress is not None:
                await progress(results)
        return results

    def _new(self, index: int, data: dict[str, Any]) -> _New:
        return _New(index, dict(data), data["username"], _roles_of(data))

    async def _create_batch(self, batch: list[_New]) -> None:
        writer = ContactWriter(self.dbs.medic, self.settings, self.principal, self.scope,
                               codes=self.dbs.sentinel)
        try:
            await self._check_names(batch)
            await self._check_oidc(batch)
            await self._plan_contacts(writer, [u for u in batch if not u.error])
            planned = [u for u in batch if not u.error and u.plan is not None and u.plan.new]
            errors = await writer.write_plans([u.plan for u in planned if u.plan is not None])
            for user, error in zip(planned, errors):
                if error is not None:
                    user.error = error
                else:
                    self._note_contact(user)
            now = dt.datetime.now(dt.timezone.utc)
            live = [u for u in batch if not u.error]
            for user in live:
                self._docs(user, now)
            await self._write_settings(live, writer)
            await self._write_users([u for u in live if not u.error], writer)
        except JamiiError as exc:
            # CouchDB failed under a whole step: nobody of this batch is created; undo what was written
            for user in batch:
                if user.error is None:
                    user.error = exc
                    await self._undo_all(user, writer)
            return
        await self._send_tokens([u for u in live if not u.error and u.token], now)

    async def _undo_all(self, user: _New, writer: ContactWriter) -> None:
        try:
            if user.user_doc is not None and "_rev" in user.user_doc:
                await self.dbs.users.delete(user.user_doc["_id"], user.user_doc["_rev"])
            if user.settings_written:
                await self._undo_settings(user)
            await self._undo_contacts(user, writer)
        except JamiiError as exc:
            log.error("user %s: could not undo a failed creation (%s); scripts/repair_users.py will", user.name, exc)

    async def _check_names(self, batch: list[_New]) -> None:
        live = [u for u in batch if not u.error]
        ids = [user_id(u.name) for u in live]
        rows = (await self.dbs.users.all_docs(ids))["rows"] if ids else []
        taken = {r["id"] for r in rows if r.get("id") and not r.get("error")
                 and not (r.get("value") or {}).get("deleted")}
        existing = await self.dbs.medic.get_many(ids)
        for user in live:
            if user_id(user.name) in taken:
                user.error = _taken(user.name)
            else:
                # a deleted user's (or a half-made user's) settings doc is replaced
                user.previous_settings = existing.get(user_id(user.name))

    async def _check_oidc(self, batch: list[_New]) -> None:
        wanted = [u for u in batch if not u.error and u.data.get("oidc_username")]
        if not wanted:
            return
        owners: dict[str, str] = {}
        for doc in await by_field(self.dbs.users, "oidc_username", [u.data["oidc_username"] for u in wanted]):
            owners[doc["oidc_username"]] = doc.get("name")
        for user in wanted:
            value = user.data["oidc_username"]
            if value in owners:
                user.error = user_error(f'oidc_username "{value}" is already used by another user',
                                        "oidc_username.taken", {"oidc_username": value}, field_name="oidc_username")
            else:
                owners[value] = user.name

    async def _plan_contacts(self, writer: ContactWriter, batch: list[_New]) -> None:
        await writer.prepare({"place": u.data.get("place"), "contact": u.data.get("contact"),
                              "parent": (u.data.get("contact") or {}).get("parent")
                              if isinstance(u.data.get("contact"), dict) else None} for u in batch)
        for user in batch:
            try:
                self._plan_one(writer, user)
            except JamiiError as exc:
                user.error = exc

    def _plan_one(self, writer: ContactWriter, user: _New) -> None:
        place, contact = user.data.get("place"), user.data.get("contact")
        plan = Plan()
        if isinstance(place, dict):
            if isinstance(contact, str) or (isinstance(contact, dict) and contact.get("parent")):
                raise user_error("Contact is not within place.", "configuration.user.place.contact",
                                 field_name="contact")
            body = {**place, "contact": contact} if isinstance(contact, dict) else dict(place)
            with _fields_under("place"):
                schemas.validate("place_create", body)
                doc = writer.plan_place(body, plan)
            user.facility_id = doc["_id"]
            user.contact_id = doc["contact"]["_id"] if isinstance(contact, dict) else None
        else:
            if isinstance(place, str):
                self._existing_place(writer, place)
                user.facility_id = place
            if isinstance(contact, str):
                self._existing_contact(writer, contact, place if isinstance(place, str) else None)
                user.contact_id = contact
                user.contact_result = {"id": contact, "rev": (writer.existing(contact) or {}).get("_rev")}
            elif isinstance(contact, dict):
                parent = contact.get("parent") or (place if isinstance(place, str) else None)
                if contact.get("parent") and isinstance(place, str):
                    self._within(writer, self._existing_place(writer, contact["parent"], "contact.parent"), place)
                body = {k: v for k, v in contact.items() if k != "parent"}
                if parent:
                    body["place"] = parent
                with _fields_under("contact"):
                    schemas.validate("person_create", body)
                    user.contact_id = writer.plan_person(body, plan)["_id"]
        user.plan = plan

    def _existing_place(self, writer: ContactWriter, place_id: str, path: str = "place") -> dict[str, Any]:
        doc = writer.existing(place_id)
        if doc is None or not is_place(self.settings, doc) or not contact_visible(self.scope, doc):
            raise NotFound("Failed to find place.", field=path)
        return doc

    def _existing_contact(self, writer: ContactWriter, contact_id: str, place_id: str | None) -> None:
        doc = writer.existing(contact_id)
        if doc is None or not contact_visible(self.scope, doc):
            raise NotFound("Failed to find contact.", field="contact")
        if not is_person(self.settings, doc):
            raise user_error("Wrong type, contact is not a person.", "contact.type.wrong", field_name="contact")
        if place_id is not None:
            self._within(writer, doc, place_id)

    @staticmethod
    def _within(writer: ContactWriter, doc: Mapping[str, Any], place_id: str) -> None:
        if place_id not in lineage_ids(doc):
            raise user_error("Contact is not within place.", "configuration.user.place.contact",
                             field_name="contact")

    def _note_contact(self, user: _New) -> None:
        if user.plan is None or user.contact_id is None:
            return
        rev = next((d.get("_rev") for d in user.plan.new if d["_id"] == user.contact_id), None)
        if rev:
            user.contact_result = {"id": user.contact_id, "rev": rev}

    def _docs(self, user: _New, now: dt.datetime) -> None:
        data = user.data
        uid = user_id(user.name)
        user_doc: dict[str, Any] = {"_id": uid, "name": user.name, "type": "user", "roles": user.roles}
        settings_doc: dict[str, Any] = {"_id": uid, "name": user.name, "type": SETTINGS_TYPE, "roles": user.roles}
        if user.previous_settings:
            settings_doc["_rev"] = user.previous_settings["_rev"]
        for key in SETTINGS_ONLY:
            if data.get(key) not in (None, ""):
                settings_doc[key] = data[key]
        for doc in (user_doc, settings_doc):
            if user.facility_id:
                doc["facility_id"] = user.facility_id
            if user.contact_id:
                doc["contact_id"] = user.contact_id
            if isinstance(data.get("known"), bool):
                doc["known"] = data["known"]
            if data.get("oidc_username"):
                doc["oidc_username"] = data["oidc_username"]
        if data.get("token_login") is True:
            settings_doc["phone"] = phones.normalize(data["phone"], self.settings)
            user.token = token_login.new_token()
            token_login.activate(user_doc, settings_doc, user.token, int(now.timestamp() * 1000))
            user_doc["password"] = passwords.generate()
        elif data.get("oidc_username"):
            user_doc["password"] = passwords.generate()
        else:
            user_doc["password"] = data["password"]
            user_doc["password_change_required"] = data.get("password_change_required", True) is not False
        user.user_doc, user.settings_doc = user_doc, settings_doc

    async def _write_settings(self, batch: list[_New], writer: ContactWriter) -> None:
        docs = [u.settings_doc for u in batch if u.settings_doc is not None]
        results = await self.dbs.medic.bulk_docs(docs) if docs else []
        for user, result in zip(batch, results):
            if result.get("error"):
                user.error = _write_error(user.name, result)
                await self._undo_contacts(user, writer)
            else:
                assert user.settings_doc is not None
                user.settings_doc["_rev"] = result["rev"]
                user.settings_written = True

    async def _write_users(self, batch: list[_New], writer: ContactWriter) -> None:
        docs = [u.user_doc for u in batch if u.user_doc is not None]
        results = await self.dbs.users.bulk_docs(docs) if docs else []
        for user, result in zip(batch, results):
            if result.get("error"):
                user.error = _write_error(user.name, result)
                await self._undo_settings(user)
                await self._undo_contacts(user, writer)
            else:
                assert user.user_doc is not None
                user.user_doc["_rev"] = result["rev"]
                user.user_doc.pop("password", None)

    async def _undo_settings(self, user: _New) -> None:
        assert user.settings_doc is not None
        try:
            if user.previous_settings:
                await self.dbs.medic.put({**user.previous_settings, "_rev": user.settings_doc["_rev"]})
            else:
                await self.dbs.medic.delete(user.settings_doc["_id"], user.settings_doc["_rev"])
        except JamiiError as exc:
            log.error("user %s: could not undo its user-settings doc (%s); scripts/repair_users.py will", user.name,
                      exc)

    async def _undo_contacts(self, user: _New, writer: ContactWriter) -> None:
        if user.plan is not None and any("_rev" in d for d in user.plan.new):
            await writer.undo(user.plan)
            user.contact_result = None

    async def _send_tokens(self, batch: list[_New], now: dt.datetime) -> None:
        docs = []
        for user in batch:
            assert user.token and user.settings_doc is not None
            docs.append(token_login.sms_doc(user.token, user_id(user.name), user.settings_doc["phone"],
                                            self.settings, self.request_base, now))
        results = await self.dbs.medic.bulk_docs(docs) if docs else []
        for user, result in zip(batch, results):
            if result.get("error"):
                user.warning = ("the login SMS could not be queued; update the user with token_login: true to "
                                "send a new link")
                log.error("user %s: token login SMS not written: %s", user.name, result.get("error"))

    def _reply(self, user: _New) -> dict[str, Any]:
        assert user.user_doc is not None and user.settings_doc is not None
        reply: dict[str, Any] = {}
        if user.contact_result:
            reply["contact"] = user.contact_result
        reply["user-settings"] = {"id": user.settings_doc["_id"], "rev": user.settings_doc["_rev"]}
        reply["user"] = {"id": user.user_doc["_id"], "rev": user.user_doc["_rev"]}
        if user.token:
            reply["token_login"] = {"expiration_date": user.user_doc["token_login"]["expiration_date"]}
            if user.warning:
                reply["token_login"]["error"] = user.warning
        return reply

    # -- update -----------------------------------------------------------------

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
        roles = _roles_of(data) if ("roles" in data or "type" in data) else list(user_doc.get("roles") or [])
        if "roles" in data or "type" in data:
            problem = _role_problem(roles, self.settings, self.principal)
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
        if isinstance(place, list) and len(place) > 1 and not _may_have_places(roles, self.settings):
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
                self._existing_place(writer, place_id)
            if isinstance(final_contact, str):
                self._existing_contact(writer, final_contact, None)
                places = facility_ids(user_new.get("facility_id"))
                if places and not set(places) & set(lineage_ids(writer.existing(final_contact) or {})):
                    raise user_error("Contact is not within place.", "configuration.user.place.contact",
                                     field_name="contact")
        if _offline(roles, self.settings):
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

    # -- delete ----------------------------------------------------------------------

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


@contextlib.contextmanager
def _fields_under(prefix: str) -> Iterator[None]:
    """Name a contact error's field by its path in the user body (``place.parent``, ``contact.name``)."""
    try:
        yield
    except JamiiError as exc:
        if exc.field and not exc.field.startswith(("contact", "place")):
            exc.field = f"{prefix}.{exc.field}"
        elif exc.field == "place" and prefix == "contact":
            exc.field = "contact.parent"
        raise


class _Retry(Exception):
    """A write lost a race with another writer: read again and reapply."""


def _taken(name: str) -> JamiiError:
    return user_error(f'Username "{name}" already taken.', "username.taken", {"username": name},
                      field_name="username")


def _write_error(name: str, result: Mapping[str, Any]) -> JamiiError:
    if result.get("error") == "conflict":
        return _taken(name)
    return ServiceUnavailable(f"CouchDB refused the write ({result.get('error')}); the user was not created")
