"""Security headers on every response, and content that users control served inert.

Every response gets ``X-Content-Type-Options: nosniff`` (a browser never guesses a type
that would run), ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``, and a
``Content-Security-Policy``: the route's own when it renders a page (``renders``), else one
that lets nothing load or run (``sandbox`` makes the document an opaque origin, so even a
script that slipped through would not run with the API's cookies).

A response whose type a browser would run or render as a page (HTML, SVG, XML,
JavaScript: anything not known to be passive) also gets ``Content-Disposition:
attachment`` unless its route ``renders`` it, so opening it downloads it instead.
Attachments (``attachment_headers``) get ``Content-Security-Policy: sandbox`` as
Apache CouchDB 3.2+ sends on them (CouchDB's own is passed on too: both apply).
"""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

CSP = "Content-Security-Policy"
DISPOSITION = "Content-Disposition"
BASELINE = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# Nothing loads, nothing runs, nothing frames it: for JSON, CSV, errors and every other data answer.
DEFAULT_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
# What CouchDB sends on attachments: no script, no plugin, an opaque origin; images and media still show.
ATTACHMENT_POLICY = "sandbox"

# Types a browser shows without running anything; everything else is downloaded unless a route renders it.
_PASSIVE = frozenset({"text/plain", "text/csv", "application/json",
                      "multipart/mixed", "multipart/related"})
_PASSIVE_FAMILIES = ("image/", "audio/", "video/")

F = TypeVar("F", bound=Callable[..., object])


def renders(policy: str = DEFAULT_POLICY) -> Callable[[F], F]:
    """Mark a handler whose HTML or XML answer is meant to be shown as it is, under ``policy``."""

    def mark(handler: F) -> F:
        handler.jamii_csp = policy  # type: ignore[attr-defined]
        return handler

    return mark


def is_passive(content_type: str | None) -> bool:
    """Whether a browser shows this type without running script or rendering a page of it."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in _PASSIVE:
        return True
    return mime.startswith(_PASSIVE_FAMILIES) and "xml" not in mime and "html" not in mime


def attachment_headers(name: str, content_type: str | None) -> dict[str, str]:
    """Headers that serve a stored attachment inert: sandboxed, and downloaded unless passive."""
    headers = {CSP: ATTACHMENT_POLICY}
    if not is_passive(content_type):
        filename = quote(name.rsplit("/", 1)[-1], safe="")
        headers[DISPOSITION] = f"attachment; filename*=UTF-8''{filename}" if filename else "attachment"
    return headers


def secure(headers: CIMultiDict[str], policy: str | None = None) -> None:
    """Add the baseline headers, and a CSP when none is there (``policy``: the route renders its answer)."""
    for name, value in BASELINE.items():
        headers.setdefault(name, value)
    if ATTACHMENT_POLICY in headers.getall(CSP, ()):
        return  # an attachment: sandboxed already, and its disposition decided by attachment_headers
    if CSP not in headers:
        headers[CSP] = policy or DEFAULT_POLICY
    elif policy is None and DEFAULT_POLICY not in headers.getall(CSP):
        headers.add(CSP, DEFAULT_POLICY)
    content_type = headers.get("Content-Type")
    if policy is None and DISPOSITION not in headers and content_type and not is_passive(content_type):
        headers[DISPOSITION] = "attachment"


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """``app.on_response_prepare`` hook: every response of a matched or unmatched route passes here."""
    handler = request.match_info.handler if request.match_info is not None else None
    secure(response.headers, getattr(handler, "jamii_csp", None))


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(on_response_prepare)


def error_headers() -> Mapping[str, str]:
    """The headers of an answer made outside any route (a request that is not valid HTTP)."""
    return {**BASELINE, CSP: DEFAULT_POLICY}
