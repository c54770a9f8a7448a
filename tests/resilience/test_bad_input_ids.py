"""Injection-shaped ids, names and paths: ``_design/...``, ``_local/...``, ``../``, ``%2e%2e``, ``$where``,
``?`` and ``#`` in every path parameter of every route. Each is refused with a 4xx (or is simply a name
that does not exist: 404), never reaches another CouchDB path, never shows another database's data and
changes nothing. Paths are sent exactly as written (``yarl`` would otherwise resolve ``..`` on the client).

``test_every_path_parameter_is_in_the_corpus`` reads the router, so a new route with a ``{parameter}``
fails until it is added to ``ID_ROUTES``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
from yarl import URL

from api.app import create_app
from api.openapi import registered_routes

from .bad_input import World, build_world, changed, is_error_shape, message_of, snapshot

INJECTED = {
    "design": "_design%2Fmedic",
    "design-bare": "_design",
    "local": "_local%2Fx",
    "all-docs": "_all_docs",
    "changes": "_changes",
    "users-db": "..%2F_users",
    "up-two": "..%2F..%2F_users%2F_all_docs",
    "up-three": "..%2F..%2F..%2F_users%2F_all_docs%3Finclude_docs%3Dtrue",
    "dot-dot-encoded": "%2e%2e",
    "dot-dot-upper": "%2E%2E",
    "dot-encoded": "%2E",
    "dot-dot-raw": "..",
    "dollar-where": "%24where",
    "mango-gt": "%7B%22%24gt%22%3Anull%7D",
    "query": "x%3Frev%3D1-abc%26include_docs%3Dtrue",
    "fragment": "x%23y",
    "user-doc": "org.couchdb.user%3Aadmin",
    "nul": "x%00y",
    "percent": "%25",
    "backslash": "..%5C..%5C_users",
}

DOTS = {INJECTED[name] for name in ("dot-dot-encoded", "dot-dot-upper", "dot-encoded", "dot-dot-raw")}

# Routes where an admin names the thing freely (a design doc, a document, an attachment, a credential's
# key, a checkpoint): an odd name is just a name there, stored under exactly that (quoted) id. Two routes
# take a value that never becomes a CouchDB path: the settings path read answers ``{}`` for a path that is
# not in the settings, as CHT does, and the token-login page is the same page for any token (only its
# POST checks the token).
NOT_A_PATH = {
    ("GET", "/medic/_design/medic/_rewrite/app_settings/medic/{path}"),
    ("GET", "/medic/login/token/{token}"),
}
NAMES_ANYTHING = NOT_A_PATH | {
    ("PUT", "/medic/_design/{ddoc}"), ("DELETE", "/medic/_design/{ddoc}"),
    ("PUT", "/medic/_design/{ddoc}/{rest}"), ("DELETE", "/medic/_design/{ddoc}/{rest}"),
    ("PUT", "/medic/{doc_id}"), ("DELETE", "/medic/{doc_id}"),
    ("PUT", "/medic/{doc_id}/{attachment}"), ("DELETE", "/medic/{doc_id}/{attachment}"),
    ("PUT", "/api/v1/credentials/{key}"),
    ("PUT", "/medic/_local/{name}"), ("DELETE", "/medic/_local/{name}"),
}

# What another database, the server root or a design doc would show: never in the answer to these.
LEAKS = ('"couchdb":"Welcome"', '"couchdb": "Welcome"', '"db_name"', '"total_rows"', '"derived_key"',
         '"password_scheme"', '"validate_doc_update"', '"views"', '"update_seq"', '"org.couchdb.user:')


@dataclass(frozen=True)
class IdRoute:
    method: str
    route: str
    path: str  # with {x} where the injected value goes (other parameters from the world)
    who: str = "admin"
    body: bytes | None = None


UNITS = "/organizations/{org}/projects/{project}/spatial"
V1_UNITS = "/api/v1" + UNITS
FEATURE = b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, "properties": {"name": "n"}}'
DOC = b'{"_id": "x", "type": "person", "name": "x"}'

ID_ROUTES = [
    IdRoute("GET", "/api/docs/assets/{name}", "/api/docs/assets/{x}", who="anonymous"),
    IdRoute("GET", "/api/v1/contact/{uuid}", "/api/v1/contact/{x}"),
    IdRoute("GET", "/api/v1/person/{uuid}", "/api/v1/person/{x}"),
    IdRoute("GET", "/api/v1/place/{uuid}", "/api/v1/place/{x}"),
    IdRoute("GET", "/api/v1/report/{uuid}", "/api/v1/report/{x}"),
    IdRoute("POST", "/api/v1/places/{id}", "/api/v1/places/{x}", body=b'{"name": "renamed"}'),
    IdRoute("PUT", "/api/v1/person/{uuid}", "/api/v1/person/{x}",
            body=b'{"type": "person", "name": "renamed", "_rev": "1-abc"}'),
    IdRoute("PUT", "/api/v1/place/{uuid}", "/api/v1/place/{x}",
            body=b'{"type": "clinic", "name": "renamed", "_rev": "1-abc"}'),
    IdRoute("PUT", "/api/v1/report/{uuid}", "/api/v1/report/{x}",
            body=b'{"type": "data_record", "form": "P", "_rev": "1-abc"}'),
    IdRoute("PUT", "/api/v1/credentials/{key}", "/api/v1/credentials/{x}", body=b"secret"),
    IdRoute("GET", "/api/v1/forms/{form}", "/api/v1/forms/{x}"),
    IdRoute("GET", "/api/v1/forms/{form}/manifest", "/api/v1/forms/{x}/manifest"),
    IdRoute("GET", "/api/v1/forms/{form}/media/{file}", "/api/v1/forms/{x}/media/{x}"),
    IdRoute("POST", "/api/v1/sms/{aggregator}/{endpoint}", "/api/v1/sms/{x}/incoming-messages", who="anonymous",
            body=b"{}"),
    IdRoute("POST", "/api/v2/sms/{aggregator}/{endpoint}", "/api/v2/sms/rapidpro/{x}", who="anonymous",
            body=b"{}"),
    IdRoute("DELETE", "/api/v1/tokens/{id}", "/api/v1/tokens/{x}"),
    IdRoute("GET", "/api/v2/export/{type}", "/api/v2/export/{x}"),
    IdRoute("POST", "/api/v2/export/{type}", "/api/v2/export/{x}", body=b"{}"),
    IdRoute("GET", "/api/v2/users/{username}", "/api/v2/users/{x}"),
    IdRoute("POST", "/api/v1/users/{username}", "/api/v1/users/{x}", body=b'{"phone": "+254700000000"}'),
    IdRoute("POST", "/api/v3/users/{username}", "/api/v3/users/{x}", body=b'{"phone": "+254700000000"}'),
    IdRoute("DELETE", "/api/v1/users/{username}", "/api/v1/users/{x}"),
    IdRoute("GET", "/api/v2/{resource}", "/api/v2/{x}"),
    IdRoute("GET", "/api/v2/{resource}/", "/api/v2/{x}/"),
    IdRoute("POST", "/api/v2/{resource}", "/api/v2/{x}", body=b'{"name": "x"}'),
    IdRoute("POST", "/api/v2/{resource}/", "/api/v2/{x}/", body=b'{"name": "x"}'),
    IdRoute("GET", "/api/v2/{resource}/{id}", "/api/v2/region/{x}"),
    IdRoute("GET", "/api/v2/{resource}/{id}/", "/api/v2/{x}/1/"),
    IdRoute("GET", "/api/v1/{name}/schema", "/api/v1/{x}/schema"),
    IdRoute("GET", "/api/v1/{name}/schema/", "/api/v1/{x}/schema/"),
    IdRoute("PUT", "/api/v6/cluster/{cluster_id}", "/api/v6/cluster/{x}?country=swz",
            body=b'{"cluster_data": {"status": "active"}}'),
    IdRoute("GET", "/medic/_design/medic/_rewrite/app_settings/medic/{path}",
            "/medic/_design/medic/_rewrite/app_settings/medic/{x}"),
    IdRoute("GET", "/medic/_design/{ddoc}", "/medic/_design/{x}"),
    IdRoute("PUT", "/medic/_design/{ddoc}", "/medic/_design/{x}", body=b'{"views": {}}'),
    IdRoute("DELETE", "/medic/_design/{ddoc}", "/medic/_design/{x}"),
    IdRoute("GET", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/{x}", who="chw"),
    IdRoute("POST", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/_view/{x}", who="po",
            body=b'{"keys": []}'),
    IdRoute("PUT", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/{x}", body=b"attachment"),
    IdRoute("DELETE", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/{x}"),
    IdRoute("DELETE", "/medic/_index/{rest}", "/medic/_index/{x}"),
    IdRoute("GET", "/medic/_local/{name}", "/medic/_local/{x}"),
    IdRoute("PUT", "/medic/_local/{name}", "/medic/_local/{x}", who="chw", body=b'{"last_seq": 1}'),
    IdRoute("DELETE", "/medic/_local/{name}", "/medic/_local/{x}?rev=0-1"),
    IdRoute("GET", "/medic/login/token/{token}", "/medic/login/token/{x}", who="anonymous"),
    IdRoute("POST", "/medic/login/token/{token}", "/medic/login/token/{x}", who="anonymous"),
    IdRoute("GET", "/medic/{doc_id}", "/medic/{x}", who="chw"),
    IdRoute("PUT", "/medic/{doc_id}", "/medic/{x}", who="po", body=DOC),
    IdRoute("DELETE", "/medic/{doc_id}", "/medic/{x}?rev=1-abc"),
    IdRoute("GET", "/medic/{doc_id}/{attachment}", "/medic/{place}/{x}", who="chw"),
    IdRoute("PUT", "/medic/{doc_id}/{attachment}", "/medic/{place}/{x}?rev=1-abc", body=b"attachment"),
    IdRoute("DELETE", "/medic/{doc_id}/{attachment}", "/medic/{place}/{x}?rev=1-abc"),
    IdRoute("GET", "/organizations/{org}", "/organizations/{x}"),
    IdRoute("GET", "/organizations/{org}/", "/organizations/{x}/"),
    IdRoute("GET", "/organizations/{org}/members", "/organizations/{x}/members"),
    IdRoute("GET", "/organizations/{org}/members/", "/organizations/{x}/members/"),
    IdRoute("PUT", "/organizations/{org}/members/{username}", "/organizations/{org}/members/{x}",
            body=b'{"role": "member"}'),
    IdRoute("PUT", "/organizations/{org}/members/{username}/", "/organizations/{x}/members/{po}/",
            body=b'{"role": "member"}'),
    IdRoute("DELETE", "/organizations/{org}/members/{username}", "/organizations/{org}/members/{x}"),
    IdRoute("DELETE", "/organizations/{org}/members/{username}/", "/organizations/{x}/members/{member}/"),
    IdRoute("GET", "/organizations/{org}/projects", "/organizations/{x}/projects"),
    IdRoute("GET", "/organizations/{org}/projects/", "/organizations/{x}/projects/"),
    IdRoute("POST", "/organizations/{org}/projects", "/organizations/{x}/projects",
            body=b'{"name": "P", "slug": "p-injected"}'),
    IdRoute("POST", "/organizations/{org}/projects/", "/organizations/{x}/projects/",
            body=b'{"name": "P", "slug": "p-injected"}'),
    IdRoute("GET", "/organizations/{org}/projects/{project}", "/organizations/{org}/projects/{x}"),
    IdRoute("GET", "/organizations/{org}/projects/{project}/", "/organizations/{x}/projects/{project}/"),
    IdRoute("GET", "/organizations/{org}/projects/{project}/members", "/organizations/{org}/projects/{x}/members"),
    IdRoute("GET", "/organizations/{org}/projects/{project}/members/",
            "/organizations/{x}/projects/{project}/members/"),
    IdRoute("PUT", "/organizations/{org}/projects/{project}/members/{username}",
            "/organizations/{org}/projects/{project}/members/{x}", body=b'{"role": "PU"}'),
    IdRoute("PUT", "/organizations/{org}/projects/{project}/members/{username}/",
            "/organizations/{org}/projects/{x}/members/{po}/", body=b'{"role": "PU"}'),
    IdRoute("DELETE", "/organizations/{org}/projects/{project}/members/{username}",
            "/organizations/{org}/projects/{project}/members/{x}"),
    IdRoute("DELETE", "/organizations/{org}/projects/{project}/members/{username}/",
            "/organizations/{org}/projects/{x}/members/{member}/"),
    IdRoute("GET", UNITS + "", "/organizations/{org}/projects/{x}/spatial"),
    IdRoute("GET", UNITS + "/", "/organizations/{x}/projects/{project}/spatial/"),
    IdRoute("POST", UNITS + "", "/organizations/{org}/projects/{x}/spatial",
            body=b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, '
                 b'"properties": {"name": "n"}}'),
    IdRoute("POST", UNITS + "/", "/organizations/{x}/projects/{project}/spatial/",
            body=b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 1]}, '
                 b'"properties": {"name": "n"}}'),
    IdRoute("GET", UNITS + "/{unit_id}", UNITS + "/{x}"),
    IdRoute("GET", UNITS + "/{unit_id}/", UNITS + "/{x}/"),
    IdRoute("PATCH", UNITS + "/{unit_id}", UNITS + "/{x}", body=b'{"properties": {"name": "renamed"}}'),
    IdRoute("PATCH", UNITS + "/{unit_id}/", UNITS + "/{x}/", body=b'{"properties": {"name": "renamed"}}'),
    IdRoute("PUT", UNITS + "/{unit_id}", UNITS + "/{x}", body=FEATURE),
    IdRoute("PUT", UNITS + "/{unit_id}/", UNITS + "/{x}/", body=FEATURE),
    IdRoute("DELETE", UNITS + "/{unit_id}", UNITS + "/{x}"),
    IdRoute("DELETE", UNITS + "/{unit_id}/", UNITS + "/{x}/"),
    # the unit routes at the platform's paths
    IdRoute("GET", V1_UNITS + "", "/api/v1/organizations/{x}/projects/{project}/spatial"),
    IdRoute("GET", V1_UNITS + "/", "/api/v1/organizations/{org}/projects/{x}/spatial/"),
    IdRoute("POST", V1_UNITS + "", "/api/v1/organizations/{x}/projects/{project}/spatial", body=FEATURE),
    IdRoute("POST", V1_UNITS + "/", "/api/v1/organizations/{org}/projects/{x}/spatial/", body=FEATURE),
    IdRoute("GET", V1_UNITS + "/{unit_id}", V1_UNITS + "/{x}"),
    IdRoute("GET", V1_UNITS + "/{unit_id}/", V1_UNITS + "/{x}/"),
    IdRoute("PATCH", V1_UNITS + "/{unit_id}", V1_UNITS + "/{x}", body=b'{"name": "renamed"}'),
    IdRoute("PATCH", V1_UNITS + "/{unit_id}/", "/api/v1/organizations/{x}/projects/{project}/spatial/{x}/",
            body=b'{"name": "renamed"}'),
    IdRoute("PUT", V1_UNITS + "/{unit_id}", V1_UNITS + "/{x}", body=FEATURE),
    IdRoute("PUT", V1_UNITS + "/{unit_id}/", "/api/v1/organizations/{org}/projects/{x}/spatial/{x}/", body=FEATURE),
    IdRoute("DELETE", V1_UNITS + "/{unit_id}", V1_UNITS + "/{x}"),
    IdRoute("DELETE", V1_UNITS + "/{unit_id}/", "/api/v1/organizations/{x}/projects/{project}/spatial/{x}/"),
    # user meta databases, as a user who owns none of them (the owner's own paths: test_user_meta.py)
    *(IdRoute(method, "/medic-user-{name}-meta" + tail, "/medic-user-{x}-meta" + tail, who="po",
              body=b'{"docs": []}' if method in ("POST", "PUT") else None)
      for method in ("GET", "POST", "PUT", "DELETE") for tail in ("", "/")),
    *(IdRoute(method, "/medic-user-{name}-meta/{rest}", "/medic-user-{member}-meta/{x}", who="po",
              body=b'{"docs": []}' if method in ("POST", "PUT") else None)
      for method in ("GET", "POST", "PUT", "DELETE")),
]


def test_every_path_parameter_is_in_the_corpus(config):
    with_parameters = {(m, p) for m, p in registered_routes(create_app(config)) if "{" in p}
    covered = {(r.method.lower(), r.route) for r in ID_ROUTES}
    assert sorted(with_parameters - covered) == []
    assert sorted(covered - with_parameters) == []


@pytest.fixture(scope="module")
def world(config) -> World:
    return build_world(config)


async def send_raw(client, world: World, method: str, path: str, who: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The request with its path exactly as written (no client-side ``..`` resolution)."""
    url = URL(f"http://{client.server.host}:{client.server.port}{path}", encoded=True)
    async with client.session.request(method, url, data=body, headers={**world.headers(who), **(headers or {})},
                                      allow_redirects=False) as response:
        return response.status, response.content_type, await response.text()


def _fill(path: str, world: World, value: str) -> str:
    return path.format(x=value, org=world.org, project=world.project, po=world.users["po"],
                       member=world.users["member"], place=world.place_id)


def must_refuse(route: IdRoute, value: str) -> bool:
    """A dot segment is never an id or a name; in a parameter that spans segments (an attachment name,
    the rest of a design doc path, a form's media file), neither is a segment ``..`` after ``%2F``."""
    if (route.method, route.route) in NOT_A_PATH:
        return False
    segmented = any(name in route.route for name in ("{rest}", "{attachment}", "{file}"))
    return value in DOTS or (segmented and "..%2F" in value)


def values_for(route: IdRoute) -> dict[str, str]:
    """Every value, but ``_all_docs`` and ``_changes`` for ``GET /medic/{doc_id}...``: those are the
    endpoints of that name, which the router rightly picks first."""
    return {name: value for name, value in INJECTED.items()
            if not (route.route.startswith("/medic/{doc_id}") and route.method == "GET"
                    and value in ("_all_docs", "_changes"))}


async def check_one(client, world: World, route: IdRoute, value: str) -> bool:
    """Send one injected value; returns whether it was refused (a 2xx is allowed only where any name is)."""
    path = _fill(route.path, world, value)
    status, content_type, text = await send_raw(client, world, route.method, path, route.who, route.body,
                                                {"Content-Type": "application/json"} if route.body else None)
    where = f"{route.method} {path}: {status} {text[:300]}"
    assert status < 500, where
    echoed = unquote(value)  # the name sent, said back in a message (CHT's "Invalid export type"), is no leak
    assert not [leak for leak in LEAKS if leak in text.replace(echoed, "")], where
    if status < 400:
        assert not must_refuse(route, value), where
        assert (route.method, route.route) in NAMES_ANYTHING, where
        return False
    assert content_type == "application/json", where
    body = json.loads(text)
    assert is_error_shape(body) and message_of(body), where
    return True


@pytest.mark.parametrize("route", ID_ROUTES, ids=lambda r: f"{r.method} {r.route}")
async def test_injected_path_parameter(client, couch, world, route):
    """Every injected value in one route's parameter. Where any name is allowed, each refused request is
    checked on its own to have changed nothing; elsewhere all must be refused, checked around the batch."""
    per_request = (route.method, route.route) in NAMES_ANYTHING
    start = await snapshot(couch, world.config)
    for value in values_for(route).values():
        before = await snapshot(couch, world.config) if per_request else start
        refused = await check_one(client, world, route, value)
        if per_request and refused:
            assert changed(before, await snapshot(couch, world.config)) == [], f"{route.method} {value}"
    if not per_request:
        assert changed(start, await snapshot(couch, world.config)) == [], f"{route.method} {route.route}"


# -- regressions: what the corpus found --------------------------------------------------------------


async def test_offline_user_cannot_read_users_through_a_design_doc_path(client, couch, world):
    """``/medic/_design/medic-client/..%2F..%2F..%2F_users%2F_all_docs`` reached ``/_users/_all_docs`` as
    admin (the HTTP client resolved the ``..``): every user's doc, with ``include_docs`` their hashes."""
    for path in ("/medic/_design/medic-client/..%2F..%2F..%2F_users%2F_all_docs?include_docs=true",
                 f"/medic/{world.place_id}/..%2F..%2F_users%2F_all_docs?include_docs=true"):
        status, _, text = await send_raw(client, world, "GET", path, "chw")
        assert status == 400 and "derived_key" not in text and "org.couchdb.user" not in text, text[:300]


async def test_dot_dot_never_deletes_the_database(client, couch, world):
    """``DELETE /medic/_local/%2E%2E?rev=...`` was ``DELETE /<medic db>/`` after resolution: the database."""
    for path in ("/medic/_local/%2E%2E?rev=1-x", "/medic/_design/%2e%2e?rev=1-x", "/medic/%2E%2E?rev=1-x"):
        status, _, text = await send_raw(client, world, "DELETE", path, "admin")
        assert status == 400 and "valid ids" in text, text
    assert await couch.db(world.config.db_medic).exists()


DEEP = "[" * 2000 + "]" * 2000  # past Python's recursion limit, within the 8 KB request line


@pytest.mark.parametrize("path,field", [("/api/v1/hydrate?doc_ids=" + DEEP, "doc_ids"),
                                        ("/medic/_all_docs?keys=" + DEEP, "keys"),
                                        ("/medic/_all_docs?startkey=" + DEEP, "startkey")])
async def test_deeply_nested_json_in_a_query_parameter_is_400(client, world, path, field):
    """JSON-valued query parameters went through json.loads too: RecursionError, a 500."""
    status, _, text = await send_raw(client, world, "GET", path, "chw" if path.startswith("/medic") else "admin")
    assert status == 400 and field in text, text[:300]


async def test_deeply_nested_role_is_just_an_unknown_role(client, world):
    """users-info reads ``role`` as JSON or else as one role name (CHT's convention): never a 500."""
    status, _, text = await send_raw(client, world, "GET", f"/api/v1/users-info?facility_id=x&role={DEEP}", "admin")
    assert status < 500, text[:300]
