"""The API's middlewares: access log and metrics, errors, authentication.

Order (outermost first): ``access_log`` sees the final status of every request;
``error_middleware`` turns exceptions into JSON replies in one place;
``auth_middleware`` identifies the caller and refuses anonymous callers on
every route not marked ``@public`` (deny by default), before routing decides
anything: a path or method no route serves is a 401 for them too, as in CHT.

A 401 is CHT's ``notLoggedIn`` answer (``not_logged_in``) unless the route has
its own error shape or the error its own body (logins, token links).
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import deadline, metrics
from .couch import CouchError
from .errors import BadRequest, Forbidden, JamiiError, PayloadTooLarge, TooManyRequests, Unauthorized, loggable
from .permissions import FIREWALL_BODY, is_offline
from .web import (AUTH, BACKGROUND_COUCH, CONFIG, CONNECTED, COUCH, USER, Handler, client_address, is_client_human,
                  json_response, settings, wants_json)

log = logging.getLogger("jamii.api")
access = logging.getLogger("jamii.access")

_HTTP_ERRORS = {404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
LOGOUT_HEADER = "logout-authorization"
BASIC_CHALLENGE = 'Basic realm="Medic Web Services"'


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _flag(request: web.Request, name: str) -> bool:
    return bool(getattr(request.match_info.handler, name, False))


def not_logged_in(request: web.Request, exc: JamiiError) -> web.Response:
    """CHT's answer to a caller who is not logged in (or whose credentials are wrong): 401
    ``{"code": 401, "error": "unauthorized"}`` with the ``logout-authorization`` header the CHT web app
    watches for, and a Basic challenge where CHT prompts (routes marked ``basic_prompt``, and clients that
    are neither JSON clients nor browsers: the gateway and Collect apps). Always JSON: CHT's plain-text
    and login-page-redirect variants are left out on purpose (``docs/cht-compatibility.md``)."""
    headers = {**exc.headers, LOGOUT_HEADER: "CHT-Core API"}
    if _flag(request, "jamii_basic_prompt") or not (wants_json(request) or is_client_human(request)):
        headers.setdefault("WWW-Authenticate", BASIC_CHALLENGE)
    log.info("%s %s: not logged in (%s)", request.method, request.path, exc.message)
    return json_response({"code": 401, "error": "unauthorized"}, status=401, headers=headers)


def error_response(request: web.Request, exc: JamiiError) -> web.Response:
    formatter = getattr(request.match_info.handler, "jamii_error_body", None)
    if formatter is not None:
        body = formatter(request, exc)
    elif exc.status == 401 and exc.body is None:
        return not_logged_in(request, exc)
    elif _flag(request, "jamii_couch_errors"):
        body = exc.to_couch_body() if exc.body is None else exc.body  # an explicit body (the firewall's) wins
    else:
        body = exc.to_body()
    return json_response(body, status=exc.status, headers=exc.headers)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, path (never the query, nor a path that holds a token), status, ms, user.
    The request's deadline (``api.deadline``) runs from here, and waits while CouchDB answers the API."""
    started = time.monotonic()
    couch, background = request.app[COUCH], request.app[BACKGROUND_COUCH]
    deadline.start(request.app[CONFIG].couch_timeout, lambda: max(couch.last_answer, background.last_answer))
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
        if isinstance(exc, CouchError) and exc.couch_status == 400 and _flag(request, "jamii_couch_errors"):
            exc = _relayed(exc)
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
        return error_response(request, JamiiError("Server error"))


def _relayed(exc: CouchError) -> JamiiError:
    """CouchDB's 400 on a request the CouchDB-protocol paths relay: the client's own error, passed on as
    CouchDB gave it (elsewhere a CouchDB 400 is a bug in what the API sent, a 500)."""
    relayed = BadRequest(exc.reason or exc.error)
    relayed.couch_error = exc.error or "bad_request"
    return relayed


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    public = _flag(request, "jamii_public")
    authorization = request.headers.get("Authorization")
    cookie = request.cookies.get("AuthSession")
    request[USER] = None
    if (authorization or cookie) and not _flag(request, "jamii_logs_in"):
        try:
            request[USER] = await request.app[AUTH].authenticate(authorization, cookie, client_address(request))
        except (Unauthorized, TooManyRequests):
            if not public:
                raise
    if request[USER] is None and not public:
        raise Unauthorized("Authentication required")
    if request[USER] is not None and request[USER].method != "jwt":
        request.app[CONNECTED].touch(request[USER].name)
    if request.match_info.http_exception is not None and request[USER] is not None \
            and is_offline(request[USER], await settings(request)):
        raise Forbidden("Offline users are not allowed access to this endpoint", body=FIREWALL_BODY)
    return await handler(request)
