"""What the ``/medic`` endpoints take as a body, checked before anything reaches CouchDB, for every role.

CouchDB refuses most wrong shapes itself, but not all (``PUT /{db}/_revs_limit`` with ``{}`` is a 500
``function_clause`` in CouchDB 3.4.3), and pouchdb-server crashes or answers 500 on some. So the API reads
every JSON body with ``api.jsonparse`` (the one strict reader and its limits), checks the shape the
endpoint documents here, and forwards what it read, written again: CouchDB never parses a body the API has
not. Refusals are CouchDB's 400 ``bad_request``, with CouchDB's reason where it has one; a body
CouchDB only takes as JSON, sent as something else, is its 415. Attachments, multipart document uploads and
the bodies of design doc functions sent as something other than JSON are passed on as they are.
"""

from __future__ import annotations

from typing import Any, Mapping

from api.errors import BadRequest, UnsupportedMediaType

JSON_TYPE = "application/json"


def require_json_type(content_type: str | None) -> None:
    """CouchDB's ``validate_ctype``: the type before any ``;`` is exactly ``application/json``."""
    if content_type is None or content_type.split(";", 1)[0] != JSON_TYPE:
        raise UnsupportedMediaType(f"Content-Type must be {JSON_TYPE}")


def is_json_type(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";", 1)[0].strip().lower() == JSON_TYPE


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object", field="body")
    return body


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _count(body: Mapping[str, Any], name: str) -> None:
    value = body.get(name)
    if name in body and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise BadRequest(f"`{name}` must be a non-negative integer", field=name)


def _flag(body: Mapping[str, Any], name: str) -> None:
    if name in body and not isinstance(body[name], bool):
        raise BadRequest(f"`{name}` parameter must be a boolean.", field=name)


def document(body: Any) -> dict[str, Any]:
    return dict(_object(body))


def bulk_docs(body: Any) -> None:
    body = _object(body)
    if "docs" not in body:
        raise BadRequest("POST body must include `docs` parameter.", field="docs")
    if not isinstance(body["docs"], list):
        raise BadRequest("`docs` parameter must be an array.", field="docs")
    if not all(isinstance(doc, dict) for doc in body["docs"]):
        raise BadRequest("Each document in `docs` must be a JSON object.", field="docs")
    _flag(body, "new_edits")


def bulk_get(body: Any) -> None:
    body = _object(body)
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise BadRequest("Missing JSON list of 'docs'.", field="docs")
    for doc in docs:
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not doc["id"]:
            raise BadRequest("Each entry of `docs` must be an object with a document `id`.", field="docs")
        if "rev" in doc and not isinstance(doc["rev"], str):
            raise BadRequest("`rev` must be a revision (a string).", field="docs")
        if "atts_since" in doc and not _strings(doc["atts_since"]):
            raise BadRequest("`atts_since` must be an array of revisions.", field="docs")


def revs_by_id(body: Any) -> None:
    """``_revs_diff`` and ``_purge``: ``{id: [rev, ...]}``."""
    body = _object(body)
    for revs in body.values():
        if not _strings(revs):
            raise BadRequest("Each document id must map to an array of revisions.", field="body")


def all_docs(body: Any) -> None:
    body = _object(body)
    if "keys" in body and not isinstance(body["keys"], list):
        raise BadRequest("`keys` member must be an array.", field="keys")


def view_query(body: Any) -> None:
    body = _object(body)
    if "keys" in body and not isinstance(body["keys"], list):
        raise BadRequest("`keys` member must be an array.", field="keys")
    if "queries" in body and not (isinstance(body["queries"], list)
                                  and all(isinstance(q, dict) for q in body["queries"])):
        raise BadRequest("`queries` member must be an array of objects.", field="queries")


def find(body: Any) -> None:
    """``_find`` and ``_explain``: a ``selector`` object, and the options' types."""
    body = _object(body)
    if not isinstance(body.get("selector"), dict):
        raise BadRequest("Missing required key: selector (an object)", field="selector")
    for name in ("limit", "skip"):
        _count(body, name)
    if "fields" in body and not _strings(body["fields"]):
        raise BadRequest("`fields` must be an array of field names.", field="fields")
    if "sort" in body and not isinstance(body["sort"], list):
        raise BadRequest("`sort` must be an array.", field="sort")
    if "use_index" in body and not (isinstance(body["use_index"], str) or _strings(body["use_index"])):
        raise BadRequest("`use_index` must be a string or an array of strings.", field="use_index")
    if "bookmark" in body and not isinstance(body["bookmark"], str):
        raise BadRequest("`bookmark` must be a string.", field="bookmark")
    for name in ("conflicts", "update", "stable", "execution_stats"):
        _flag(body, name)


def index(body: Any) -> None:
    body = _object(body)
    definition = body.get("index")
    if not isinstance(definition, dict):
        raise BadRequest("Missing required key: index (an object)", field="index")
    if "fields" in definition and not isinstance(definition["fields"], list):
        raise BadRequest("`index.fields` must be an array.", field="index")
    for name in ("ddoc", "name", "type"):
        if name in body and not isinstance(body[name], str):
            raise BadRequest(f"`{name}` must be a string.", field=name)


def security(body: Any) -> None:
    body = _object(body)
    for part in ("admins", "members"):
        if part not in body:
            continue
        value = body[part]
        if not isinstance(value, dict):
            raise BadRequest(f"`{part}` must be an object.", field=part)
        for kind in ("names", "roles"):
            if kind in value and not _strings(value[kind]):
                raise BadRequest(f"`{part}.{kind}` must be an array of strings.", field=part)


def revs_limit(body: Any) -> int:
    """``PUT /{db}/_revs_limit``: "a scalar integer", above 0."""
    if not isinstance(body, int) or isinstance(body, bool) or body <= 0:
        raise BadRequest("The revision limit must be a positive integer.", field="body")
    return body


def changes(body: Any) -> Mapping[str, Any]:
    body = _object(body)
    if "doc_ids" in body and not _strings(body["doc_ids"]):
        raise BadRequest("`doc_ids` must be an array of document ids.", field="doc_ids")
    return body


# Design doc paths (``/_design/{ddoc}/{rest}``): which methods each kind of ``rest`` takes, as CouchDB
# answers (its 405 ``method_not_allowed`` names them). Anything else is an attachment of the design doc.
DESIGN_METHODS = {
    "_view": "GET,POST,HEAD",
    "_list": "GET,POST,HEAD",
    "_show": "GET,POST,HEAD",
    "_update": "PUT,POST",
    "_info": "GET",
}
ATTACHMENT_METHODS = "DELETE,GET,HEAD,PUT"


def design_methods(rest: str) -> str:
    """The methods CouchDB takes on ``/_design/{ddoc}/{rest}``; ``*`` for ``_rewrite`` (any)."""
    kind = rest.split("/", 1)[0]
    if kind == "_rewrite":
        return "*"
    return DESIGN_METHODS.get(kind, ATTACHMENT_METHODS)
