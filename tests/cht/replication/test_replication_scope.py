"""The visible set from the views agrees with ``api.cht.visibility`` doc by doc, on generated hierarchies."""

import asyncio
import random

import pytest

from api.cht.lineage import minify_contact
from api.cht.replication import scope as replication_scope
from api.cht.visibility import Scope, doc_visible
from api.couch import Couch
from tests.hierarchy import build, load

USER = "scope-user"


def _extras(h, rng):
    """Docs the plain hierarchy lacks: sign-off reports, reports about supervisors, SMS, tasks, targets..."""
    people = [h.by_id[i] for i in h.people]
    places = [h.by_id[i] for i in h.districts + h.centers + h.clinics]
    extra = []
    for n in range(40):
        submitter = rng.choice(people)
        subject = rng.choice(people + places)
        fields = {"patient_uuid": subject["_id"]} if rng.random() < 0.3 else \
            {"patient_id": subject.get("patient_id") or subject.get("place_id")}
        if rng.random() < 0.3:
            fields["needs_signoff"] = True
        extra.append({"_id": f"extra-report-{n}", "type": "data_record", "form": "V", "fields": fields,
                      "contact": minify_contact(submitter), "reported_date": 1})
    for n in range(8):
        extra.append({"_id": f"extra-sms-{n}", "type": "data_record", "sms_message": {"message": "hi"},
                      "contact": minify_contact(rng.choice(people)) if n % 2 else None, "reported_date": 1})
    for n in range(8):
        user = rng.choice([USER, "org.couchdb.user:" + USER, "someone-else"])
        extra.append({"_id": f"extra-task-{n}", "type": "task", "user": user, "owner": rng.choice(people)["_id"]})
        extra.append({"_id": f"extra-target-{n}", "type": "target", "owner": rng.choice(people)["_id"]})
    extra += [{"_id": "form:extra", "type": "form"}, {"_id": "translations-sw", "type": "translations"},
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
    subjects = {}
    for doc in docs.values():
        if doc.get("type") in ("person", "clinic", "health_center", "district_hospital"):
            subjects[doc["_id"]] = doc
            for code in ("patient_id", "place_id"):
                if doc.get(code):
                    subjects[str(doc[code])] = doc
    return h, docs, subjects


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
                    user=rng.choice([USER, USER, None]))


@pytest.mark.parametrize("seed", range(4))
async def test_visible_set_matches_visibility_doc_by_doc(world, couch, config, seed):
    h, docs, subjects = world
    db = couch.db(config.db_medic)
    for scope in _scopes(h, seed):
        found = [d async for d in replication_scope.visible_docs(db, scope)]
        ids = [d.id for d in found]
        assert len(ids) == len(set(ids)), "each id once"
        expected = {doc_id for doc_id, doc in docs.items() if doc_visible(scope, doc, subjects)}
        assert set(ids) == expected, (scope, sorted(set(ids) ^ expected)[:10])
        assert expected, scope  # every scope sees at least its facility
        counts = await replication_scope.count(db, scope)
        tasks = sum(1 for i in expected if docs[i].get("type") == "task")
        assert (counts.total_docs, counts.warn_docs) == (len(expected), len(expected) - tasks)


async def test_the_rules_that_matter_are_exercised(world, couch, config):
    """The generated data really has sensitive, deep, signoff, task and target cases, seen and hidden."""
    h, docs, subjects = world
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
    deep = [i for i in hidden_reports
            if doc_visible(Scope(restricted=True, facility_ids=(center["_id"],), depth=2), docs[i], subjects)]
    assert deep, "report_depth hides some reports inside the area"


async def test_online_scope_is_refused(couch, config):
    with pytest.raises(ValueError):
        [d async for d in replication_scope.visible_docs(couch.db(config.db_medic), Scope(restricted=False))]
