"""The Foci API: ``/v6/foci/...`` and the draft's ``/api/v6/cluster/`` aliases.

Permissions ``read:foci`` (reads) and ``write:foci`` (writes; implies read).
An unknown country is 404 on reads, updates and deletes, 400 on creates, as
the spec says. Lists stream, so a country with 100k cases never sits in memory.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.couch import Database
from api.errors import BadRequest, JamiiError, NotFound
from api.streaming import json_array, stream
from api.web import CONFIG, COUCH, json_response, read_json, read_json_object, require, settings

from . import foci

routes = web.RouteTableDef()

READ, WRITE = "read:foci", "write:foci"


def foci_db(request: web.Request) -> Database:
    return request.app[COUCH].db(request.app[CONFIG].db_foci)


async def country(request: web.Request, value: Any, unknown: type[JamiiError]) -> str:
    return foci.resolve_country(await settings(request), value, unknown=unknown)


def _within(prefix: str, exc: BadRequest) -> BadRequest:
    """An error about part of the draft's ``cluster_data``, named from the top of the body."""
    if exc.field and exc.field != "body":
        return BadRequest(f"{prefix}.{exc.message}", field=f"{prefix}.{exc.field}")
    return BadRequest(exc.message.replace("Request body", prefix, 1), field=prefix)


# -- /v6/foci ---------------------------------------------------------------------

async def _list(request: web.Request, kind: str) -> web.StreamResponse:
    await require(request, READ)
    code = await country(request, request.query.get("country"), NotFound)
    return await stream(request, json_array(foci.iter_records(foci_db(request), kind, code)))


async def _count(request: web.Request, kind: str) -> web.Response:
    await require(request, READ)
    code = await country(request, request.query.get("country"), NotFound)
    return json_response({"count": await foci.count(foci_db(request), kind, code)})


async def _update(request: web.Request, kind: str) -> web.Response:
    await require(request, WRITE)
    code = await country(request, request.query.get("country"), NotFound)
    changed = await foci.update(foci_db(request), kind, code, await read_json_object(request))
    return json_response({"n": 1, "nModified": int(changed), "ok": 1})


async def _delete(request: web.Request, kind: str) -> web.Response:
    await require(request, WRITE)
    code = await country(request, request.query.get("country"), NotFound)
    await foci.delete(foci_db(request), kind, code, request.query.get("id", ""))
    return json_response({"n": 1, "ok": 1})


@routes.get("/v6/foci/cluster")
async def get_clusters(request: web.Request) -> web.StreamResponse:
    return await _list(request, foci.CLUSTER)


@routes.post("/v6/foci/cluster")
async def post_clusters(request: web.Request) -> web.Response:
    await require(request, WRITE)
    code = await country(request, request.query.get("country"), BadRequest)
    created = await foci.create(foci_db(request), foci.CLUSTER, code, await read_json(request))
    return json_response([{"cluster_id": i} for i in created.ids], status=201 if created.written else 200)


@routes.put("/v6/foci/cluster")
async def put_cluster(request: web.Request) -> web.Response:
    return await _update(request, foci.CLUSTER)


@routes.delete("/v6/foci/cluster")
async def delete_cluster(request: web.Request) -> web.Response:
    return await _delete(request, foci.CLUSTER)


@routes.get("/v6/foci/case")
async def get_cases(request: web.Request) -> web.StreamResponse:
    return await _list(request, foci.CASE)


@routes.post("/v6/foci/case")
async def post_cases(request: web.Request) -> web.Response:
    await require(request, WRITE)
    code = await country(request, request.query.get("country"), BadRequest)
    created = await foci.create(foci_db(request), foci.CASE, code, await read_json(request))
    return json_response({"n": created.written, "ok": 1}, status=201 if created.written else 200)


@routes.put("/v6/foci/case")
async def put_case(request: web.Request) -> web.Response:
    return await _update(request, foci.CASE)


@routes.delete("/v6/foci/case")
async def delete_case(request: web.Request) -> web.Response:
    return await _delete(request, foci.CASE)


@routes.get("/v6/foci/number_of_clusters")
async def number_of_clusters(request: web.Request) -> web.Response:
    return await _count(request, foci.CLUSTER)


@routes.get("/v6/foci/number_of_cases")
async def number_of_cases(request: web.Request) -> web.Response:
    return await _count(request, foci.CASE)


# -- the draft's paths ----------------------------------------------------------------

@routes.get("/api/v6/cluster")
@routes.get("/api/v6/cluster/")
async def draft_get_clusters(request: web.Request) -> web.StreamResponse:
    return await _list(request, foci.CLUSTER)


async def _draft_body(request: web.Request) -> tuple[Any, Any]:
    body = await read_json_object(request)
    if "cluster_data" not in body:
        raise BadRequest("cluster_data is required", field="cluster_data")
    return body.get("country", request.query.get("country")), body["cluster_data"]


@routes.post("/api/v6/cluster")
@routes.post("/api/v6/cluster/")
async def draft_post_clusters(request: web.Request) -> web.Response:
    await require(request, WRITE)
    country_value, data = await _draft_body(request)
    code = await country(request, country_value, BadRequest)
    try:
        created = await foci.create(foci_db(request), foci.CLUSTER, code, data)
    except BadRequest as exc:
        raise _within("cluster_data", exc) from None
    return json_response([{"cluster_id": i} for i in created.ids], status=201 if created.written else 200)


@routes.put("/api/v6/cluster/{cluster_id}")
async def draft_put_cluster(request: web.Request) -> web.Response:
    await require(request, WRITE)
    country_value, data = await _draft_body(request)
    code = await country(request, country_value, NotFound)
    cluster_id = request.match_info["cluster_id"]
    if not isinstance(data, dict):
        raise BadRequest("cluster_data must be a JSON object", field="cluster_data")
    try:
        await foci.update(foci_db(request), foci.CLUSTER, code, data, record_id=cluster_id)
    except BadRequest as exc:
        raise _within("cluster_data", exc) from None
    return json_response([{"cluster_id": cluster_id}])
