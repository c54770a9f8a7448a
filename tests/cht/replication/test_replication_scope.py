"""The visible set from the views agrees with ``api.cht.visibility`` doc by doc, on generated hierarchies."""

import asyncio
import random

import pytest

from api.cht.lineage import minify_contact
from api.cht.replication import scope as replication_scope
from api.cht.visibility import Scope, doc_visible, lookup_keys
from api.couch import Couch
from tests.hierarchy import build, load

USER = "scope-user"


def _extras(h, rng):
    """Docs the plain hierarchy lacks: sign-off reports, reports about supervisors, SMS, tasks, targets..."""
    people = [h.by_id[i] for i in h.people]
    places = [h.by_id[i] for i in h.districts + h.centers + h.clinics]
    extra = []
    for n in range(60):
        submitter = rng.choice(people)
        subject = rng.choice(people + places)
        fields = {"patient_uuid": subject["_id"]} if rng.random() < 0.3 else \
            {"patient_id": subject.get("patient_id") or subject.get("place_id")}
        if rng.random() < 0.3:
            fields["needs_signoff"] = rng.choice([True, "true", "yes"])
        if rng.random() < 0.4:
            fields["private"] = rng.choice([True, "true", 1])
        extra.append({"_id": f"extra-report-{n}", "type": "data_record", "form": "V", "fields": fields,
                      "contact": minify_contact(submitter), "reported_date": 1})
    for n in range(8):
        extra.append({"_id": f"extra-sms-{n}", "type": "data_record", "sms_message": {"message": "hi"},
                      "contact": minify_contact(rng.choice(people)) if n % 2 else None, "reported_date": 1})
    for n in range(12):
        user = rng.choice([USER, "org.couchdb.user:" + USER, "someone-else", rng.choice(people)["_id"]])
        extra.append({"_id": f"extra-task-{n}", "type": "task", "user": user, "owner": rng.choice(people)["_id"]})
        extra.append({"_id": f"extra-target-{n}", "type": "target", "owner": rng.choice(people)["_id"]})
    # primary contacts living outside their place (a supervisor's contact in a clinic of another district)
    for place in rng.sample(places, len(places) // 3):
        place["contact"] = minify_contact(rng.choice(people))
    extra += [{"_id": "form:extra", "type": "form"}, {"_id": "translations-sw", "type": "translations"},
              {"_id": "extension-libs"}, {"_id": "extra-ui", "type": "ui-extension"},
              {"_id": "org.couchdb.user:" + USER, "type": "user-settings", "name": USER},
              {"_id": "org.couchdb.user:other", "type": "user-settings", "name": "other"},
              {"_id": "extra-feedback", "type": "feedback"}]
    for doc in extra:
        h.add(doc)


@pytest.fixture(scope="module")
def world(config):
    h = build(seed=7, districts=2, centers=2, clinics=2, people=5, reports_per_clinic=4)
    _extras(h, random.Random(7))

    async def go():
        async with Couch.from_config(config) as couch:
            await load(couch.db(config.db_medic), h)
            return (await couch.db(config.db_medic).all_docs(include_docs=True))["rows"]

    docs = {row["id"]: row["doc"] for row in asyncio.run(go())}
    subjects, primary_of = {}, {}
    for doc in docs.values():
        if doc.get("type") in ("person", "clinic", "health_center", "district_hospital"):
            subjects[doc["_id"]] = doc
            for code in ("patient_id", "place_id"):
                if doc.get(code):
                    subjects[str(doc[code])] = doc
            if doc.get("contact"):
                primary_of.setdefault(doc["contact"]["_id"], []).append(doc)
    return h, docs, (subjects, primary_of)


def brute_force(docs, lookups, scope):
    """Every doc judged one by one by api.cht.visibility."""
    subjects, primary_of = lookups
    return {doc_id for doc_id, doc in docs.items()
            if doc_visible(scope, doc, {k: subjects[k] for k in lookup_keys(doc) if k in subjects}, primary_of)}


def _scopes(h, seed):
    rng = random.Random(seed)
    places = h.districts + h.centers + h.clinics
    for _ in range(12):
        facilities = tuple(rng.sample(places, rng.choice([1, 1, 1, 2])))
        depth = rng.choice([-1, 0, 1, 2, 3])
        report_depth = rng.choice([-1, -1, 0, 1])
        own = h.by_id[facilities[0]]["contact"]["_id"]
        contact = rng.choice([own, own, rng.choice(h.people), None])
        yield Scope(restricted=True, facility_ids=facilities, contact_id=contact, depth=depth,
                    report_depth=report_depth, unassigned=rng.random() < 0.3,
                    user=rng.choice([USER, USER, None]), primary_contacts=rng.random() < 0.5)


@pytest.mark.parametrize("seed", range(4))
async def test_visible_set_matches_visibility_doc_by_doc(world, couch, config, seed):
    h, docs, lookups = world
    db = couch.db(config.db_medic)
    for scope in _scopes(h, seed):
        found = [d async for d in replication_scope.visible_docs(db, scope)]
        ids = [d.id for d in found]
        assert len(ids) == len(set(ids)), "each id once"
        expected = brute_force(docs, lookups, scope)
        assert set(ids) == expected, (scope, sorted(set(ids) ^ expected)[:10])
        assert expected, scope  # every scope sees at least its facility
        counts = await replication_scope.count(db, scope)
        tasks = sum(1 for i in expected if docs[i].get("type") == "task")
        always = {"_design/medic-client", "org.couchdb.user:" + USER} if scope.user else {"_design/medic-client"}
        shown = len(expected - always) + 2  # CHT counts its two always-sent docs, present or not
        assert (counts.total_docs, counts.warn_docs) == (shown, shown - tasks)


async def test_the_rules_that_matter_are_exercised(world, couch, config):
    """The generated data really has sensitive, deep, signoff, task and target cases, seen and hidden."""
    h, docs, lookups = world
    db = couch.db(config.db_medic)
    center = h.by_id[h.centers[0]]
    scope = Scope(restricted=True, facility_ids=(center["_id"],), contact_id=center["contact"]["_id"], depth=2,
                  report_depth=1, user=USER)
    ids = {d.id async for d in replication_scope.visible_docs(db, scope)}
    kinds = {docs[i].get("type") for i in ids}
    assert {"task", "data_record", "person", "clinic", "health_center", "form"} <= kinds
    assert "org.couchdb.user:" + USER in ids and "org.couchdb.user:other" not in ids
    assert "_design/medic-client" in ids
    hidden_reports = [i for i, d in docs.items() if d.get("type") == "data_record" and i not in ids]
    assert hidden_reports
    unlimited = brute_force(docs, lookups, Scope(restricted=True, facility_ids=(center["_id"],), depth=2))
    assert set(hidden_reports) & unlimited, "report_depth hides some reports inside the area"
    assert "extension-libs" in ids and "extra-ui" in ids


async def test_every_rule_is_met_both_ways(world, couch, config):
    """For each rule of CHT's, the generated data has a doc it lets through and one it keeps out."""
    h, docs, lookups = world
    db = couch.db(config.db_medic)
    seen = {"private kept": 0, "private hidden": 0, "primary in": 0, "primary out": 0, "signoff in": 0}
    for seed in range(4):
        for scope in _scopes(h, seed):
            ids = {d.id async for d in replication_scope.visible_docs(db, scope)}
            plain = Scope(**{**scope.__dict__, "primary_contacts": False})
            for doc_id, doc in docs.items():
                fields = doc.get("fields") or {}
                about_own = doc.get("type") == "data_record" and \
                    lookups[0].get(fields.get("patient_uuid") or fields.get("patient_id"), {}).get("_id") in \
                    {scope.contact_id, *scope.facility_ids}
                if about_own and fields.get("private") in (True, "true"):
                    seen["private kept" if doc_id in ids else "private hidden"] += 1
                if doc.get("type") == "person" and scope.primary_contacts and doc_id in lookups[1] and \
                        doc_id not in brute_force({doc_id: doc}, lookups, plain):
                    seen["primary in" if doc_id in ids else "primary out"] += 1
                if fields.get("needs_signoff") in (True, "true") and doc_id in ids and \
                        doc_id not in brute_force({doc_id: {**doc, "fields": {**fields, "needs_signoff": False}}},
                                                  lookups, scope):
                    seen["signoff in"] += 1
    assert all(seen.values()), seen


async def test_online_scope_is_refused(couch, config):
    with pytest.raises(ValueError):
        [d async for d in replication_scope.visible_docs(couch.db(config.db_medic), Scope(restricted=False))]
