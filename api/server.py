"""The HTTP server: requests that are not valid HTTP answered as JSON, and logged without what they held.

aiohttp answers a request its parser refuses (a request line or header over the limit, a bad
method, bad chunking, a bad header character) before any middleware runs, with a text body
that quotes the offending bytes, and logs the same text: an oversized ``Cookie`` or
``Authorization`` header would be echoed to the client and written to the log. aiohttp has no
hook for these answers (aio-libs/aiohttp#3287), so the server's protocol class is replaced:
its ``handle_error`` answers ``{"code", "error"}`` with a fixed text (431 for headers over the
limit, else 400, 500 for a bug) and logs the exception's class only, never its message, which
holds the client's bytes.

This relies on aiohttp's ``RequestHandler`` (``handle_error``, ``log_exception``,
``data_received``) and on ``AppRunner._make_server``; ``tests/frame/test_protocol_errors.py``
sends raw bytes to a real ``python -m api`` and fails if a newer aiohttp changes them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from .errors import JamiiError, loggable
from .security_headers import error_headers

log = logging.getLogger("jamii.http")

# The request line may be long (GETs with doc_ids or open_revs); one header may not. Distinct limits tell
# which one a LineTooLong is about (aiohttp's exception says which limit it hit, not which line).
MAX_REQUEST_LINE = 16384
MAX_HEADER_FIELD = 8190
_REASONS = {400: "Malformed HTTP request", 431: "Request header fields too large",
            500: "Internal server error", 504: "Gateway timeout"}


def protocol_status(status: int, exc: BaseException | None) -> int:
    """431 for a header over the limit or too many headers, 400 for every other malformed request."""
    if isinstance(exc, LineTooLong) and len(exc.args) > 1 and exc.args[1] == MAX_HEADER_FIELD:
        return 431
    if isinstance(exc, BadHttpMessage) and exc.message == "Too many headers received":
        return 431
    if isinstance(exc, HttpProcessingError):
        return 400
    return status if status in _REASONS else 500


def error_body(status: int) -> dict[str, Any]:
    err = JamiiError(_REASONS[status])
    err.status = status
    return err.to_body()


class JsonErrorProtocol(RequestHandler):
    """aiohttp's connection handler, with errors answered as JSON and logged without the client's bytes."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        status = protocol_status(status, exc)
        if isinstance(exc, ConnectionError):
            log.debug("a client went away during its request")
        elif status >= 500:
            log.error("error handling a request from %s: %s", request.remote, loggable(exc))
        else:
            log.info("refused a malformed request from %s: %d %s", request.remote, status, type(exc).__name__)
        if request.writer.output_size > 0:  # part of an answer is out: only closing the connection is left
            raise ConnectionError("the response was partly sent already")
        response = web.json_response(error_body(status), status=status, headers=error_headers())
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp's own error lines, with the exception's class and frames but not its message."""
        exc = kwargs.pop("exc_info", None)
        exc = exc if isinstance(exc, BaseException) else None
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):  # the client's, answered already
            log.info("the rest of a malformed request was dropped: %s", type(exc).__name__)
            return
        message = args[0] % args[1:] if args else "error"
        log.error("%s: %s", message, loggable(exc))

    def data_received(self, data: bytes) -> None:
        """A request whose body turns out malformed (bad chunking) after its handler started: the C parser
        queues the error for after the request and leaves the handler waiting for the rest of the body
        forever; wake it with the error instead, so it answers 400 at once."""
        request = getattr(self, "_current_request", None)
        super().data_received(data)
        messages = getattr(self, "_messages", None)
        if request is None or not messages or not hasattr(messages[-1][0], "exc"):
            return
        content = request.content
        if content.exception() is None and not content.is_eof():
            content.set_exception(BadHttpMessage("Malformed request body"))


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server, building JsonErrorProtocol connections
        return server


def handler_args() -> dict[str, int]:
    """The parser's limits, given to the app (``handler_args``) so test servers refuse what production does."""
    return {"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_HEADER_FIELD}


async def serve(app: web.Application, host: str, port: int, *, reuse_port: bool = False,
                own_port: int = 0) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then close it cleanly.

    ``reuse_port``: several processes listen on ``port`` and Linux spreads connections over them
    (``scripts/cluster.py`` runs them). ``own_port``: this process also listens on 127.0.0.1 there, so its
    own metrics (``/api/v1/express-metrics``) can be scraped; it is bound last, so it answering means the
    process is ready."""
    runner = _Runner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
        if own_port:
            await web.TCPSite(runner, "127.0.0.1", own_port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def run(app: web.Application, host: str, port: int, *, reuse_port: bool = False, own_port: int = 0) -> None:
    asyncio.run(serve(app, host, port, reuse_port=reuse_port, own_port=own_port))
