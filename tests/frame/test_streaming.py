"""The streaming helper: errors before the first piece are replies; after it, the connection is cut."""

import asyncio

from aiohttp import web

from api.errors import ServiceUnavailable
from api.middlewares import error_middleware
from api.streaming import json_array, stream


async def items(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ServiceUnavailable("CouchDB unreachable: test")
        yield {"i": i}


async def collect(source):
    return b"".join([piece async for piece in source])


async def test_json_array_pieces():
    assert await collect(json_array(items(0))) == b"[]"
    assert await collect(json_array(items(3))) == b'[{"i":0},{"i":1},{"i":2}]'
    pieces = [p async for p in json_array(items(3), flush_bytes=0)]
    assert pieces == [b'[{"i":0}', b',{"i":1}', b',{"i":2}', b"]"], "one piece per item, sent at once"


async def test_failure_before_and_after_the_first_piece(aiohttp_client):
    async def early(request):
        return await stream(request, json_array(items(5, fail_at=0)))

    async def late(request):
        return await stream(request, json_array(items(50000, fail_at=40000)))

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/early", early)
    app.router.add_get("/late", late)
    client = await aiohttp_client(app)
    response = await client.get("/early")
    assert response.status == 503 and (await response.json())["code"] == 503
    response = await client.get("/late")
    assert response.status == 200
    try:
        body = await response.read()
    except Exception:  # noqa: BLE001 - the connection was cut, as it must be
        body = None
    assert body is None or not body.endswith(b"]"), "a cut stream never looks complete"
    await asyncio.sleep(0)
