"""Foci geometry: validating GeoJSON, geohash cells, and counting cases in clusters.

Pure functions (no I/O), shared by the API (validation) and the sentinel's
recount (``api.foci.recount``).

* Clusters are GeoJSON ``Polygon`` or ``MultiPolygon``; cases are ``Point``.
  Positions are ``[lon, lat]`` (an optional third number, altitude, is kept),
  lon in -180..180, lat in -90..90. A ring whose last position differs from
  its first is closed by repeating the first (the spec's own example is not
  closed). Invalid polygons (self-intersections, too few points, ...) are
  refused with shapely's ``explain_validity``.
* A case lies in a cluster when its point is inside the polygon **or on its
  boundary** (shapely ``intersects``), so a case on an edge shared by two
  clusters counts in both.
* Geohash cells (the standard base32 geohash) index points and polygon
  bounding boxes in CouchDB views; ``ddocs/foci/foci/views/*/map.js`` carry a
  JavaScript copy of ``cell_name``/``point_cell``/``covering_cells`` that must
  compute the same strings (tests check it against the real server).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from api.errors import BadRequest

BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
# Cases are indexed at 9 characters (about 5 m); cluster bounding boxes at up
# to 8, with at most MAX_CELLS cells each.
POINT_LEVEL = 9
CLUSTER_LEVEL = 8
MAX_CELLS = 4


# -- validation -------------------------------------------------------------

def _position(value: Any, field: str) -> list[float]:
    if not isinstance(value, list) or not 2 <= len(value) <= 3:
        raise BadRequest(f"{field}: a position is [longitude, latitude] (optionally with altitude)", field=field)
    for i, number in enumerate(value):
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise BadRequest(f"{field}.{i}: must be a finite number", field=f"{field}.{i}")
    lon, lat = value[0], value[1]
    if not -180 <= lon <= 180:
        raise BadRequest(f"{field}.0: longitude {lon} is outside -180..180", field=f"{field}.0")
    if not -90 <= lat <= 90:
        raise BadRequest(f"{field}.1: latitude {lat} is outside -90..90", field=f"{field}.1")
    return list(value)


def _ring(value: Any, field: str) -> list[list[float]]:
    if not isinstance(value, list):
        raise BadRequest(f"{field}: a ring is an array of positions", field=field)
    ring = [_position(p, f"{field}.{i}") for i, p in enumerate(value)]
    if ring and ring[0] != ring[-1]:
        ring.append(list(ring[0]))  # close an unclosed ring, as documented
    if len(ring) < 4:
        raise BadRequest(f"{field}: a ring needs at least 3 distinct positions", field=field)
    return ring


def _polygon_rings(value: Any, field: str) -> list[list[list[float]]]:
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{field}: a polygon is a non-empty array of rings", field=field)
    return [_ring(r, f"{field}.{i}") for i, r in enumerate(value)]


def _check_valid(geom: BaseGeometry, field: str) -> None:
    if not geom.is_valid:
        raise BadRequest(f"{field}: invalid polygon: {explain_validity(geom)}", field=field)


def _type_and_coordinates(geometry: Any, field: str, allowed: Sequence[str]) -> tuple[str, Any]:
    if not isinstance(geometry, Mapping):
        raise BadRequest(f"{field}: must be a GeoJSON geometry object", field=field)
    kind = geometry.get("type")
    if kind not in allowed:
        raise BadRequest(f"{field}.type: must be {' or '.join(allowed)}", field=f"{field}.type")
    if "coordinates" not in geometry:
        raise BadRequest(f"{field}.coordinates: is required", field=f"{field}.coordinates")
    extra = sorted(set(geometry) - {"type", "coordinates", "bbox"})
    if extra:
        raise BadRequest(f"{field}.{extra[0]}: unexpected property", field=f"{field}.{extra[0]}")
    return kind, geometry["coordinates"]


def normalize_polygon(geometry: Any, field: str = "geometry") -> dict[str, Any]:
    """A valid cluster geometry (rings closed), or BadRequest naming the problem."""
    kind, coordinates = _type_and_coordinates(geometry, field, ("Polygon", "MultiPolygon"))
    where = f"{field}.coordinates"
    if kind == "Polygon":
        rings = _polygon_rings(coordinates, where)
        _check_valid(Polygon(rings[0], rings[1:]), field)
        return {"type": "Polygon", "coordinates": rings}
    if not isinstance(coordinates, list) or not coordinates:
        raise BadRequest(f"{where}: a MultiPolygon is a non-empty array of polygons", field=where)
    polygons = [_polygon_rings(p, f"{where}.{i}") for i, p in enumerate(coordinates)]
    for i, rings in enumerate(polygons):
        _check_valid(Polygon(rings[0], rings[1:]), f"{where}.{i}")
    _check_valid(MultiPolygon([(rings[0], rings[1:]) for rings in polygons]), field)
    return {"type": "MultiPolygon", "coordinates": polygons}


def normalize_point(geometry: Any, field: str = "geometry") -> dict[str, Any]:
    """A valid case geometry, or BadRequest naming the problem."""
    _, coordinates = _type_and_coordinates(geometry, field, ("Point",))
    return {"type": "Point", "coordinates": _position(coordinates, f"{field}.coordinates")}


# -- reading stored geometry (never raises: stored data may have been written around the API) -------

def polygon_of(geometry: Any) -> BaseGeometry | None:
    """A shapely (Multi)Polygon from stored GeoJSON, or None when it is unusable."""
    try:
        geom = shapely.geometry.shape(geometry)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, shapely.errors.ShapelyError):
        return None
    if geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None
    return geom


def point_of(geometry: Any) -> tuple[float, float] | None:
    """(lon, lat) of a stored GeoJSON Point, or None when it is unusable."""
    try:
        if geometry.get("type") != "Point":
            return None
        lon, lat = geometry["coordinates"][0], geometry["coordinates"][1]
    except (AttributeError, TypeError, KeyError, IndexError):
        return None
    if isinstance(lon, bool) or isinstance(lat, bool) or not isinstance(lon, (int, float)) \
            or not isinstance(lat, (int, float)) or not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return float(lon), float(lat)


# -- geohash cells ----------------------------------------------------------

def _bits(level: int) -> tuple[int, int]:
    """(longitude bits, latitude bits) of a geohash of ``level`` characters."""
    total = 5 * level
    return (total + 1) // 2, total // 2


def _index(value: float, low: float, high: float, bits: int) -> int:
    """The cell index of ``value`` by bisection (exact in binary floating point)."""
    index = 0
    for _ in range(bits):
        mid = (low + high) / 2
        if value >= mid:
            index = index * 2 + 1
            low = mid
        else:
            index = index * 2
            high = mid
    return index


def cell_indices(lon: float, lat: float, level: int) -> tuple[int, int]:
    lon_bits, lat_bits = _bits(level)
    return _index(lon, -180.0, 180.0, lon_bits), _index(lat, -90.0, 90.0, lat_bits)


def cell_name(i: int, j: int, level: int) -> str:
    """The geohash of cell (i, j): bits interleaved, longitude first, 5 per character."""
    lon_bits, lat_bits = _bits(level)
    chars = []
    value = count = 0
    li, ai = lon_bits - 1, lat_bits - 1
    for k in range(5 * level):
        if k % 2 == 0:
            bit = (i >> li) & 1
            li -= 1
        else:
            bit = (j >> ai) & 1
            ai -= 1
        value = value * 2 + bit
        count += 1
        if count == 5:
            chars.append(BASE32[value])
            value = count = 0
    return "".join(chars)


def point_cell(lon: float, lat: float, level: int = POINT_LEVEL) -> str:
    """The geohash of a point."""
    return cell_name(*cell_indices(lon, lat, level), level)


def covering_cells(bbox: tuple[float, float, float, float], max_level: int,
                   max_cells: int = MAX_CELLS) -> list[str]:
    """The cells of the finest level (up to ``max_level``) covering ``bbox`` with at most ``max_cells``.

    ``[""]`` (the whole world) when even one-character cells are too many.
    Every point inside the box lies in one of the cells, because cell indices
    grow with the coordinate.
    """
    min_lon, min_lat, max_lon, max_lat = bbox
    best = [""]
    for level in range(1, max_level + 1):
        i0, j0 = cell_indices(min_lon, min_lat, level)
        i1, j1 = cell_indices(max_lon, max_lat, level)
        if (i1 - i0 + 1) * (j1 - j0 + 1) > max_cells:
            break
        best = [cell_name(i, j, level) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]
    return best


def point_prefixes(lon: float, lat: float, max_level: int = CLUSTER_LEVEL) -> list[str]:
    """The cells at every level (0 to ``max_level``) that contain a point: the keys to look clusters up by."""
    full = point_cell(lon, lat, max_level)
    return [full[:level] for level in range(max_level + 1)]


# -- counting -----------------------------------------------------------------

def as_points(points: Iterable[Sequence[float]] | np.ndarray) -> np.ndarray:
    """An (n, 2) float array of (lon, lat)."""
    array = np.asarray(points if isinstance(points, np.ndarray) else list(points), dtype=float)
    return array.reshape(-1, 2) if array.size else np.empty((0, 2))


@dataclass
class ClusterIndex:
    """An STRtree over clusters, to find the clusters a point lies in."""

    ids: list[str]
    geometries: list[BaseGeometry]
    tree: shapely.STRtree

    @classmethod
    def build(cls, clusters: Iterable[tuple[str, Any]]) -> "ClusterIndex":
        """From (id, stored GeoJSON geometry) pairs; unusable geometries are left out."""
        ids, geometries = [], []
        for cluster_id, geometry in clusters:
            geom = polygon_of(geometry)
            if geom is not None:
                ids.append(cluster_id)
                geometries.append(geom)
        return cls(ids, geometries, shapely.STRtree(geometries))

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self, points: Iterable[Sequence[float]] | np.ndarray) -> dict[str, int]:
        """How many of ``points`` lie in each cluster (every cluster of the index is in the result)."""
        array = as_points(points)
        if not self.ids:
            return {}
        if not len(array):
            return dict.fromkeys(self.ids, 0)
        _, hits = self.tree.query(shapely.points(array), predicate="intersects")
        totals = np.bincount(hits, minlength=len(self.ids))
        return {cluster_id: int(n) for cluster_id, n in zip(self.ids, totals)}

    def containing(self, points: Iterable[Sequence[float]] | np.ndarray) -> set[str]:
        """The clusters that hold at least one of ``points``."""
        array = as_points(points)
        if not self.ids or not len(array):
            return set()
        _, hits = self.tree.query(shapely.points(array), predicate="intersects")
        return {self.ids[i] for i in np.unique(hits)}


def count_cases(clusters: Iterable[tuple[str, Any]], points: Iterable[Sequence[float]] | np.ndarray) -> dict[str, int]:
    """Each cluster's case count: ``clusters`` are (id, GeoJSON), ``points`` (lon, lat).

    Clusters whose stored geometry is unusable are left out of the result
    (their count is not touched).
    """
    return ClusterIndex.build(clusters).counts(points)


def clusters_to_recount(clusters: Iterable[tuple[str, Any]],
                        positions: Iterable[Sequence[float] | None]) -> set[str]:
    """Which clusters need a new count after a case changed.

    ``positions`` are where the case was last counted and where it is now
    (None for "nowhere": just created, or deleted); a cluster needs a new count
    when it holds either. A changed cluster needs only its own recount.
    """
    points = [p for p in positions if p is not None]
    return ClusterIndex.build(clusters).containing(points)


def count_in(geometry: Any, points: Iterable[Sequence[float]] | np.ndarray) -> int | None:
    """How many points lie in one cluster's geometry; None when the geometry is unusable."""
    geom = polygon_of(geometry)
    if geom is None:
        return None
    array = as_points(points)
    if not len(array):
        return 0
    shapely.prepare(geom)
    return int(np.count_nonzero(shapely.intersects(geom, shapely.points(array))))


def bbox_of(geometry: Any) -> tuple[float, float, float, float] | None:
    geom = polygon_of(geometry)
    return None if geom is None else tuple(geom.bounds)  # type: ignore[return-value]
