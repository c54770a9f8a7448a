"""The few typed exceptions of Jamii.

Domain code raises these; one middleware (``api.middlewares.error_middleware``)
turns them into responses. The default body is the CHT shape
``{"code": 400, "error": "..."}``; an API whose spec shows another shape passes
``body=`` explicitly.
"""

from __future__ import annotations

import traceback
from typing import Any


class JamiiError(Exception):
    status = 500
    couch_error = "internal_server_error"

    def __init__(self, message: str, *, field: str | None = None, body: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.body = body
        self.headers = headers or {}

    def to_body(self) -> Any:
        if self.body is not None:
            return self.body
        body: dict[str, Any] = {"code": self.status, "error": self.message}
        if self.field:
            body["field"] = self.field
        return body

    def to_couch_body(self) -> dict[str, str]:
        """CouchDB-style error body, for the CouchDB protocol paths."""
        return {"error": self.couch_error, "reason": self.message}


class BadRequest(JamiiError):
    status = 400
    couch_error = "bad_request"


class InvalidDocument(BadRequest):
    """A document CouchDB refuses to store as malformed (its ``doc_validation``), e.g. ``_foo`` at the top."""

    couch_error = "doc_validation"


class Unauthorized(JamiiError):
    status = 401
    couch_error = "unauthorized"


class Forbidden(JamiiError):
    status = 403
    couch_error = "forbidden"


class NotFound(JamiiError):
    status = 404
    couch_error = "not_found"


class MethodNotAllowed(JamiiError):
    """CouchDB's 405 for a method a path does not take; ``Allow`` lists those it does."""

    status = 405
    couch_error = "method_not_allowed"

    def __init__(self, allowed: str, **kwargs: Any):
        super().__init__(f"Only {allowed} allowed", **kwargs)
        self.headers.setdefault("Allow", allowed.replace(",", ", "))


class Conflict(JamiiError):
    status = 409
    couch_error = "conflict"


class PayloadTooLarge(JamiiError):
    status = 413
    couch_error = "too_large"


class UnsupportedMediaType(JamiiError):
    """A body CouchDB only takes as ``application/json`` came as something else (CouchDB's 415)."""

    status = 415
    couch_error = "bad_content_type"


class TooManyRequests(JamiiError):
    """Too many failed logins for one name from one address; ``Retry-After`` says when to try again."""

    status = 429
    couch_error = "too_many_requests"

    def __init__(self, message: str, retry_after: int, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(max(1, retry_after)))


class ServiceUnavailable(JamiiError):
    """The database (or another backend) cannot be reached right now; ``Retry-After`` tells clients when
    to try again (an outage, or views still catching up after one)."""

    status = 503
    couch_error = "service_unavailable"
    retry_after = 2

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(retry_after if retry_after is not None else self.retry_after))


def loggable(exc: BaseException | None) -> str:
    """An unexpected exception for the log: its class and where it was raised, never its message, which
    may quote what a client sent (a password, a token, a cookie)."""
    if exc is None:
        return "no exception"
    name = f"{type(exc).__module__}.{type(exc).__qualname__} (message withheld)"
    if exc.__traceback__ is None:
        return name
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"\nTraceback (most recent call last):\n{frames}{name}"
