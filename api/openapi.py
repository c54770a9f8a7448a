"""The OpenAPI 3 document, assembled from YAML fragments: each package keeps its own in its ``openapi/``
folder (the frame's in ``api/openapi/``, the CHT API's in ``api/cht/openapi/``, ...).

Each fragment has ``paths`` (and optionally ``components``); a test fails when
a registered route is missing from the assembled document.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import __version__

API_DIR = Path(__file__).parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

BASE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Jamii API",
        "version": __version__,
        "description": "CHT, Foci, Datapoints and Spatial units APIs on one CouchDB.",
    },
    "components": {
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "AuthSession"},
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["code", "error"],
                "properties": {"code": {"type": "integer"}, "error": {"type": "string"},
                               "field": {"type": "string"}},
            },
            "CouchError": {
                "type": "object",
                "required": ["error", "reason"],
                "properties": {"error": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "responses": {
            "BadRequest": {"description": "Invalid request",
                           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "Unauthorized": {"description": "No or wrong credentials: CHT's answer, "
                                            "`{\"code\": 401, \"error\": \"unauthorized\"}`",
                             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "Forbidden": {"description": "Not allowed",
                          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "NotFound": {"description": "Not found",
                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "Unavailable": {"description": "The database is unreachable",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    },
    "security": [{"basicAuth": []}, {"cookieAuth": []}, {"bearerAuth": []}],
    "paths": {},
}


def _merge(target: dict[str, Any], source: dict[str, Any], where: str) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, f"{where}.{key}")
        elif key in target:
            raise ValueError(f"OpenAPI fragment {where}: {key} defined twice")
        else:
            target[key] = copy.deepcopy(value)


def _chts_401(doc: dict[str, Any]) -> None:
    """CouchDB-protocol routes answer 401 as CHT does (it rewrites CouchDB's 401s), not in CouchDB's shape."""
    couch = {"$ref": "#/components/schemas/CouchError"}
    for item in doc["paths"].values():
        for method in METHODS:
            responses = (item.get(method) or {}).get("responses") or {}
            unauthorized = responses.get("401") or {}
            if ((unauthorized.get("content") or {}).get("application/json") or {}).get("schema") == couch:
                responses["401"] = {"$ref": "#/components/responses/Unauthorized"}


@lru_cache(maxsize=1)
def build() -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for path in sorted(API_DIR.glob("**/openapi/*.yaml")):
        fragment = yaml.safe_load(path.read_text()) or {}
        _merge(doc, fragment, str(path.relative_to(API_DIR)))
    _chts_401(doc)
    return doc


def document(app: web.Application) -> dict[str, Any]:
    return build()


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path pattern) of every route of the app, HEAD and catch-alls left out."""
    found = set()
    for route in app.router.routes():
        method = route.method.lower()
        if method not in METHODS or method == "head" or route.resource is None:
            continue
        found.add((method, route.resource.canonical))
    return found


def undocumented(app: web.Application) -> list[str]:
    paths = build()["paths"]
    return sorted(f"{m.upper()} {p}" for m, p in registered_routes(app) if m not in paths.get(p, {}))
