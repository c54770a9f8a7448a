"""A small CHT world for sentinel tests and the benchmark: a hierarchy, SMS forms, transition settings."""

from __future__ import annotations

import copy
import random
from typing import Any

from api.cht import shortcodes
from api.cht.lineage import minify_contact, minify_lineage
from api.cht.messaging import records
from api.couch import Database
from api.settings import SettingsStore, default_settings

GATEWAY = "+254700000000"


def phone(n: int, who: int) -> str:
    return f"+2547120{n:02d}{who:03d}"


def _field(kind: str, position: int, required: bool = True) -> dict[str, Any]:
    return {"type": kind, "position": position, "required": required,
            "labels": {"short": {"en": kind}, "tiny": {"en": kind}}}


FORMS = {
    "V": {"meta": {"code": "V", "label": {"en": "Visit"}}, "fields": {"patient_id": _field("string", 0)},
          "public_form": False},
    "M": {"meta": {"code": "M", "label": {"en": "Mute"}}, "fields": {"patient_id": _field("string", 0)}},
    "U": {"meta": {"code": "U", "label": {"en": "Unmute"}}, "fields": {"patient_id": _field("string", 0)}},
    "D": {"meta": {"code": "D", "label": {"en": "Death"}}, "fields": {"patient_id": _field("string", 0)}},
    "X": {"meta": {"code": "X", "label": {"en": "Undo death"}}, "fields": {"patient_id": _field("string", 0)}},
}

SCHEDULE = {
    "name": "ANC Reminders",
    "start_from": "reported_date",
    "messages": [
        {"group": 1, "offset": "1 weeks", "recipient": "reporting_unit",
         "message": [{"locale": "en", "content": "Visit for {{patient_name}} ({{patient_id}}) due"}]},
        {"group": 1, "offset": "2 weeks", "recipient": "reporting_unit",
         "message": [{"locale": "en", "content": "Visit for {{patient_name}} overdue"}]},
        {"group": 2, "offset": "6 weeks", "recipient": "reporting_unit",
         "message": [{"locale": "en", "content": "Second visit for {{patient_name}}"}]},
        {"group": 0, "offset": "1 days", "recipient": "reporting_unit",
         "message": [{"locale": "en", "content": "Already due"}]},
    ],
}


def transition_settings() -> dict[str, Any]:
    """Settings with the typical transitions on and CHT-shaped configuration for them."""
    settings = default_settings()
    settings["forms"] = {**settings.get("forms", {}), **copy.deepcopy(FORMS)}
    settings["gateway_number"] = GATEWAY
    settings["transitions"] = {name: True for name in (
        "generate_shortcode_on_contacts", "update_clinics", "registration", "accept_patient_reports",
        "default_responses", "update_sent_by", "death_reporting", "muting")}
    settings["schedules"] = [copy.deepcopy(SCHEDULE)]
    settings["registrations"] = [{
        "form": "P",
        "events": [{"name": "on_create", "trigger": "add_patient", "params": "", "bool_expr": ""},
                   {"name": "on_create", "trigger": "add_expected_date", "params": "", "bool_expr": ""},
                   {"name": "on_create", "trigger": "assign_schedule", "params": "ANC Reminders", "bool_expr": ""}],
        "validations": {"join_responses": False, "list": [
            {"property": "patient_name", "rule": "lenMin(2) && lenMax(30)",
             "message": [{"locale": "en", "content": "Invalid patient name {{patient_name}}."}]}]},
        "messages": [{"event_type": "report_accepted", "recipient": "reporting_unit",
                      "message": [{"locale": "en", "content":
                                   "Thank you {{contact.name}} for registering {{patient_name}}. "
                                   "Their ID is {{patient_id}}."}]}],
    }]
    settings["patient_reports"] = [{
        "form": "V",
        "silence_type": "ANC Reminders",
        "silence_for": "8 days",
        "validations": {"list": []},
        "messages": [
            {"event_type": "report_accepted", "recipient": "reporting_unit",
             "message": [{"locale": "en", "content": "Thanks, visit for {{patient_name}} recorded."}]},
            {"event_type": "registration_not_found", "recipient": "reporting_unit",
             "message": [{"locale": "en", "content": "No patient with ID {{patient_id}}."}]},
        ],
    }]
    settings["muting"] = {
        "mute_forms": ["M"], "unmute_forms": ["U"],
        "messages": [
            {"event_type": "mute", "recipient": "reporting_unit",
             "message": [{"locale": "en", "content": "{{patient.name}} muted."}]},
            {"event_type": "unmute", "recipient": "reporting_unit",
             "message": [{"locale": "en", "content": "{{patient.name}} unmuted."}]},
            {"event_type": "already_muted", "recipient": "reporting_unit",
             "message": [{"locale": "en", "content": "{{patient.name}} was already muted."}]},
        ],
    }
    settings["death_reporting"] = {"mark_deceased_forms": ["D"], "undo_deceased_forms": ["X"],
                                   "date_field": "reported_date"}
    return settings


async def use_settings(store: SettingsStore, settings: dict[str, Any]) -> None:
    await store.update(settings, overwrite=True)


def hierarchy(prefix: str, n: int = 0) -> list[dict[str, Any]]:
    """district > health center > clinic; a CHW (the clinic's contact) and a nurse (the center's).

    World ``n`` has its own phone numbers and short ids (``1nn01``.. for places,
    ``2nn01``.. for people), so several worlds live in one database.
    """
    district = {"_id": f"{prefix}-district", "type": "district_hospital", "name": "District",
                "place_id": f"1{n:02d}01"}
    center = {"_id": f"{prefix}-center", "type": "health_center", "name": "Center", "place_id": f"1{n:02d}02",
              "parent": minify_lineage(district)}
    clinic = {"_id": f"{prefix}-clinic", "type": "clinic", "name": "Clinic", "place_id": f"1{n:02d}03",
              "parent": minify_lineage(center)}
    chw = {"_id": f"{prefix}-chw", "type": "person", "name": "Chw Amani", "phone": phone(n, 1),
           "patient_id": f"2{n:02d}01", "parent": minify_lineage(clinic)}
    nurse = {"_id": f"{prefix}-nurse", "type": "person", "name": "Nurse Eshe", "phone": phone(n, 2),
             "patient_id": f"2{n:02d}02", "parent": minify_lineage(center)}
    clinic["contact"] = minify_contact(chw)
    center["contact"] = minify_contact(nurse)
    return [district, center, clinic, chw, nurse]


async def save(db: Database, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results = await db.bulk_docs(docs)
    for doc, result in zip(docs, results):
        assert result.get("ok"), result
        doc["_rev"] = result["rev"]
    return docs


async def save_existing_contacts(medic: Database, codes_db: Database, contacts: list[dict[str, Any]]) -> None:
    """Contacts a deployment already has: saved, and their short ids reserved (as ``setup_db``'s backfill does)."""
    await save(medic, contacts)
    await shortcodes.adopt(codes_db, {str(c[name]): c["_id"] for c in contacts for name in ("patient_id", "place_id")
                                      if c.get(name) not in (None, "")})


# the transitions that run once on each kind of doc of ``build_backlog`` (with ``transition_settings``)
EXPECTED_TRANSITIONS = {
    "contact": {"generate_shortcode_on_contacts", "muting"},
    "registration": {"update_clinics", "registration", "default_responses", "update_sent_by"},
    "visit": {"update_clinics", "accept_patient_reports", "default_responses", "update_sent_by"},
    "text": {"update_clinics", "default_responses", "update_sent_by"},
    "stranger": {"update_clinics", "default_responses", "update_sent_by"},
}


def build_backlog(total: int, worlds: int, seed: int, new_contacts: float = 0.1
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Contacts, registrations, visits, free text and SMS from strangers, in random order.

    Returns (the hierarchy's docs, the backlog's docs, the kind of each backlog doc).
    """
    rng = random.Random(seed)
    settings = transition_settings()
    contacts = [d for n in range(worlds) for d in hierarchy(f"crash{n}", 50 + n)]
    chws = [d for d in contacts if d["_id"].endswith("-chw")]
    clinics = {d["_id"]: d for d in contacts if d.get("type") == "clinic"}
    docs, kinds = [], {}
    for i in range(total):
        chw = rng.choice(chws)
        roll = rng.random()
        if roll < new_contacts:
            clinic = clinics[chw["parent"]["_id"]]
            doc = {"_id": f"crash-person-{i}", "type": "person", "name": f"Person {i}",
                   "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}, "reported_date": 1}
            kind = "contact"
        elif roll < new_contacts + 0.35:
            name = "Pat" + "".join(chr(ord("a") + int(d)) for d in str(i))
            doc, kind = records.from_sms(f"P {name} 4", chw["phone"], settings), "registration"
        elif roll < new_contacts + 0.65:
            other = rng.choice(chws)
            doc, kind = records.from_sms(f"V {other['patient_id']}", chw["phone"], settings), "visit"
        elif roll < new_contacts + 0.8:
            doc, kind = records.from_sms(f"hello {i}", chw["phone"], settings), "text"
        else:
            doc, kind = records.from_sms(f"V {chw['patient_id']}", f"+2547999{i:05d}", settings), "stranger"
        docs.append(doc)
        kinds[doc["_id"]] = kind
    return contacts, docs, kinds
