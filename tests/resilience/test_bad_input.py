"""Bad input, route by route: every body-taking route gets malformed, empty, wrongly typed, deeply nested,
non-UTF-8 and oversized bodies, and answers a 4xx that names the problem, with every database unchanged.

The corpus is a table (``JSON_ROUTES``, ``OTHER_BODY_ROUTES``); ``test_every_body_route_is_in_the_corpus``
reads the app's router so a new route that takes a body fails until it is added here or to ``NO_BODY``
with a reason. Field-level cases are in ``test_bad_input_fields.py``, GeoJSON in ``test_bad_input_geo.py``,
ids, selectors and paths in ``test_bad_input_ids.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from api.app import create_app
from api.cht.user_meta.names import escape_username
from api.cht.user_meta.store import ensure as ensure_meta_db
from api.couch import Couch
from api.openapi import registered_routes

from .bad_input import World, build_world, changed, is_error_shape, message_of, snapshot

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Route:
    """A body-taking route as the corpus calls it: a concrete path (``{name}`` filled from the world),
    who calls it, and what its body is."""

    method: str
    route: str  # the router's pattern, for the coverage test
    path: str = ""  # concrete path; defaults to ``route``
    who: str = "admin"
    kind: str = "object"  # object: a JSON object; any: any JSON value; list: a JSON array
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    couch: bool = False  # CouchDB's error shape
    empty_ok: bool = False  # an empty body means "no parameters" (exports, _changes, tokens)
    empty: tuple[tuple[int, ...], tuple[str, ...]] = ((400,), ("empty",))  # status and words for no body

    def url(self, world: World) -> str:
        return (self.path or self.route).format(**world_fields(world))


def world_fields(world: World) -> dict[str, Any]:
    return {"org": world.org, "project": world.project, "unit": world.unit_id, "cluster": world.cluster_id,
            "place": world.place_id, "person": world.person_id, "report": world.report_id,
            "member": world.users["member"], "po": world.users["po"],
            "key": world.incoming_key, "meta": escape_username(world.users["chw"])}


UNITS = "/organizations/{org}/projects/{project}/spatial/"

# Every route that parses a JSON body itself (the API's own reader, api/web.py read_json).
JSON_ROUTES = [
    Route("PUT", "/api/v1/settings", kind="any"),
    Route("PUT", "/medic/_design/medic/_rewrite/update_settings/medic", kind="any", couch=True),
    Route("POST", "/api/v1/bulk-delete"),
    # CHT reads no body as no parameter: its CouchDB-style 400 names the parameter
    Route("POST", "/api/v1/contacts-by-phone", empty=((400,), ("phone",))),
    Route("POST", "/api/v1/hydrate", empty=((400,), ("doc_ids",))),
    Route("POST", "/api/v1/people", kind="any"),
    Route("POST", "/api/v1/places", kind="any"),
    Route("POST", "/api/v1/places/{id}", "/api/v1/places/{place}", kind="any"),
    Route("POST", "/api/v1/person"),
    Route("PUT", "/api/v1/person/{uuid}", "/api/v1/person/{person}"),
    Route("POST", "/api/v1/place"),
    Route("PUT", "/api/v1/place/{uuid}", "/api/v1/place/{place}"),
    Route("POST", "/api/v1/report"),
    Route("POST", "/api/v1/contact/summary"),
    Route("POST", "/api/v1/report/summary"),
    Route("PUT", "/api/v1/report/{uuid}", "/api/v1/report/{report}"),
    Route("POST", "/api/v1/records"),
    Route("POST", "/api/v2/records"),
    Route("POST", "/api/v1/replication/get-deletes", who="chw"),
    Route("POST", "/api/v1/sms/{aggregator}/{endpoint}", "/api/v1/sms/rapidpro/incoming-messages?key={key}",
          who="anonymous"),
    Route("POST", "/api/v2/sms/{aggregator}/{endpoint}", "/api/v2/sms/rapidpro/delivery-reports?key={key}",
          who="anonymous"),
    Route("POST", "/api/sms", who="gateway"),
    Route("POST", "/api/v1/tokens", who="po", empty_ok=True),
    Route("POST", "/api/v1/upgrade", kind="any"),
    Route("POST", "/api/v1/upgrade/stage", kind="any"),
    Route("POST", "/api/v1/users", kind="any"),
    Route("POST", "/api/v1/users/{username}", "/api/v1/users/{po}", kind="any"),
    Route("POST", "/api/v2/users", kind="any"),
    Route("POST", "/api/v3/users"),
    Route("POST", "/api/v3/users/{username}", "/api/v3/users/{po}", kind="any"),
    Route("POST", "/api/v2/export/reports", empty_ok=True),
    Route("POST", "/api/v2/export/messages", empty_ok=True),
    Route("POST", "/api/v2/export/contacts", empty_ok=True),
    Route("POST", "/api/v2/export/feedback", empty_ok=True),
    Route("POST", "/api/v2/export/dhis", empty_ok=True),
    Route("POST", "/api/v2/{resource}", "/api/v2/region"),
    Route("POST", "/api/v2/{resource}/", "/api/v2/indicator/"),
    Route("POST", "/api/v1/dataentry"),
    Route("POST", "/api/v1/dataentry/"),
    Route("POST", "/api/v6/cluster"),
    Route("POST", "/api/v6/cluster/"),
    Route("PUT", "/api/v6/cluster/{cluster_id}", "/api/v6/cluster/{cluster}?country=swz"),
    Route("POST", "/v6/foci/cluster", "/v6/foci/cluster?country=swz"),
    Route("PUT", "/v6/foci/cluster", "/v6/foci/cluster?country=swz"),
    Route("POST", "/v6/foci/case", "/v6/foci/case?country=swz"),
    Route("PUT", "/v6/foci/case", "/v6/foci/case?country=swz"),
    Route("POST", "/organizations"),
    Route("POST", "/organizations/"),
    Route("POST", "/organizations/{org}/projects", "/organizations/{org}/projects"),
    Route("POST", "/organizations/{org}/projects/", "/organizations/{org}/projects/"),
    Route("PUT", "/organizations/{org}/members/{username}", "/organizations/{org}/members/{po}"),
    Route("PUT", "/organizations/{org}/members/{username}/", "/organizations/{org}/members/{po}/"),
    Route("PUT", "/organizations/{org}/projects/{project}/members/{username}",
          "/organizations/{org}/projects/{project}/members/{po}"),
    Route("PUT", "/organizations/{org}/projects/{project}/members/{username}/",
          "/organizations/{org}/projects/{project}/members/{po}/"),
    Route("POST", "/organizations/{org}/projects/{project}/spatial", UNITS.rstrip("/")),
    Route("POST", "/organizations/{org}/projects/{project}/spatial/", UNITS),
    Route("PATCH", "/organizations/{org}/projects/{project}/spatial/{unit_id}", UNITS + "{unit}"),
    Route("PATCH", "/organizations/{org}/projects/{project}/spatial/{unit_id}/", UNITS + "{unit}/"),
    Route("PUT", "/organizations/{org}/projects/{project}/spatial/{unit_id}", UNITS + "{unit}"),
    Route("PUT", "/organizations/{org}/projects/{project}/spatial/{unit_id}/", UNITS + "{unit}/"),
    # the same unit routes at the platform's paths
    Route("POST", "/api/v1/organizations/{org}/projects/{project}/spatial", "/api/v1" + UNITS.rstrip("/")),
    Route("POST", "/api/v1/organizations/{org}/projects/{project}/spatial/", "/api/v1" + UNITS),
    Route("PATCH", "/api/v1/organizations/{org}/projects/{project}/spatial/{unit_id}", "/api/v1" + UNITS + "{unit}"),
    Route("PATCH", "/api/v1/organizations/{org}/projects/{project}/spatial/{unit_id}/",
          "/api/v1" + UNITS + "{unit}/"),
    Route("PUT", "/api/v1/organizations/{org}/projects/{project}/spatial/{unit_id}", "/api/v1" + UNITS + "{unit}"),
    Route("PUT", "/api/v1/organizations/{org}/projects/{project}/spatial/{unit_id}/", "/api/v1" + UNITS + "{unit}/"),
    # No body: the credentials may come in a Basic header instead; without them, CHT's answers.
    Route("POST", "/_session", who="anonymous", kind="any", couch=True, empty=((400,), ("name and password",))),
    Route("POST", "/medic/login", who="anonymous", kind="any", empty=((401,), ("not logged in",))),
    Route("POST", "/medic/password-reset", who="anonymous", kind="any", empty=((400,), ("password",))),
    # /medic as a non-admin: the API reads the body (offline users: everything; online: writes).
    Route("POST", "/medic", who="chw", couch=True),
    Route("POST", "/medic/", who="chw", couch=True),
    Route("POST", "/medic/_all_docs", who="chw", couch=True, empty_ok=True),
    Route("POST", "/medic/_bulk_docs", who="chw", couch=True),
    Route("POST", "/medic/_bulk_get", who="chw", couch=True),
    Route("POST", "/medic/_changes", who="chw", kind="any", couch=True, empty_ok=True),
    Route("POST", "/medic/_revs_diff", who="chw", couch=True),
    Route("POST", "/medic/_missing_revs", who="chw", couch=True),
    Route("PUT", "/medic/_local/{name}", "/medic/_local/bad-input-checkpoint", who="chw", couch=True),
    Route("PUT", "/medic/{doc_id}", "/medic/bad-input-doc", who="chw", couch=True),
    # a user's own meta database: the API reads its owner's bodies
    Route("POST", "/medic-user-{name}-meta", "/medic-user-{meta}-meta", who="chw", couch=True),
    Route("POST", "/medic-user-{name}-meta/", "/medic-user-{meta}-meta/", who="chw", couch=True),
    Route("POST", "/medic-user-{name}-meta/{rest}", "/medic-user-{meta}-meta/_bulk_docs", who="chw", couch=True),
    Route("PUT", "/medic-user-{name}-meta/{rest}", "/medic-user-{meta}-meta/bad-input-doc", who="chw", couch=True),
    # /medic as an admin or an online user: what CouchDB would be given is read and checked by the API
    # first, for every role (issue 23: an unchecked deep body was CouchDB's 500, answered 503).
    Route("POST", "/medic/_all_docs", couch=True, empty_ok=True),
    Route("POST", "/medic/_all_docs", who="po", couch=True, empty_ok=True),
    Route("POST", "/medic/_bulk_docs", couch=True),
    Route("POST", "/medic/_bulk_docs", who="po", couch=True),
    Route("POST", "/medic/_bulk_get", couch=True),
    Route("POST", "/medic/_changes", couch=True, empty_ok=True),
    Route("POST", "/medic/_changes", who="po", couch=True, empty_ok=True),
    Route("POST", "/medic/_revs_diff", couch=True),
    Route("POST", "/medic", couch=True),
    Route("PUT", "/medic/{doc_id}", "/medic/bad-input-doc", couch=True),
    Route("PUT", "/medic/{doc_id}", "/medic/bad-input-doc", who="po", couch=True),
    Route("POST", "/medic/_find", couch=True),
    Route("POST", "/medic/_find", who="po", couch=True),
    Route("POST", "/medic/_explain", couch=True),
    Route("POST", "/medic/_index", couch=True),
    Route("PUT", "/medic/_security", couch=True),
    Route("PUT", "/medic/_revs_limit", couch=True, kind="any"),  # a number; other types: test_replication_online
    Route("POST", "/medic/_purge", couch=True),
    Route("POST", "/medic/_design_docs", couch=True, empty_ok=True),
    Route("POST", "/medic/_local_docs", couch=True, empty_ok=True),
    Route("PUT", "/medic/_design/{ddoc}", "/medic/_design/bad-input", couch=True),
    Route("POST", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/_view/contacts_by_type",
          couch=True),
    Route("POST", "/medic/_design/{ddoc}/{rest}", "/medic/_design/medic-client/_view/contacts_by_type",
          who="po", couch=True),
]

# Bodies that are not JSON and are passed to CouchDB as they are (attachments): they get the size limit
# and must still answer a 4xx, with nothing written.
PASSTHROUGH_ROUTES = [
    Route("PUT", "/medic/_design/{ddoc}/{rest}", "/medic/_design/bad-input/attached.txt", couch=True),
    Route("PUT", "/medic/{doc_id}/{attachment}", "/medic/bad-input-doc/attached.txt", couch=True),
]

# Body routes that are not JSON: text, XML, forms (each has its own cases below).
OTHER_BODY_ROUTES = {
    ("put", "/api/v1/credentials/{key}"): "a secret as UTF-8 text",
    ("post", "/api/v1/forms/validate"): "an XForm (XML)",
}

# Body-less routes reached with POST/PUT: nothing to corrupt but their path (test_bad_input_ids.py).
NO_BODY = {
    ("put", "/medic"): "creates the database (admins); CouchDB reads no body, none is forwarded",
    ("put", "/medic/"): "creates the database (admins); CouchDB reads no body, none is forwarded",
    ("post", "/api/v1/upgrade/complete"): "completes the staged upgrade; takes no body",
    ("post", "/medic/_ensure_full_commit"): "answers a constant; takes no body",
    ("post", "/medic/_compact"): "admin-only trigger, passed to CouchDB; takes no body",
    ("post", "/medic/_view_cleanup"): "admin-only trigger, passed to CouchDB; takes no body",
    ("post", "/medic/login/token/{token}"): "the token is in the path; the body is ignored",
    ("post", "/api/v2/export/user-devices"): "takes no parameters (as in CHT); the body is ignored",
    ("put", "/medic-user-{name}-meta"): "CHT's create-user-db: makes the caller's meta database; the body is ignored",
    ("put", "/medic-user-{name}-meta/"): "the same, as PouchDB sends it",
    ("post", "/api/v2/export/{type}"): "any other export type: CHT's 404 before the body is read",
}


def test_every_body_route_is_in_the_corpus(config):
    """A new POST/PUT/PATCH route fails here until it gets bad-input cases (or a reasoned exclusion)."""
    covered = {(r.method.lower(), r.route) for r in JSON_ROUTES + PASSTHROUGH_ROUTES}
    covered |= set(OTHER_BODY_ROUTES) | set(NO_BODY)
    body_routes = {(m, p) for m, p in registered_routes(create_app(config)) if m in ("post", "put", "patch")}
    assert sorted(body_routes - covered) == []
    assert sorted(covered - body_routes) == []  # no stale entries


@pytest.fixture(scope="module")
def world(config) -> World:
    made = build_world(config)

    async def meta_db() -> None:  # the offline user's meta database, made as their device's first PUT does
        async with Couch.from_config(config) as couch:
            await ensure_meta_db(couch, config.db_medic, made.users["chw"])
    asyncio.run(meta_db())
    return made


async def refused(client, couch, world: World, method: str, url: str, *, who: str = "admin",
                  data: Any = None, headers: dict[str, str] | None = None, status: tuple[int, ...] = (400,),
                  words: tuple[str, ...] = (), check_db: bool = True) -> Any:
    """Send one bad request: it must be refused with a JSON error naming the problem, and change nothing
    (``check_db=False`` when the caller snapshots around a batch of requests instead)."""
    before = await snapshot(couch, world.config) if check_db else None
    response = await client.request(method, url, data=data, headers={**world.headers(who), **(headers or {})})
    text = await response.text()
    after = await snapshot(couch, world.config) if check_db else None
    assert response.status in status, f"{method} {url}: {response.status} {text[:500]}"
    assert response.content_type == "application/json", f"{method} {url}: {response.content_type} {text[:200]}"
    body = await response.json()
    assert is_error_shape(body), f"{method} {url}: {body}"
    message = message_of(body).lower()
    for word in words:
        assert word.lower() in message, f"{method} {url}: {word!r} not in {message[:500]!r}"
    if check_db:
        assert changed(before, after) == [], f"{method} {url} changed the database"
    return body


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def _deep_in_object(levels: int) -> bytes:
    return b'{"name": ' + b'{"a":' * levels + b"1" + b"}" * levels + b"}"


# name -> (body, words the error must contain); each for every JSON route.
MALFORMED: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "truncated": (b'{"name": "x", ', ("json",)),
    "single-quotes": (b"{'name': 'x'}", ("json",)),
    "trailing-garbage": (b'{"name": "x"} {"name": "y"}', ("json",)),
    "nan": (b'{"name": NaN}', ("json",)),
    "infinity": (b'{"value": -Infinity}', ("json",)),
    "beyond-a-double": (b'{"name": "x", "value": 1e400}', ("too large", "value")),
    "deep-array": (_deep(100_000), ("nested",)),
    "deep-object": (_deep_in_object(50_000), ("nested",)),
    "moderately-deep": (_deep(2_000), ("nested",)),
    "invalid-utf8": (b'{"name": "\xff\xfe\xc3\x28"}', ("utf-8",)),
    "utf16": ('{"name": "x"}'.encode("utf-16"), ("utf-8",)),
    "lone-surrogate": (b'{"name": "\\ud800"}', ("utf-8",)),
}
WRONG_TYPES = {"string": b'"x"', "number": b"42", "null": b"null", "true": b"true"}


def malformed_bodies(route: Route) -> list[tuple[str, bytes, tuple[int, ...], tuple[str, ...]]]:
    """(name, body, statuses, words) of every malformed body for ``route``."""
    cases = [(name, body, (400,), words) for name, (body, words) in MALFORMED.items()]
    if not route.empty_ok:
        cases.append(("empty", b"", *route.empty))
        cases.append(("blank", b"  \r\n ", (400,), ("empty",)))
    if route.kind != "any":
        cases.extend((name, body, (400,), ()) for name, body in WRONG_TYPES.items())
        cases.append(("wrong-container", b"[]" if route.kind == "object" else b"{}", (400,), ()))
    return cases


@pytest.mark.parametrize("route", JSON_ROUTES, ids=lambda r: f"{r.method} {r.route}")
async def test_malformed_json_is_refused(client, couch, world, route):
    """Every malformed body on one route (one app; the databases compared around the whole batch)."""
    before = await snapshot(couch, world.config)
    for name, body, status, words in malformed_bodies(route):
        await refused(client, couch, world, route.method, route.url(world), who=route.who, data=body,
                      headers=route.headers, status=status, words=words, check_db=False)
    assert changed(before, await snapshot(couch, world.config)) == [], f"{route.method} {route.route}"


# -- bodies over MAX_BODY_BYTES: 413 on every body route, whether the size is announced or streamed ----

LIMIT = 4096


@pytest.fixture
async def small_client(aiohttp_client, config):
    """The app with a small body limit (MAX_BODY_BYTES=4096), so an over-limit body is cheap to send."""
    return await aiohttp_client(create_app(config.replace(max_body_bytes=LIMIT)))


def _too_big(content_type: str) -> bytes:
    if content_type.startswith("application/json"):
        return b'{"name": "' + b"x" * (LIMIT * 3) + b'"}'
    if content_type.startswith("application/x-www-form-urlencoded"):
        return b"message=" + b"x" * (LIMIT * 3) + b"&from=%2B254700000001"
    return b"x" * (LIMIT * 3)


async def _chunks(data: bytes):
    for start in range(0, len(data), 1024):
        yield data[start:start + 1024]


OVERSIZE = [
    *JSON_ROUTES,
    *PASSTHROUGH_ROUTES,
    Route("PUT", "/api/v1/credentials/{key}", "/api/v1/credentials/bad-input-secret", headers={}),
    Route("POST", "/api/v1/forms/validate", headers={"Content-Type": "text/xml"}),
    # Form-encoded and multipart bodies are read by aiohttp's form parser: the same limit.
    Route("POST", "/api/v2/records", headers=dict(FORM)),
    Route("POST", "/api/v1/sms/{aggregator}/{endpoint}", "/api/v1/sms/rapidpro/incoming-messages?key={key}",
          who="anonymous", headers=dict(FORM)),
    Route("POST", "/api/v2/export/reports", headers=dict(FORM)),
    Route("POST", "/_session", who="anonymous", headers=dict(FORM)),
    Route("POST", "/api/v2/users", headers={"Content-Type": "text/csv"}),
]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", OVERSIZE, ids=lambda r: f"{r.method} {r.route} {r.headers.get('Content-Type')}")
async def test_body_over_the_limit_is_413(small_client, couch, world, route, streamed):
    data = _too_big(route.headers.get("Content-Type", ""))
    await refused(small_client, couch, world, route.method, route.url(world), who=route.who,
                  data=_chunks(data) if streamed else data, headers=route.headers, status=(413,),
                  words=("large",))
