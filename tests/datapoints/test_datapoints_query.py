"""Pure parts of the datapoints API: filters to Mango selectors, the exact aggregation rule, coercion, CSV cells."""

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from api.datapoints.aggregate import UNSURE, block_of, calculate, exact_total, numbers_of, rolled_up, spans, Value
from api.datapoints.model import BOOL, DATE, DATETIME, INT, JSON, NUMBER, RESOURCES, STRING, csv_cell, slugify
from api.datapoints.query import FilterError, Query, build
from api.datapoints.writes import coerce
from api.errors import BadRequest
from api.openapi import build as openapi
from api.schemas import validator

ROOT = Path(__file__).resolve().parents[2]
REGION = RESOURCES["region"]
CAMPAIGN = RESOURCES["campaign"]


def selector(res, **filters):
    return build(res, filters).selector()


def test_exact_in_and_default_index_condition():
    assert selector(REGION) == {"kind": "region", "id": {"$gt": None}}
    assert selector(REGION, name="Kano") == {"kind": "region", "id": {"$gt": None}, "name": {"$eq": "Kano"}}
    assert selector(REGION, id__in="21,164")["id"] == {"$in": [21, 164]}
    assert selector(REGION, id__in="7")["id"] == {"$eq": 7}
    assert selector(REGION, office="2")["office_id"] == {"$eq": 2}, "a reference filters by its id"
    assert selector(RESOURCES["group_permission"], indicator="21")["indicator_id"] == {"$eq": 21}


def test_integer_bounds_are_sent_inclusive_and_merged():
    assert selector(REGION, id__gt="5")["id"] == {"$gte": 6}
    assert selector(REGION, id__lt="5")["id"] == {"$lte": 4}
    assert selector(REGION, id__gt="5", id__gte="3", id__lte="9")["id"] == {"$gte": 6, "$lte": 9}
    assert selector(CAMPAIGN, start_date__gt="2015-01-01", start_date__gte="2014-01-01")["start_date"] == \
        {"$gt": "2015-01-01"}
    assert selector(CAMPAIGN, start_date__gte="2015-01-01", start_date__gt="2015-01-01")["start_date"] == \
        {"$gt": "2015-01-01"}


def test_exact_and_in_absorb_other_conditions():
    assert selector(REGION, id__in="1,5,9", id__gte="5")["id"] == {"$in": [5, 9]}
    assert selector(REGION, id="3", id__gt="5") is None, "a contradiction matches nothing, without a query"
    assert selector(REGION, name="Kano", name__startswith="Ka")["name"] == {"$eq": "Kano"}
    assert selector(REGION, name="Kano", name__contains="x") is None
    assert selector(REGION, id__gte="9", id__lte="3") is None
    assert selector(REGION, latitude__gt="1.5", latitude__lt="1.5") is None


def test_text_patterns_become_one_escaped_regex():
    expr = selector(REGION, name__startswith="Ni", name__contains="a.b", region_code__starts_with="N+")
    assert expr["name"] == {"$regex": "^(?=Ni)(?=[\\s\\S]*?a\\.b)"}
    assert expr["region_code"] == {"$regex": "^(?=N\\+)"}
    pattern = re.compile(expr["name"]["$regex"])
    assert pattern.search("Nixxa.b") and not pattern.search("Nixxaxb") and not pattern.search("xNia.b")


def test_keyset_paging_bound_merges_with_the_filters():
    query = build(REGION, {"id__lte": "100"})
    assert query.selector(after=40)["id"] == {"$gte": 41, "$lte": 100}
    assert query.selector(after=100) is None
    assert build(REGION, {"id__in": "3,50,70"}).selector(after=50)["id"] == {"$eq": 70}


def test_isnull():
    assert selector(REGION, parent_region_id__isnull="true")["parent_region_id"] == {"$eq": None}
    assert selector(REGION, parent_region__isnull="0")["parent_region_id"] == {"$ne": None}
    assert selector(REGION, parent_region_id__isnull="true", parent_region_id="3") is None


@pytest.mark.parametrize("param,value,message", [
    ("nme", "x", "no field 'nme'"),
    ("name__icontains", "x", "unknown operator 'icontains'"),
    ("office__name", "x", "unknown operator 'name'"),
    ("id", "abc", "not an integer"),
    ("id__in", "1,x", "not an integer"),
    ("latitude__gt", "north", "not a number"),
    ("created_at__gte", "yesterday", "not a date or date-time"),
    ("id__contains", "1", "text fields only"),
    ("office", "Nigeria", "not an integer"),
    ("path", "1", "no field 'path'"),
    ("resource_uri", "/x", "no field 'resource_uri'"),
])
def test_unknown_or_bad_filters_name_the_parameter(param, value, message):
    with pytest.raises(FilterError) as caught:
        build(REGION, {param: value})
    assert caught.value.field == param and message in caught.value.message


def test_bool_date_and_json_fields():
    indicator = RESOURCES["indicator"]
    assert selector(indicator, is_reported="1")["is_reported"] == {"$eq": True}
    with pytest.raises(FilterError):
        build(indicator, {"is_reported__gt": "0"})
    with pytest.raises(FilterError):
        build(indicator, {"bound_json": "[]"})
    with pytest.raises(FilterError):
        build(CAMPAIGN, {"start_date": "2015-13-01"})
    assert selector(CAMPAIGN, start_date__lte="2015-01-01")["start_date"] == {"$lte": "2015-01-01"}


def test_extra_selector_parts_are_kept():
    query = Query("region")
    query.extra.append({"$or": [{"path": {"$elemMatch": {"$in": [1]}}}]})
    assert query.selector()["$or"] == [{"path": {"$elemMatch": {"$in": [1]}}}]
    query.extra.append({"depth": {"$lte": 2}})
    assert "$and" in query.selector()


def brute_force(tree, stored, root, indicator):
    """The rule, recursively: a region's value is its stored value, else the sum of its children's values."""
    if (root, indicator) in stored:
        return stored[(root, indicator)]
    values = [v for child in tree.get(root, []) if (v := brute_force(tree, stored, child, indicator)) is not None]
    return sum(values) if values else None


def random_tree(rng, depth):
    """Region 1 with 1-3 children per region for ``depth`` levels: (children by parent, path by region)."""
    tree, paths, next_id, frontier = {}, {1: [1]}, 2, [1]
    for _depth in range(depth):
        new = []
        for parent in frontier:
            for _ in range(rng.randint(1, 3)):
                tree.setdefault(parent, []).append(next_id)
                paths[next_id] = paths[parent] + [next_id]
                new.append(next_id)
                next_id += 1
        frontier = new
    return tree, paths


def test_exact_total_matches_the_recursive_rule_on_random_trees():
    rng = random.Random(7)
    for _ in range(50):
        tree, paths = random_tree(rng, 4)
        stored = {(r, 5): rng.randint(0, 9) for r in paths if rng.random() < 0.4}
        nodes = {r: (paths[r], {"5": v}) for (r, _), v in stored.items()}
        for root in paths:
            below = [v for c in tree.get(root, []) if (v := brute_force(tree, stored, c, 5)) is not None]
            assert exact_total(root, nodes, 5) == (sum(below) if below else None)


def run_agg_map(docs):
    """The rows the real ``agg`` map emits for these docs (run by Node)."""
    source = (ROOT / "ddocs" / "datapoints" / "datapoints" / "views" / "agg" / "map.js").read_text()
    script = ("const map = new Function('emit', 'return (' + process.argv[1] + ')');"
              "const rows = []; const f = map((k, v) => rows.push([k, v]));"
              "JSON.parse(process.argv[2]).forEach(d => f(d)); console.log(JSON.stringify(rows));")
    out = subprocess.run(["node", "-e", script, source, json.dumps(docs)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def summed(rows):
    """``_sum`` as CouchDB applies it to arrays: element by element, the shorter padded with zeros."""
    out = {}
    for key, value in rows:
        acc = out.setdefault(tuple(key), [])
        acc.extend([0] * (len(value) - len(acc)))
        for i, number in enumerate(value):
            acc[i] += number
    return out


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
def test_the_agg_map_summed_reads_as_the_rule_when_values_below_sit_at_one_depth():
    """The real map's rows, summed as ``_sum`` sums them, read back as the recursive rule (or UNSURE)."""
    rng = random.Random(11)
    cases = []
    for _ in range(30):
        tree, paths = random_tree(rng, 3)
        leaves_only = rng.random() < 0.5
        indicators = rng.sample([1, 5, 15, 16, 40, 63], 3)
        stored = {(r, i): rng.randint(0, 9) for r in paths for i in indicators
                  if (r not in tree if leaves_only else rng.random() < 0.4)}
        cases.append((tree, paths, indicators, stored))
    docs = []
    for n, (_, paths, _, stored) in enumerate(cases):
        for block in {r // 8 for r in paths}:  # buckets of 8 regions: a subtree spans several, as in production
            values = {}
            for (r, i), v in stored.items():
                if r // 8 == block:
                    values.setdefault(str(r), {})[str(i)] = v
            docs.append({"kind": "datapoint_bucket", "campaign_id": n, "values": values,
                         "paths": {r: paths[int(r)] for r in values}})
    rows = summed(run_agg_map(docs))
    for n, (tree, paths, indicators, stored) in enumerate(cases):
        for root in paths:
            for ind in indicators:
                row = rows.get((n, len(paths[root]) - 1, root, block_of(ind)))
                got = rolled_up(numbers_of(row, ind) if row else None)
                depths = {len(paths[r]) for (r, i) in stored if i == ind and root in paths[r][:-1]}
                if (root, ind) in stored:
                    assert got == Value(stored[(root, ind)], False)
                elif len(depths) > 1:
                    assert got is UNSURE
                else:
                    expected = brute_force(tree, stored, root, ind)
                    assert got == (None if expected is None else Value(expected, True))
    assert rolled_up([0, 0, 2, 0, 6, 18]) == Value(0, True), "values that sum to zero are still data"
    assert rolled_up([0, 0, 2, 7, 6, 18], own_only=True) is None, "a calculated indicator has no total below"


def test_regions_far_apart_are_read_with_separate_ranges():
    assert spans([]) == []
    assert spans([7]) == [(7, 7)]
    assert spans([30, 3, 10, 3], gap=10) == [(3, 10), (30, 30)]
    assert spans(range(0, 5000, 200), gap=256) == [(0, 4800)], "the districts of a country: one range"


def test_calculated_values_are_ratios_of_the_components():
    values = {1: Value(30, True), 2: Value(120, False)}
    assert calculate({"type": "ratio", "part": 1, "whole": 2}, values) == Value(0.25, True, True)
    assert calculate({"type": "difference_ratio", "part": 1, "whole": 2}, values) == Value(0.75, True, True)
    assert calculate({"type": "ratio", "part": 1, "whole": 3}, values) is None
    assert calculate({"type": "ratio", "part": 2, "whole": 1}, {1: Value(0, False), 2: Value(4, False)}) is None


def test_coerce_follows_the_spec_examples():
    region = coerce(REGION, {"name": "fake_place", "office_id": "2", "parent_region_id": "12908",
                             "latitude": "1.5", "source_id": ""})
    assert region == {"name": "fake_place", "office_id": 2, "parent_region_id": 12908, "latitude": 1.5,
                      "source_id": None}
    indicator = coerce(RESOURCES["indicator"], {"is_reported": "0", "tag_json": "[1, 2]"})
    assert indicator == {"is_reported": False, "tag_json": [1, 2]}
    with pytest.raises(BadRequest) as caught:
        coerce(REGION, {"depth": 3})
    assert caught.value.field == "depth"
    with pytest.raises(BadRequest) as caught:
        coerce(RESOURCES["region_map"], {"mapped_by_id": 3})
    assert caught.value.field == "mapped_by_id"
    with pytest.raises(BadRequest) as caught:
        coerce(REGION, {"colour": "red"})
    assert caught.value.field == "colour"


def test_csv_cells():
    assert [csv_cell(v) for v in (None, True, 3, 1.5, [1, 2], {"a": 1}, "Kano", "=cmd()", "-x")] == \
        ["", "true", "3", "1.5", "[1,2]", '{"a":1}', "Kano", "'=cmd()", "'-x"]
    # phone numbers and signed numbers written as text stay as they are (issue 23)
    assert [csv_cell(v) for v in ("+254700111222", "-2.5", "+254 700 111 222", "@SUM(A1)")] == \
        ["+254700111222", "-2.5", "+254 700 111 222", "'@SUM(A1)"]


def test_slugify():
    assert slugify("Nigeria Kano  Ward 3!") == "nigeria-kano-ward-3"
    assert slugify("Côte d'Ivoire") == "cote-divoire"


SCHEMA_TYPES = {INT: "integer", NUMBER: "number", STRING: "string", BOOL: "boolean", DATE: "string",
                DATETIME: "string"}


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_schemas_agree_with_the_model(name):
    res = RESOURCES[name]
    props = validator(res.schema_name()).schema["properties"]
    assert set(props) == {f.name for f in res.writable_fields}
    for fld in res.writable_fields:
        if fld.type == JSON:
            continue
        declared = props[fld.name].get("type") or [type(v).__name__ for v in props[fld.name]["enum"]]
        declared = declared if isinstance(declared, list) else [declared]
        assert SCHEMA_TYPES[fld.type] in declared or (fld.type == STRING and "str" in declared), fld.name


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_openapi_objects_agree_with_the_model(name):
    camel = "".join(p.capitalize() for p in name.split("_"))
    schema = openapi()["components"]["schemas"]["Datapoints" + camel]
    assert list(schema["properties"]) == [f.name for f in RESOURCES[name].fields]


def test_openapi_fragment_is_valid_json_serialisable():
    json.dumps(openapi())
