"""Bad input inside well-formed bodies and parameters: wrong types, missing and unknown fields, invalid and
self-intersecting GeoJSON, out-of-range coordinates, injection-shaped filters and selectors, CSV with bad
rows. Each is a 4xx whose body names the field or the problem, with every database unchanged.

Not here, because both geometry modules accept them on purpose (their docstrings say so): an unclosed ring
is closed, and the spatial units API wraps longitudes outside -180..180 (latitudes are never wrapped).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .bad_input import World, build_world
from .test_bad_input import refused

BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
SQUARE = {"type": "Polygon", "coordinates": [[[31.0, -26.0], [31.5, -26.0], [31.5, -25.5], [31.0, -25.5],
                                              [31.0, -26.0]]]}


def feature(geometry: Any, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": {"name": "n", **properties}}


def point(lon: Any, lat: Any) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


UNITS = "/organizations/{org}/projects/{project}/spatial/"
J = "application/json"
CSV = "text/csv"

# (name, method, path, who, content type, body, statuses, words)
CASES: list[tuple[str, str, str, str, str, Any, tuple[int, ...], tuple[str, ...]]] = [
    # -- GeoJSON: spatial units
    ("unit bowtie", "POST", UNITS, "admin", J, feature(BOWTIE), (400,), ("geometry",)),
    ("unit latitude -95", "POST", UNITS, "admin", J, feature(point(0, -95)), (400,), ("geometry",)),
    ("unit coordinates as text", "POST", UNITS, "admin", J, feature(point("36", "-1")), (400,), ("geometry",)),
    ("unit NaN-like coordinate", "POST", UNITS, "admin", J, feature(point(1e400, 0)), (400,), ()),
    ("unit unknown geometry type", "POST", UNITS, "admin", J, feature({"type": "Circle", "coordinates": [0, 0]}),
     (400,), ("geometry",)),
    ("unit no geometry", "POST", UNITS, "admin", J, {"type": "Feature", "properties": {"name": "n"}}, (400,),
     ("geometry",)),
    ("unit not a Feature", "POST", UNITS, "admin", J, {"type": "FeatureCollection", "features": []}, (400,), ()),
    ("unit name missing", "POST", UNITS, "admin", J, {"type": "Feature", "geometry": point(1, 1),
                                                      "properties": {}}, (400,), ("name",)),
    ("unit name a number", "POST", UNITS, "admin", J, feature(point(1, 1), name=42), (400,), ("name",)),
    ("unit patch bowtie", "PATCH", UNITS + "{unit}/", "admin", J, {"geometry": BOWTIE}, (400,), ("geometry",)),
    ("unit patch latitude 91", "PATCH", UNITS + "{unit}/", "admin", J, {"geometry": point(0, 91)}, (400,),
     ("geometry",)),
    # -- GeoJSON: foci
    ("cluster bowtie", "POST", "/v6/foci/cluster?country=swz", "admin", J, {"id": "c-bowtie", "geometry": BOWTIE},
     (400,), ("geometry",)),
    ("cluster a point", "POST", "/v6/foci/cluster?country=swz", "admin", J, {"id": "c-pt", "geometry": point(1, 1)},
     (400,), ("geometry",)),
    ("cluster id a list", "POST", "/v6/foci/cluster?country=swz", "admin", J, {"id": ["x"], "geometry": SQUARE},
     (400,), ("id",)),
    ("cluster unknown country", "POST", "/v6/foci/cluster?country=%24where", "admin", J,
     {"id": "c-x", "geometry": SQUARE}, (400,), ("country",)),
    ("case latitude 100", "POST", "/v6/foci/case?country=swz", "admin", J, {"id": "k-lat", "geometry": point(0, 100)},
     (400,), ("geometry",)),
    ("case longitude -181", "POST", "/v6/foci/case?country=swz", "admin", J,
     {"id": "k-lon", "geometry": point(-181, 0)}, (400,), ("geometry",)),
    ("case a polygon", "POST", "/v6/foci/case?country=swz", "admin", J, {"id": "k-poly", "geometry": SQUARE}, (400,),
     ("geometry",)),
    ("draft cluster bowtie", "POST", "/api/v6/cluster/", "admin", J,
     {"country": "swz", "cluster_data": {"id": "d-bowtie", "geometry": BOWTIE}}, (400,), ("geometry",)),
    # -- CHT contacts, users, settings, tokens, bulk delete, phone, records
    ("person without name", "POST", "/api/v1/people", "admin", J, {"type": "person", "parent": "{place}"}, (400,),
     ("name",)),
    ("person parent an object", "POST", "/api/v1/people", "admin", J, {"name": "x", "parent": {"$gt": None}}, (400,),
     ("parent",)),
    ("place unknown type", "POST", "/api/v1/places", "admin", J, {"name": "x", "type": "$where"}, (400,), ("type",)),
    ("user without password", "POST", "/api/v1/users", "admin", J, {"username": "nopass", "roles": ["chw"]}, (400,),
     ("password",)),
    ("user roles a string", "POST", "/api/v1/users", "admin", J,
     {"username": "strroles", "password": "Secret-passw0rd!", "roles": "chw"}, (400,), ("roles",)),
    ("user name injection", "POST", "/api/v1/users", "admin", J,
     {"username": "../_users", "password": "Secret-passw0rd!", "roles": ["national_admin"]}, (400,), ("user name",)),
    ("user update roles a number", "POST", "/api/v1/users/{po}", "admin", J, {"roles": 5}, (400,), ("roles",)),
    ("settings permissions a string", "PUT", "/api/v1/settings", "admin", J, {"permissions": "everyone"}, (400,),
     ("permissions",)),
    ("token unknown field", "POST", "/api/v1/tokens", "po", J, {"name": "t", "$where": "1"}, (400,), ("$where",)),
    ("token name a number", "POST", "/api/v1/tokens", "po", J, {"name": 5}, (400,), ("name",)),
    ("bulk delete docs not a list", "POST", "/api/v1/bulk-delete", "admin", J, {"docs": "all"}, (400,), ("docs",)),
    ("bulk delete doc without id", "POST", "/api/v1/bulk-delete", "admin", J, {"docs": [{"id": "x"}]}, (400,),
     ("_id",)),
    ("bulk delete selector", "POST", "/api/v1/bulk-delete", "admin", J, {"docs": [{"_id": {"$gt": None}}]}, (400,),
     ("_id",)),
    ("person type a selector", "POST", "/api/v1/person", "admin", J, {"name": "x", "type": {"$gt": None},
                                                                       "parent": "{place}"}, (400,), ("type",)),
    ("person parent a selector", "POST", "/api/v1/person", "admin", J, {"name": "x", "type": "person",
                                                                         "parent": {"$gt": None}}, (400,), ("parent",)),
    ("place contact an object", "POST", "/api/v1/place", "admin", J, {"name": "x", "type": "clinic",
                                                                       "contact": {"_id": "x"}}, (400,), ("contact",)),
    ("report id given", "POST", "/api/v1/report", "admin", J, {"form": "P", "contact": "x", "_id": "_design/x"},
     (400,), ("_id",)),
    ("phone a number", "POST", "/api/v1/contacts-by-phone", "admin", J, {"phone": 254700000000}, (400,), ("phone",)),
    ("hydrate ids a selector", "POST", "/api/v1/hydrate", "admin", J, {"doc_ids": {"$gt": None}}, (400,),
     ("doc_ids",)),
    ("record without form", "POST", "/api/v2/records", "admin", J, {"_meta": {"from": "+254700000001"}}, (400,),
     ("form",)),
    ("sms gateway messages a string", "POST", "/api/sms", "gateway", J, {"messages": "all"}, (400,), ("messages",)),
    ("get-deletes ids a selector", "POST", "/api/v1/replication/get-deletes", "chw", J, {"doc_ids": {"$gt": None}},
     (400,), ("doc_ids",)),
    ("bulk_docs docs not a list", "POST", "/medic/_bulk_docs", "chw", J, {"docs": {"$where": "1"}}, (400,),
     ("docs",)),
    ("changes with a ddoc filter", "GET", "/medic/_changes?filter=_design%2Fmedic%2Fx", "po", J, None, (400,),
     ("filter",)),
    ("changes with a selector filter", "GET", "/medic/_changes?filter=_selector", "po", J, None, (400,),
     ("filter",)),
    ("find as an offline user", "POST", "/medic/_find", "chw", J, {"selector": {"$where": "1"}}, (403,),
     ("offline",)),
    # -- datapoints: wrong types, unknown fields, injection-shaped filters
    ("region type id text", "POST", "/api/v2/region/", "admin", J,
     {"name": "R", "region_code": "R", "office_id": "1", "region_type_id": "$where"}, (400,), ("region_type_id",)),
    ("region without name", "POST", "/api/v2/region/", "admin", J, {"region_code": "R2", "office_id": "1"}, (400,),
     ("name",)),
    ("region filter operator injection", "GET", "/api/v2/region/?id__in=%24where", "admin", J, None, (400,),
     ("id",)),
    ("region filter mango", "GET", "/api/v2/region/?name__%24gt=x", "admin", J, None, (400,), ()),
    ("datapoint region selector", "GET", "/api/v1/datapoint/?region__in=%7B%22%24gt%22%3Anull%7D&campaign__in=1",
     "admin", J, None, (400,), ("region",)),
    ("dataentry value text", "POST", "/api/v1/dataentry/", "admin", J,
     {"region_id": 1, "campaign_id": 1, "indicator_id": 1, "value": {"$gt": None}}, (400,), ()),
    # -- exports: filters
    ("export unknown filter", "POST", "/api/v2/export/reports", "admin", J, {"filters": {"$where": "1"}}, (400,),
     ("$where",)),
    ("export date a selector", "POST", "/api/v2/export/reports", "admin", J,
     {"filters": {"date": {"from": {"$gt": None}}}}, (400,), ("date",)),
]

# CSV uploads (POST /api/v2/users). A file that cannot be read is refused whole; otherwise each row is tried
# on its own, as CHT does, and a bad row is answered with an error naming its problem (and nothing of it is
# written).
HEADER = "username,password,roles,name,phone,contact.name,place\n"
CSV_REFUSED = [
    ("csv not utf-8", (HEADER + "csvuser5,Secret-passw0rd!,chw,Caf\xe9,,,\n").encode("latin-1"), ("utf-8",)),
    ("csv empty", "", ()),
]
CSV_ROWS = [  # the words each row's answer holds (None: the user was created)
    ("csv header only", HEADER, []),
    ("csv unknown role", HEADER + "csvuser1,Secret-passw0rd!,wizard,Csv One,,,\n", [("place", "contact")]),
    ("csv missing password", HEADER + "csvuser2,,chw,Csv Two,,,\n", [("password",)]),
    ("csv too many cells", HEADER + "csvuser3,Secret-passw0rd!,chw,Csv,,,,extra,extra\n", [("cells",)]),
    ("csv unterminated quote", HEADER + 'csvuser4,"Secret-passw0rd!,chw,Csv Four,,,\n', [("roles",)]),
    ("csv injection username", HEADER + "../_users,Secret-passw0rd!,national_admin,X,,,\n", [("user name",)]),
    ("csv one good row and one bad", HEADER + "csvuser6,Secret-passw0rd!,national_admin,Good,,,\n"
     "csvuser7,short,national_admin,Bad,,,\n", [None, ("password",)]),
]


@pytest.fixture(scope="module")
def world(config) -> World:
    return build_world(config)


def _fill(path: str, world: World) -> str:
    return path.format(org=world.org, project=world.project, unit=world.unit_id, po=world.users["po"],
                       place=world.place_id)


def _body(body: Any, world: World) -> bytes | None:
    if body is None:
        return None
    return json.dumps(body).replace("{place}", world.place_id).encode()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_bad_field(client, couch, world, case):
    name, method, path, who, content_type, body, status, words = case
    await refused(client, couch, world, method, _fill(path, world), who=who, data=_body(body, world),
                  headers={"Content-Type": content_type} if body is not None else {}, status=status, words=words)


@pytest.mark.parametrize("case", CSV_REFUSED, ids=[c[0] for c in CSV_REFUSED])
async def test_unreadable_csv_is_refused(client, couch, world, case):
    name, text, words = case
    data = text.encode() if isinstance(text, str) else text
    await refused(client, couch, world, "POST", "/api/v2/users", data=data, headers={"Content-Type": CSV},
                  words=words)


@pytest.mark.parametrize("case", CSV_ROWS, ids=[c[0] for c in CSV_ROWS])
async def test_csv_bad_rows_fail_alone(client, couch, world, case):
    name, text, expected = case
    response = await client.post("/api/v2/users", data=text.encode(),
                                 headers={**world.headers("admin"), "Content-Type": CSV})
    assert response.status == 200, await response.text()
    answers = await response.json()
    assert len(answers) == len(expected), answers
    users = couch.db(world.config.db_users)
    for answer, words, line in zip(answers, expected, text.splitlines()[1:]):
        created = await users.get_or_none(f"org.couchdb.user:{line.split(',')[0]}")
        if words is None:
            assert "user" in answer and created is not None
        else:
            message = json.dumps(answer["error"]).lower()
            assert all(w in message for w in words), (words, message)
            assert created is None
