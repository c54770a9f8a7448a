"""Foci geometry, pure: GeoJSON validation, geohash cells, STRtree counts (no server)."""

import random

import pytest
import shapely
from shapely.geometry import Point, shape

from api.errors import BadRequest
from api.foci import geometry as geo

# The spec's example ring: three positions, not closed.
SPEC_RING = [[31.43463134765625, -25.89134949832312], [31.451110839843746, -25.869109390999295],
             [31.43463134765625, -25.84439325019513]]


def square(x0, y0, size, *, hole=None):
    ring = [[x0, y0], [x0 + size, y0], [x0 + size, y0 + size], [x0, y0 + size], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring] + ([hole] if hole else [])}


def refused(geometry, *, point=False):
    with pytest.raises(BadRequest) as info:
        (geo.normalize_point if point else geo.normalize_polygon)(geometry)
    return info.value


def test_the_spec_example_ring_is_closed():
    out = geo.normalize_polygon({"type": "Polygon", "coordinates": [SPEC_RING]})
    assert out["coordinates"][0] == SPEC_RING + [SPEC_RING[0]]
    assert shape(out).is_valid


def test_a_closed_ring_and_a_multipolygon_are_kept_as_they_are():
    poly = square(0, 0, 1)
    assert geo.normalize_polygon(poly) == poly
    multi = {"type": "MultiPolygon", "coordinates": [square(0, 0, 1)["coordinates"], square(5, 5, 1)["coordinates"]]}
    assert geo.normalize_polygon(multi) == multi
    with_altitude = {"type": "Polygon", "coordinates": [[[0, 0, 10], [1, 0, 10], [1, 1, 12], [0, 0, 10]]]}
    assert geo.normalize_polygon(with_altitude) == with_altitude


def test_a_self_intersecting_polygon_is_refused_with_shapelys_explanation():
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    error = refused(bowtie)
    assert error.field == "geometry"
    assert "Self-intersection" in error.message and "[0.5 0.5]" in error.message


def test_invalid_multipolygons_and_holes_are_refused():
    overlapping = {"type": "MultiPolygon", "coordinates": [square(0, 0, 2)["coordinates"],
                                                           square(1, 1, 2)["coordinates"]]}
    assert "invalid polygon" in refused(overlapping).message
    hole_outside = square(0, 0, 1, hole=[[5, 5], [6, 5], [6, 6], [5, 5]])
    assert "Hole lies outside shell" in refused(hole_outside).message
    bad_member = {"type": "MultiPolygon", "coordinates": [square(0, 0, 1)["coordinates"],
                                                          [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]]}
    assert refused(bad_member).field == "geometry.coordinates.1"


@pytest.mark.parametrize("coordinates, field, words", [
    ([[[200, 0], [1, 0], [1, 1], [200, 0]]], "geometry.coordinates.0.0.0", "longitude 200"),
    ([[[0, -95], [1, 0], [1, 1], [0, -95]]], "geometry.coordinates.0.0.1", "latitude -95"),
    ([[[0, 0], [1, 0], [float("nan"), 1], [0, 0]]], "geometry.coordinates.0.2.0", "finite"),
    ([[[0, 0], [1, 0], [True, 1], [0, 0]]], "geometry.coordinates.0.2.0", "finite"),
    ([[[0, 0], [1, 0], [1], [0, 0]]], "geometry.coordinates.0.2", "position"),
    ([[[0, 0], [1, 1]]], "geometry.coordinates.0", "at least 3"),
    ([[[0, 0], [1, 1], [0, 0]]], "geometry.coordinates.0", "at least 3"),
    ([], "geometry.coordinates", "non-empty"),
    ("nope", "geometry.coordinates", "non-empty"),
])
def test_bad_coordinates_name_the_field(coordinates, field, words):
    error = refused({"type": "Polygon", "coordinates": coordinates})
    assert error.field == field and words in error.message


def test_wrong_types_and_extra_properties_are_refused():
    assert refused({"type": "Point", "coordinates": [0, 0]}).field == "geometry.type"
    assert refused({"type": "Polygon"}).field == "geometry.coordinates"
    assert refused({**square(0, 0, 1), "crs": "x"}).field == "geometry.crs"
    assert refused([1, 2]).field == "geometry"
    assert refused(square(0, 0, 1), point=True).field == "geometry.type"


def test_points():
    assert geo.normalize_point({"type": "Point", "coordinates": [31.2, -25.8]}) == \
        {"type": "Point", "coordinates": [31.2, -25.8]}
    assert geo.normalize_point({"type": "Point", "coordinates": [31.2, -25.8, 400]})["coordinates"][2] == 400
    assert refused({"type": "Point", "coordinates": [181, 0]}, point=True).field == "geometry.coordinates.0"
    assert refused({"type": "Point", "coordinates": [0, 91]}, point=True).field == "geometry.coordinates.1"
    assert refused({"type": "Point", "coordinates": [0, 1, 2, 3]}, point=True).field == "geometry.coordinates"
    assert refused({"type": "Point", "coordinates": ["0", 1]}, point=True).field == "geometry.coordinates.0"


def test_stored_geometry_is_read_without_raising():
    assert geo.polygon_of(square(0, 0, 1)).area == 1
    assert geo.polygon_of({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}) is None
    assert geo.polygon_of(None) is None and geo.polygon_of({"type": "Point", "coordinates": [0, 0]}) is None
    assert geo.point_of({"type": "Point", "coordinates": [1, 2]}) == (1.0, 2.0)
    for bad in (None, {}, {"type": "Point", "coordinates": [500, 0]}, {"type": "Point", "coordinates": [True, 0]},
                {"type": "Point", "coordinates": ["1", 0]}, {"type": "Point", "coordinates": [1]}):
        assert geo.point_of(bad) is None


def test_geohash_matches_the_reference_values():
    assert geo.point_cell(-5.6, 42.6, 5) == "ezs42"
    assert geo.point_cell(10.40744, 57.64911, 11) == "u4pruydqqvj"
    assert geo.point_cell(180, 90, 3) == "zzz" and geo.point_cell(-180, -90, 3) == "000"
    assert geo.point_prefixes(31.44, -25.87, 4) == ["", "k", "ke", "keq", "keqk"]


def test_covering_cells_hold_every_point_of_the_box():
    rng = random.Random(8)
    for _ in range(300):
        lon, lat = rng.uniform(-179, 170), rng.uniform(-89, 80)
        size = 10 ** rng.uniform(-5, 1.5)
        bbox = (lon, lat, min(lon + size, 180), min(lat + size * rng.uniform(0.2, 2), 90))
        cells = geo.covering_cells(bbox, geo.POINT_LEVEL)
        assert 1 <= len(cells) <= geo.MAX_CELLS
        for _ in range(20):
            x, y = rng.uniform(bbox[0], bbox[2]), rng.uniform(bbox[1], bbox[3])
            assert any(geo.point_cell(x, y).startswith(c) for c in cells)
        # the corners too: the edges are where rounding would bite
        for x, y in ((bbox[0], bbox[1]), (bbox[2], bbox[3]), (bbox[0], bbox[3])):
            assert any(geo.point_cell(x, y).startswith(c) for c in cells)


def test_a_huge_box_is_the_whole_world():
    assert geo.covering_cells((-170, -80, 170, 80), 8) == [""]


def test_counts_match_a_brute_force_count():
    rng = random.Random(3)
    clusters = [(f"c{i}", square(rng.uniform(0, 9), rng.uniform(0, 9), rng.uniform(0.1, 2))) for i in range(60)]
    points = [(rng.uniform(0, 11), rng.uniform(0, 11)) for _ in range(3000)]
    counts = geo.count_cases(clusters, points)
    for cluster_id, geometry in clusters:
        polygon = shape(geometry)
        assert counts[cluster_id] == sum(polygon.intersects(Point(p)) for p in points)
    assert geo.count_in(clusters[0][1], points) == counts["c0"]


def test_boundaries_count_and_holes_do_not():
    left, right = square(0, 0, 1), square(1, 0, 1)
    donut = square(10, 10, 4, hole=[[11, 11], [13, 11], [13, 13], [11, 13], [11, 11]])
    counts = geo.count_cases([("left", left), ("right", right), ("donut", donut)],
                             [(1, 0.5), (0.5, 0.5), (12, 12), (10.5, 10.5)])
    assert counts == {"left": 2, "right": 1, "donut": 1}


def test_unusable_clusters_are_left_out_and_empty_inputs_work():
    counts = geo.count_cases([("ok", square(0, 0, 1)), ("broken", {"type": "Polygon", "coordinates": []})],
                             [(0.5, 0.5)])
    assert counts == {"ok": 1}
    assert geo.count_cases([("ok", square(0, 0, 1))], []) == {"ok": 0}
    assert geo.count_cases([], [(0.5, 0.5)]) == {}
    assert geo.count_in({"type": "Polygon", "coordinates": []}, [(0, 0)]) is None


def test_which_clusters_a_moved_case_touches():
    clusters = [("a", square(0, 0, 1)), ("b", square(5, 5, 1)), ("c", square(0.5, 0.5, 1))]
    assert geo.clusters_to_recount(clusters, [(0.7, 0.7), (5.5, 5.5)]) == {"a", "b", "c"}
    assert geo.clusters_to_recount(clusters, [None, (5.5, 5.5)]) == {"b"}
    assert geo.clusters_to_recount(clusters, [(0.2, 0.2), None]) == {"a"}
    assert geo.clusters_to_recount(clusters, [(50, 50), None]) == set()


def test_the_strtree_is_used_for_many_points():
    index = geo.ClusterIndex.build([(f"c{i}", square(i, 0, 0.5)) for i in range(100)])
    assert isinstance(index.tree, shapely.STRtree) and len(index) == 100
    assert index.containing([(3.25, 0.25), (7.9, 0.1)]) == {"c3"}
