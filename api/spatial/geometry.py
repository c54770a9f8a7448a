"""GeoJSON geometries of spatial units: read, checked, normalised for storage, validated with shapely.

What the server accepts (the spec's examples are drawn on a web map's world copies and
carry longitudes like -245.39):

* a GeoJSON geometry object, or, as the original platform took them (GEOS read its input),
  a string of GeoJSON text, WKT, EWKT (``SRID=4326;POINT (1 2)``) or hex WKB/EWKB; strings are
  read with shapely into GeoJSON and then checked like any GeoJSON. Only SRID 4326 (WGS 84)
  is accepted;
* any GeoJSON geometry type (RFC 7946): Point, MultiPoint, LineString, MultiLineString,
  Polygon, MultiPolygon, GeometryCollection; positions of 2 or 3 finite numbers;
* a polygon ring that is not closed is closed (its first position is appended);
* longitudes outside [-180, 180] are wrapped into it. Each part (a point, a line, a
  polygon with its holes) is shifted by whole turns (360 degrees) as one piece, so its
  shape is kept; a part that still crosses the antimeridian afterwards is refused (RFC 7946
  asks for such shapes to be split). Latitudes are never wrapped: outside [-90, 90] is an
  error;
* the result must be a valid, non-empty geometry for shapely (no self-intersection, enough
  distinct points, holes inside their shell, ...): otherwise the error is shapely's
  ``explain_validity``.

A value that cannot be read as a geometry at all (wrong JSON type, unknown ``type``, badly
shaped coordinates, unreadable text) raises ``GeometryFormatError``: the API answers it with
the platform's one message (``INVALID_FORMAT``), the detailed text stays for logs and tests.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import shapely
import shapely.geometry
from shapely.errors import GEOSException
from shapely.validation import explain_validity

from api import jsonparse

TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
         "GeometryCollection")
MAX_DEPTH = 4  # GeometryCollections nested deeper than this are refused
SRID = 4326  # WGS 84, the only reference system of GeoJSON (RFC 7946)
# drf-gis's message (Cadasta's geometry field) for input GEOS cannot read.
INVALID_FORMAT = "Invalid format: string or unicode input unrecognized as GeoJSON, WKT EWKT or HEXEWKB."
_EWKT_SRID = re.compile(r"^SRID=(\d+);", re.IGNORECASE)
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


class GeometryError(ValueError):
    """The geometry is unusable; the message says where and why."""


class GeometryFormatError(GeometryError):
    """The value cannot be read as a geometry at all (what the platform called an invalid format)."""


def read(value: Any) -> Any:
    """A GeoJSON geometry object from the input: an object as it is, a string read as GeoJSON text,
    EWKT, WKT or hex (E)WKB. Raises GeometryFormatError when a string cannot be read."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        try:
            return jsonparse.loads(text)
        except ValueError as exc:
            raise GeometryFormatError(f"geometry is not GeoJSON text: {exc}") from None
    srid: int | None = None
    try:
        if _HEX.match(text):
            shape = shapely.from_wkb(text)
            srid = shapely.get_srid(shape) or None
        else:
            prefix = _EWKT_SRID.match(text)
            if prefix:
                srid, text = int(prefix.group(1)), text[prefix.end():]
            shape = shapely.from_wkt(text)
    except (GEOSException, ValueError, TypeError) as exc:
        raise GeometryFormatError(f"geometry is neither WKT, EWKT nor hex WKB: {exc}") from None
    if shape is None:
        raise GeometryFormatError("geometry is neither WKT, EWKT nor hex WKB")
    if srid is not None and srid != SRID:
        raise GeometryError(f"Only SRID {SRID} (WGS 84) is accepted, not {srid}")
    if shape.is_empty:
        raise GeometryError("Invalid geometry: it is empty")
    return json.loads(shapely.to_geojson(shape))


def normalize(geometry: Any) -> dict[str, Any]:
    """The geometry as stored: read (see ``read``), rings closed, longitudes wrapped; raises GeometryError."""
    result = _geometry(read(geometry), "geometry", 0)
    try:
        shape = shapely.geometry.shape(result)
    except (ValueError, TypeError, AttributeError) as exc:  # shapely's own refusal
        raise GeometryFormatError(f"Invalid geometry: {exc}") from None
    if shape.is_empty:
        raise GeometryError("Invalid geometry: it is empty")
    if not shape.is_valid:
        raise GeometryError(f"Invalid geometry: {explain_validity(shape)}")
    return result


def _geometry(geometry: Any, where: str, depth: int) -> dict[str, Any]:
    if not isinstance(geometry, dict):
        raise GeometryFormatError(f"{where} must be a GeoJSON geometry object")
    kind = geometry.get("type")
    if kind not in TYPES:
        raise GeometryFormatError(f"{where}.type must be one of {', '.join(TYPES)}")
    if kind == "GeometryCollection":
        if depth >= MAX_DEPTH:
            raise GeometryError(f"{where}: GeometryCollections are nested too deeply")
        members = geometry.get("geometries")
        if not isinstance(members, list) or not members:
            raise GeometryFormatError(f"{where}.geometries must be a non-empty list of geometries")
        return {"type": kind,
                "geometries": [_geometry(m, f"{where}.geometries[{i}]", depth + 1) for i, m in enumerate(members)]}
    coordinates = geometry.get("coordinates")
    where = f"{where}.coordinates"
    if kind == "Point":
        return {"type": kind, "coordinates": _part([_position(coordinates, where)], where)[0]}
    if kind == "LineString":
        return {"type": kind, "coordinates": _part(_line(coordinates, where), where)}
    if kind == "Polygon":
        return {"type": kind, "coordinates": _polygon(coordinates, where)}
    items = _list(coordinates, where, minimum=1)
    if kind == "MultiPoint":
        parts = [_part([_position(p, f"{where}[{i}]")], f"{where}[{i}]")[0] for i, p in enumerate(items)]
    elif kind == "MultiLineString":
        parts = [_part(_line(line, f"{where}[{i}]"), f"{where}[{i}]") for i, line in enumerate(items)]
    else:
        parts = [_polygon(polygon, f"{where}[{i}]") for i, polygon in enumerate(items)]
    return {"type": kind, "coordinates": parts}


def _list(value: Any, where: str, minimum: int) -> list[Any]:
    if not isinstance(value, list):
        raise GeometryFormatError(f"{where} must be a list")
    if len(value) < minimum:
        raise GeometryFormatError(f"{where} must have at least {minimum} item{'s' if minimum > 1 else ''}")
    return value


def _position(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise GeometryFormatError(f"{where} must be a position: [longitude, latitude] (and optionally altitude)")
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise GeometryFormatError(f"{where} must hold finite numbers")
    if not -90 <= value[1] <= 90:
        raise GeometryError(f"{where}: latitude {value[1]} is outside [-90, 90]")
    return [float(n) for n in value]


def _line(value: Any, where: str) -> list[list[float]]:
    return [_position(p, f"{where}[{i}]") for i, p in enumerate(_list(value, where, minimum=2))]


def _polygon(value: Any, where: str) -> list[list[list[float]]]:
    rings = []
    for i, ring in enumerate(_list(value, where, minimum=1)):
        positions = [_position(p, f"{where}[{i}][{j}]") for j, p in enumerate(_list(ring, f"{where}[{i}]", 3))]
        if positions[0] != positions[-1]:
            positions.append(list(positions[0]))
        if len(positions) < 4:
            raise GeometryFormatError(f"{where}[{i}]: a ring needs at least 3 distinct positions")
        rings.append(positions)
    flat = _part([p for ring in rings for p in ring], where)
    out, at = [], 0
    for ring in rings:
        out.append(flat[at:at + len(ring)])
        at += len(ring)
    return out


def _part(positions: list[list[float]], where: str) -> list[list[float]]:
    """Shift one part by whole turns so its longitudes fall in [-180, 180] (its shape kept)."""
    longitudes = [p[0] for p in positions]
    low, high = min(longitudes), max(longitudes)
    if low >= -180 and high <= 180:
        return positions
    centre = (low + high) / 2
    shift = -360 * math.floor((centre + 180) / 360)
    if low + shift < -180 or high + shift > 180:
        raise GeometryError(f"{where} crosses the antimeridian (longitude 180); split it into parts "
                            "on either side (RFC 7946, 3.1.9)")
    # In decimal, so -245.39 becomes 114.61 and not 114.61000000000001.
    return [[float(Decimal(repr(p[0])) + Decimal(shift)), *p[1:]] for p in positions]
