"""Answers sent piece by piece as they are read: big lists and exports in flat memory.

``stream`` awaits the first piece before any byte goes out, so a failure
there (CouchDB unreachable, a bad filter found while planning) is still an
ordinary JSON error reply. After that no status can change: a failure cuts the
connection, so a client never takes a truncated body for a whole one. A client
that goes away stops the work, and the source is always closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, AsyncIterable, AsyncIterator, Callable, Mapping

from aiohttp import web

from .errors import JamiiError

log = logging.getLogger("jamii.streaming")

JSON = "application/json; charset=utf-8"
FLUSH_BYTES = 65536


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _close(source: AsyncIterator[Any]) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()


async def stream(request: web.Request, pieces: AsyncIterable[bytes], *, content_type: str = JSON,
                 headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Send ``pieces`` as they come (see the module docstring for what a failure does)."""
    source = aiter(pieces)
    try:
        first = await anext(source, None)
    except BaseException:
        await _close(source)
        raise
    response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
    response.enable_chunked_encoding()
    sent = 0
    try:
        await response.prepare(request)
        if first:
            await response.write(first)
        async for piece in source:
            await response.write(piece)
            sent += 1
    except JamiiError as exc:
        log.warning("%s %s stopped part-way: %s", request.method, request.path, exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    except ConnectionResetError:
        log.info("%s %s: the client went away after %d pieces", request.method, request.path, sent)
        return response
    except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves mid-write
        log.info("%s %s: the client went away after %d pieces", request.method, request.path, sent)
        raise
    finally:
        await _close(source)
    await response.write_eof()
    return response


async def json_array(items: AsyncIterable[Any], *, encode: Callable[[Any], bytes] = _dumps,
                     flush_bytes: int = FLUSH_BYTES) -> AsyncIterator[bytes]:
    """The bytes of a JSON array of ``items``, in pieces of about ``flush_bytes`` (0: one per item).

    The first item is read before the first piece is made, so ``stream`` can
    still answer an error while nothing has been sent.
    """
    source = aiter(items)
    nothing = object()
    try:
        first = await anext(source, nothing)
        if first is nothing:
            yield b"[]"
            return
        buffer = bytearray(b"[" + encode(first))
        while True:
            if buffer and len(buffer) >= flush_bytes:  # flushed before waiting for the next item
                yield bytes(buffer)
                buffer.clear()
            item = await anext(source, nothing)
            if item is nothing:
                break
            buffer += b"," + encode(item)
        buffer += b"]"
        yield bytes(buffer)
    finally:
        await _close(source)
