"""Creating users (``_users`` doc + ``user-settings`` doc, see ``users``), as CHT writes them.

Creation is done in batches: every request is validated first (``check_new``,
no I/O), then each batch of users is written with a handful of requests
whatever its size: existing names, SSO names and referenced contacts are read
at once; new places and contacts go through ``ContactWriter`` (one
``_bulk_docs``, keeping an ``_id`` the request gives); then all settings docs,
then all ``_users`` docs, then the login-by-SMS docs. A user that fails at a
later step has its earlier docs undone (CHT leaves them), so a failure costs
that user only, and results come back per user in request order.

``v3`` users (``POST /api/v3/users``) name existing places only, one or several, and CHT creates nothing
else for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from api import accounts, passwords, schemas
from api.auth import Principal
from api.cht import phones
from api.cht.contacts.writes import ContactWriter, Plan
from api.cht.lineage import lineage_ids
from api.cht.user_meta import store as user_meta_store
from api.cht.visibility import Scope
from api.errors import BadRequest, JamiiError

from . import token_login
from .rules import (
    SETTINGS_ONLY,
    check_places,
    existing_contact,
    existing_place,
    facility_list,
    fields_under,
    may_have_places,
    name_taken,
    not_within,
    offline_roles,
    password_change_required,
    roles_of,
    user_error,
    with_online_role,
    write_error,
)
from .users import SETTINGS_TYPE, Dbs, by_field, user_id

log = logging.getLogger("jamii.users")

BATCH = 100
USERS_PER_WRITE = 10  # _users docs per _bulk_docs (see _write_users)
USER_WRITES_AT_ONCE = 3


@dataclass
class _New:
    """One user of a create batch on its way through the steps."""

    index: int
    data: dict[str, Any]
    name: str
    roles: list[str]
    v3: bool = False
    plan: Plan | None = None
    facility_id: list[str] | None = None
    contact_id: str | None = None
    contact_result: dict[str, Any] | None = None
    token: str | None = None
    settings_doc: dict[str, Any] | None = None
    user_doc: dict[str, Any] | None = None
    error: JamiiError | None = None
    warning: str | None = None
    settings_written: bool = False


Progress = Callable[[list[Any]], Awaitable[None]]


def truthy(value: Any) -> bool:
    """JavaScript's truthiness, which CHT's checks use (an empty list or object is true)."""
    return isinstance(value, (list, dict)) or bool(value)


class UserCreator:
    """Creates users for one request: the caller, the settings, and where the token-login link points."""

    def __init__(self, dbs: Dbs, settings: Mapping[str, Any], principal: Principal, scope: Scope,
                 request_base: str = "http://localhost"):
        self.dbs = dbs
        self.settings = settings
        self.principal = principal
        self.scope = scope
        self.request_base = request_base

    async def create_many(self, items: list[dict[str, Any]], progress: Progress | None = None, *,
                          v3: bool = False) -> list[dict[str, Any] | JamiiError]:
        """Create users that passed ``check_new``; per user, the CHT reply or the error that stopped it."""
        results: list[dict[str, Any] | JamiiError] = []
        names: set[str] = set()
        for start in range(0, len(items), BATCH):
            batch = [_New(start + i, dict(data), data["username"],
                          with_online_role(roles_of(data), self.settings), v3)
                     for i, data in enumerate(items[start:start + BATCH])]
            for user in batch:
                if user.name in names:
                    user.error = name_taken(user.name)
                names.add(user.name)
            await self._create_batch(batch)
            results.extend(u.error if u.error else self._reply(u) for u in batch)
            if progress is not None:
                await progress(results)
        return results

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
        await self._make_meta_dbs([u for u in live if not u.error and offline_roles(u.roles, self.settings)])

    async def _make_meta_dbs(self, batch: list[_New]) -> None:
        """Each new offline user's meta database, made now so it is there before the first sync. A failure
        leaves the user created: the device's own ``PUT`` on first sync makes it then, as CHT's does."""
        couch = self.dbs.medic.couch
        for user in batch:
            try:
                await user_meta_store.ensure(couch, self.dbs.medic.name, user.name)
            except JamiiError as exc:
                log.warning("meta database of %s not made now (made at its first sync): %s", user.name, exc)

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
        """CHT's rule: a name is taken while either doc exists, so a deleted user's name (whose user-settings
        doc stays, marked inactive) is not given again."""
        live = [u for u in batch if not u.error]
        ids = [user_id(u.name) for u in live]
        rows = (await self.dbs.users.all_docs(ids))["rows"] if ids else []
        taken = {r["id"] for r in rows if r.get("id") and not r.get("error")
                 and not (r.get("value") or {}).get("deleted")}
        taken |= set(await self.dbs.medic.get_many(ids))
        for user in live:
            if user_id(user.name) in taken:
                user.error = name_taken(user.name)

    async def _check_oidc(self, batch: list[_New]) -> None:
        wanted = [u for u in batch if not u.error and u.data.get("oidc_username")]
        if not wanted:
            return
        owners: dict[str, str] = {}
        for doc in await by_field(self.dbs.users, "oidc_username", [u.data["oidc_username"] for u in wanted]):
            owners.setdefault(doc["oidc_username"], doc["_id"])
        for user in wanted:
            value = user.data["oidc_username"]
            if value in owners:
                user.error = oidc_taken(value, owners[value])
            else:
                owners[value] = user_id(user.name)

    async def _plan_contacts(self, writer: ContactWriter, batch: list[_New]) -> None:
        refs: list[dict[str, Any]] = []
        for u in batch:
            place, contact = u.data.get("place"), u.data.get("contact")
            if u.v3:
                refs += [{"place": p} for p in facility_list(place) or []]
                refs.append({"contact": contact.get("_id") if isinstance(contact, Mapping) else contact})
            else:
                refs.append({"place": place, "contact": contact,
                             "parent": contact.get("parent") if isinstance(contact, Mapping) else None})
        await writer.prepare(refs)
        for user in batch:
            try:
                if user.v3:
                    self._check_v3(writer, user)
                else:
                    self._plan_one(writer, user)
            except JamiiError as exc:
                user.error = exc

    def _plan_one(self, writer: ContactWriter, user: _New) -> None:
        """v1/v2: a place and a contact given by id, or new ones (CHT keeps an ``_id`` they carry)."""
        problem = check_places(user.data)
        if problem:
            raise problem.error()
        place, contact = user.data.get("place"), user.data.get("contact")
        plan = Plan()
        if isinstance(place, list):
            raise BadRequest("Place must be a new object or string identifier (UUID).")
        if isinstance(place, dict):
            if isinstance(contact, str) or (isinstance(contact, dict) and contact.get("parent")):
                raise not_within()
            body = {**place, "contact": contact} if isinstance(contact, dict) else dict(place)
            with fields_under("place"):
                schemas.validate("place_create", body)
                doc = writer.plan_place(body, plan)
            user.facility_id = [doc["_id"]]
            user.contact_id = doc["contact"]["_id"] if isinstance(contact, dict) else None
        else:
            place_id = place if isinstance(place, str) and place else None
            if place_id:
                existing_place(writer, self.settings, self.scope, place_id)
                user.facility_id = [place_id]
            if isinstance(contact, str) and contact:
                doc = existing_contact(writer, self.settings, self.scope, contact, [place_id] if place_id else [])
                user.contact_id = contact
                user.contact_result = {"id": contact, "rev": doc.get("_rev")}
            elif isinstance(contact, dict) and contact:
                parent = contact.get("parent") or place_id
                if contact.get("parent") and place_id:
                    parent_doc = existing_place(writer, self.settings, self.scope, contact["parent"],
                                                "contact.parent")
                    if place_id not in lineage_ids(parent_doc):
                        raise not_within()
                body = {k: v for k, v in contact.items() if k != "parent"}
                if parent:
                    body["place"] = parent
                with fields_under("contact"):
                    schemas.validate("person_create", body)
                    user.contact_id = writer.plan_person(body, plan)["_id"]
        user.plan = plan

    def _check_v3(self, writer: ContactWriter, user: _New) -> None:
        """v3: existing places (several need ``can_have_multiple_places``) and a person within one of them."""
        place, contact = user.data.get("place"), user.data.get("contact")
        if truthy(place):
            ids = facility_list(place)
            if not ids:
                raise user_error("Invalid facilities list", "field is required", {"field": "Place"},
                                 field_name="place")
            if isinstance(place, list) and len(place) > 1 and not may_have_places(user.roles, self.settings):
                raise user_error("This user cannot have multiple places", "field is required", {"field": "Place"},
                                 field_name="place")
            for place_id in ids:
                existing_place(writer, self.settings, self.scope, place_id, message=f"Failed to find place {place_id}")
            user.facility_id = ids
        if truthy(contact):
            contact_id = contact.get("_id") if isinstance(contact, Mapping) else contact
            existing_contact(writer, self.settings, self.scope, str(contact_id), user.facility_id or [],
                             message=f"Contact not found [{contact_id}].")
            user.contact_id = str(contact_id)

    def _note_contact(self, user: _New) -> None:
        if user.plan is None or user.contact_id is None:
            return
        rev = next((d.get("_rev") for d in user.plan.new if d["_id"] == user.contact_id), None)
        if rev:
            user.contact_result = {"id": user.contact_id, "rev": rev}

    def _docs(self, user: _New, now: dt.datetime) -> None:
        """The two docs, with the fields CHT writes: ``facility_id`` always a list, ``mm-online`` for online
        users, ``oidc_username`` in ``_users`` only (``oidc_login`` in user-settings)."""
        data = user.data
        uid = user_id(user.name)
        user_doc: dict[str, Any] = {"_id": uid, "name": user.name, "type": "user", accounts.FIELD: accounts.new_id()}
        settings_doc: dict[str, Any] = {"_id": uid, "name": user.name, "type": SETTINGS_TYPE}
        enabling = token_login.will_enable(data, self.settings)
        if enabling or data.get("oidc_username"):
            user_doc["password"] = passwords.generate()
            user_doc["password_change_required"] = False
        else:
            user_doc["password"] = data["password"]
            user_doc["password_change_required"] = password_change_required(
                data, user.roles, self.settings, full_access=True, enabling_token=False)
        for key in SETTINGS_ONLY:
            if key in data:
                settings_doc[key] = data[key]
        if "known" in data:
            user_doc["known"] = settings_doc["known"] = data["known"]
        if "oidc_username" in data:
            user_doc["oidc_username"] = data["oidc_username"]
            settings_doc["oidc_login"] = bool(data["oidc_username"])
        for doc in (user_doc, settings_doc):
            doc["roles"] = list(user.roles)
            if "place" in data:
                doc["facility_id"] = user.facility_id
            if "contact" in data:
                doc["contact_id"] = user.contact_id
        if enabling:
            settings_doc["phone"] = phones.normalize(data["phone"], self.settings)
            user.token = token_login.new_token()
            token_login.activate(user_doc, settings_doc, user.token, int(now.timestamp() * 1000))
        user.user_doc, user.settings_doc = user_doc, settings_doc

    async def _write_settings(self, batch: list[_New], writer: ContactWriter) -> None:
        docs = [u.settings_doc for u in batch if u.settings_doc is not None]
        results = await self.dbs.medic.bulk_docs(docs) if docs else []
        for user, result in zip(batch, results):
            if result.get("error"):
                user.error = write_error(user.name, result)
                await self._undo_contacts(user, writer)
            else:
                assert user.settings_doc is not None
                user.settings_doc["_rev"] = result["rev"]
                user.settings_written = True

    async def _write_users(self, batch: list[_New], writer: ContactWriter) -> None:
        # A few at a time: CouchDB 3 hashes each password as it stores it (PBKDF2-SHA256, 600,000 iterations,
        # ~0.25 s of a core each) and answers a _bulk_docs only when all are done, so a batch of 100 kept it
        # silent past COUCH_TIMEOUT. Each write's revs are kept at once, so a later failure undoes it too.
        # A few writes run at once, so CouchDB hashes on every core while one write waits for its slowest hash.
        users = [u for u in batch if u.user_doc is not None]
        slots = asyncio.Semaphore(USER_WRITES_AT_ONCE)

        async def write(chunk: list[_New]) -> None:
            async with slots:
                await self._write_user_chunk(chunk, writer)

        # every write has ended before a failure is raised, so undoing the batch leaves nothing behind
        outcomes = await asyncio.gather(*(write(users[start:start + USERS_PER_WRITE])
                                          for start in range(0, len(users), USERS_PER_WRITE)),
                                        return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _write_user_chunk(self, chunk: list[_New], writer: ContactWriter) -> None:
        results = await self.dbs.users.bulk_docs([u.user_doc for u in chunk if u.user_doc is not None])
        for user, result in zip(chunk, results):
            if result.get("error"):
                user.error = write_error(user.name, result)
                await self._undo_settings(user)
                await self._undo_contacts(user, writer)
            else:
                assert user.user_doc is not None
                user.user_doc["_rev"] = result["rev"]
                user.user_doc.pop("password", None)

    async def _undo_settings(self, user: _New) -> None:
        assert user.settings_doc is not None
        try:
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
        if user.contact_result and not user.v3:
            reply["contact"] = user.contact_result
        reply["user"] = {"id": user.user_doc["_id"], "rev": user.user_doc["_rev"]}
        reply["user-settings"] = {"id": user.settings_doc["_id"], "rev": user.settings_doc["_rev"]}
        if user.token:
            reply["token_login"] = {"expiration_date": user.user_doc["token_login"]["expiration_date"]}
            if user.warning:
                reply["token_login"]["error"] = user.warning
        return reply


def oidc_taken(value: str, owner_id: str) -> JamiiError:
    return user_error(f"The oidc_username [{value}] already exists for user [{owner_id}].",
                      "user.sso.username.duplicate", field_name="oidc_username")
