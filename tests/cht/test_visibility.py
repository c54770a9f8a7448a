"""Who sees what (pure), rule by rule as cht-core's replication authorization decides; random trees."""

import random

import pytest

from api.auth import Principal
from api.cht.lineage import minify_lineage
from api.cht.visibility import (
    UNRESTRICTED,
    ReplicationDepth,
    Scope,
    contact_visible,
    depth_in_scope,
    depths,
    doc_visible,
    js_parse_int,
    js_string,
    js_truthy,
    lookup_keys,
    replication_depth,
    replication_keys,
    report_visible,
    scope_for,
)
from api.settings import default_settings

SETTINGS = default_settings()


@pytest.mark.parametrize("value, expected", [
    (2, 2), ("3", 3), ("2.5", 2), (2.9, 2), (" -1", -1), ("4 levels", 4), ("+1", 1), ([3], 3), (1e21, 1),
    ("x", None), ("", None), (None, None), (True, None), ({}, None), ([], None), (float("nan"), None),
])
def test_parse_int_is_javascripts(value, expected):
    assert js_parse_int(value) == expected


def test_truthiness_and_strings_are_javascripts():
    assert [js_truthy(v) for v in (0, 0.0, "", None, False, float("nan"))] == [False] * 6
    assert [js_truthy(v) for v in ("false", "0", [], {}, -1, True)] == [True] * 6
    assert [js_string(v) for v in (5, 5.0, 1.5, True, [1, None, "a"], {"a": 1})] == \
        ["5", "5", "1.5", "true", "1,,a", "[object Object]"]


def test_replication_depth_is_chosen_as_cht_chooses_it():
    entries = [{"role": "a", "depth": 1, "report_depth": 0},
               {"role": "a", "depth": 5},  # only the first entry of a role counts
               {"role": "b", "depth": "3"}, {"role": "c", "depth": "x", "report_depth": 9},
               {"role": "d", "depth": "2.5", "report_depth": 1, "replicate_primary_contacts": True},
               {"role": "e", "depth": 2, "report_depth": 0},
               {"role": "f", "depth": 2, "report_depth": "junk", "replicate_primary_contacts": "false"},
               {"role": "g", "depth": -1, "report_depth": 1}]
    settings = {"replication_depth": entries}
    assert replication_depth(("a",), settings) == ReplicationDepth(1, 0, False)
    assert replication_depth(("a", "b"), settings) == ReplicationDepth(3, -1, False)
    assert replication_depth(("c",), settings) == ReplicationDepth()  # an unparsable depth drops the role
    assert replication_depth(("z",), settings) == ReplicationDepth()
    assert replication_depth(("a",), {}) == ReplicationDepth()
    assert replication_depth(("a",), {"replication_depth": {"role": "a"}}) == ReplicationDepth()
    # equally deep: the largest report depth, primary contacts if any entry says so
    assert replication_depth(("d", "e"), settings) == ReplicationDepth(2, 1, True)
    assert replication_depth(("e", "d"), settings) == ReplicationDepth(2, 1, True)
    # an unparsable report depth is no limit; "false" is a true value in JavaScript
    assert replication_depth(("f",), settings) == ReplicationDepth(2, -1, True)
    # a depth of -1 ties the "no entry" depth: no depth limit, and the entry's report depth
    assert replication_depth(("g",), settings) == ReplicationDepth(-1, 1, False)
    assert depths(("d",), settings) == (2, 1)


def test_scope_for_online_offline_and_anonymous():
    assert scope_for(Principal("admin", ("_admin",)), SETTINGS) is UNRESTRICTED
    assert scope_for(Principal("po", ("program_officer",)), SETTINGS) is UNRESTRICTED
    chw = scope_for(Principal("chw", ("chw",), facility_id="f1", contact_id="c1"), SETTINGS)
    assert chw == Scope(restricted=True, facility_ids=("f1",), contact_id="c1", depth=2, report_depth=1,
                        user="chw")
    assert scope_for(None, SETTINGS).restricted
    many = scope_for(Principal("x", ("chw",), facility_id=["f1", "f2", "f1"]), SETTINGS)
    assert many.facility_ids == ("f1", "f2")
    unassigned = scope_for(Principal("s", ("chw",), facility_id="f"),
                           {**SETTINGS, "district_admins_access_unallocated_messages": True,
                            "permissions": {"can_view_unallocated_data_records": ["chw"]}})
    assert unassigned.unassigned
    without_permission = scope_for(Principal("s", ("chw",), facility_id="f"),
                                   {**SETTINGS, "district_admins_access_unallocated_messages": True,
                                    "permissions": {}})
    assert not without_permission.unassigned
    primary = scope_for(Principal("s", ("chw",), facility_id="f"),
                        {**SETTINGS, "replication_depth": [{"role": "chw", "depth": 1,
                                                            "replicate_primary_contacts": True}]})
    assert primary.primary_contacts and primary.depth == 1


def test_contacts_inside_depth_only():
    dh = {"_id": "dh", "type": "district_hospital"}
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


# A small hierarchy: district dh > centre hc > clinics c1, c2; people in them.
DH = {"_id": "dh", "type": "district_hospital", "place_id": "900"}
HC = {"_id": "hc", "type": "health_center", "place_id": "901", "parent": {"_id": "dh"},
      "contact": {"_id": "nurse"}}
C1 = {"_id": "c1", "type": "clinic", "place_id": "902", "parent": {"_id": "hc", "parent": {"_id": "dh"}},
      "contact": {"_id": "chw"}}
C2 = {"_id": "c2", "type": "clinic", "place_id": "903", "parent": {"_id": "hc", "parent": {"_id": "dh"}}}
C3 = {"_id": "c3", "type": "clinic", "parent": {"_id": "other-hc"}}
NURSE = {"_id": "nurse", "type": "person", "patient_id": "100", "parent": minify_lineage(C2)}  # lives in c2
CHW = {"_id": "chw", "type": "person", "patient_id": "101", "parent": minify_lineage(C1)}
PAT = {"_id": "pat", "type": "person", "patient_id": "102", "parent": minify_lineage(C1)}
BOSS = {"_id": "boss", "type": "person", "patient_id": "103", "parent": minify_lineage(DH)}
FAR = {"_id": "far", "type": "person", "patient_id": "104", "parent": minify_lineage(C3)}
CONTACTS = [DH, HC, C1, C2, C3, NURSE, CHW, PAT, BOSS, FAR]
BY_KEY = {**{c["_id"]: c for c in CONTACTS}, **{c.get("patient_id") or c.get("place_id"): c for c in CONTACTS
                                                 if c.get("patient_id") or c.get("place_id")}}
PRIMARY_OF = {"nurse": [HC], "chw": [C1]}


def _report(subject_field, about, by, **fields):
    return {"_id": f"r-{about}-{by}", "type": "data_record", "form": "F",
            "fields": {subject_field: about, **fields},
            "contact": {"_id": by, "parent": BY_KEY[by].get("parent")}}


def _visible(scope, doc):
    subjects = {k: BY_KEY[k] for k in lookup_keys(doc) if k in BY_KEY}
    return doc_visible(scope, doc, subjects, PRIMARY_OF)


def test_primary_contacts_replicate_with_their_place_only_when_configured():
    sup = Scope(restricted=True, facility_ids=("hc",), contact_id="nurse", depth=1, user="sup")
    with_primary = Scope(**{**sup.__dict__, "primary_contacts": True})
    assert not _visible(sup, NURSE) and _visible(with_primary, NURSE)  # the nurse lives in c2, at depth 2
    assert not _visible(with_primary, PAT)  # not a primary contact, deeper than the depth
    assert not _visible(with_primary, FAR)
    about_nurse = _report("patient_id", "100", "pat")
    assert not _visible(sup, about_nurse) and _visible(with_primary, about_nurse)
    target = {"_id": "t", "type": "target", "owner": "nurse"}
    assert not _visible(sup, target) and _visible(with_primary, target)


def test_a_primary_contact_counts_at_the_level_of_its_place_for_report_depth():
    # the chw lives in c1 (level 2 under hc) and is c1's primary contact (level 1)
    sup = Scope(restricted=True, facility_ids=("hc",), contact_id="nurse", depth=2, report_depth=1)
    about_chw = _report("patient_id", "101", "pat")
    assert not _visible(sup, about_chw)
    assert _visible(Scope(**{**sup.__dict__, "primary_contacts": True}), about_chw)


def test_private_reports_about_the_user_by_outsiders_are_hidden_others_are_not():
    chw = Scope(restricted=True, facility_ids=("c1",), contact_id="chw", depth=1, user="chw")
    private = _report("patient_id", "101", "boss", private=True)
    assert not _visible(chw, private)  # private, about the user, by someone outside their area
    assert _visible(chw, _report("patient_id", "101", "boss"))  # not private: CHT sends it
    assert not _visible(chw, _report("patient_id", "101", "boss", private="true"))
    assert _visible(chw, _report("patient_id", "101", "boss", private="yes"))  # only true or "true" is private
    assert not _visible(chw, _report("place_id", "902", "boss", private=True))  # about the user's place, by code
    assert not _visible(chw, _report("place_id", "c1", "boss", private=True))
    assert _visible(chw, _report("patient_id", "101", "pat", private=True))  # by someone in the area
    assert _visible(chw, _report("patient_id", "102", "boss", private=True))  # about someone else
    # the submitter is judged by where they are now, not by the lineage the report copied
    moved = {**_report("patient_id", "101", "pat", private=True), "contact": {"_id": "boss", "parent": {"_id": "c1"}}}
    assert not _visible(chw, moved)


def test_report_depth_and_own_reports():
    sup = Scope(restricted=True, facility_ids=("hc",), contact_id="nurse", depth=2, report_depth=1)
    assert not _visible(sup, _report("patient_id", "102", "chw"))  # pat at level 2
    assert _visible(sup, _report("patient_id", "102", "nurse"))  # submitted by the user
    assert _visible(sup, _report("place_id", "902", "chw"))  # about c1, level 1
    assert _visible(Scope(**{**sup.__dict__, "report_depth": -1}), _report("patient_id", "102", "chw"))
    assert not _visible(sup, _report("patient_id", "nobody", "chw"))  # an unknown subject: nothing to place it by
    # no depth limit but a report depth: CHT gives no contact a level, so only the user's own reports pass
    unlimited = Scope(restricted=True, facility_ids=("hc",), contact_id="nurse", report_depth=1)
    assert not _visible(unlimited, _report("place_id", "902", "chw"))
    assert _visible(unlimited, _report("place_id", "902", "nurse"))
    assert _visible(unlimited, PAT)


def test_needs_signoff_reaches_the_submitters_ancestors():
    report = _report("patient_id", "104", "chw", needs_signoff=True)
    sup = Scope(restricted=True, facility_ids=("hc",), depth=1)
    assert [k for k, _ in replication_keys(report)] == ["104", "chw", "c1", "hc", "dh"]
    assert _visible(sup, report)
    assert not _visible(Scope(restricted=True, facility_ids=("other-hc",), depth=0), report)
    assert not _visible(sup, _report("patient_id", "104", "chw"))
    assert not _visible(sup, _report("patient_id", "104", "chw", needs_signoff="yes"))
    assert _visible(sup, _report("patient_id", "104", "chw", needs_signoff="true"))


def test_tasks_by_their_users_settings_id_targets_by_owner():
    chw = Scope(restricted=True, facility_ids=("c1",), contact_id="chw", depth=1, user="mary")
    assert _visible(chw, {"_id": "t1", "type": "task", "user": "org.couchdb.user:mary"})
    assert not _visible(chw, {"_id": "t2", "type": "task", "user": "mary"})  # CHT names users by their doc id
    assert not _visible(chw, {"_id": "t3", "type": "task", "user": "org.couchdb.user:john"})
    assert _visible(chw, {"_id": "t4", "type": "task", "user": "pat"})  # any subject key, as CHT
    assert _visible(chw, {"_id": "g1", "type": "target", "owner": "pat"})
    assert _visible(chw, {"_id": "g2", "type": "target", "owner": "102"})
    assert not _visible(chw, {"_id": "g3", "type": "target", "owner": "far"})
    assert not _visible(chw, {"_id": "x", "type": "feedback"})


def test_global_and_own_docs():
    chw = Scope(restricted=True, facility_ids=("c1",), user="mary")
    for doc in ({"_id": "settings"}, {"_id": "extension-libs"}, {"_id": "resources"}, {"_id": "privacy-policies"},
                {"_id": "form:x", "type": "form"}, {"_id": "messages-en", "type": "translations"},
                {"_id": "ext", "type": "ui-extension"}, {"_id": "_design/medic-client"},
                {"_id": "org.couchdb.user:mary", "type": "user-settings"}):
        assert _visible(chw, doc), doc
    for doc in ({"_id": "_design/medic"}, {"_id": "org.couchdb.user:john", "type": "user-settings"},
                {"_id": "migration-log"}, {"_id": "tl", "type": "token_login"}):
        assert not _visible(chw, doc), doc


def test_unallocated_reports_by_permission():
    sms = {"_id": "sms", "type": "data_record", "sms_message": {"message": "hi"}}
    assert replication_keys(sms)[0][0] == "_unassigned"
    scope = Scope(restricted=True, facility_ids=("c1",), report_depth=0, depth=1)
    assert not _visible(scope, sms) and _visible(Scope(**{**scope.__dict__, "unassigned": True}), sms)


def test_replication_keys_as_the_view_emits_them():
    report = {"_id": "r", "type": "data_record", "form": "F", "fields": {"patient_id": "123", "private": True},
              "contact": {"_id": "c", "parent": {"_id": "cl"}}}
    assert replication_keys(report) == [("123", {"type": "data_record", "subject": "123", "submitter": "c",
                                                 "private": True})]
    no_subject = {"_id": "r", "type": "data_record", "form": "F", "contact": {"_id": "c"}}
    assert replication_keys(no_subject)[0][0] == "c"
    errors = {**report, "errors": [{"code": "registration_not_found"}]}
    assert replication_keys(errors)[0][0] == "c"
    # JavaScript truthiness: 0 is no subject, a number is a key as a string
    assert replication_keys({**report, "fields": {"patient_id": 0, "place_id": 55}})[0][0] == "55"
    assert replication_keys({**report, "fields": {"patient_id": {"a": 1}}})[0][0] == "[object Object]"
    assert replication_keys({"_id": "settings"}) == [("_all", {})]
    assert replication_keys({"_id": "form:x", "type": "form"}) == [("_all", {})]
    assert replication_keys({"_id": "t", "type": "task", "user": 7}) == [("7", {"type": "task"})]
    assert replication_keys({"_id": "t", "type": "task"}) == []
    assert lookup_keys(report) == ["123", "c"]


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
    for doc in docs.values():
        if rng.random() < 0.3:
            doc["contact"] = {"_id": rng.choice(list(docs))}
    return docs, parents


def _brute_level(parents, doc_id, facility):
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
    """CHT's rules, written again the simple way (walk the tree), against the functions."""
    rng = random.Random(seed)
    docs, parents = _random_tree(rng, 60)
    primary_of: dict[str, list[dict]] = {}
    for doc in docs.values():
        if doc.get("contact"):
            primary_of.setdefault(doc["contact"]["_id"], []).append(doc)
    subjects = {**docs, **{d["patient_id"]: d for d in docs.values()}}
    for _ in range(20):
        facility = rng.choice(list(docs))
        depth = rng.choice([-1, 0, 1, 2, 3])
        report_depth = rng.choice([-1, 0, 1])
        scope = Scope(restricted=True, facility_ids=(facility,), depth=depth, report_depth=report_depth,
                      contact_id=rng.choice(list(docs)), primary_contacts=rng.random() < 0.5)

        def in_area(doc_id):
            level = _brute_level(parents, doc_id, facility)
            return level if level is not None and (depth < 0 or level <= depth) else None

        def member(doc_id):
            """(is a subject, level for report_depth)"""
            places = [p["_id"] for p in primary_of.get(doc_id, []) if in_area(p["_id"]) is not None] \
                if scope.primary_contacts else []
            own = in_area(doc_id)
            if own is None and not places:
                return False, None
            level = min(in_area(p) for p in places) if places else own
            return True, (level if depth >= 0 else None)

        for doc_id, doc in docs.items():
            assert contact_visible(scope, doc, primary_of) == member(doc_id)[0], (seed, facility, depth, doc_id)
        subject_id, submitter_id = rng.choice(list(docs)), rng.choice(list(docs))
        private = rng.random() < 0.5
        report = {"_id": "r", "type": "data_record", "form": "F",
                  "fields": {"patient_id": docs[subject_id]["patient_id"], "private": private},
                  "contact": {"_id": submitter_id, "parent": docs[submitter_id].get("parent")}}
        is_subject, level = member(subject_id)
        sensitive = private and subject_id in (scope.contact_id, facility) and not member(submitter_id)[0]
        deep = report_depth >= 0 and submitter_id != scope.contact_id and (level is None or level > report_depth)
        expected = is_subject and not sensitive and not deep
        assert report_visible(scope, report, subjects, primary_of) == expected, (seed, subject_id, submitter_id)
