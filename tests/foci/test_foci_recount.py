"""The cluster recount against the real server: full and targeted, after every kind of change.

Writes go through the API, as clients make them; the changed docs are then
read from the foci database's ``_changes`` and handed to the recount, as the
sentinel will. Expected counts are computed independently (shapely, one
polygon and one point at a time) from what the API lists.
"""

import random
import uuid

import pytest
from shapely.geometry import Point, shape

from api.foci import geometry as geo
from api.foci.recount import STATE_PREFIX, recount_all, recount_change, recount_changes, recount_country
from tests.helpers import admin_headers


def square(x0, y0, size=1.0):
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x0 + size, y0], [x0 + size, y0 + size],
                                                 [x0, y0 + size], [x0, y0]]]}


def point(lon, lat):
    return {"type": "Point", "coordinates": [lon, lat]}


class Sentinel:
    """Reads the foci changes since the last pass and recounts, as the sentinel does."""

    def __init__(self, couch, config):
        self.db = couch.db(config.db_foci)
        self.state = couch.db(config.db_sentinel)
        self.since = 0

    async def catch_up(self):
        body = await self.db.changes(since=self.since, include_docs=True)
        self.since = body["last_seq"]
        return await recount_changes(self.db, self.state, [r["doc"] for r in body["results"]])

    async def settle(self):
        """Passes until the recount's own writes change nothing more."""
        results = [await self.catch_up()]
        while results[-1].changed:
            results.append(await self.catch_up())
            assert len(results) < 5, results
        return results


@pytest.fixture
def admin(config):
    return admin_headers(config)


@pytest.fixture
async def sentinel(couch, config):
    s = Sentinel(couch, config)
    s.since = (await s.db.info())["update_seq"]
    return s


async def api(client, headers, method, path, body=None, status=None):
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status in ((status,) if status else (200, 201)), await response.text()
    return await response.json()


async def expected_and_actual(client, headers, country):
    clusters = await api(client, headers, "get", f"/v6/foci/cluster?country={country}")
    cases = await api(client, headers, "get", f"/v6/foci/case?country={country}")
    points = [Point(c["geometry"]["coordinates"]) for c in cases]
    polygons = {c["id"]: shape(c["geometry"]) for c in clusters}
    expected = {i: sum(polygon.intersects(p) for p in points) for i, polygon in polygons.items()}
    return expected, {c["id"]: c["cases"] for c in clusters}


async def assert_counts_right(client, headers, country):
    expected, actual = await expected_and_actual(client, headers, country)
    assert actual == expected
    return actual


# -- views: the JavaScript in the map functions computes what Python computes ----------------

async def test_view_cells_match_python(couch, config):
    db = couch.db(config.db_foci)
    rng = random.Random(11)
    docs, clusters = [], {}
    for i in range(300):
        lon, lat = rng.uniform(-180, 180), rng.uniform(-90, 90)
        docs.append({"_id": f"case:vw:{i}", "type": "foci_case", "country": "vw", "id": str(i),
                     "geometry": point(lon, lat)})
    for i in range(150):
        size = 10 ** rng.uniform(-6, 2)
        x, y = rng.uniform(-180, 180 - size), rng.uniform(-90, 90 - size)
        geometry = square(x, y, size) if i % 3 else {"type": "MultiPolygon", "coordinates": [
            square(x, y, size / 3)["coordinates"], square(x + size * 2 / 3, y + size * 2 / 3, size / 3)["coordinates"]]}
        clusters[f"cluster:vw:{i}"] = geometry
        docs.append({"_id": f"cluster:vw:{i}", "type": "foci_cluster", "country": "vw", "id": str(i),
                     "geometry": geometry, "cases": 0})
    docs += [{"_id": "case:vw:edge1", "type": "foci_case", "country": "vw", "id": "edge1", "geometry": point(180, 90)},
             {"_id": "case:vw:edge2", "type": "foci_case", "country": "vw", "id": "edge2", "geometry": point(0, 0)},
             {"_id": "case:vw:bad", "type": "foci_case", "country": "vw", "id": "bad", "geometry": point(500, 0)}]
    await db.bulk_docs(docs)

    rows = (await db.view("foci", "case_points", startkey=["vw"], endkey=["vw", {}]))["rows"]
    assert len(rows) == 302  # the out-of-range case is not indexed
    for row in rows:
        lon, lat = row["value"]
        assert row["key"] == ["vw", geo.point_cell(lon, lat)], row

    emitted: dict[str, list[str]] = {}
    for row in (await db.view("foci", "clusters_by_cell", startkey=["vw"], endkey=["vw", {}]))["rows"]:
        emitted.setdefault(row["id"], []).append(row["key"][1])
    assert set(emitted) == set(clusters)
    for doc_id, geometry in clusters.items():
        assert sorted(emitted[doc_id]) == sorted(geo.covering_cells(geo.bbox_of(geometry), geo.CLUSTER_LEVEL)), doc_id


# -- full recount -----------------------------------------------------------------------------

async def test_recount_country_counts_everything_and_writes_only_changes(client, admin, couch, config):
    rng = random.Random(5)
    clusters = [{"id": f"full-{i}", "geometry": square(rng.uniform(20, 28), rng.uniform(-30, -22),
                                                         rng.uniform(0.2, 2.5))} for i in range(40)]
    cases = [{"geometry": point(rng.uniform(20, 30), rng.uniform(-30, -20))} for _ in range(600)]
    await api(client, admin, "post", "/v6/foci/cluster?country=bwa", clusters)
    await api(client, admin, "post", "/v6/foci/case?country=bwa", cases)
    db = couch.db(config.db_foci)
    stale = await db.get("cluster:bwa:full-0")
    stale["cases"] = "94"  # a count written around the API
    await db.put(stale)

    result = await recount_country(db, "bwa")
    assert result.clusters == 40 and result.cases == 600 and result.full == ["bwa"]
    counts = await assert_counts_right(client, admin, "bwa")
    assert sum(counts.values()) > 100  # the data really overlaps
    assert sorted(result.changed) == sorted(f"cluster:bwa:{c}" for c, n in counts.items() if n != 0 or c == "full-0")

    revs = {r["id"]: r["value"]["rev"] for r in (await db.all_docs(startkey="cluster:bwa:",
                                                                    endkey="cluster:bwa:\ufff0"))["rows"]}
    again = await recount_country(db, "bwa")
    assert again.changed == []
    assert revs == {r["id"]: r["value"]["rev"] for r in (await db.all_docs(startkey="cluster:bwa:",
                                                                          endkey="cluster:bwa:\ufff0"))["rows"]}
    assert (await recount_all(db, ["bwa", "zmb"]))["zmb"].clusters == 0


# -- targeted recount -----------------------------------------------------------------------------

async def test_targeted_recount_follows_every_kind_of_change(client, admin, couch, config, sentinel):
    c = "swz"
    a, b, far = square(31, -27), square(31.5, -26.5), square(35, -20)
    await api(client, admin, "post", f"/v6/foci/cluster?country={c}",
              [{"id": "A", "geometry": a}, {"id": "B", "geometry": b}, {"id": "far", "geometry": far}])
    await sentinel.settle()
    assert await assert_counts_right(client, admin, c) == {"A": 0, "B": 0, "far": 0}

    # create: a case in A only, one in A and B (on B's corner, a boundary)
    await api(client, admin, "post", f"/v6/foci/case?country={c}",
              [{"id": "k1", "geometry": point(31.2, -26.8)}, {"id": "k2", "geometry": point(31.5, -26.5)}])
    first = (await sentinel.settle())[0]
    assert first.full == [] and sorted(first.changed) == ["cluster:swz:A", "cluster:swz:B"]
    assert await assert_counts_right(client, admin, c) == {"A": 2, "B": 1, "far": 0}

    # bulk create, as a field team uploads a day's cases
    rng = random.Random(2)
    await api(client, admin, "post", f"/v6/foci/case?country={c}",
              [{"geometry": point(rng.uniform(30.8, 32.7), rng.uniform(-27.2, -25.3))} for _ in range(150)])
    await sentinel.settle()
    counts = await assert_counts_right(client, admin, c)
    assert counts["A"] > 20 and counts["B"] > 20

    # move: from A only to far away
    await api(client, admin, "put", f"/v6/foci/case?country={c}", {"id": "k1", "geometry": point(35.5, -19.5)})
    moved = (await sentinel.settle())[0]
    assert moved.full == [] and sorted(moved.changed) == ["cluster:swz:A", "cluster:swz:far"]
    after_move = await assert_counts_right(client, admin, c)
    assert after_move["A"] == counts["A"] - 1 and after_move["far"] == 1

    # delete: the case on the shared corner leaves both
    await api(client, admin, "delete", f"/v6/foci/case?country={c}&id=k2")
    await sentinel.settle()
    after_delete = await assert_counts_right(client, admin, c)
    assert (after_delete["A"], after_delete["B"]) == (after_move["A"] - 1, after_move["B"] - 1)

    # reshape: B grows over everything
    await api(client, admin, "put", f"/v6/foci/cluster?country={c}", {"id": "B", "geometry": square(30, -28, 8)})
    reshaped = (await sentinel.settle())[0]
    assert reshaped.changed == ["cluster:swz:B"]
    assert (await assert_counts_right(client, admin, c))["B"] == 150  # all but k1 (moved north of it)

    # a new cluster sent with a count of its own gets the real one
    await api(client, admin, "post", f"/v6/foci/cluster?country={c}", {"id": "new", "cases": "94", "geometry": a})
    await sentinel.settle()
    assert (await assert_counts_right(client, admin, c))["new"] == after_delete["A"]

    # a deleted cluster is simply gone; nothing else moves
    await api(client, admin, "delete", f"/v6/foci/cluster?country={c}&id=new")
    gone = (await sentinel.settle())[0]
    assert gone.changed == [] and "new" not in await assert_counts_right(client, admin, c)


async def test_a_count_written_around_the_api_does_not_survive(client, admin, couch, config, sentinel):
    await api(client, admin, "post", "/v6/foci/cluster?country=zaf", {"id": "z", "geometry": square(28, -26)})
    await api(client, admin, "post", "/v6/foci/case?country=zaf", [{"geometry": point(28.5, -25.5)}] * 3)
    await sentinel.settle()
    db = couch.db(config.db_foci)
    doc = await db.get("cluster:zaf:z")
    assert doc["cases"] == 3
    doc["cases"] = 1000
    await db.put(doc)
    result = (await sentinel.settle())[0]
    assert result.changed == ["cluster:zaf:z"] and (await db.get("cluster:zaf:z"))["cases"] == 3


async def test_rerunning_the_same_changes_changes_nothing(client, admin, couch, config):
    db, state = couch.db(config.db_foci), couch.db(config.db_sentinel)
    since = (await db.info())["update_seq"]
    await api(client, admin, "post", "/v6/foci/cluster?country=moz", {"id": "m", "geometry": square(33, -20)})
    await api(client, admin, "post", "/v6/foci/case?country=moz", {"id": "mc", "geometry": point(33.5, -19.5)})
    docs = [r["doc"] for r in (await db.changes(since=since, include_docs=True))["results"]]
    first = await recount_changes(db, state, docs)
    assert first.changed == ["cluster:moz:m"]
    again = await recount_changes(db, state, docs)  # a crash before the checkpoint moved: the same batch again
    assert again.changed == [] and (await db.get("cluster:moz:m"))["cases"] == 1
    one = await recount_change(db, state, await db.get("case:moz:mc"))
    assert one.changed == [] and one.full == []
    assert (await state.get(STATE_PREFIX + "case:moz:mc"))["point"] == [33.5, -19.5]
    ignored = await recount_changes(db, state, [{"_id": "settings", "type": "x"}, {"_id": "_design/foci"}])
    assert ignored.clusters == 0 and ignored.changed == []


async def test_changes_made_before_the_sentinel_knew_fall_back_to_a_full_recount(client, admin, couch, config):
    """Without a record of where a case was counted, an updated or deleted case recounts its country."""
    db, state = couch.db(config.db_foci), couch.db(config.db_sentinel)
    await api(client, admin, "post", "/v6/foci/cluster?country=nam", {"id": "n", "geometry": square(17, -22)})
    await api(client, admin, "post", "/v6/foci/case?country=nam", [{"id": f"nc{i}", "geometry": point(17.5, -21.5)}
                                                                   for i in range(4)])
    assert (await recount_country(db, "nam")).changed == ["cluster:nam:n"]  # counted, but no state recorded

    await api(client, admin, "put", "/v6/foci/case?country=nam", {"id": "nc0", "geometry": point(10, -10)})
    moved = await recount_change(db, state, await db.get("case:nam:nc0"))
    assert moved.full == ["nam"] and (await db.get("cluster:nam:n"))["cases"] == 3

    raw = await db.get("case:nam:nc1")
    await db.delete(raw["_id"], raw["_rev"])  # deleted around the API: the tombstone has no body
    tombstone = (await db.changes(doc_ids=["case:nam:nc1"], include_docs=True))["results"][0]["doc"]
    assert "country" not in tombstone
    deleted = await recount_change(db, state, tombstone)
    assert deleted.full == ["nam"] and (await db.get("cluster:nam:n"))["cases"] == 2

    # once a case has been seen, its later moves and deletes are targeted
    await recount_change(db, state, await db.get("case:nam:nc2"))
    raw = await db.get("case:nam:nc2")
    await db.delete(raw["_id"], raw["_rev"])
    tombstone = (await db.changes(doc_ids=["case:nam:nc2"], include_docs=True))["results"][0]["doc"]
    targeted = await recount_change(db, state, tombstone)
    assert targeted.full == [] and targeted.changed == ["cluster:nam:n"]
    assert (await db.get("cluster:nam:n"))["cases"] == 1
    assert await state.get_or_none(STATE_PREFIX + "case:nam:nc2") is None
    await assert_counts_right(client, admin, "nam")


async def test_many_clusters_to_recount_become_one_full_recount(client, admin, couch, config, sentinel,
                                                                 monkeypatch):
    from api.foci import recount as foci_recount

    monkeypatch.setattr(foci_recount, "FULL_RECOUNT_ABOVE", 3)
    await api(client, admin, "post", "/v6/foci/cluster?country=zwe",
              [{"id": f"w{i}", "geometry": square(25 + i, -20)} for i in range(5)])
    result = (await sentinel.settle())[0]
    assert result.full == ["zwe"] and result.clusters == 5
    await api(client, admin, "post", "/v6/foci/case?country=zwe",
              [{"geometry": point(25.5 + i, -19.5)} for i in range(5)])
    uploaded = (await sentinel.settle())[0]
    assert uploaded.full == ["zwe"]  # five moved cases: more than the limit
    assert set((await assert_counts_right(client, admin, "zwe")).values()) == {1}


async def test_full_recounts_can_be_left_to_the_caller(client, admin, couch, config, monkeypatch):
    from api.foci import recount as foci_recount

    monkeypatch.setattr(foci_recount, "FULL_RECOUNT_ABOVE", 3)
    db, state = couch.db(config.db_foci), couch.db(config.db_sentinel)
    since = (await db.info())["update_seq"]
    await api(client, admin, "post", "/v6/foci/cluster?country=ago", {"id": "g", "geometry": square(14, -12)})
    await api(client, admin, "post", "/v6/foci/case?country=ago",
              [{"id": f"g{i}", "geometry": point(14.5, -11.5)} for i in range(6)])
    docs = [r["doc"] for r in (await db.changes(since=since, include_docs=True))["results"]]
    deferred = await recount_changes(db, state, docs, defer_full=True)
    assert deferred.deferred == ["ago"] and deferred.full == [] and deferred.changed == []
    assert (await db.get("cluster:ago:g"))["cases"] == 0  # not yet
    assert (await state.get(STATE_PREFIX + "case:ago:g0"))["country"] == "ago"  # but the cases are recorded
    assert (await recount_country(db, "ago")).changed == ["cluster:ago:g"]
    assert (await db.get("cluster:ago:g"))["cases"] == 6


async def test_unusable_stored_records_are_skipped(couch, config):
    db, state = couch.db(config.db_foci), couch.db(config.db_sentinel)
    tag = uuid.uuid4().hex[:6]
    docs = [{"_id": f"cluster:bad{tag}:ok", "type": "foci_cluster", "country": f"bad{tag}", "id": "ok",
             "geometry": square(0, 0), "cases": 0},
            {"_id": f"cluster:bad{tag}:broken", "type": "foci_cluster", "country": f"bad{tag}", "id": "broken",
             "geometry": {"type": "Polygon", "coordinates": [[[0, 0]]]}, "cases": 7},
            {"_id": f"case:bad{tag}:p", "type": "foci_case", "country": f"bad{tag}", "id": "p",
             "geometry": point(0.5, 0.5)},
            {"_id": f"case:bad{tag}:q", "type": "foci_case", "country": f"bad{tag}", "id": "q",
             "geometry": {"type": "Point", "coordinates": "nowhere"}}]
    await db.bulk_docs(docs)
    result = await recount_changes(db, state, docs)
    assert result.changed == [f"cluster:bad{tag}:ok"]
    assert (await db.get(f"cluster:bad{tag}:broken"))["cases"] == 7  # left alone, not guessed
    assert (await recount_country(db, f"bad{tag}")).changed == []
