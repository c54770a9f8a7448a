"""``registration``: reports of the forms in settings ``registrations`` register a patient.

Each entry is CHT's ``{"form", "events": [{"name": "on_create", "trigger",
"params", "bool_expr"}], "validations": {...}, "messages": [...]}``. A report
failing its validations gets the errors and one reply, and nothing else.
Otherwise the ``on_create`` events whose ``bool_expr`` holds fire in order:

* ``add_patient`` (``add_patient_id``): a new person (``params``:
  ``patient_id_field``, ``patient_name_field`` — default ``patient_name`` —,
  ``contact_type``, ``parent_id``) under the sender's place (or the place
  named by ``fields[parent_id]``), with a fresh short id, or the one the
  report gives in ``patient_id_field`` when unused; the report gets
  ``patient_id``. The person's ``_id`` is made from the report's, so a replay
  finds it instead of making a second one;
* ``add_expected_date`` / ``add_birth_date``: ``lmp_date`` and
  ``expected_date`` from the LMP fields, ``birth_date`` from the age fields;
* ``assign_schedule``: the named schedules (``params``, comma separated);
* ``clear_schedule``: clears the subject's other registrations' tasks of the
  named schedule types.

Then the messages with ``event_type`` ``report_accepted`` (or none) are added.
Problems (``no_provided_patient_id``, ``provided_patient_id_not_unique``,
``parent_not_found``, ``parent_field_not_provided``, ``parent_invalid``,
``provided_phone_not_valid``) are CHT's rejections: an error and a reply.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Mapping

from api.cht import contact_types, phones
from api.cht.lineage import minify_lineage
from api.errors import BadRequest
from sentinel import messaging, reports, schedules, validation

from . import Context

PATIENT_NAMESPACE = uuid.UUID("4d1bb8b9-9ad4-4b22-bd2b-8f3f7a6d8a51")


def patient_uuid(report_id: str) -> str:
    """The id of the person a registration report creates: one report, one person, however often replayed."""
    return uuid.uuid5(PATIENT_NAMESPACE, report_id).hex


def parse_params(params: Any) -> Any:
    """CHT's ``params``: an object, JSON in a string, or a comma-separated list."""
    if not params:
        return {}
    if isinstance(params, (dict, list)):
        return params
    text = str(params).strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return {}
    return [p.strip() for p in text.split(",") if p.strip()]


def _param(params: Any, name: str) -> Any:
    return params.get(name) if isinstance(params, dict) else None


def _names(params: Any) -> list[str]:
    if isinstance(params, list):
        return [str(p) for p in params]
    if isinstance(params, dict):
        return [str(v) for v in params.values() if isinstance(v, str)]
    return []


def _fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    return doc["fields"] if isinstance(doc.get("fields"), dict) else {}


def _first_number(doc: Mapping[str, Any], names: tuple[str, ...]) -> float | None:
    for name in names:
        value = _fields(doc).get(name)
        if value is None or isinstance(value, bool):
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


def _start_of_day(doc: Mapping[str, Any]) -> dt.datetime:
    reported = schedules.to_datetime(doc.get("reported_date")) or dt.datetime.now(dt.timezone.utc)
    return reported.replace(hour=0, minute=0, second=0, microsecond=0)


def set_expected_date(doc: dict[str, Any]) -> None:
    lmp = _first_number(doc, ("lmp_date", "date_lmp"))
    if lmp:
        start: dt.datetime | None = dt.datetime.fromtimestamp(lmp / 1000, dt.timezone.utc)
    else:
        weeks = _first_number(doc, ("weeks_since_lmp", "last_menstrual_period", "lmp"))
        start = _start_of_day(doc) - dt.timedelta(weeks=weeks) if weeks else None
    if start is None:
        doc["lmp_date"] = None
        doc["expected_date"] = None
        return
    doc["lmp_date"] = start.isoformat().replace("+00:00", "Z")
    doc["expected_date"] = (start + dt.timedelta(weeks=40)).isoformat().replace("+00:00", "Z")


def set_birth_date(doc: dict[str, Any]) -> None:
    day = _start_of_day(doc)
    for names, unit in ((("years_since_dob", "years_since_birth", "age_in_years"), "year"),
                        (("months_since_dob", "months_since_birth", "age_in_months"), "month"),
                        (("weeks_since_dob", "dob", "weeks_since_birth", "age_in_weeks"), "week"),
                        (("days_since_dob", "days_since_birth", "age_in_days"), "day")):
        value = _first_number(doc, names)
        if value is not None:
            day = schedules.add_offset(day, -int(value), unit)
            break
    doc["birth_date"] = day.isoformat().replace("+00:00", "Z")


def _remember_new_subject(ctx: Context, report_id: str, person_id: str, code: str) -> Any:
    """Once saved, a brand-new person's registrations are known: this report, and later ones the feed brings."""
    memory = ctx.ws.memory

    def remember(saved: Mapping[str, str]) -> None:
        if report_id in saved and person_id in saved:
            memory.registrations[person_id] = [report_id]
            memory.registrations[code] = [report_id]
    return remember


class Registration:
    name = "registration"
    once = True
    hydrate = True

    def config(self, doc: Mapping[str, Any], ctx: Context) -> Mapping[str, Any] | None:
        return reports.config_for(ctx.settings.get("registrations"), doc.get("form"))

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return reports.is_report(doc) and self.config(doc, ctx) is not None and \
            reports.is_valid_submission(doc, ctx.settings)

    async def prepare(self, docs: list[dict[str, Any]], ctx: Context) -> None:
        # persons made by an earlier run of a replayed report, and fresh short ids for the rest
        made = await ctx.ws.fetch(patient_uuid(d["_id"]) for d in docs)
        for person in made.values():
            if person.get("patient_id"):
                ctx.ws.remember_shortcode(person["patient_id"], person)
        wanted = [patient_uuid(d["_id"]) for d in docs
                  if self._adds_patient(d, ctx) and patient_uuid(d["_id"]) not in made]
        ctx.ws.cache["registration_codes"] = await ctx.ws.fresh_codes(wanted)

    def _adds_patient(self, doc: Mapping[str, Any], ctx: Context) -> bool:
        config = self.config(doc, ctx) or {}
        return not doc.get("patient_id") and any(
            isinstance(e, dict) and e.get("trigger") in ("add_patient", "add_patient_id")
            and not _param(parse_params(e.get("params")), "patient_id_field")
            for e in config.get("events") or [])

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        config = self.config(doc, ctx) or {}
        failed = validation.failures(config, doc)
        if failed:
            reports.add_validation_errors(doc, ctx, config, failed, self.name)
            return True
        changed = False
        for event in config.get("events") or []:
            if not isinstance(event, dict) or event.get("name") != "on_create":
                continue
            if not validation.bool_expr(event.get("bool_expr"), doc):
                continue
            params = parse_params(event.get("params"))
            trigger = event.get("trigger")
            if trigger in ("add_patient", "add_patient_id"):
                outcome = await self.add_patient(doc, ctx, config, params)
                changed = changed or outcome is not None
                if outcome is False:
                    return True  # rejected: no schedule, no acceptance message
            elif trigger == "add_expected_date":
                set_expected_date(doc)
                changed = True
            elif trigger == "add_birth_date":
                set_birth_date(doc)
                changed = True
            elif trigger == "assign_schedule":
                for name in _names(params):
                    schedule = schedules.find(ctx.settings, name)
                    if schedule is not None:
                        changed = schedules.assign(doc, ctx, schedule) or changed
            elif trigger == "clear_schedule":
                types = _names(params)
                subject = reports.subject(doc, ctx)
                for registration in await reports.registrations(ctx, subject, exclude=doc["_id"]):
                    if reports.silence(registration, doc, ctx, types, None):
                        ctx.ws.write(registration)
        messages = [m for m in config.get("messages") or [] if isinstance(m, dict)
                    and m.get("event_type") in (None, "", "report_accepted") and validation.bool_expr(
                        m.get("bool_expr"), doc)]
        for index, message in enumerate(messages):
            changed = messaging.add_message(doc, ctx, message, self.name, "accepted", index) or changed
        return changed

    async def add_patient(self, doc: dict[str, Any], ctx: Context, config: Mapping[str, Any],
                          params: Any) -> bool | None:
        """True: a person was made; None: nothing to do; False: rejected (error and reply added)."""
        if doc.get("patient_id"):
            return None
        made = await ctx.ws.get(patient_uuid(doc["_id"]))
        if made is not None and made.get("patient_id"):
            reports.set_patient_id(doc, ctx, str(made["patient_id"]))
            doc["patient"] = made
            return True
        id_field = _param(params, "patient_id_field")
        if id_field:
            code = _fields(doc).get(id_field)
            if code in (None, ""):
                reports.reject(doc, ctx, config, "no_provided_patient_id", self.name)
                return False
            if await ctx.ws.contacts_by_shortcode([str(code)]):
                reports.reject(doc, ctx, config, "provided_patient_id_not_unique", self.name,
                               extra={"patient_id": code})
                return False
            code = str(code)
        else:
            person_id = patient_uuid(doc["_id"])
            code = ctx.ws.cache.setdefault("registration_codes", {}).pop(person_id, None) or \
                (await ctx.ws.fresh_codes([person_id]))[person_id]
        parent = await self._parent(doc, ctx, config, params)
        if parent is None:
            return False
        contact_type = _param(params, "contact_type")
        name_field = params[0] if isinstance(params, list) and params else \
            _param(params, "patient_name_field") or "patient_name"
        person: dict[str, Any] = {"_id": patient_uuid(doc["_id"]),
                                  **contact_types.type_fields(contact_type or "person"),
                                  "name": _fields(doc).get(name_field), "patient_id": code,
                                  "reported_date": doc.get("reported_date"), "source_id": doc["_id"]}
        try:
            contact_types.check_parent(ctx.settings, contact_type or "person", contact_types.type_of(parent))
        except BadRequest:
            reports.reject(doc, ctx, config, "parent_invalid", self.name, extra={"parent": parent})
            return False
        if doc.get("birth_date"):
            person["date_of_birth"] = doc["birth_date"]
        phone_field = self._phone_field(doc, ctx)
        if phone_field and _fields(doc).get(phone_field):
            if phones.parse(ctx.settings, _fields(doc)[phone_field]) is None:
                reports.reject(doc, ctx, config, "provided_phone_not_valid", self.name)
                return False
            person["phone"] = _fields(doc)[phone_field]
        contact = doc.get("contact")
        if isinstance(contact, dict) and contact.get("_id"):
            person["created_by"] = contact["_id"]
        stored = dict(person, parent=minify_lineage(parent))
        ctx.ws.write(stored)
        ctx.ws.after_save.append(_remember_new_subject(ctx, doc["_id"], stored["_id"], code))
        ctx.ws.remember_shortcode(code, dict(person, parent=parent))
        reports.set_patient_id(doc, ctx, code)
        doc["patient"] = dict(person, parent=parent)
        return True

    @staticmethod
    def _phone_field(doc: Mapping[str, Any], ctx: Context) -> str | None:
        form = (ctx.settings.get("forms") or {}).get(doc.get("form"))
        fields = form.get("fields") if isinstance(form, dict) else None
        for name, field in (fields or {}).items():
            if isinstance(field, dict) and field.get("type") == "phone_number":
                return name
        return None

    async def _parent(self, doc: dict[str, Any], ctx: Context, config: Mapping[str, Any],
                      params: Any) -> dict[str, Any] | None:
        field = _param(params, "parent_id")
        if field:
            value = _fields(doc).get(field)
            if value in (None, ""):
                reports.reject(doc, ctx, config, "parent_field_not_provided", self.name)
                return None
            found = await ctx.ws.get(str(value)) or (await ctx.ws.contacts_by_shortcode([str(value)])).get(str(value))
            if found is None:
                reports.reject(doc, ctx, config, "parent_not_found", self.name)
                return None
            return await ctx.ws.hydrated(found)
        contact = doc.get("contact")
        parent = contact.get("parent") if isinstance(contact, dict) else None
        if not isinstance(parent, dict) or not parent.get("_id"):
            reports.reject(doc, ctx, config, "parent_not_found", self.name)
            return None
        if parent.get("type"):
            return parent
        place = await ctx.ws.get(parent["_id"])
        if place is None:
            reports.reject(doc, ctx, config, "parent_not_found", self.name)
            return None
        return await ctx.ws.hydrated(place)


transition = Registration()
