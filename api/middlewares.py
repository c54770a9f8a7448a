"""The API's middlewares: access log and metrics, errors, authentication.

Order (outermost first): ``access_log`` sees the final status of every request;
``error_middleware`` turns exceptions into JSON replies in one place;
``auth_middleware`` identifies the caller and refuses anonymous callers on
every route not marked ``@public`` (deny by default).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import metrics
from .errors import BadRequest, JamiiError, PayloadTooLarge, Unauthorized, loggable
from .web import AUTH, CONNECTED, USER, Handler

log = logging.getLogger("jamii.api")
access = logging.getLogger("jamii.access")

_HTTP_ERRORS = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _flag(request: web.Request, name: str) -> bool:
    return bool(getattr(request.match_info.handler, name, False))


def error_response(request: web.Request, exc: JamiiError) -> web.Response:
    formatter = getattr(request.match_info.handler, "jamii_error_body", None)
    if formatter is not None:
        body = formatter(request, exc)
    elif _flag(request, "jamii_couch_errors"):
        body = exc.to_couch_body()
    else:
        body = exc.to_body()
    return web.json_response(body, status=exc.status, headers=exc.headers)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (never the query, nor a path that holds a token), status, ms, user."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status = 499  # the client went away
        raise
    finally:
        elapsed = time.monotonic() - started
        metrics.observe_request(request.method, _route_name(request), status, elapsed)
        principal = request.get(USER)
        path = _route_name(request) if _flag(request, "jamii_secret_path") else request.path
        access.info("%s %s %d %.1fms %s", request.method, path, status, elapsed * 1000,
                    principal.name if principal else "-")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except JamiiError as exc:
        if exc.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(request, exc)
    except web.HTTPRequestEntityTooLarge:
        return error_response(request, PayloadTooLarge(_HTTP_ERRORS[413]))
    except (HttpProcessingError, web.RequestPayloadError):
        # A body that is not valid HTTP (bad chunking): the message quotes the client's bytes, so it is
        # neither logged nor echoed, and the connection is closed (the rest of it cannot be read).
        response = error_response(request, BadRequest("Malformed request body", field="body"))
        response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = JamiiError(_HTTP_ERRORS.get(exc.status, exc.reason))
        err.status = exc.status
        err.couch_error = "not_found" if exc.status == 404 else "bad_request"
        return error_response(request, err)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.error("unhandled error in %s %s: %s", request.method, request.path, loggable(exc))
        return error_response(request, JamiiError("Internal server error"))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    public = _flag(request, "jamii_public") or request.match_info.http_exception is not None
    authorization = request.headers.get("Authorization")
    cookie = request.cookies.get("AuthSession")
    request[USER] = None
    if authorization or cookie:
        try:
            request[USER] = await request.app[AUTH].authenticate(authorization, cookie)
        except Unauthorized:
            if not public:
                raise
    if request[USER] is None and not public:
        raise Unauthorized("Authentication required")
    if request[USER] is not None and request[USER].method != "jwt":
        request.app[CONNECTED].touch(request[USER].name)
    return await handler(request)
