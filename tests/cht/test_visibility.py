"""Who sees what (pure): depths from settings, contacts by lineage, reports by subject; random trees."""

import random

import pytest

from api.auth import Principal
from api.cht.lineage import minify_lineage
from api.cht.visibility import (
    UNRESTRICTED,
    Scope,
    contact_visible,
    depth_in_scope,
    depths,
    doc_visible,
    replication_keys,
    report_visible,
    scope_for,
)
from api.settings import default_settings

SETTINGS = default_settings()


def _contact(doc_id, parent=None, **fields):
    doc = {"_id": doc_id, "type": "person" if parent else "district_hospital", **fields}
    if parent is not None:
        doc["parent"] = minify_lineage(parent)
    return doc


def test_depths_take_the_deepest_role():
    settings = {"replication_depth": [{"role": "a", "depth": 1, "report_depth": 0},
                                      {"role": "b", "depth": "3"}, {"role": "c", "depth": "x"}]}
    assert depths(("a",), settings) == (1, 0)
    assert depths(("a", "b"), settings) == (3, -1)
    assert depths(("c",), settings) == (-1, -1)
    assert depths(("z",), settings) == (-1, -1)
    assert depths(("a",), {}) == (-1, -1)


def test_scope_for_online_offline_and_anonymous():
    assert scope_for(Principal("admin", ("_admin",)), SETTINGS) is UNRESTRICTED
    assert scope_for(Principal("po", ("program_officer",)), SETTINGS) is UNRESTRICTED
    chw = scope_for(Principal("chw", ("chw",), facility_id="f1", contact_id="c1"), SETTINGS)
    assert chw == Scope(restricted=True, facility_ids=("f1",), contact_id="c1", depth=2, report_depth=1,
                       user="chw")
    assert scope_for(None, SETTINGS).restricted
    many = scope_for(Principal("x", ("chw",), facility_id=["f1", "f2"]), SETTINGS)
    assert many.facility_ids == ("f1", "f2")
    unassigned = scope_for(Principal("s", ("chw",), facility_id="f"),
                           {**SETTINGS, "district_admins_access_unallocated_messages": True,
                            "permissions": {"can_view_unallocated_data_records": ["chw"]}})
    assert unassigned.unassigned


def test_contacts_inside_depth_only():
    dh = _contact("dh")
    hc = {"_id": "hc", "type": "health_center", "parent": {"_id": "dh"}}
    cl = {"_id": "cl", "type": "clinic", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}
    person = {"_id": "p", "type": "person", "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}
    scope = Scope(restricted=True, facility_ids=("hc",), depth=1)
    assert [depth_in_scope(scope, d) for d in (dh, hc, cl, person)] == [None, 0, 1, None]
    assert not contact_visible(scope, dh) and contact_visible(scope, cl) and not contact_visible(scope, person)
    unlimited = Scope(restricted=True, facility_ids=("hc",))
    assert contact_visible(unlimited, person)
    assert not contact_visible(Scope(restricted=True), person)
    assert contact_visible(UNRESTRICTED, dh)


def test_replication_keys_match_the_view_for_reports():
    report = {"_id": "r", "type": "data_record", "form": "F", "fields": {"patient_id": "123", "private": True},
              "contact": {"_id": "c", "parent": {"_id": "cl"}}}
    assert replication_keys(report) == [("123", {"type": "data_record", "subject": "123", "submitter": "c",
                                                 "private": True})]
    signoff = {**report, "fields": {"patient_id": "123", "needs_signoff": True}}
    assert [k for k, _ in replication_keys(signoff)] == ["123", "c", "cl"]
    no_subject = {"_id": "r", "type": "data_record", "form": "F", "contact": {"_id": "c"}}
    assert replication_keys(no_subject)[0][0] == "c"
    errors = {**report, "errors": [{"code": "registration_not_found"}]}
    assert replication_keys(errors)[0][0] == "c"
    assert replication_keys({"_id": "settings"}) == [("_all", {})]
    assert replication_keys({"_id": "form:x", "type": "form"}) == [("_all", {})]
    assert replication_keys({"_id": "sms", "type": "data_record"})[0][0] == "_unassigned"


def test_reports_by_subject_depth_and_sensitivity():
    cl = {"_id": "cl", "type": "clinic", "parent": {"_id": "hc"}}
    patient = {"_id": "pat", "type": "person", "patient_id": "5", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}
    me = {"_id": "me", "type": "person", "parent": {"_id": "hc"}}
    scope = Scope(restricted=True, facility_ids=("hc",), contact_id="me", depth=2, report_depth=1)
    by_me = {"_id": "r", "type": "data_record", "form": "F", "fields": {"patient_id": "5"},
             "contact": {"_id": "me", "parent": {"_id": "hc"}}}
    by_other = {**by_me, "contact": {"_id": "other", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}}
    subjects = {"5": patient}
    assert report_visible(scope, by_me, subjects)  # own report, deeper than report_depth
    assert not report_visible(scope, by_other, subjects)  # patient at depth 2 > report_depth 1
    assert report_visible(Scope(restricted=True, facility_ids=("hc",), depth=2), by_other, subjects)
    assert not report_visible(scope, by_other, {})  # unknown subject: nothing to place it by
    about_place = {**by_other, "fields": {"place_id": "cl"}}
    assert report_visible(scope, about_place, {"cl": cl})
    # about the user themself, by someone outside the user's area: hidden
    boss = {**by_me, "fields": {"patient_uuid": "me"}, "contact": {"_id": "boss", "parent": {"_id": "dh"}}}
    assert not report_visible(scope, boss, {"me": me})
    colleague = {**boss, "contact": {"_id": "other", "parent": {"_id": "cl", "parent": {"_id": "hc"}}}}
    assert report_visible(scope, colleague, {"me": me})
    assert doc_visible(scope, {"_id": "settings"}) and not doc_visible(scope, {"_id": "x", "type": "task"})
    assert doc_visible(UNRESTRICTED, by_other)


def test_needs_signoff_reaches_the_submitters_ancestors():
    report = {"_id": "r", "type": "data_record", "form": "F",
              "fields": {"patient_id": "far", "needs_signoff": True},
              "contact": {"_id": "c", "parent": {"_id": "cl", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}}}
    supervisor = Scope(restricted=True, facility_ids=("hc",), depth=1)
    assert report_visible(supervisor, report, {})
    assert not report_visible(Scope(restricted=True, facility_ids=("other",)), report, {})
    without = {**report, "fields": {"patient_id": "far"}}
    assert not report_visible(supervisor, without, {})


def _random_tree(rng, size):
    """A random forest of contacts; returns docs with minified lineage and a child -> parent map."""
    parents: dict[str, str | None] = {}
    docs = {}
    for i in range(size):
        doc_id = f"c{i}"
        parent = rng.choice([None] + list(docs)) if docs and rng.random() > 0.1 else None
        parents[doc_id] = parent
        doc = {"_id": doc_id, "type": "contact", "contact_type": "x", "patient_id": f"s{i}"}
        if parent:
            doc["parent"] = minify_lineage({"_id": parent, "parent": docs[parent].get("parent")})
        docs[doc_id] = doc
    return docs, parents


def _brute_depth(parents, doc_id, facility):
    level = 0
    node = doc_id
    while node is not None:
        if node == facility:
            return level
        node = parents[node]
        level += 1
    return None


@pytest.mark.parametrize("seed", range(20))
def test_random_trees_agree_with_walking_the_tree(seed):
    rng = random.Random(seed)
    docs, parents = _random_tree(rng, 60)
    for _ in range(20):
        facility = rng.choice(list(docs))
        depth = rng.choice([-1, 0, 1, 2, 3])
        report_depth = rng.choice([-1, 0, 1])
        scope = Scope(restricted=True, facility_ids=(facility,), depth=depth, report_depth=report_depth,
                      contact_id=rng.choice(list(docs)))
        for doc_id, doc in docs.items():
            level = _brute_depth(parents, doc_id, facility)
            expected = level is not None and (depth < 0 or level <= depth)
            assert contact_visible(scope, doc) == expected, (seed, facility, depth, doc_id)
        subject_id, submitter_id = rng.choice(list(docs)), rng.choice(list(docs))
        report = {"_id": "r", "type": "data_record", "form": "F",
                  "fields": {"patient_id": docs[subject_id]["patient_id"]},
                  "contact": {"_id": submitter_id, "parent": docs[submitter_id].get("parent")}}
        level = _brute_depth(parents, subject_id, facility)
        submitter_level = _brute_depth(parents, submitter_id, facility)
        in_area = level is not None and (depth < 0 or level <= depth)
        submitter_ok = submitter_level is not None and (depth < 0 or submitter_level <= depth)
        sensitive = subject_id in (scope.contact_id, facility) and not submitter_ok
        deep = report_depth >= 0 and submitter_id != scope.contact_id and level is not None and level > report_depth
        expected = in_area and not sensitive and not deep
        assert report_visible(scope, report, {docs[subject_id]["patient_id"]: docs[subject_id]}) == expected
