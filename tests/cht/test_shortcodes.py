"""Short id reservations: one code, one contact, whoever hands it out (the API or the sentinel)."""

from __future__ import annotations

import asyncio

from api import checkpoint
from api.cht import shortcodes
from api.settings import SettingsStore
from sentinel import registry
from sentinel.engine import Engine
from sentinel.worker import Worker
from sentinel.workspace import Workspace
from tests.helpers import admin_headers
from tests.sentinel.world import save, transition_settings, use_settings


async def test_two_writers_never_get_the_same_code(couch, config, monkeypatch):
    """In a space of 90 two-digit codes, two writers asking for 40 codes each at once share none."""
    monkeypatch.setattr(shortcodes, "MIN_LENGTH", 2)
    codes_db = couch.db(config.db_sentinel)
    first, second = await asyncio.gather(shortcodes.fresh(codes_db, [f"a-{i}" for i in range(40)]),
                                         shortcodes.fresh(codes_db, [f"b-{i}" for i in range(40)]))
    assert len(set(first)) == 40 and len(set(second)) == 40
    assert set(first) & set(second) == set()
    stored = await codes_db.get_many(shortcodes.reservation_id(c) for c in first + second)
    assert {stored[shortcodes.reservation_id(c)]["contact_id"] for c in first} == {f"a-{i}" for i in range(40)}
    # the space fills: the next writer is refused most two-digit codes and moves on to three digits
    third = await shortcodes.fresh(codes_db, [None] * 20)
    assert set(third).isdisjoint(first + second) and any(len(c) == 3 for c in third)


async def test_a_code_is_held_by_one_contact_only(couch, config):
    codes_db = couch.db(config.db_sentinel)
    assert await shortcodes.reserve(codes_db, {"4040401": "contact-a"}) == {"4040401"}
    assert await shortcodes.reserve(codes_db, {"4040401": "contact-a"}) == {"4040401"}, "its own code"
    assert await shortcodes.reserve(codes_db, {"4040401": "contact-b"}) == set()
    assert await shortcodes.reserve(codes_db, {"4040401": None}) == set()


async def test_the_api_and_the_sentinel_share_reservations(client, couch, config):
    medic, codes_db = couch.db(config.db_medic), couch.db(config.db_sentinel)
    place = {"_id": "sc-clinic", "type": "clinic", "name": "Clinic"}
    await save(medic, [place])
    # a code the sentinel handed out cannot be given by the API...
    work = Workspace(medic, codes=codes_db)
    code = (await work.fresh_codes(["sentinel-made"]))["sentinel-made"]
    taken = await client.post("/api/v1/people", json={"name": "Copycat", "patient_id": code, "place": "sc-clinic"},
                              headers=admin_headers(config))
    assert taken.status == 409 and (await taken.json())["field"] == "patient_id"
    # ...and a code the API handed out is reserved for its contact, so the sentinel cannot get it
    made = await client.post("/api/v1/people", json={"name": "Fresh", "place": "sc-clinic"},
                             headers=admin_headers(config))
    person = await medic.get((await made.json())["id"])
    reservation = await codes_db.get(shortcodes.reservation_id(person["patient_id"]))
    assert reservation["contact_id"] == person["_id"]
    assert await shortcodes.reserve(codes_db, {person["patient_id"]: "sentinel-made-2"}) == set()


async def test_the_sentinel_reserves_codes_contacts_brought_without_one(couch, config):
    """A contact replicated or written directly with a code: its code is reserved when the feed shows it."""
    medic, codes_db = couch.db(config.db_medic), couch.db(config.db_sentinel)
    store = SettingsStore(medic)
    await use_settings(store, transition_settings())
    await checkpoint.write(codes_db, checkpoint.SENTINEL, (await medic.info())["update_seq"])
    await save(medic, [{"_id": "sc-replicated", "type": "person", "name": "From a phone", "patient_id": "5050505"}])
    engine = Engine(couch, config, store, registry.medic_transitions())
    worker = Worker(couch, config, engine.process_batch, wait_seconds=0.2, include_docs=False)
    worker.seq = await checkpoint.read(codes_db, checkpoint.SENTINEL)
    while await worker.step():
        pass
    assert (await codes_db.get(shortcodes.reservation_id("5050505")))["contact_id"] == "sc-replicated"
    assert await shortcodes.reserve(codes_db, {"5050505": "someone-else"}) == set()


async def test_backfill_reserves_the_codes_of_existing_contacts_once(couch, config):
    medic, codes_db = couch.db(config.db_medic), couch.db(config.db_sentinel)
    await save(medic, [{"_id": "sc-old-1", "type": "person", "name": "Old", "patient_id": "6060601"},
                       {"_id": "sc-old-2", "type": "clinic", "name": "Old place", "place_id": "6060602"}])
    marker = await codes_db.get_or_none(shortcodes.BACKFILL_MARKER)  # a normal doc: never stale on a cluster
    assert marker, "setup marks a new database as needing no backfill"
    assert await shortcodes.backfill(medic, codes_db) == 0
    await codes_db.delete(shortcodes.BACKFILL_MARKER, marker["_rev"])
    assert await shortcodes.backfill(medic, codes_db) >= 2
    stored = await codes_db.get_many([shortcodes.reservation_id("6060601"), shortcodes.reservation_id("6060602")])
    assert {d["contact_id"] for d in stored.values()} == {"sc-old-1", "sc-old-2"}
    assert await shortcodes.backfill(medic, codes_db) == 0, "once"
