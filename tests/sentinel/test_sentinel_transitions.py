"""Each transition against the real server: its effect, its filter, and that a replay adds nothing."""

from __future__ import annotations

import time

import pytest

from api import checkpoint
from api.cht.messaging import records
from api.settings import SettingsStore
from sentinel import registry
from sentinel.engine import Engine
from sentinel.transitions.registration import patient_uuid
from sentinel.worker import Worker

from .world import GATEWAY, hierarchy, save, transition_settings, use_settings

DAY_MS = 86_400_000


@pytest.fixture
async def store(couch, config):
    store = SettingsStore(couch.db(config.db_medic))
    await use_settings(store, transition_settings())
    return store


@pytest.fixture
async def sentinel(couch, config, store):
    """Process every change up to now, like the running worker, and return the engine."""
    engine = Engine(couch, config, store, registry.medic_transitions())
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    return engine


async def drain(engine, couch, config):
    """Run the worker until the feed is empty (our own writes come back through it too)."""
    worker = Worker(couch, config, engine.process_batch, batch_size=100, wait_seconds=0.2, include_docs=False)
    worker.seq = await checkpoint.read(couch.db(config.db_sentinel), checkpoint.SENTINEL)
    for _ in range(50):
        # an empty step may only be a longpoll cut short on a busy machine: the feed must be empty too
        if await worker.step() == 0 and await couch.db(config.db_medic).pending_changes(worker.seq) == 0:
            return
    raise AssertionError("the feed did not drain")


_made = 0


async def world(couch, config):
    global _made
    _made += 1
    docs = hierarchy(f"w{_made}", _made)
    await save(couch.db(config.db_medic), docs)
    return World({d["_id"].split("-", 1)[1]: d for d in docs})


class World(dict):
    """The docs of one world by role, and SMS from its CHW."""

    def sms(self, text, sender=None, settings=None, **extra):
        return records.from_sms(text, sender or self["chw"]["phone"], settings or transition_settings(), **extra)

    def code(self, role):
        return self[role].get("patient_id") or self[role].get("place_id")


def messages_of(doc, key="tasks"):
    return [m for t in doc.get(key) or [] for m in t["messages"]]


async def test_shortcodes_on_contacts_and_not_on_other_docs(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    await save(medic, [{"_id": "sc-place", "type": "clinic", "name": "New clinic"},
                       {"_id": "sc-person", "type": "person", "name": "New person"},
                       {"_id": "sc-kept", "type": "person", "name": "Has one", "patient_id": "77777"},
                       {"_id": "sc-other", "type": "data_record", "form": "P", "fields": {}}])
    await drain(sentinel, couch, config)
    place, person = await medic.get("sc-place"), await medic.get("sc-person")
    assert place["place_id"].isdigit() and len(place["place_id"]) >= 5 and "patient_id" not in place
    assert person["patient_id"].isdigit() and person["patient_id"] != place["place_id"]
    assert (await medic.get("sc-kept"))["patient_id"] == "77777"
    assert "patient_id" not in await medic.get("sc-other")
    info = await couch.db(config.db_sentinel).get("sc-person-info")
    assert info["transitions"]["generate_shortcode_on_contacts"]["ok"] is True


async def test_sms_reports_get_their_sender_and_sent_by(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    known = w.sms(f"V {w.code('chw')}", sender="0" + w["chw"]["phone"][4:])  # the CHW's number written another way
    unknown = w.sms(f"V {w.code('chw')}", sender="+254799999999")
    by_ref = dict(w.sms(f"V {w.code('chw')}", sender="+254788888888"), refid="xyz")
    clinic = dict(w["clinic"], rc_code="XYZ")
    await medic.put(clinic)
    await save(medic, [known, unknown, by_ref])
    await drain(sentinel, couch, config)
    stored = await medic.get(known["_id"])
    assert stored["contact"] == {"_id": w["chw"]["_id"], "parent": {"_id": w["clinic"]["_id"], "parent": {
        "_id": w["center"]["_id"], "parent": {"_id": w["district"]["_id"]}}}}, "stored minified"
    assert stored["sent_by"] == "Chw Amani"
    missing = await medic.get(unknown["_id"])
    assert "contact" not in missing and "sent_by" not in missing
    assert {"code": "sys.facility_not_found", "message": "Facility not found."} in missing["errors"]
    assert (await medic.get(by_ref["_id"]))["contact"]["_id"] == w["chw"]["_id"]

    # a report that comes with its contact keeps it; the transition still shows as run (nothing to do)
    app_report = {"_id": f"{w['chw']['_id']}-app", "type": "data_record", "form": "V", "from": w["chw"]["phone"],
                  "contact": {"_id": w["nurse"]["_id"]}, "fields": {}, "reported_date": 1}
    await save(medic, [app_report])
    await drain(sentinel, couch, config)
    kept = await medic.get(app_report["_id"])
    assert kept["contact"]["_id"] == w["nurse"]["_id"], "not replaced by the contact of the phone"
    assert kept["contact"]["parent"] == w["nurse"]["parent"], "saved with CHT's minified lineage"
    runs = (await couch.db(config.db_sentinel).get(f"{app_report['_id']}-info"))["transitions"]
    assert runs["update_clinics"]["ok"] and runs["update_sent_by"]["ok"]


async def test_registration_creates_the_patient_schedule_and_reply_once(couch, config, sentinel):
    medic, sentinel_db = couch.db(config.db_medic), couch.db(config.db_sentinel)
    w = await world(couch, config)
    report = w.sms("P Mary 4")
    await save(medic, [report])
    await drain(sentinel, couch, config)
    stored = await medic.get(report["_id"])
    patient = await medic.get(patient_uuid(report["_id"]))
    assert patient["name"] == "Mary" and patient["type"] == "person" and patient["source_id"] == report["_id"]
    assert patient["parent"] == {"_id": w["clinic"]["_id"], "parent": {"_id": w["center"]["_id"], "parent": {
        "_id": w["district"]["_id"]}}}
    assert patient["patient_id"].isdigit(), "generate_shortcode gave nothing: registration did"
    assert stored["patient_id"] == patient["patient_id"]
    assert stored["expected_date"] and stored["lmp_date"]
    [reply] = messages_of(stored)
    assert reply["to"] == w["chw"]["phone"]
    assert reply["message"] == f"Thank you Chw Amani for registering Mary. Their ID is {patient['patient_id']}."
    scheduled = stored["scheduled_tasks"]
    assert [t["state"] for t in scheduled] == ["scheduled"] * 4
    assert scheduled[0]["messages"][0]["message"] == f"Visit for Mary ({patient['patient_id']}) due"
    assert all(t["type"] == "ANC Reminders" and t["due"] > stored["lmp_date"] for t in scheduled)
    # a crash between the doc write and the info write: the replay changes nothing
    info = await sentinel_db.get(f"{report['_id']}-info")
    await sentinel_db.delete(info["_id"], info["_rev"])
    restarted = Engine(couch, config, sentinel.settings, registry.medic_transitions())
    await restarted.process_batch([{"id": stored["_id"], "seq": None, "doc": stored}])
    again = await medic.get(report["_id"])
    assert again["_rev"] == stored["_rev"]
    rows = (await medic.view("medic-client", "contacts_by_reference", key=["shortcode", patient["patient_id"]]))
    assert len(rows["rows"]) == 1


async def test_registration_skips_past_groups_and_rejects_invalid_reports(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    old = w.sms("P Lucy 2", reported_date=int(time.time() * 1000) - 10 * DAY_MS)
    bad = w.sms("P X 2")
    await save(medic, [old, bad])
    await drain(sentinel, couch, config)
    stored = await medic.get(old["_id"])
    assert [t["group"] for t in stored["scheduled_tasks"]] == [2], "group 1 started in the past: skipped whole"
    rejected = await medic.get(bad["_id"])
    assert {"code": "invalid_patient_name", "message": "Invalid patient name X."} in rejected["errors"]
    assert [m["message"] for m in messages_of(rejected)] == ["Invalid patient name X."]
    assert "patient_id" not in rejected and "scheduled_tasks" not in rejected
    assert await medic.get_or_none(patient_uuid(bad["_id"])) is None


async def test_visits_are_accepted_clear_the_schedule_or_are_refused(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    registration = w.sms("P Anna 4")
    await save(medic, [registration])
    await drain(sentinel, couch, config)
    patient_id = (await medic.get(registration["_id"]))["patient_id"]
    visit = w.sms(f"V {patient_id}", reported_date=int(time.time() * 1000) + 2 * DAY_MS)
    stranger = w.sms("V 99999")
    await save(medic, [visit, stranger])
    await drain(sentinel, couch, config)
    accepted = await medic.get(visit["_id"])
    assert [m["message"] for m in messages_of(accepted)] == ["Thanks, visit for Anna recorded."]
    assert accepted["registration_id"] == registration["_id"]
    states = [(t["group"], t["state"]) for t in (await medic.get(registration["_id"]))["scheduled_tasks"]]
    assert states == [(1, "cleared"), (1, "cleared"), (2, "scheduled"), (0, "cleared")], \
        "groups due within silence_for of the visit are cleared"
    refused = await medic.get(stranger["_id"])
    assert [e["code"] for e in refused["errors"]] == ["registration_not_found"]
    assert [m["message"] for m in messages_of(refused)] == ["No patient with ID 99999."]


async def test_default_responses(couch, config, sentinel, store):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    settings = transition_settings()
    free = w.sms("hello there", settings=settings)
    empty = w.sms("  ", settings=settings)
    looped = w.sms("hello", sender=GATEWAY, settings=settings)
    form = w.sms(f"V {w.code('chw')}", settings=settings)
    await save(medic, [free, empty, looped, form])
    await drain(sentinel, couch, config)
    assert [m["message"] for m in messages_of(await medic.get(free["_id"]))][0].startswith("SMS message received")
    assert messages_of(await medic.get(empty["_id"]))[0]["message"].startswith("It looks like you sent an empty")
    assert messages_of(await medic.get(looped["_id"])) == [], "never answer the gateway itself"
    assert not any(m["message"].startswith("SMS message received") for m in messages_of(await medic.get(form["_id"])))
    settings["default_responses"] = {"start_date": "2999-01-01"}
    await use_settings(store, settings)
    late = w.sms("hello again", settings=settings)
    await save(medic, [late])
    await drain(sentinel, couch, config)
    assert messages_of(await medic.get(late["_id"])) == [], "reported before start_date"
    await use_settings(store, transition_settings())


async def test_death_reporting_marks_and_undoes(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    death = w.sms(f"D {w.code('nurse')}")
    await save(medic, [death])
    await drain(sentinel, couch, config)
    assert (await medic.get(w["nurse"]["_id"]))["date_of_death"] == death["reported_date"]
    undo = w.sms(f"X {w.code('nurse')}")
    await save(medic, [undo])
    await drain(sentinel, couch, config)
    assert "date_of_death" not in await medic.get(w["nurse"]["_id"])


async def test_muting_a_place_mutes_below_it_and_its_schedules(couch, config, sentinel):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    registration = w.sms("P Rose 4")
    await save(medic, [registration])
    await drain(sentinel, couch, config)
    mute = w.sms(f"M {w.code('clinic')}")
    await save(medic, [mute])
    await drain(sentinel, couch, config)
    clinic, chw = await medic.get(w["clinic"]["_id"]), await medic.get(w["chw"]["_id"])
    patient = await medic.get(patient_uuid(registration["_id"]))
    assert clinic["muted"] and chw["muted"] and patient["muted"]
    assert "muted" not in await medic.get(w["center"]["_id"]), "only below the muted place"
    assert {t["state"] for t in (await medic.get(registration["_id"]))["scheduled_tasks"]} == {"muted"}
    assert [m["message"] for m in messages_of(await medic.get(mute["_id"]))] == ["Clinic muted."]

    again = w.sms(f"M {w.code('clinic')}")
    newcomer = {"_id": f"{w['clinic']['_id']}-new", "type": "person", "name": "New",
                "parent": {"_id": w["clinic"]["_id"], "parent": clinic["parent"]}}
    await save(medic, [again, newcomer])
    await drain(sentinel, couch, config)
    assert [m["message"] for m in messages_of(await medic.get(again["_id"]))] == ["Clinic was already muted."]
    assert (await medic.get(newcomer["_id"]))["muted"] == clinic["muted"], "a contact added under a muted place"

    unmute = w.sms(f"U {w.code('clinic')}")
    await save(medic, [unmute])
    await drain(sentinel, couch, config)
    assert "muted" not in await medic.get(w["chw"]["_id"])
    assert {t["state"] for t in (await medic.get(registration["_id"]))["scheduled_tasks"]} == {"scheduled"}


async def test_resolve_pending_and_settings_reload(couch, config, sentinel, store):
    medic = couch.db(config.db_medic)
    w = await world(couch, config)
    settings = transition_settings()
    settings["transitions"]["resolve_pending"] = True
    settings["registrations"][0]["messages"][0]["message"][0]["content"] = "New text for {{patient_name}}"
    doc = await medic.get("settings")
    doc["settings"] = settings
    await medic.put(doc)  # as cht-conf would: the engine sees the change in its feed, no restart
    report = w.sms("P Ruth 4")
    await save(medic, [report])
    await drain(sentinel, couch, config)
    stored = await medic.get(report["_id"])
    [task] = stored["tasks"]
    assert task["messages"][0]["message"] == "New text for Ruth"
    assert task["state"] == "sent" and [h["state"] for h in task["state_history"]] == ["pending", "sent"]
    assert {t["state"] for t in stored["scheduled_tasks"]} == {"scheduled"}, "only tasks due now are resolved"

    settings["transitions"]["registration"] = False
    doc = await medic.get("settings")
    doc["settings"] = settings
    await medic.put(doc)
    off = w.sms("P Tom 4")
    await save(medic, [off])
    await drain(sentinel, couch, config)
    assert "patient_id" not in await medic.get(off["_id"])
    await use_settings(store, transition_settings())


async def test_a_conflict_on_another_doc_is_retried(couch, config, sentinel):
    medic, sentinel_db = couch.db(config.db_medic), couch.db(config.db_sentinel)
    w = await world(couch, config)
    death = w.sms(f"D {w.code('nurse')}")
    await save(medic, [death])
    # the nurse changes between the engine reading it and writing it
    original = sentinel.db.bulk_docs

    async def racing(docs, **kw):
        if any(d["_id"] == w["nurse"]["_id"] for d in docs):
            nurse = await medic.get(w["nurse"]["_id"])
            await medic.put(dict(nurse, note="edited"))
        return await original(docs, **kw)

    sentinel.db.bulk_docs = racing
    try:
        await drain(sentinel, couch, config)
    finally:
        sentinel.db.bulk_docs = original
    run = (await sentinel_db.get(f"{death['_id']}-info"))["transitions"]["death_reporting"]
    assert run["ok"] is False and run["next_retry"] > 0 and "conflict" in run["error"]
    assert "date_of_death" not in await medic.get(w["nurse"]["_id"])
    from sentinel import retries
    info = await sentinel_db.get(f"{death['_id']}-info")
    info["transitions"]["death_reporting"]["next_retry"] = 0
    await sentinel_db.put(info)
    await retries.retry_due(sentinel, sentinel_db)
    assert (await medic.get(w["nurse"]["_id"]))["date_of_death"] == death["reported_date"]
    assert (await sentinel_db.get(f"{death['_id']}-info"))["transitions"]["death_reporting"]["ok"] is True

