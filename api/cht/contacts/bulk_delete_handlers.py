"""``POST /api/v1/bulk-delete``: delete docs in batches of 100, streaming each batch's results as it lands.

The reply is a JSON array of batch result arrays, sent chunked so a client
can show progress. Once the first bytes are out no status can change, so a
failure part-way (CouchDB gone) ends the connection without closing the
array, as CHT does: the client sees a truncated body, never a false success.
"""

from __future__ import annotations

from aiohttp import web

from api import schemas
from api.streaming import json_array, stream
from api.web import medic, read_json_object, require, settings

from .bulk_delete import delete_batches

routes = web.RouteTableDef()


@routes.post("/api/v1/bulk-delete")
async def bulk_delete(request: web.Request) -> web.StreamResponse:
    principal = await require(request, "can_bulk_delete_reports", online=True)
    body = await read_json_object(request)
    schemas.validate("bulk_delete_body", body)
    ids = [doc["_id"] for doc in body["docs"]]
    batches = delete_batches(medic(request), ids, principal, await settings(request))
    return await stream(request, json_array(batches, flush_bytes=0))


