"""Geometry of spatial units: every GeoJSON type, rings closed, longitudes wrapped, shapely validity."""

import pytest

from api.spatial.geometry import GeometryError, normalize

SPEC_RING = [[-245.39088249206543, -3.333262692430284], [-245.39021730422974, -3.3330699000753414],
             [-245.39001345634458, -3.334312339033184], [-245.39063572883606, -3.334580105844384],
             [-245.39088249206543, -3.333262692430284]]


def test_point_in_range_is_kept_as_floats():
    assert normalize({"type": "Point", "coordinates": [100, 0]}) == {"type": "Point", "coordinates": [100.0, 0.0]}
    assert normalize({"type": "Point", "coordinates": [180, 90, 12.5]})["coordinates"] == [180.0, 90.0, 12.5]
    assert normalize({"type": "Point", "coordinates": [-180, -90]})["coordinates"] == [-180.0, -90.0]


def test_spec_longitudes_are_wrapped_by_whole_turns():
    assert normalize({"type": "Point", "coordinates": [-245.39, -3.33]})["coordinates"] == [114.61, -3.33]
    assert normalize({"type": "Point", "coordinates": [540, 1]})["coordinates"] == [-180.0, 1.0]
    polygon = normalize({"type": "Polygon", "coordinates": [SPEC_RING]})
    ring = polygon["coordinates"][0]
    assert all(-180 <= lon <= 180 for lon, _ in ring)
    assert ring[0] == [114.60911750793457, -3.333262692430284]
    # the shape is kept: every vertex moved by the same 360 degrees
    assert [round(a[0] - b[0], 9) for a, b in zip(ring, SPEC_RING)] == [360.0] * 5


def test_each_part_is_shifted_on_its_own_and_keeps_its_shape():
    multi = normalize({"type": "MultiPoint", "coordinates": [[-245.0, 0], [10.0, 0]]})
    assert multi["coordinates"] == [[115.0, 0.0], [10.0, 0.0]]
    line = normalize({"type": "LineString", "coordinates": [[185, 0], [190, 1]]})
    assert line["coordinates"] == [[-175.0, 0.0], [-170.0, 1.0]]


def test_a_part_across_the_antimeridian_is_refused():
    with pytest.raises(GeometryError, match="antimeridian"):
        normalize({"type": "LineString", "coordinates": [[179, 0], [181, 0]]})


def test_unclosed_ring_is_closed():
    ring = [[0, 0], [1, 0], [1, 1], [0, 1]]
    polygon = normalize({"type": "Polygon", "coordinates": [ring]})
    assert polygon["coordinates"][0] == [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [1, 2]},
    {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]},
    {"type": "LineString", "coordinates": [[1, 2], [3, 4]]},
    {"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]},
    {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
                                        [[2, 2], [2, 4], [4, 4], [4, 2], [2, 2]]]},
    {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 0]]], [[[5, 5], [6, 5], [6, 6], [5, 5]]]]},
    {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [1, 2]},
                                                  {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}]},
])
def test_every_geojson_type_is_accepted(geometry):
    assert normalize(geometry)["type"] == geometry["type"]


@pytest.mark.parametrize("geometry, problem", [
    (None, "must be a GeoJSON geometry object"),
    ({"type": "Feature"}, "type must be one of"),
    ({"type": "Point"}, "must be a position"),
    ({"type": "Point", "coordinates": [1]}, "must be a position"),
    ({"type": "Point", "coordinates": [1, "2"]}, "finite numbers"),
    ({"type": "Point", "coordinates": [1, True]}, "finite numbers"),
    ({"type": "Point", "coordinates": [1, 91]}, "latitude 91 is outside"),
    ({"type": "LineString", "coordinates": [[1, 2]]}, "at least 2 items"),
    ({"type": "LineString", "coordinates": [[1, 1], [1, 1]]}, "Invalid geometry: Too few points"),
    ({"type": "Polygon", "coordinates": []}, "at least 1 item"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "at least 3 items"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}, "at least 3 distinct positions"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
     "Invalid geometry: Self-intersection"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]], [[5, 5], [6, 5], [6, 6], [5, 5]]]},
     "Invalid geometry: Hole lies outside shell"),
    ({"type": "MultiPoint", "coordinates": []}, "at least 1 item"),
    ({"type": "GeometryCollection", "geometries": []}, "non-empty list"),
    ({"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [0, 100]}]},
     r"geometry.geometries\[0\].coordinates: latitude"),
])
def test_bad_geometry_is_refused_naming_the_problem(geometry, problem):
    with pytest.raises(GeometryError, match=problem):
        normalize(geometry)


def test_deeply_nested_collections_are_refused():
    geometry = {"type": "Point", "coordinates": [0, 0]}
    for _ in range(6):
        geometry = {"type": "GeometryCollection", "geometries": [geometry]}
    with pytest.raises(GeometryError, match="nested too deeply"):
        normalize(geometry)
