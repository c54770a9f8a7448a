"""Requests that stop the embedded pouchdb-server, refused before they reach any database.

pouchdb-server 4.2 dies on a few requests that Apache CouchDB answers (``docs/passthrough.md`` lists
them, with what each one stopped): a ``_list`` whose design doc or list function is missing, a
``_changes`` filter other than ``_doc_ids`` with its ids, ``latest`` with a revision the document
does not have, replications. Every request the API passes on to CouchDB for a client goes through
``check`` first, whatever the caller and the server, so Jamii answers the same on both: a 4xx in
CouchDB's shape, and the database never sees the request.

The same place keeps database names to CouchDB's rule, which pouchdb-server does not check (it
made folders named as asked), and the server's own configuration out of reach.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl, unquote

from . import jsonparse
from .couch import Couch
from .errors import BadRequest, Forbidden, NotFound

# CouchDB's rule for database names (a system database's leading ``_`` aside).
DB_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
SAFE_FILTERS = frozenset({"_doc_ids"})
STREAMED_FEEDS = frozenset({"continuous", "eventsource"})
# Server endpoints that change or show the database server's own configuration: its admins (the API's
# own credentials among them), secrets, bind address. They are the database host's business.
CONFIG_ENDPOINTS = frozenset({"_config", "_cluster_setup"})


class IllegalDatabaseName(BadRequest):
    couch_error = "illegal_database_name"


def illegal_name(name: str) -> IllegalDatabaseName:
    """CouchDB's refusal of a database name (pouchdb-server made a folder of any name)."""
    return IllegalDatabaseName(f"Name: '{name}'. Only lowercase characters (a-z), digits (0-9), and any of the "
                               "characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.")


def segments(path: str) -> list[str]:
    """The decoded segments of a CouchDB path as sent (``/db/_design/x`` -> ``["db", "_design", "x"]``).
    Split before decoding, as CouchDB and pouchdb-server route: ``%2F`` stays inside its segment."""
    return [unquote(part) for part in path.split("?", 1)[0].lstrip("/").split("/")]


def query_of(query_string: str) -> dict[str, str]:
    return dict(parse_qsl(query_string, keep_blank_values=True))


def body_needed(method: str, parts: Sequence[str], query: Mapping[str, str]) -> bool:
    """Whether ``check`` must see the request body (the few requests whose danger is in it)."""
    if method != "POST" or len(parts) != 2:
        return False
    if parts[1] == "_bulk_get":
        return "latest" in query
    return parts[1] == "_changes" and query.get("filter") == "_doc_ids" and "doc_ids" not in query


async def check(couch: Couch, method: str, path: str, query: Mapping[str, str], body: bytes | None) -> None:
    """Raise a 4xx for a request that must not reach the database; return when it may go on."""
    parts = segments(path)
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # CouchDB reads /db/ as /db
    first = parts[0]
    if first in CONFIG_ENDPOINTS or (first == "_node" and len(parts) > 2 and parts[2] in CONFIG_ENDPOINTS):
        raise Forbidden("The database server's configuration is not reachable through the API")
    if first == "_replicate" or (first == "_replicator" and method not in ("GET", "HEAD")):
        raise Forbidden("Replications are not started through the API (some stop the embedded database; "
                        "run them on the database server)")
    if method == "PUT" and len(parts) == 1 and not (DB_NAME.match(first) or first in SYSTEM_DBS):
        raise illegal_name(first)
    if first.startswith("_") and first not in SYSTEM_DBS:
        return  # a server endpoint, not a database
    if len(parts) >= 6 and parts[1] == "_design" and parts[3] == "_list":
        await _check_list(couch, first, parts[2], parts[4])
    elif len(parts) == 2 and parts[1] == "_changes":
        check_changes(query, _json_object(body))
    elif "latest" in query:
        await _check_latest(couch, method, first, parts, query, body)


async def _check_list(couch: Couch, db: str, ddoc: str, name: str) -> None:
    """A list function is run only when its design doc has it (a missing one stops pouchdb-server)."""
    design = await couch.db(db).get_or_none("_design/" + ddoc)
    if design is None:
        raise NotFound("missing")
    lists = design.get("lists")
    if not isinstance(lists, dict) or name not in lists:
        raise NotFound(f"missing json key: {name}")  # CouchDB's words


def check_changes(query: Mapping[str, str], body: Mapping[str, Any]) -> None:
    """``_changes`` takes no filter but ``_doc_ids`` (with an array of ids), and no endless feed."""
    name = query.get("filter")
    if name and name not in SAFE_FILTERS:
        raise BadRequest(f"filter {name} is not supported; use _doc_ids", field="filter")
    if query.get("feed") in STREAMED_FEEDS:
        raise BadRequest(f"feed={query['feed']} is not supported; use feed=longpoll", field="feed")
    if name == "_doc_ids":
        doc_ids = body.get("doc_ids") if "doc_ids" not in query else _json_value(query["doc_ids"])
        if not isinstance(doc_ids, list):
            raise BadRequest("`doc_ids` filter parameter is not a list of doc ids.", field="doc_ids")


async def _check_latest(couch: Couch, method: str, db: str, parts: Sequence[str],
                        query: Mapping[str, str], body: bytes | None) -> None:
    """``latest`` only with revisions the documents have (pouchdb-server dies on an unknown one)."""
    wanted: list[tuple[Any, Any]] = []
    if method == "POST" and len(parts) == 2 and parts[1] == "_bulk_get":
        docs = _json_object(body).get("docs")
        if isinstance(docs, list):
            wanted = [(d.get("id"), d.get("rev")) for d in docs if isinstance(d, dict) and "rev" in d]
    elif method in ("GET", "HEAD"):
        doc_id = _doc_id(parts)
        if doc_id is not None:
            revs: list[Any] = [query["rev"]] if "rev" in query else []
            if query.get("open_revs") not in (None, "all"):
                open_revs = _json_value(query["open_revs"])
                revs += open_revs if isinstance(open_revs, list) else [open_revs]
            wanted = [(doc_id, rev) for rev in revs]
    if wanted and await _unknown_revs(couch, db, wanted):
        raise BadRequest("latest is not supported with a revision the document does not have", field="latest")


def _doc_id(parts: Sequence[str]) -> str | None:
    """The id of the document (or design doc) a path reads, or its attachment; None for anything else."""
    if len(parts) >= 2 and parts[1] and not parts[1].startswith("_"):
        return parts[1]
    if len(parts) >= 3 and parts[1] == "_design" and (len(parts) == 3 or not parts[3].startswith("_")):
        return "_design/" + parts[2]
    return None


async def _unknown_revs(couch: Couch, db: str, wanted: list[tuple[Any, Any]]) -> bool:
    """Whether a revision asked for is not in its document's tree (malformed ones count as unknown)."""
    asked: dict[str, list[str]] = {}
    for doc_id, rev in wanted:
        if not isinstance(doc_id, str) or not isinstance(rev, str):
            return True
        asked.setdefault(doc_id, []).append(rev)
    status, missing, _ = await couch.request("POST", couch.db(db).path + "/_revs_diff", json_body=asked,
                                             raise_errors=False)
    return status != 200 or not isinstance(missing, dict) or any(missing.values())


def _json_value(raw: str) -> Any:
    try:
        return jsonparse.loads(raw)
    except jsonparse.InvalidJSON:
        return None


def _json_object(body: bytes | None) -> Mapping[str, Any]:
    if not body:
        return {}
    try:
        parsed = jsonparse.loads(body)
    except jsonparse.InvalidJSON:
        return {}
    return parsed if isinstance(parsed, dict) else {}
