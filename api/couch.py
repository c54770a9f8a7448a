"""The one small layer between Jamii and CouchDB.

Everything that talks to CouchDB (API, sentinel, scripts, tests) goes through
``Couch`` and ``Database``. It speaks CouchDB 3's documented protocol and
holds the few defences the embedded pouchdb-server needs:

* every request asks for ``Accept: application/json`` (pouchdb-server answers
  ``text/plain`` otherwise);
* ``_bulk_docs`` results are matched to the request by id, never by position;
* sequences are opaque values, passed back as received.

On an Apache CouchDB cluster (n copies of every shard) two more rules hold here, because an update of a
known revision is not a lock there and a view reads one copy only: every document write asks for ``w`` =
the copies that are up (``write_quorum``), so a 201 means every live copy took it (later view reads see
it, and no competing edit of the same revision can also be told 201); ``claim`` turns a 202 (accepted by
fewer) into a decision every racer agrees on. Reads that change nothing are sent once more after a
connection failure or a 5xx (a node dying behind HAProxy, or during the request), writes never: their outcome is
unknown.

CouchDB errors become the typed exceptions of ``api.errors``: a missing doc is
``NotFound``, a conflict ``Conflict``, a refused write ``Forbidden`` and an
unreachable or failing server ``ServiceUnavailable`` (which the API answers
with 503). Any other CouchDB error is ``CouchError``: a bug in what we sent.

aiocouch was evaluated and is not used: it fails on pouchdb-server's
``text/plain`` replies and out-of-order ``_bulk_docs`` results, has no views
with POSTed keys, and cannot stream the ``_changes`` feed or pass bodies
through untouched as the replication proxy needs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
import uuid
from collections import defaultdict, deque
from typing import Any, AsyncIterator, Callable, Iterable, Mapping
from urllib.parse import quote, unquote

import aiohttp

from .batched_reads import BatchedReads
from .errors import BadRequest, Conflict, Forbidden, JamiiError, NotFound, ServiceUnavailable, Unauthorized

JSON_HEADERS = {"Accept": "application/json"}
# Parameters CouchDB expects JSON-encoded in the query string.
JSON_PARAMS = frozenset({"key", "keys", "startkey", "endkey", "start_key", "end_key", "doc_ids"})

RequestObserver = Callable[[str, float], None]

# POSTs that only read, so they may be sent again after a failure (GET and HEAD always may)
_READ_POSTS = re.compile(r"^/[^/]+/(_all_docs(/queries)?|_bulk_get|_find|_explain|_changes|_revs_diff|_missing_revs"
                         r"|_design_docs|_design/[^/]+/_view/[^/]+(/queries)?)$")
# a proxy's answer for a node that went away, CouchDB's rare 503; and its 500 "nodedown" when a node holding
# a copy died during the request (any 5xx of a read is worth one more try)
_RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_DELAY = (0.2, 0.5)  # seconds: long enough for HAProxy to mark a dead node down
NODEDOWN_DELAY = 1.0  # a read that failed twice right after a node died is sent a third time after this
QUORUM_SECONDS = 2.0  # how long a database's write quorum is used before it is read again
SETTLE_SECONDS = 0.5  # a claim answered 202 waits at least this long for both leaves to reach every copy
SETTLE_MAX_SECONDS = 10.0  # ... and as long as this process's slowest recent write, up to this
SLOW_WRITE_WINDOW = 30.0  # seconds a slow write is remembered for that
LATEST_READS_AT_ONCE = 20  # ``get_many(latest=True)``: quorum GETs in flight at once
NO_SUCH_DOC = frozenset({"not_found", "illegal_docid"})  # ``_bulk_get`` errors that mean "no such doc"
BULK_GET_AT_ONCE = 1000  # ``get_many``: ids per ``_bulk_get`` (CouchDB refuses more than max_bulk_get_count)


def replayable(method: str, path: str) -> bool:
    """Whether a request only reads, so sending it again cannot do anything twice."""
    return method in ("GET", "HEAD") or (method == "POST" and bool(_READ_POSTS.match(path.split("?", 1)[0])))


class CouchError(JamiiError):
    """CouchDB refused a request we should not have sent (a bug, answered 500)."""

    status = 500

    def __init__(self, status: int, error: str, reason: str):
        super().__init__(f"CouchDB {status} {error}: {reason}")
        self.couch_status = status
        self.error = error
        self.reason = reason


class CouchTimeout(ServiceUnavailable):
    """CouchDB did not answer in time."""


def _rev_order(doc: Mapping[str, Any]) -> tuple[bool, int, bytes]:
    """How CouchDB ranks a leaf: live before deleted, then the longer history, then the greater revision id
    (compared as CouchDB stores it: 32 hex digits as their 16 bytes, anything else as its bytes)."""
    pos, _, rev_id = str(doc.get("_rev", "")).partition("-")
    try:
        raw = bytes.fromhex(rev_id) if len(rev_id) == 32 else rev_id.encode()
    except ValueError:
        raw = rev_id.encode()
    return (not doc.get("_deleted"), int(pos) if pos.isdigit() else 0, raw)


def winning_leaf(leaves: Iterable[Any]) -> dict[str, Any] | None:
    """The revision CouchDB serves for a doc from its leaves (``_bulk_get`` without a revision answers them
    all); None when there is none or every leaf is deleted."""
    docs = [leaf for leaf in leaves if isinstance(leaf, dict)]
    if not docs:
        return None
    best = max(docs, key=_rev_order)
    return None if best.get("_deleted") else best


def bulk_get_leaves(body: Mapping[str, Any], ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Each asked id's leaves from a ``_bulk_get`` answer. A missing id has none: CouchDB answers it with a
    ``not_found`` error entry (a deleted one with its deleted leaf; an id no doc can have, ``_design`` say,
    with ``illegal_docid``); pouchdb-server with an empty entry (a deleted one too). Any other error entry,
    or an id the answer does not mention, raises ``ServiceUnavailable``: a copy that could not be read must
    not pass for a doc that does not exist (the sentinel would pass over its change, a claim would create it
    again)."""
    leaves: dict[str, list[dict[str, Any]]] = {doc_id: [] for doc_id in ids}
    answered: set[str] = set()
    for result in body.get("results") or ():
        doc_id = result.get("id") if isinstance(result, dict) else None
        if doc_id not in leaves:
            continue
        answered.add(doc_id)
        for entry in result.get("docs") or ():
            if isinstance(entry, dict) and isinstance(entry.get("ok"), dict):
                leaves[doc_id].append(entry["ok"])
                continue
            if entry == {}:
                continue
            error = entry.get("error") if isinstance(entry, dict) else None
            if not isinstance(error, dict) or error.get("error") not in NO_SUCH_DOC:
                reason = error.get("error") if isinstance(error, dict) else error
                raise ServiceUnavailable(f"CouchDB could not read {doc_id!r} ({reason})")
    if len(answered) < len(leaves):
        unanswered = sorted(set(leaves) - answered)
        raise ServiceUnavailable(f"CouchDB's _bulk_get left out {len(unanswered)} doc(s), {unanswered[0]!r} first")
    return leaves


def basic_auth(user: str, password: str) -> str:
    """An ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")


def quote_id(doc_id: str) -> str:
    """Quote a document id for a URL path, keeping the ``_design/`` and ``_local/`` prefixes."""
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix):], safe="")
    return quote(doc_id, safe="")


def quote_path(path: str) -> str:
    """Quote a path of several segments (an attachment name, the rest of a design doc path) segment by
    segment: ``/`` stays a separator, while ``?``, ``#`` and ``%`` cannot start a query or an escape."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def check_name(name: str) -> None:
    """``.`` and ``..`` are never ids or names: a URL cannot address them (clients resolve them away)."""
    if name in (".", ".."):
        raise BadRequest("'.' and '..' are not valid ids or names", field="id")


def check_path(path: str) -> str:
    """Refuse a path with a ``.`` or ``..`` segment (also as ``%2e``): the HTTP client resolves them, so
    ``/medic/_design/x/../../_users`` would reach another database."""
    for segment in path.split("?", 1)[0].split("/"):
        check_name(unquote(segment))
    return path


def encode_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Query parameters as CouchDB wants them: JSON for keys, lower-case booleans."""
    out: dict[str, str] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if name in JSON_PARAMS:
            out[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out


def node_config_path(node: str, section: str, key: str) -> str:
    """One setting of one CouchDB 2/3 node: ``/_node/<node>/_config/<section>/<key>``."""
    return f"/_node/{quote(node, safe='')}/_config/{quote(section, safe='')}/{quote(key, safe='')}"


def raise_for_status(status: int, body: Any) -> None:
    if status < 400:
        return
    error = reason = ""
    if isinstance(body, dict):
        error = str(body.get("error", ""))
        reason = str(body.get("reason", ""))
    if status == 404:
        raise NotFound(reason or "missing")
    if status == 409:
        raise Conflict(reason or "Document update conflict.")
    if status == 403:
        raise Forbidden(reason or "forbidden")
    if status == 401:
        raise Unauthorized(reason or "unauthorized")
    if status >= 500 and error == "doc_validation":
        status = 400  # CouchDB's status for a malformed doc; pouchdb-server answers it with 500
    if status >= 500:
        raise ServiceUnavailable(f"CouchDB error {status}: {error} {reason}".strip())
    raise CouchError(status, error, reason)


class Couch:
    """A CouchDB server, reached with the admin credentials from the config."""

    def __init__(self, url: str, user: str | None, password: str | None, *,
                 timeout: float = 30.0, observer: RequestObserver | None = None,
                 connections: int = 100):
        self.url = url.rstrip("/")
        # Admin credentials go on each request (not on the session), so requests
        # made with a user's own credentials never carry them.
        self.headers = dict(JSON_HEADERS)
        if user:
            self.headers["Authorization"] = basic_auth(user, password or "")
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._observer = observer
        # (database, design doc, view) of every view queried through this client, in first-use order:
        # what api.ddocs.ViewWarmer keeps caught up
        self.views_used: dict[tuple[str, str, str], None] = {}
        self._batched: dict[str, BatchedReads] = {}
        self._quorums: dict[str, tuple[float, int | None]] = {}
        self._writable: tuple[float, set[str] | None] | None = None
        self._apache: bool | None = None
        self.retries = 0  # reads sent again after a node went away (see ``request``)
        self._slowest_write = (float("-inf"), 0.0)  # (when, seconds): the slowest write of the last while
        # when CouchDB last answered anything through this client (time.monotonic()): a request waiting
        # on several calls gives up only once CouchDB has been silent too long (api.deadline)
        self.last_answer = float("-inf")

    @classmethod
    def from_config(cls, config: Any, observer: RequestObserver | None = None) -> "Couch":
        return cls(config.couch_url, config.couch_user, config.couch_password,
                   timeout=config.couch_timeout, observer=observer)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._connections, keepalive_timeout=30),
                json_serialize=lambda obj: json.dumps(obj, separators=(",", ":")),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "Couch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def batched(self, name: str) -> BatchedReads:
        """Reads of docs by id and of the info of database ``name``, merged while CouchDB is busy
        (``api.batched_reads``)."""
        found = self._batched.get(name)
        if found is None:
            found = self._batched[name] = BatchedReads(self.db(name))
        return found

    def db(self, name: str) -> "Database":
        return Database(self, name)

    # -- raw requests ---------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      json_body: Any = None, data: Any = None, headers: Mapping[str, str] | None = None,
                      timeout: float | None = None,
                      raise_errors: bool = True) -> tuple[int, Any, Mapping[str, str]]:
        """One request as admin; returns (status, parsed JSON body, headers)."""
        kwargs: dict[str, Any] = {"params": encode_params(params), "headers": {**self.headers, **(headers or {})}}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body, separators=(",", ":")).encode()
            kwargs["headers"]["Content-Type"] = "application/json"
        elif data is not None:
            kwargs["data"] = data
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        again = replayable(method, path)
        started = time.monotonic()
        try:
            for attempt in (0, 1, 2):
                try:
                    async with self.session.request(method, self.url + check_path(path), **kwargs) as resp:
                        raw = await resp.read()
                        status, resp_headers = resp.status, resp.headers
                    self.last_answer = time.monotonic()
                except asyncio.TimeoutError as exc:
                    raise CouchTimeout("CouchDB did not answer in time") from exc
                except (aiohttp.ClientError, OSError) as exc:
                    if attempt < 2 and again:  # the second retry: HAProxy still routing to a node just killed
                        await self._before_retry(None if attempt == 0 else NODEDOWN_DELAY)
                        continue
                    raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc
                if attempt == 0 and again and status >= 500:
                    await self._before_retry()
                    continue
                if attempt == 1 and again and status == 500:  # CouchDB's "nodedown" right after a node died
                    await self._before_retry(NODEDOWN_DELAY)
                    continue
                break
        finally:
            took = time.monotonic() - started
            if not again:
                self._note_write(took)
            if self._observer is not None:
                self._observer(method, took)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        if raise_errors:
            raise_for_status(status, body)
        return status, body, resp_headers

    def _note_write(self, took: float) -> None:
        when, slowest = self._slowest_write
        now = time.monotonic()
        if took >= slowest or now - when > SLOW_WRITE_WINDOW:
            self._slowest_write = (now, took)

    def settle_wait(self) -> float:
        """How long a claim answered 202 waits before reading every leaf: a competing write issued before
        ours returned takes about as long as writes take now, so the wait follows this process's slowest
        write of the last ``SLOW_WRITE_WINDOW`` seconds (a cluster under load: writes of 3-9 s were seen)."""
        when, slowest = self._slowest_write
        if time.monotonic() - when > SLOW_WRITE_WINDOW:
            slowest = 0.0
        return max(SETTLE_SECONDS, min(slowest, SETTLE_MAX_SECONDS))

    async def _before_retry(self, delay: float | None = None) -> None:
        self.retries += 1
        await asyncio.sleep(random.uniform(*RETRY_DELAY) if delay is None else delay)

    async def get_json(self, path: str, **params: Any) -> Any:
        return (await self.request("GET", path, params=params))[1]

    async def write_quorum(self, db_name: str) -> int | None:
        """``w`` for writes to ``db_name``: its copies (``cluster.n``) that are up, or None where there is
        no cluster (one node, pouchdb-server): a 201 with it means every live copy took the write first.

        Read again every ``QUORUM_SECONDS``; a node lost meanwhile only turns a 201 into a 202."""
        now = time.monotonic()
        cached = self._quorums.get(db_name)
        if cached is not None and cached[0] > now:
            return cached[1]
        quorum: int | None = None
        status, info, _ = await self.request("GET", "/" + quote(db_name, safe=""), raise_errors=False)
        copies = (info.get("cluster") or {}).get("n") if status == 200 and isinstance(info, dict) else None
        if isinstance(copies, int) and copies > 1:
            live = await self._writable_nodes()
            quorum = copies if live is None else max(1, min(copies, len(live)))
        self._quorums[db_name] = (now + QUORUM_SECONDS, quorum)
        return quorum

    async def _writable_nodes(self) -> set[str] | None:
        """The cluster's nodes that are up and take writes (not in maintenance mode: such a node refuses the
        copies it is sent, so counting it would turn every write into a 202); None if unknown. Read again every
        ``QUORUM_SECONDS``."""
        now = time.monotonic()
        if self._writable is not None and self._writable[0] > now:
            return self._writable[1]
        found = await self._read_writable_nodes()
        self._writable = (now + QUORUM_SECONDS, found)
        return found

    async def membership(self) -> dict[str, Any] | None:
        """``/_membership`` (``all_nodes``: up, ``cluster_nodes``: configured); None from a server without
        nodes (pouchdb-server)."""
        status, members, _ = await self.request("GET", "/_membership", raise_errors=False)
        return members if status == 200 and isinstance(members, dict) else None

    async def node_config(self, node: str, section: str, key: str, value: str | None = None) -> Any:
        """One setting of one CouchDB 2/3 node: read (None when unset), or written when ``value`` is given.
        ``ServiceUnavailable`` when the node is down: CouchDB answers 412 ``nodedown`` for a member that died
        since ``_membership`` was read."""
        method = "GET" if value is None else "PUT"
        status, answer, _ = await self.request(method, node_config_path(node, section, key), json_body=value,
                                               raise_errors=False)
        if status == 412 and isinstance(answer, dict) and answer.get("error") == "nodedown":
            raise ServiceUnavailable(f"CouchDB node {node} is down")
        if method == "GET" and status == 404:
            return None
        raise_for_status(status, answer)
        return answer

    async def _read_writable_nodes(self) -> set[str] | None:
        members = await self.membership()
        if members is None:
            return None
        live = set(members.get("all_nodes") or ()) & set(members.get("cluster_nodes") or ())

        async def in_maintenance(node: str) -> bool:
            try:
                return await self.node_config(node, "couchdb", "maintenance_mode") == "true"
            except ServiceUnavailable:
                return True  # gone since _membership was read: it takes no writes either

        maintained = await asyncio.gather(*(in_maintenance(node) for node in sorted(live)))
        return {node for node, down in zip(sorted(live), maintained) if not down}

    async def stream(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                     query_string: str | None = None, data: Any = None,
                     headers: Mapping[str, str] | None = None, timeout: float | None = None,
                     raise_errors: bool = True) -> aiohttp.ClientResponse:
        """Start a request and return the open response, for streaming bodies.

        ``query_string`` passes a client's query on untouched (instead of
        ``params``). With ``raise_errors=False`` a 4xx response is returned
        too (for passing CouchDB's own error on); a 5xx always raises.
        ``timeout`` is an idle limit (seconds without a byte from CouchDB,
        headers included), not a total: a long transfer that keeps moving is
        never cut, a hung server is. Read the body with ``iter_body``. The
        caller must ``release()`` (or use ``async with``) the response.
        """
        url = self.url + check_path(path)
        # A redirect is the client's to follow (as itself), never the admin's.
        kwargs: dict[str, Any] = {"headers": {**self.headers, **(headers or {})}, "allow_redirects": False}
        if query_string:
            url += "?" + query_string
        else:
            kwargs["params"] = encode_params(params)
        if data is not None:
            kwargs["data"] = data
        kwargs["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=timeout)
        # a read is sent once more if the node answering it goes away before its answer starts (not a body
        # that cannot be sent twice)
        again = replayable(method, path) and (data is None or isinstance(data, (bytes, str)))
        for attempt in (0, 1):
            try:
                resp = await self.session.request(method, url, **kwargs)
            except asyncio.TimeoutError as exc:  # first: aiohttp's socket time-outs are ClientErrors too
                raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc  # hung: not again
            except (aiohttp.ClientError, OSError) as exc:
                if attempt == 0 and again:
                    await self._before_retry()
                    continue
                raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc
            self.last_answer = time.monotonic()
            if attempt == 0 and again and resp.status >= 500:
                resp.release()
                await self._before_retry()
                continue
            break
        if resp.status >= 500 or (raise_errors and resp.status >= 400):
            try:
                body = await resp.json(content_type=None)
            except (ValueError, aiohttp.ClientError):
                body = None
            finally:
                resp.release()
            raise_for_status(resp.status, body)
        return resp

    @staticmethod
    async def iter_body(resp: aiohttp.ClientResponse, size: int = 65536) -> AsyncIterator[bytes]:
        """The body of a ``stream`` response in chunks; CouchDB going away or going quiet
        part-way is ``ServiceUnavailable``, like every other failure to reach it."""
        try:
            async for chunk in resp.content.iter_chunked(size):
                yield chunk
        except asyncio.TimeoutError as exc:
            raise CouchTimeout("CouchDB stopped answering part-way") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailable(f"CouchDB went away part-way: {type(exc).__name__}") from exc

    # -- server ---------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return await self.get_json("/")

    async def is_apache_couchdb(self) -> bool:
        """Is the server Apache CouchDB (``GET /`` says ``"couchdb": "Welcome"``), not the embedded
        pouchdb-server? Asked once; the defences only pouchdb-server needs are skipped on CouchDB."""
        if self._apache is None:
            self._apache = "couchdb" in await self.info()
        return self._apache

    async def all_dbs(self) -> list[str]:
        return await self.get_json("/_all_dbs")

    async def create_db(self, name: str) -> bool:
        """Create a database; False when it already exists."""
        status, _, _ = await self.request("PUT", "/" + quote(name, safe=""), raise_errors=False)
        if status in (201, 202):
            return True
        if status == 412:
            return False
        if status >= 500 or status == 0:
            raise ServiceUnavailable(f"could not create database {name}: {status}")
        raise CouchError(status, "create_db", f"could not create database {name}")

    async def delete_db(self, name: str) -> None:
        status, body, _ = await self.request("DELETE", "/" + quote(name, safe=""), raise_errors=False)
        if status not in (200, 202, 404):
            raise_for_status(status, body)

    async def config_section(self, section: str) -> dict[str, str]:
        """One section of the server's configuration (``{}`` when the server sets nothing in it).

        CouchDB 2/3 serve it at ``/_node/_local/_config/<section>``; CouchDB 1 and
        pouchdb-server at ``/_config/<section>``.
        """
        name = quote(section, safe="")
        for path in (f"/_node/_local/_config/{name}", f"/_config/{name}"):
            status, body, _ = await self.request("GET", path, raise_errors=False)
            if status == 200 and isinstance(body, dict):
                return {k: v for k, v in body.items() if isinstance(v, str)}
            if status >= 500 or status in (401, 403):
                raise_for_status(status, body)
        return {}

    async def session_info(self, headers: Mapping[str, str]) -> tuple[dict[str, Any], Mapping[str, str]]:
        """``GET /_session`` with a client's own credentials (Basic or cookie).

        Used to check a user's credentials; never trusted for anything else.
        Returns the userCtx (name is None when the credentials are wrong) and
        the response headers (CouchDB may refresh the session cookie).
        """
        for attempt in (0, 1):  # a read: sent once more if the node answering it went away
            try:
                async with self.session.get(self.url + "/_session", headers={**JSON_HEADERS, **headers}) as resp:
                    body = await resp.json(content_type=None)
                    status, resp_headers = resp.status, resp.headers
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                if attempt == 0 and not isinstance(exc, asyncio.TimeoutError):
                    await self._before_retry()
                    continue
                raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc
            if attempt == 0 and status in _RETRY_STATUSES:
                await self._before_retry()
                continue
            break
        if status == 401:
            return {"name": None, "roles": []}, resp_headers
        raise_for_status(status, body)
        return body.get("userCtx") or {"name": None, "roles": []}, resp_headers

    async def new_session(self, name: str, password: str) -> tuple[dict[str, Any] | None, str | None]:
        """``POST /_session``: returns (userCtx, AuthSession cookie value) or (None, None)."""
        try:
            async with self.session.post(self.url + "/_session", json={"name": name, "password": password},
                                         headers=JSON_HEADERS) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
                cookie = resp.cookies.get("AuthSession")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc
        if status == 401:
            return None, None
        raise_for_status(status, body)
        return {"name": body.get("name"), "roles": body.get("roles", [])}, cookie.value if cookie else None


class Database:
    """One CouchDB database."""

    def __init__(self, couch: Couch, name: str):
        self.couch = couch
        self.name = name
        self.path = "/" + quote(name, safe="")

    def __repr__(self) -> str:
        return f"Database({self.name!r})"

    def doc_path(self, doc_id: str) -> str:
        return f"{self.path}/{quote_id(doc_id)}"

    async def info(self) -> dict[str, Any]:
        """The database's info (``update_seq``, counts), from a request sent after the call; concurrent calls
        share requests while CouchDB is busy (``api.batched_reads``: every offline read starts from one)."""
        return await self.couch.batched(self.name).info()

    async def read_info(self) -> dict[str, Any]:
        """``info`` in a request of its own."""
        return await self.couch.get_json(self.path)

    async def exists(self) -> bool:
        status, _, _ = await self.couch.request("GET", self.path, raise_errors=False)
        return status == 200

    # -- documents ------------------------------------------------------

    async def get(self, doc_id: str, **params: Any) -> dict[str, Any]:
        return await self.couch.get_json(self.doc_path(doc_id), **params)

    async def get_or_none(self, doc_id: str, **params: Any) -> dict[str, Any] | None:
        try:
            return await self.get(doc_id, **params)
        except NotFound:
            return None

    async def _write_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with this database's write quorum, unless the caller chose a ``w``."""
        out = dict(params)
        if "w" not in out and not self.name.startswith("_"):  # system databases: CouchDB's own default
            quorum = await self.couch.write_quorum(self.name)
            if quorum is not None:
                out["w"] = quorum
        return out

    async def put(self, doc: dict[str, Any], **params: Any) -> dict[str, Any]:
        """Write a doc (``_id`` required); sets the new ``_rev`` on it and returns {ok, id, rev}, with
        ``accepted: True`` when fewer copies than asked took it (202: it may be in conflict, see ``claim``)."""
        status, body, _ = await self.couch.request("PUT", self.doc_path(doc["_id"]), json_body=doc,
                                                   params=await self._write_params(params))
        doc["_rev"] = body["rev"]
        if status == 202:
            body["accepted"] = True
        return body

    async def delete(self, doc_id: str, rev: str) -> dict[str, Any]:
        params = await self._write_params({"rev": rev})
        return (await self.couch.request("DELETE", self.doc_path(doc_id), params=params))[1]

    async def claim(self, doc: dict[str, Any], settle_wait: float | None = None, *, confirm: bool = True) -> bool:
        """Create ``doc`` (no ``_rev``) or update the revision it carries, as a lock: True when this write
        won, False when another did (409) or it could not be confirmed. On a cluster two writers of the same
        revision can both be told 202, and one may act before the other's write reaches the copies it reads:
        a 202 wins only through ``confirm``. ``confirm=False`` (the lease, on a deadline and fenced) lets
        CouchDB's winner among the settled leaves decide."""
        try:
            result = await self.put(doc)
        except Conflict:
            return False
        if not result.get("accepted"):
            return True
        if confirm:
            return await self.confirm(doc, settle_wait)
        return await self.settle(doc["_id"], result["rev"], settle_wait)

    async def confirm(self, doc: dict[str, Any], wait: float | None = None) -> bool:
        """Whether ``doc``, just written with a 202 (``accepted``), may be acted on: once settled its revision
        is the doc's one live leaf, and ``doc`` written again on top of it is taken by every live copy (201),
        which a competing leaf on any live copy refuses. ``doc`` then carries the new ``_rev``. A write left
        unconfirmed is not deleted (nor is the doc): its caller treats it as lost and the doc as changed."""
        if not await self.settle(doc["_id"], doc["_rev"], wait, alone=True):
            return False
        again = {**doc}
        try:
            result = await self.put(again)
        except Conflict:
            return False
        if result.get("accepted"):
            return False
        doc["_rev"] = result["rev"]
        return True

    async def settle(self, doc_id: str, rev: str, wait: float | None = None, *, alone: bool = False) -> bool:
        """Whether ``rev`` (written with a 202 or an ``accepted`` result) is the doc's winning revision once
        the copies agree; a losing ``rev`` is deleted, so the doc carries no conflict of ours. With ``alone``,
        only when it is the doc's one live leaf: a winner among conflicts cannot know whether its competitor
        already acted on its own write (it keeps its leaf, so the doc is not lost).

        Every leaf is read from every live copy (``open_revs=all``, ``r`` = the live copies: a competing
        edit told 202 is on at least one of them) and the winner is chosen by CouchDB's own rule, so every
        racer decides the same. (A competitor told 201 never asks; that it raced a write made at an older
        revision read from a returning node's stale copy is prevented by reading claims from every live copy,
        ``get_many(latest=True)``, and by nodes returning in maintenance mode: docs/scaling.md.) The read waits
        ``settle_wait()`` first (or ``wait``, for a writer on a deadline), so a competing write still on its way is
        likely among the leaves."""
        await asyncio.sleep(self.couch.settle_wait() if wait is None else wait)
        params: dict[str, Any] = {"open_revs": "all"}
        quorum = await self.couch.write_quorum(self.name)
        if quorum is not None:
            params["r"] = quorum
        _, body, _ = await self.couch.request("GET", self.doc_path(doc_id), params=params)
        leaves = [row["ok"] for row in body or () if isinstance(row, dict) and isinstance(row.get("ok"), dict)]
        if not leaves:
            return False
        if winning_rev(leaves) == rev:
            return not alone or sum(not leaf.get("_deleted") for leaf in leaves) == 1
        if any(leaf.get("_rev") == rev and not leaf.get("_deleted") for leaf in leaves):
            try:
                await self.delete(doc_id, rev)
            except (Conflict, NotFound):
                pass  # removed by another reader already
        return False

    async def claim_many(self, docs: list[dict[str, Any]]) -> list[bool]:
        """``claim`` for many docs in one ``_bulk_docs``: a list of won/lost in request order; the won
        docs get their new ``_rev``."""
        results = await self.bulk_docs(docs)
        won = [bool(r.get("ok")) and not r.get("accepted") for r in results]
        undecided = []
        for i, (doc, result) in enumerate(zip(docs, results)):
            if result.get("ok"):
                doc["_rev"] = result["rev"]
                if result.get("accepted"):
                    undecided.append(i)
        confirmed = await asyncio.gather(*(self.confirm(docs[i]) for i in undecided))
        for i, result in zip(undecided, confirmed):
            won[i] = result
        return won

    async def bulk_docs(self, docs: list[dict[str, Any]], *, new_edits: bool = True) -> list[dict[str, Any]]:
        """Write many docs; results come back in request order, matched by id."""
        if not docs:
            return []
        for doc in docs:
            doc.setdefault("_id", new_id())
        body: dict[str, Any] = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        _, results, _ = await self.couch.request("POST", self.path + "/_bulk_docs", json_body=body,
                                                 params=await self._write_params({}))
        if not new_edits:
            return results
        return match_results(docs, results)

    async def all_docs(self, keys: Iterable[str] | None = None, **params: Any) -> dict[str, Any]:
        if keys is not None:
            _, body, _ = await self.couch.request("POST", self.path + "/_all_docs", params=params,
                                                  json_body={"keys": list(keys)})
            return body
        return await self.couch.get_json(self.path + "/_all_docs", **params)

    async def get_many(self, ids: Iterable[str], *, latest: bool = False) -> dict[str, dict[str, Any]]:
        """Docs by id; missing and deleted ids are left out.

        Read with ``_bulk_get`` (a request per ``BULK_GET_AT_ONCE`` ids): CouchDB 3.4 serves it for about a
        quarter of the CPU of ``_all_docs`` with ``keys`` and docs, which opens each key on its own (measured
        on one node: 500 docs, 53 ms against 209 ms of ``beam.smp``); on a cluster both read a quorum of each
        doc's copies, as a GET does. Given no revision it answers every leaf of a conflicted doc; the one
        CouchDB would serve is picked here (``winning_leaf``). A doc that could not be read fails the read
        (``bulk_get_leaves``) rather than passing for a missing one.

        ``latest``: each doc read from every live copy (``r`` = the live copies), for a claim about to be
        written at the revision read: a quorum may not include the one copy that took a claim answered 202,
        or a returning node's copy. One request per doc on a cluster; as above anywhere else."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        quorum = await self.couch.write_quorum(self.name) if latest else None
        if quorum is not None:
            found: dict[str, dict[str, Any]] = {}
            for start in range(0, len(ids), LATEST_READS_AT_ONCE):
                chunk = ids[start:start + LATEST_READS_AT_ONCE]
                docs = await asyncio.gather(*(self.get_or_none(doc_id, r=quorum) for doc_id in chunk))
                found.update({doc_id: doc for doc_id, doc in zip(chunk, docs) if doc is not None})
            return found
        read: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), BULK_GET_AT_ONCE):
            chunk = ids[start:start + BULK_GET_AT_ONCE]
            _, body, _ = await self.couch.request("POST", f"{self.path}/_bulk_get",
                                                  json_body={"docs": [{"id": doc_id} for doc_id in chunk]})
            leaves = bulk_get_leaves(body, chunk)
            for doc_id in chunk:
                doc = winning_leaf(leaves[doc_id])
                if doc is not None:
                    read[doc_id] = doc
        return read

    # -- views, queries, changes ---------------------------------------

    async def view(self, ddoc: str, view: str, *, keys: Iterable[Any] | None = None,
                   timeout: float | None = None, **params: Any) -> dict[str, Any]:
        path = f"{self.path}/_design/{quote(ddoc, safe='')}/_view/{quote(view, safe='')}"
        self.couch.views_used.setdefault((self.name, ddoc, view), None)
        if keys is not None:
            _, body, _ = await self.couch.request("POST", path, params=params, json_body={"keys": list(keys)},
                                                  timeout=timeout)
        else:
            _, body, _ = await self.couch.request("GET", path, params=params, timeout=timeout)
        return body

    async def iter_view(self, ddoc: str, view: str, *, page_size: int = 1000,
                        **params: Any) -> AsyncIterator[dict[str, Any]]:
        """Every row of a (map) view, read a page at a time, so memory stays flat.

        Each page starts at the last key seen, skipping the rows of that key
        already read. (``startkey_docid`` would be the usual way, but
        pouchdb-server ignores it; ``skip`` within one key works on both.)
        """
        params = dict(params)
        params.pop("skip", None)
        params.pop("limit", None)
        last_key: Any = None
        same_key = 0
        while True:
            page = await self.view(ddoc, view, limit=page_size, **params)
            rows = page["rows"]
            for row in rows:
                if same_key and row["key"] == last_key:
                    same_key += 1
                else:
                    last_key, same_key = row["key"], 1
                yield row
            if len(rows) < page_size:
                return
            params["startkey"] = last_key
            params["skip"] = same_key

    async def changes(self, **params: Any) -> dict[str, Any]:
        """One ``_changes`` request.

        With ``feed=longpoll`` pass ``client_timeout`` (seconds): pouchdb-server
        ignores CouchDB's ``timeout``, so the wait is ended from this side and
        answered as "no changes".
        """
        doc_ids = params.pop("doc_ids", None)
        timeout = params.pop("client_timeout", None)
        if timeout is not None and params.get("feed") == "longpoll":
            try:
                return await self._changes(doc_ids, timeout, params)
            except CouchTimeout:
                return {"results": [], "last_seq": params.get("since", 0)}
        return await self._changes(doc_ids, timeout, params)

    async def _changes(self, doc_ids: Any, timeout: float | None, params: dict[str, Any]) -> dict[str, Any]:
        if doc_ids is not None:
            params["filter"] = "_doc_ids"
            _, body, _ = await self.couch.request("POST", self.path + "/_changes", params=params,
                                                  json_body={"doc_ids": list(doc_ids)}, timeout=timeout)
        else:
            _, body, _ = await self.couch.request("GET", self.path + "/_changes", params=params, timeout=timeout)
        return body

    async def pending_changes(self, since: Any) -> int:
        """How many changes come after ``since`` (an opaque seq).

        CouchDB reports it as ``pending``; pouchdb-server does not, so we count
        the ids after ``since`` page by page instead.
        """
        body = await self.changes(since=since, limit=1)
        if isinstance(body.get("pending"), int):
            return body["pending"] + len(body.get("results", []))
        count = 0
        page = 10000
        while True:
            body = await self.changes(since=since, limit=page)
            results = body.get("results", [])
            count += len(results)
            if len(results) < page:
                return count
            since = body["last_seq"]

    async def find(self, selector: dict[str, Any], **options: Any) -> dict[str, Any]:
        _, body, _ = await self.couch.request("POST", self.path + "/_find",
                                              json_body={"selector": selector, **options})
        return body

    # -- local docs -------------------------------------------------------

    async def get_local(self, name: str) -> dict[str, Any] | None:
        return await self.get_or_none("_local/" + name)

    async def put_local(self, name: str, body: dict[str, Any]) -> str:
        """Write a ``_local`` doc, overwriting whatever revision is there; returns its new rev."""
        current = await self.get_local(name)
        doc = {**body, "_id": "_local/" + name}
        if current:
            doc["_rev"] = current["_rev"]
        try:
            return (await self.put(doc))["rev"]
        except Conflict:
            current = await self.get_local(name)
            doc["_rev"] = current["_rev"] if current else None
            return (await self.put(doc))["rev"]

    # -- attachments ----------------------------------------------------

    async def put_attachment(self, doc_id: str, name: str, data: bytes, content_type: str,
                             rev: str | None) -> dict[str, Any]:
        path = f"{self.doc_path(doc_id)}/{quote(name, safe='')}"
        _, body, _ = await self.couch.request("PUT", path, data=data, params={"rev": rev},
                                              headers={"Content-Type": content_type})
        return body

    async def get_attachment(self, doc_id: str, name: str) -> tuple[bytes, str]:
        path = f"{self.doc_path(doc_id)}/{quote(name, safe='')}"
        try:
            async with self.couch.session.get(self.couch.url + path,
                                              headers={**self.couch.headers, "Accept": "*/*"}) as resp:
                if resp.status >= 400:
                    raise_for_status(resp.status, await resp.json(content_type=None))
                return await resp.read(), resp.headers.get("Content-Type", "application/octet-stream")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ServiceUnavailable(f"CouchDB unreachable: {type(exc).__name__}") from exc


def match_results(docs: list[dict[str, Any]], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Put ``_bulk_docs`` results back in request order by matching ids.

    CouchDB documents results in request order; pouchdb-server does not keep
    it. ``bulk_docs`` gives every doc an id first, so ids always match.
    """
    by_id: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    for result in results:
        by_id[result.get("id")].append(result)
    ordered = []
    for doc in docs:
        queue = by_id.get(doc["_id"])
        ordered.append(queue.popleft() if queue else {"id": doc["_id"], "error": "unknown_error",
                                                      "reason": "no result from CouchDB"})
    return ordered


def rev_generation(rev: Any) -> int:
    """The number before the dash of a revision (``3-abc`` -> 3); 0 for none or a malformed one."""
    head = str(rev or "").split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def winning_rev(leaves: list[dict[str, Any]]) -> str:
    """CouchDB's winning revision among a doc's leaves: not deleted first, then the longest history, then the
    greatest revision id (``couch_doc:to_doc_info``), the same on every node."""
    def key(leaf: dict[str, Any]) -> tuple[bool, int, str]:
        rev = str(leaf.get("_rev", "0-"))
        return (not leaf.get("_deleted"), rev_generation(rev), rev.partition("-")[2])
    return str(max(leaves, key=key).get("_rev"))


def new_id() -> str:
    """A document id as CouchDB makes them (32 hex digits)."""
    return uuid.uuid4().hex
