"""Passing a request on to CouchDB as admin and streaming its answer back: the plumbing of the ``/medic``
proxy and of the pass-through to other databases (headers let through, body size limit, idle timeout,
errors part-way through a stream). Every request is checked by ``api.couch_guards`` before it is sent.

A request body is forwarded only as the handler says: a JSON body the API has parsed and checked
(``passthrough_json``, written again by ``api.jsonparse``), or, for attachments and other bodies that are
not JSON, the client's bytes (``raw_body``). Any other body is not forwarded at all.

Nothing CouchDB answers names it: ``Location`` is rewritten to this server's own URL (or dropped when it
points anywhere else in CouchDB), redirects are passed on rather than followed, and attachments are
served inert (``api.security_headers``)."""

from __future__ import annotations

import logging
import re
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from api import couch_guards, jsonparse
from api.couch import CouchError
from api.errors import InvalidDocument, JamiiError, PayloadTooLarge
from api.security_headers import CSP, attachment_headers
from api.web import CONFIG, COUCH

log = logging.getLogger("jamii.replication")

# Headers passed on between the client and CouchDB (never credentials or cookies). JSON is always
# asked for (pouchdb-server answers text/plain otherwise); attachments pass the client's Accept on.
# ``Destination`` is COPY's target id.
REQUEST_HEADERS = ("Content-Type", "If-None-Match", "If-Match", "Destination")
RESPONSE_HEADERS = ("Content-Type", "ETag", "Cache-Control")
PUBLIC_DB_PATH = "/medic"
_SPECIAL_ID = re.compile(r"^/(_design|_local)%2F", re.IGNORECASE)

def medic_path(request: web.Request, suffix: str = "") -> str:
    return request.app[COUCH].db(request.app[CONFIG].db_medic).path + suffix


def public_location(request: web.Request, location: str, db_path: str | None = None,
                    public_path: str = PUBLIC_DB_PATH) -> str | None:
    """CouchDB's ``Location`` as this server's URL, as the client reached it; None (dropped) for a place in
    CouchDB outside the database passed through (``db_path``, medic's by default, which the client knows
    as ``public_path``). A Location on another host (a show function's) is left alone."""
    target, backend = urlsplit(location), urlsplit(request.app[COUCH].url)
    if target.netloc and (target.hostname, target.port) != (backend.hostname, backend.port):
        return location
    db_path = backend.path.rstrip("/") + (medic_path(request) if db_path is None else db_path)
    if target.path != db_path and not target.path.startswith(db_path + "/"):
        return None
    rest = _SPECIAL_ID.sub(r"/\1/", target.path[len(db_path):])  # CouchDB echoes the id as it was sent
    scheme = "https" if request.headers.get("X-Forwarded-Proto", "") == "https" else request.scheme
    query = "?" + target.query if target.query else ""
    return f"{scheme}://{request.host}{public_path}{rest}{query}"


def response_headers(request: web.Request, resp: Any, *, attachment: str | None, db_path: str | None = None,
                     public_path: str = PUBLIC_DB_PATH) -> CIMultiDict[str]:
    """The headers of CouchDB's answer that the client gets (``attachment``: the name of one being served)."""
    out: CIMultiDict[str] = CIMultiDict((h, resp.headers[h]) for h in RESPONSE_HEADERS if h in resp.headers)
    if "Location" in resp.headers:
        location = public_location(request, resp.headers["Location"], db_path, public_path)
        if location is not None:
            out["Location"] = location
    if resp.status >= 400:  # CouchDB's errors are JSON; pouchdb-server labels them text/plain for Accept: */*
        out["Content-Type"] = "application/json"
    elif attachment is not None:
        out.update(attachment_headers(attachment, out.get("Content-Type")))
        for policy in resp.headers.getall(CSP, []):  # CouchDB's own too: every policy sent applies
            if policy not in out.getall(CSP):
                out.add(CSP, policy)
    return out


class LimitedBody:
    """The request body streamed on to CouchDB, cut off past ``MAX_BODY_BYTES`` (as aiohttp's
    ``client_max_size`` does for the bodies the API reads itself): the cut request never completes, so
    CouchDB stores nothing, and the client gets a 413."""

    def __init__(self, request: web.Request):
        self.limit = request.app[CONFIG].max_body_bytes
        self.content = request.content
        self.over = False
        if request.content_length is not None and request.content_length > self.limit:
            raise self.error()

    def error(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"Request body is larger than {self.limit} bytes")

    async def chunks(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.content.iter_chunked(65536):
            seen += len(chunk)
            if seen > self.limit:
                self.over = True
                raise self.error()
            yield chunk


async def passthrough_json(request: web.Request, suffix: str, body: Any, *,
                           query_string: str | None = None) -> web.StreamResponse:
    """``passthrough`` with a JSON body the API has read: CouchDB gets it as the API read it."""
    return await passthrough(request, suffix, body=jsonparse.dumps(body), query_string=query_string,
                             content_type="application/json")


def _is_doc_write(method: str, parts: list[str]) -> bool:
    """A write of docs to a database (not a database, its settings, ``_local`` docs or a system database)."""
    if not parts or parts[0].startswith("_"):
        return False
    if method == "POST":
        return len(parts) == 1 or parts[1:] == ["_bulk_docs"]
    return method in ("PUT", "DELETE", "COPY") and len(parts) >= 2 and \
        (parts[1] == "_design" or not parts[1].startswith("_"))


async def _with_write_quorum(couch: Any, method: str, path: str, query: dict[str, str], query_string: str) -> str:
    """A doc write passed on asks for every live copy, as the API's own writes do (``Couch.write_quorum``),
    unless the client named ``w``: on a cluster the next read of any copy then sees an admin's upload."""
    parts = couch_guards.segments(path)
    if "w" in query or not _is_doc_write(method, parts):
        return query_string
    quorum = await couch.write_quorum(parts[0])
    if quorum is None:
        return query_string
    return f"{query_string}&w={quorum}" if query_string else f"w={quorum}"


async def passthrough(request: web.Request, suffix: str, *, body: bytes | None = None,
                      query_string: str | None = None, raw: bool = False, raw_body: bool = False,
                      content_type: str | None = None, attachment: str | None = None,
                      db_path: str | None = None, public_path: str = PUBLIC_DB_PATH) -> web.StreamResponse:
    """Send the request on to CouchDB as admin and stream its answer back, its body untouched.

    ``body``: the bytes to send; ``raw_body``: stream the client's body on as it is (attachments, bodies
    that are not JSON), under ``MAX_BODY_BYTES``; neither: no body. ``raw``: the answer is an attachment
    (the client's ``Accept`` is passed on); ``attachment``: the name of the attachment it reads, to be
    served inert; ``db_path``: another database than medic, or a server endpoint, which the client knows
    as ``public_path``.
    """
    headers = {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers}
    if content_type is not None:
        headers["Content-Type"] = content_type
    elif body is None and not raw_body:
        headers.pop("Content-Type", None)
    if raw:
        headers["Accept"] = request.headers.get("Accept", "*/*")
    couch = request.app[COUCH]
    path = (medic_path(request) if db_path is None else db_path) + suffix
    query_string = request.query_string if query_string is None else query_string
    query = couch_guards.query_of(query_string)
    if body is None and raw_body and request.can_read_body and \
            couch_guards.body_needed(request.method, couch_guards.segments(path), query):
        body = await request.read()
    await couch_guards.check(couch, request.method, path, query, body)
    query_string = await _with_write_quorum(couch, request.method, path, query, query_string)
    data: Any = body
    limited = None
    if data is None and raw_body and request.can_read_body:
        limited = LimitedBody(request)
        data = limited.chunks()
    try:
        resp = await couch.stream(request.method, path, query_string=query_string, data=data, headers=headers,
                                  raise_errors=False, timeout=idle_limit(request))
    except CouchError as exc:
        if exc.couch_status == 400:  # only pouchdb-server's 500 doc_validation is raised here; CouchDB streams its 400
            raise InvalidDocument(exc.reason) from None
        raise
    except JamiiError:
        if limited is not None and limited.over:
            raise limited.error() from None
        raise
    try:
        out = web.StreamResponse(status=resp.status, headers=response_headers(
            request, resp, attachment=attachment, db_path=db_path, public_path=public_path))
        await out.prepare(request)
        if request.method != "HEAD":
            try:
                async for chunk in couch.iter_body(resp):
                    await out.write(chunk)
            except JamiiError as exc:
                # the status is out already: cut the connection so the client never takes half a body for all
                log.warning("%s %s stopped part-way: %s", request.method, request.path, exc)
                if request.transport is not None:
                    request.transport.abort()
                return out
        await out.write_eof()
        return out
    finally:
        resp.release()


def idle_limit(request: web.Request) -> float:
    """How long CouchDB may stay silent before the proxied request is given up (503, or a cut stream).

    ``COUCH_TIMEOUT``, plus the wait a longpoll ``_changes`` asks for (CouchDB's
    ``timeout``, 60 s by default; its ``heartbeat`` newlines keep it moving).
    """
    limit = request.app[CONFIG].couch_timeout
    if request.query.get("feed") == "longpoll":
        try:
            limit += min(int(request.query.get("timeout", 60000)), 300000) / 1000
        except ValueError:
            limit += 60
    return limit
