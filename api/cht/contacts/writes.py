"""Creating people and places (with new parents and contacts nested in the request) and updating places.

Every new doc gets a client-side id (or the ``_id`` the request gives it, as
CHT keeps it; an id that exists already is CouchDB's 409), ``reported_date`` (default now), its
minified lineage and a short id, and the whole set is written with **one**
``_bulk_docs``. CouchDB writes docs of a bulk request independently, so if any
of them fails, the ones that were written are deleted again before the error
is answered: a nested create leaves either everything or nothing. (If CouchDB
becomes unreachable in the middle, the clean-up may not reach it either; the
ids are logged.) An update that also creates a contact writes the new contact
first and the place second, deleting the contact if the place write fails.

Offline callers may only reference docs inside their area and only create
docs that end up inside it.

Many independent creates (the users API makes a place and a contact per user)
are planned one by one (``plan_place``/``plan_person`` after one ``prepare``
of every referenced id) and written together with ``write_plans``: short ids
for all of them at once, one ``_bulk_docs``, and a failure undoes only the
plan it belongs to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from api import schemas
from api.auth import Principal
from api.cht import contact_types, shortcodes
from api.cht.lineage import minify_contact, minify_lineage
from api.cht.visibility import Scope, contact_visible
from api.couch import Database, new_id
from api.errors import BadRequest, Conflict, Forbidden, JamiiError, NotFound, ServiceUnavailable
from api.permissions import has_permission
from api.timestamps import now_ms, to_ms

log = logging.getLogger("jamii.contacts")

CONFLICT = "Document update conflict."

# Keys of a request body that are instructions, not doc content.
_PLACE_KEYS = {"parent", "contact", "type", "contact_type", "reported_date"}
_PERSON_KEYS = {"place", "parent", "type", "contact_type", "reported_date"}


@dataclass
class Plan:
    """The docs one create will write, and which of them need a short id."""

    new: list[dict[str, Any]] = field(default_factory=list)
    codes: list[tuple[dict[str, Any], str, str]] = field(default_factory=list)

    def rev_of(self, doc_id: str) -> str:
        return next(d["_rev"] for d in self.new if d["_id"] == doc_id)


class ContactWriter:
    """One write request: the caller, the settings and what was fetched for it."""

    def __init__(self, db: Database, settings: Mapping[str, Any], principal: Principal, scope: Scope, *,
                 codes: Database):
        self.db = db
        self.codes = codes  # where short ids are reserved (the sentinel database)
        self.settings = settings
        self.principal = principal
        self.scope = scope
        self.now = now_ms()
        self._existing: dict[str, dict[str, Any]] = {}

    # -- public operations -------------------------------------------------

    async def create_person(self, body: Any) -> dict[str, Any]:
        schemas.validate("person_create", body)
        await self.prepare([body])
        plan = Plan()
        person = self.plan_person(body, plan)
        await self._write_new(plan)
        result = {"id": person["_id"], "rev": person["_rev"]}
        if isinstance(body.get("place"), Mapping):
            result["place"] = {"id": person["parent"]["_id"], "rev": plan.rev_of(person["parent"]["_id"])}
        return result

    async def create_place(self, body: Any) -> dict[str, Any]:
        schemas.validate("place_create", body)
        await self.prepare([body])
        plan = Plan()
        place = self.plan_place(body, plan)
        await self._write_new(plan)
        result = {"id": place["_id"], "rev": place["_rev"]}
        if isinstance(body.get("contact"), Mapping):
            contact_id = place["contact"]["_id"]
            result["contact"] = {"id": contact_id, "rev": plan.rev_of(contact_id)}
        return result

    # -- many creates at once ----------------------------------------------------

    async def prepare(self, bodies: Iterable[Any]) -> None:
        """Fetch every existing doc the bodies name, in one request (before ``plan_*``)."""
        await self._fetch_references(list(bodies))

    def existing(self, doc_id: str) -> dict[str, Any] | None:
        """A doc fetched by ``prepare`` (None when it does not exist)."""
        return self._existing.get(doc_id)

    def plan_person(self, body: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
        """Add a new person (``person_create`` body, already validated) and any new places to ``plan``."""
        if "parent" in body:
            raise BadRequest("A person's place is given as place, not parent", field="parent")
        return self._new_person(body, plan, path="", parent_spec=body.get("place"), parent_path="place")

    def plan_place(self, body: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
        """Add a new place (``place_create`` body, already validated), its new parents and contact to ``plan``."""
        return self._new_place(body, plan, path="")

    async def write_plans(self, plans: list[Plan]) -> list[JamiiError | None]:
        """Write every plan with one ``_bulk_docs``; per plan, None or the error that undid it."""
        errors: list[JamiiError | None] = [None] * len(plans)
        given: dict[str, int] = {}
        for index, plan in enumerate(plans):
            try:
                for code in _given_codes(plan):
                    if code in given:
                        raise Conflict(f"The short id {code} is used twice in this request")
                    given[code] = index
            except Conflict as exc:
                errors[index] = exc
        for code in await shortcodes.claim(self.db, self.codes, {code: _owner(plans[i], code)
                                                                  for code, i in given.items()}):
            errors[given[code]] = Conflict(f"The short id {code} is already used by another contact",
                                           field=_code_path(plans[given[code]], code))
        live = [i for i, error in enumerate(errors) if error is None and plans[i].new]
        missing = [(doc, name) for i in live for doc, name, _ in plans[i].codes if doc.get(name) in (None, "")]
        codes = await shortcodes.fresh(self.codes, [doc.get("_id") for doc, _ in missing])
        for (doc, name), code in zip(missing, codes):
            doc[name] = code
        for i in list(live):
            try:
                self._check(plans[i])
            except JamiiError as exc:
                errors[i] = exc
                live.remove(i)
        docs = [doc for i in live for doc in plans[i].new]
        results = await self.db.bulk_docs(docs) if docs else []
        by_id = {doc["_id"]: result for doc, result in zip(docs, results)}
        for i in live:
            failed = []
            for doc in plans[i].new:
                result = by_id[doc["_id"]]
                if result.get("rev") and not result.get("error"):
                    doc["_rev"] = result["rev"]
                else:
                    failed.append(result)
            if failed:
                await self.undo(plans[i])
                errors[i] = Conflict(CONFLICT, body={"code": 409, "error": CONFLICT}) \
                    if any(r.get("error") == "conflict" for r in failed) else \
                    ServiceUnavailable(f"CouchDB refused the write ({failed[0].get('error')}); nothing was written")
        return errors

    async def undo(self, plan: Plan) -> None:
        """Delete what was written of a plan (a later step of a bigger write failed)."""
        await self._undo(plan.new)
        for doc in plan.new:
            doc.pop("_rev", None)

    async def update_place(self, place_id: str, body: Any) -> dict[str, Any]:
        schemas.validate("place_update", body)
        place = await self.db.get_or_none(place_id)
        if place is None or not contact_types.is_place(self.settings, place) or \
                not contact_visible(self.scope, place):
            raise NotFound("Place not found")
        for name in ("type", "contact_type"):
            if name in body and body[name] != place.get(name):
                raise BadRequest(f"A place's {name} cannot be changed", field=name)
        if "parent" in body and body["parent"] != (place.get("parent") or {}).get("_id"):
            raise BadRequest("A place cannot be moved here: its descendants' lineage would be left stale",
                             field="parent")
        await self._fetch_references([{"contact": body.get("contact")}])
        updated = dict(place)
        for key, value in body.items():
            if key not in ("contact", "parent", "type", "contact_type"):
                updated[key] = value
        if "reported_date" in body:
            updated["reported_date"] = to_ms(body["reported_date"])
        plan = Plan()
        if "contact" in body:
            updated["contact"] = self._contact(body["contact"], updated, plan, path="contact")
        if "place_id" in body and str(body["place_id"]) != str(place.get("place_id")):
            await shortcodes.assign(self.db, self.codes, [(updated, "place_id", "place_id")])
        await self._write_new(plan)
        try:
            result = await self.db.put(updated)
        except JamiiError:
            await self._undo(plan.new)
            raise
        return {"id": result["id"], "rev": result["rev"]}

    # -- planning ------------------------------------------------------------

    async def _fetch_references(self, bodies: list[Any]) -> None:
        """Every existing id the request names, fetched in one request."""
        ids: list[str] = []

        def walk(spec: Any, keys: tuple[str, ...]) -> None:
            if not isinstance(spec, Mapping):
                return
            if isinstance(spec.get("_id"), str):
                ids.append(spec["_id"])
            for key in keys:
                value = spec.get(key)
                if isinstance(value, str):
                    ids.append(value)
                elif isinstance(value, Mapping):
                    walk(value, ("parent", "contact"))

        for body in bodies:
            walk(body, ("place", "parent", "contact"))
        ids = [i for i in dict.fromkeys(ids) if i not in self._existing]
        if ids:
            self._existing.update(await self.db.get_many(ids))

    def _existing_doc(self, doc_id: str, kind: str, path: str) -> dict[str, Any]:
        doc = self._existing.get(doc_id)
        check = contact_types.is_place if kind == "place" else contact_types.is_person
        if doc is None or not check(self.settings, doc) or not contact_visible(self.scope, doc):
            raise NotFound(f"Failed to find {kind} {doc_id}.", field=path)
        return doc

    def _type_of_spec(self, spec: Mapping[str, Any], path: str, default: str | None) -> str:
        kind = spec.get("type") or default
        if kind == "contact":
            kind = spec.get("contact_type")
            if not kind:
                raise BadRequest('contact_type is required when type is "contact"', field=_join(path, "contact_type"))
        if not kind:
            raise BadRequest("type is required", field=_join(path, "type"))
        return kind

    def _require(self, permission: str) -> None:
        if not has_permission(self.principal, permission, self.settings):
            raise Forbidden("Insufficient privileges")

    def _parent(self, spec: Any, plan: Plan, path: str, *, by_id: bool = True) -> dict[str, Any] | None:
        """An existing place or a new one. As in CHT, a place's ``parent`` object with an ``_id`` names an
        existing place (``by_id``), while a person's ``place`` object is created, keeping its ``_id``."""
        if spec is None:
            return None
        if isinstance(spec, str):
            return self._existing_doc(spec, "place", path)
        if by_id and "_id" in spec:
            return self._existing_doc(spec["_id"], "place", path)
        return self._new_place(spec, plan, path)

    def _new_id(self, spec: Mapping[str, Any], plan: Plan, path: str) -> str:
        """The id a new doc is given: the request's ``_id`` (CHT keeps it), unless a doc has it already."""
        doc_id = spec.get("_id")
        if doc_id is None:
            return new_id()
        if doc_id in self._existing or any(d["_id"] == doc_id for d in plan.new):
            raise Conflict(CONFLICT, field=_join(path, "_id"), body={"code": 409, "error": CONFLICT})
        return doc_id

    def _new_place(self, spec: Mapping[str, Any], plan: Plan, path: str) -> dict[str, Any]:
        self._require("can_create_places")
        type_id = self._type_of_spec(spec, path, None)
        if not contact_types.is_place_type(self.settings, type_id):
            raise BadRequest(f"Wrong type, {type_id} is not a place type.", field=_join(path, "type"))
        parent = self._parent(spec.get("parent"), plan, _join(path, "parent"))
        contact_types.check_parent(self.settings, type_id, contact_types.type_of(parent),
                                   field=_join(path, "parent"))
        doc = {key: value for key, value in spec.items() if key not in _PLACE_KEYS}
        doc.update({"_id": self._new_id(spec, plan, path), **contact_types.type_fields(type_id),
                    "reported_date": to_ms(spec["reported_date"], _join(path, "reported_date"))
                    if "reported_date" in spec else self.now})
        if parent is not None:
            doc["parent"] = minify_lineage(parent)
        plan.new.append(doc)
        plan.codes.append((doc, "place_id", _join(path, "place_id")))
        if spec.get("contact") is not None:
            doc["contact"] = self._contact(spec["contact"], doc, plan, path=_join(path, "contact"))
        return doc

    def _contact(self, spec: Any, place: dict[str, Any], plan: Plan, path: str) -> Any:
        if spec is None:
            return None
        if isinstance(spec, str):
            return minify_contact(self._existing_doc(spec, "person", path))
        person = self._new_person(spec, plan, path=path, parent_doc=place)
        return minify_contact(person)

    def _new_person(self, spec: Mapping[str, Any], plan: Plan, *, path: str, parent_spec: Any = None,
                    parent_path: str = "", parent_doc: dict[str, Any] | None = None) -> dict[str, Any]:
        self._require("can_create_people")
        type_id = self._type_of_spec(spec, path, "person")
        if not contact_types.is_person_type(self.settings, type_id):
            raise BadRequest(f"Wrong type, {type_id} is not a person type.", field=_join(path, "type"))
        parent = parent_doc if parent_doc is not None else self._parent(parent_spec, plan, parent_path, by_id=False)
        contact_types.check_parent(self.settings, type_id, contact_types.type_of(parent),
                                   field=parent_path or _join(path, "parent"))
        doc = {key: value for key, value in spec.items() if key not in _PERSON_KEYS}
        doc.update({"_id": self._new_id(spec, plan, path), **contact_types.type_fields(type_id),
                    "reported_date": to_ms(spec["reported_date"], _join(path, "reported_date"))
                    if "reported_date" in spec else self.now})
        if parent is not None:
            doc["parent"] = minify_lineage(parent)
        plan.new.append(doc)
        plan.codes.append((doc, "patient_id", _join(path, "patient_id")))
        return doc

    # -- writing -------------------------------------------------------------

    async def _write_new(self, plan: Plan) -> None:
        if not plan.new:
            return
        for doc in plan.new:
            if not contact_visible(self.scope, doc):
                raise Forbidden("Offline users can only create contacts inside their own place")
        await shortcodes.assign(self.db, self.codes, plan.codes)
        self._check(plan)
        results = await self.db.bulk_docs(plan.new)
        for doc, result in zip(plan.new, results):
            if result.get("rev") and not result.get("error"):
                doc["_rev"] = result["rev"]
        failed = [r for r in results if r.get("error")]
        if failed:
            await self._undo([d for d in plan.new if "_rev" in d])
            if any(r["error"] == "conflict" for r in failed):
                raise Conflict(CONFLICT, body={"code": 409, "error": CONFLICT})
            raise ServiceUnavailable(f"CouchDB refused the write ({failed[0]['error']}); nothing was written")

    def _check(self, plan: Plan) -> None:
        for doc in plan.new:
            if not contact_visible(self.scope, doc):
                raise Forbidden("Offline users can only create contacts inside their own place")
            schemas.validate("person" if contact_types.is_person(self.settings, doc) else "place", doc)

    async def _undo(self, docs: list[dict[str, Any]]) -> None:
        written = [{"_id": d["_id"], "_rev": d["_rev"], "_deleted": True} for d in docs if d.get("_rev")]
        if not written:
            return
        try:
            results = await self.db.bulk_docs(written)
            left = [r["id"] for r in results if r.get("error")]
        except JamiiError:
            left = [d["_id"] for d in written]
        if left:
            log.error("could not remove the docs of a failed nested write: %s", ", ".join(left))


def _given_codes(plan: Plan) -> list[str]:
    """Short ids a plan's request chose itself (normalised to strings); the same one twice is a conflict."""
    codes: list[str] = []
    for doc, name, path in plan.codes:
        if doc.get(name) not in (None, ""):
            doc[name] = str(doc[name])
            if doc[name] in codes:
                raise Conflict(f"{name} {doc[name]} is used twice in this request", field=path)
            codes.append(doc[name])
    return codes


def _owner(plan: Plan, code: str) -> str | None:
    return next(doc.get("_id") for doc, name, _ in plan.codes if doc.get(name) == code)


def _code_path(plan: Plan, code: str) -> str:
    return next(path for doc, name, path in plan.codes if doc.get(name) == code)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
