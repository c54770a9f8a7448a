"""Lineage rules (pure): minify, ancestor ids, and hydration with batched fetches, as cht-core's
``shared-libs/lineage`` does them (its two modes: one doc, a batch)."""

import copy

import pytest

from api.cht.lineage import Hydrator, lineage_ids, minify, minify_lineage, parent_ids, report_subject_keys


def _docs():
    """district > health center > clinic > person, each place with a primary contact."""
    dh = {"_id": "dh", "type": "district_hospital", "name": "District", "contact": {"_id": "boss", "parent": {"_id": "dh"}}}
    hc = {"_id": "hc", "type": "health_center", "name": "HC", "parent": {"_id": "dh"},
          "contact": {"_id": "nurse", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}
    clinic = {"_id": "cl", "type": "clinic", "name": "Clinic", "parent": {"_id": "hc", "parent": {"_id": "dh"}},
              "contact": {"_id": "chw"}}
    boss = {"_id": "boss", "type": "person", "name": "Boss", "parent": {"_id": "dh"}}
    nurse = {"_id": "nurse", "type": "person", "name": "Nurse", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}
    chw = {"_id": "chw", "type": "person", "name": "CHW", "patient_id": "11111",
           "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}
    patient = {"_id": "pat", "type": "person", "name": "Patient", "patient_id": "22222",
               "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}
    return {d["_id"]: d for d in (dh, hc, clinic, boss, nurse, chw, patient)}


class FakeDb:
    """Counts fetches: the point of the hydrator is to make few of them."""

    def __init__(self, docs):
        self.docs = docs
        self.fetches = []
        self.code_lookups = []

    async def fetch(self, ids):
        self.fetches.append(list(ids))
        return {i: self.docs[i] for i in ids if i in self.docs}

    async def codes(self, codes):
        self.code_lookups.append(list(codes))
        return {str(d["patient_id"]): d for d in self.docs.values() if str(d.get("patient_id")) in codes}


def test_parent_ids_and_lineage_ids():
    chw = _docs()["chw"]
    assert parent_ids(chw) == ["cl", "hc", "dh"]
    assert lineage_ids(chw) == ["chw", "cl", "hc", "dh"]
    assert parent_ids({"_id": "x"}) == [] and parent_ids({"_id": "x", "parent": ""}) == []
    assert parent_ids({"parent": {"_id": "a", "parent": {"name": "no id"}}}) == ["a"]


def test_minify_keeps_only_ids_and_drops_hydrated_subjects():
    hydrated = {"_id": "r", "type": "data_record", "form": "F",
                "contact": {"_id": "chw", "name": "CHW", "parent": {"_id": "cl", "name": "Clinic",
                                                                     "parent": {"_id": "hc", "name": "HC"}}},
                "patient": {"_id": "pat"}, "place": {"_id": "cl"},
                "parent": {"_id": "p", "name": "x", "parent": None}}
    small = minify(hydrated)
    assert small["contact"] == {"_id": "chw", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}
    assert small["parent"] == {"_id": "p"}
    assert "patient" not in small and "place" not in small
    assert hydrated["contact"]["name"] == "CHW"  # the input is not changed
    assert minify_lineage({"name": "no id"}) is None
    assert minify({"_id": "x", "parent": {"name": "no id"}}) == {"_id": "x"}


def test_report_subject_keys_prefer_uuid_then_short_ids():
    assert report_subject_keys({"fields": {"patient_uuid": "u", "patient_id": "1"}}) == {"patient": "u"}
    assert report_subject_keys({"fields": {"patient_id": 12345}, "place_id": "777"}) == \
        {"patient": "12345", "place": "777"}
    assert report_subject_keys({"fields": {"patient_id": True}}) == {}


async def test_hydrates_a_person_with_two_fetches_for_three_levels():
    db = FakeDb(_docs())
    [person] = await Hydrator(db.fetch).hydrate([db.docs["chw"]])
    assert len(db.fetches) == 2
    assert sorted(db.fetches[0]) == ["cl", "dh", "hc"]
    assert sorted(db.fetches[1]) == ["boss", "chw", "nurse"] or sorted(db.fetches[1]) == ["boss", "nurse"]
    clinic = person["parent"]
    assert clinic["name"] == "Clinic" and clinic["contact"]["name"] == "CHW"
    assert clinic["parent"]["name"] == "HC" and clinic["parent"]["contact"]["name"] == "Nurse"
    assert clinic["parent"]["parent"]["name"] == "District"
    assert clinic["parent"]["parent"]["contact"]["name"] == "Boss"
    # contacts of ancestors keep their own lineage minified (no loops)
    assert clinic["parent"]["contact"]["parent"] == {"_id": "hc", "parent": {"_id": "dh"}}
    assert "parent" not in clinic["parent"]["parent"]
    assert db.docs["chw"]["parent"] == {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}


async def test_many_docs_share_the_same_fetches():
    db = FakeDb(_docs())
    docs = [db.docs["chw"], db.docs["pat"], db.docs["cl"], db.docs["nurse"]]
    result = await Hydrator(db.fetch).hydrate(docs)
    assert len(db.fetches) == 2
    assert [d["_id"] for d in result] == ["chw", "pat", "cl", "nurse"]
    assert result[2]["contact"]["name"] == "CHW"  # a place's primary contact


async def test_missing_ancestors_stay_as_stubs():
    docs = _docs()
    del docs["hc"]
    db = FakeDb(docs)
    [person] = await Hydrator(db.fetch).hydrate([docs["chw"]])
    assert person["parent"]["parent"] == {"_id": "hc", "parent": person["parent"]["parent"]["parent"]}
    assert person["parent"]["parent"]["parent"]["name"] == "District"


async def test_report_gets_contact_patient_and_place_in_three_fetches():
    db = FakeDb(_docs())
    report = {"_id": "r1", "type": "data_record", "form": "P", "reported_date": 1,
              "fields": {"patient_id": "22222", "place_id": "cl"},
              "contact": {"_id": "chw", "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}}
    hydrator = Hydrator(db.fetch, db.codes)
    [filled] = await hydrator.hydrate([report])
    # as cht-core's batch mode: one short-id lookup, then subjects, ancestors and contacts, then their contacts
    assert hydrator.rounds <= 4 and len(db.fetches) <= 3
    assert db.code_lookups == [["22222", "cl"]] or db.code_lookups == [["cl", "22222"]]
    assert filled["contact"]["name"] == "CHW"
    assert filled["contact"]["parent"]["name"] == "Clinic"
    assert filled["contact"]["parent"]["parent"]["contact"]["name"] == "Nurse"
    assert filled["patient"]["_id"] == "pat" and filled["patient"]["parent"]["parent"]["name"] == "HC"
    assert filled["place"]["_id"] == "cl" and filled["place"]["contact"]["name"] == "CHW"
    assert minify(filled) == report


async def test_a_large_batch_hydrates_each_doc_as_small_batches_do():
    """A batch finds the docs it read by id, not by scanning all of them for each lookup (which made a batch
    quadratic): 400 people and reports hydrate as they do in batches of 50."""
    docs = _docs()
    people, reports = [], []
    for n in range(200):
        person = {**docs["pat"], "_id": f"p{n}", "patient_id": f"3{n:04d}", "name": f"P{n}"}
        people.append(person)
        reports.append({"_id": f"r{n}", "type": "data_record", "form": "V", "reported_date": n,
                        "fields": {"patient_id": person["patient_id"]},
                        "contact": {"_id": "chw", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}})
    db = FakeDb({**docs, **{p["_id"]: p for p in people}})
    batch = people + reports
    together = await Hydrator(db.fetch, db.codes).hydrate(batch)
    in_fifties = [d for i in range(0, len(batch), 50)
                  for d in await Hydrator(db.fetch, db.codes).hydrate(batch[i:i + 50])]
    assert together == in_fifties
    assert together[0]["parent"]["contact"]["name"] == "CHW"
    assert together[-1]["patient"]["_id"] == "p199" and together[-1]["contact"]["parent"]["name"] == "Clinic"


async def test_report_with_unknown_subject_has_no_patient():
    db = FakeDb(_docs())
    report = {"_id": "r2", "type": "data_record", "form": "P", "fields": {"patient_id": "99999"},
              "contact": {"_id": "gone"}}
    [filled] = await Hydrator(db.fetch, db.codes).hydrate([report])
    assert "patient" not in filled and filled["contact"] == {"_id": "gone"}


@pytest.mark.parametrize("depth", [1, 5, 40])
async def test_deep_lineages_are_fetched_in_one_round(depth):
    docs = {f"p{i}": {"_id": f"p{i}", "type": "contact", "contact_type": "area"} for i in range(depth)}
    node = None
    for i in reversed(range(depth)):
        node = {"_id": f"p{i}", "parent": node} if node else {"_id": f"p{i}"}
    leaf = {"_id": "leaf", "type": "person", "parent": node}
    db = FakeDb(docs)
    [filled] = await Hydrator(db.fetch).hydrate([leaf])
    assert len(db.fetches) == 1 and len(db.fetches[0]) == depth
    assert parent_ids(filled) == [f"p{i}" for i in range(depth)]


def _linked():
    docs = _docs()
    docs["cl"]["linked_docs"] = {"a": "pat", "b": {"_id": "hc"}, "c": False, "d": [], "e": "nope"}
    docs["pat"]["linked_docs"] = {"x": "cl"}
    return docs


@pytest.mark.parametrize("mode", ["one", "batch"])
async def test_linked_docs_are_filled_on_the_doc_and_its_ancestors(mode):
    db = FakeDb(_linked())
    hydrator = Hydrator(db.fetch, db.codes)
    person = await hydrator.hydrate_one("pat") if mode == "one" else (await hydrator.hydrate([db.docs["pat"]]))[0]
    assert person["linked_docs"]["x"]["_id"] == "cl" and person["linked_docs"]["x"]["name"] == "Clinic"
    clinic = person["parent"]
    assert clinic["linked_docs"]["a"]["name"] == "Patient" and clinic["linked_docs"]["b"]["name"] == "HC"
    assert clinic["linked_docs"]["c"] is False and clinic["linked_docs"]["d"] == [] and clinic["linked_docs"]["e"] == "nope"
    assert clinic["contact"]["name"] == "CHW" and clinic["parent"]["contact"]["name"] == "Nurse"
    assert minify(person)["linked_docs"] == {"x": "cl"}
    assert minify(clinic)["linked_docs"] == {"a": "pat", "b": "hc", "c": False, "e": "nope"}  # [] has no id


async def test_a_place_gets_its_own_contact_not_further_hydrated():
    db = FakeDb(_docs())
    clinic = await Hydrator(db.fetch).hydrate_one("cl")
    assert clinic["contact"] == db.docs["chw"]
    assert clinic["parent"]["contact"] == db.docs["nurse"]


async def test_patient_id_wins_over_patient_uuid_and_any_doc_may_be_the_subject():
    db = FakeDb(_docs())
    report = {"_id": "r", "type": "data_record", "form": "P", "contact": {"_id": "chw"},
              "fields": {"patient_uuid": "boss", "patient_id": "22222", "place_uuid": "hc"}}
    db.docs["r"] = report
    filled = await Hydrator(db.fetch, db.codes).hydrate_one("r")
    assert filled["patient"]["_id"] == "pat" and "place" not in filled  # place_uuid is not read
    db.docs["r"] = {**report, "fields": {"patient_id": "dh"}}  # not a short id: taken as a doc id
    filled = await Hydrator(db.fetch, db.codes).hydrate_one("r")
    assert filled["patient"]["_id"] == "dh"


async def test_one_doc_and_batch_differ_as_in_cht():
    db = FakeDb(_docs())
    # the report's copy of its contact's lineage is stale: the CHW moved to the health center
    db.docs["chw"] = {**db.docs["chw"], "parent": {"_id": "hc", "parent": {"_id": "dh"}}}
    report = {"_id": "r", "type": "data_record", "form": "P",
              "contact": {"_id": "chw", "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}}
    message = {"_id": "m", "type": "data_record", "contact": {"_id": "chw"}}
    db.docs.update(r=report, m=message)
    one = await Hydrator(db.fetch).hydrate_one("r")
    assert one["contact"]["parent"]["_id"] == "cl"  # one doc: the report's own copy of the lineage
    [batch, _] = await Hydrator(db.fetch).hydrate([report, db.docs["pat"]])
    assert batch["contact"]["parent"]["_id"] == "hc"  # batch: the contact's current lineage
    assert await Hydrator(db.fetch).hydrate_one("m") == message  # one doc: a record without a form is as stored
    [filled, _] = await Hydrator(db.fetch).hydrate([message, db.docs["pat"]])
    assert filled["contact"]["name"] == "CHW"  # batch: every data_record


async def test_the_top_ancestor_keeps_its_stored_parent_when_the_lineage_stops_early():
    db = FakeDb(_docs())
    short = {"_id": "x", "type": "person", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}
    db.docs["x"] = short
    filled = await Hydrator(db.fetch).hydrate_one("x")
    assert filled["parent"]["parent"]["_id"] == "hc" and filled["parent"]["parent"]["parent"] == {"_id": "dh"}


async def test_shared_objects_handed_out_by_fetch_are_never_changed():
    db = FakeDb(_linked())
    before = copy.deepcopy(db.docs)
    hydrator = Hydrator(db.fetch, db.codes)
    await hydrator.hydrate(list(db.docs.values()))
    await hydrator.hydrate_one("pat")
    assert db.docs == before


async def test_one_doc_is_read_with_what_it_led_to_last_time():
    """Hints (ancestor -> its contacts; doc -> what its last read fetched beside it) make a warm single-doc read
    one fetch; the docs as read win, and what no hint named is read after."""
    db = FakeDb(_docs())
    hints = {}
    first = await Hydrator(db.fetch, contact_hints=hints).hydrate_one("pat")
    assert len(db.fetches) == 3 and {k: v for k, v in hints.items() if k in db.docs} == {
        "cl": ["chw"], "hc": ["nurse"], "dh": ["boss"]}
    db.fetches.clear()
    assert await Hydrator(db.fetch, contact_hints=hints).hydrate_one("pat") == first
    assert len(db.fetches) == 1 and set(db.fetches[0]) == {"pat", "cl", "hc", "dh", "chw", "nurse", "boss"}
    db.docs["hc"] = {**db.docs["hc"], "contact": {"_id": "boss"}}  # the health center's contact changed
    db.fetches.clear()
    changed = await Hydrator(db.fetch, contact_hints=hints).hydrate_one("pat")
    assert changed["parent"]["parent"]["contact"]["name"] == "Boss", "what the doc names now, not the hint"
    assert hints["hc"] == ["boss"] and len(db.fetches) == 1
    db.docs["nobody"] = {"_id": "nobody", "type": "person", "name": "New", "parent": {"_id": "dh"}}
    db.docs["dh"] = {**db.docs["dh"], "contact": {"_id": "nobody"}}
    db.fetches.clear()
    hinted_wrong = await Hydrator(db.fetch, contact_hints=hints).hydrate_one("pat")
    assert hinted_wrong["parent"]["parent"]["parent"]["contact"]["name"] == "New"
    assert len(db.fetches) == 2, "a contact no hint named is read after"
    db.docs["pat"] = {**db.docs["pat"], "parent": {"_id": "hc", "parent": {"_id": "dh"}}}  # moved up a level
    db.fetches.clear()
    moved = await Hydrator(db.fetch, contact_hints=hints).hydrate_one("pat")
    assert moved["parent"]["_id"] == "hc" and len(db.fetches) == 1, "a stale hint costs nothing"
    for doc_id in ("pat", "cl", "x"):
        assert await Hydrator(db.fetch, contact_hints=hints).hydrate_one(doc_id) == \
            await Hydrator(db.fetch).hydrate_one(doc_id), "hints change the reads, not the result"
