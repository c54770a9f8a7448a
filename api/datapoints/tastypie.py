"""What tastypie answered about RhizomeDB's v1 API itself: the root (``GET /api/v1/``) listing each
resource with its list and schema endpoints, and each resource's schema (``GET /api/v1/<name>/schema/``).

The shapes are tastypie 0.12's (``Api.top_level``, ``Resource.build_schema``), which RhizomeDB ran in
2015, so a client that discovers resources from the root finds Jamii's. Only the v1 resources Jamii
serves are listed: ``datapoint`` (GET) and ``dataentry`` (POST, the spec's name for RhizomeDB's
``datapointentry``).
"""

from __future__ import annotations

from typing import Any

from .service import DEFAULT_LIMIT

PREFIX = "/api/v1/"
NO_DEFAULT = "No default provided."  # tastypie's text for a field without a default


def _field(type_: str, help_text: str, *, nullable: bool = False, readonly: bool = False) -> dict[str, Any]:
    return {"blank": False, "default": NO_DEFAULT, "help_text": help_text, "nullable": nullable,
            "readonly": readonly, "type": type_, "unique": False}


RESOURCES: dict[str, dict[str, Any]] = {
    "datapoint": {
        "allowed_detail_http_methods": [],
        "allowed_list_http_methods": ["get"],
        "default_format": "application/json",
        "default_limit": DEFAULT_LIMIT,
        "fields": {
            "campaign": _field("integer", "The campaign's id", readonly=True),
            "indicators": _field("list", "One {indicator, value, is_agg, is_calc} per requested indicator",
                                 readonly=True),
            "region": _field("integer", "The region's id", readonly=True),
        },
    },
    "dataentry": {
        "allowed_detail_http_methods": [],
        "allowed_list_http_methods": ["post"],
        "default_format": "application/json",
        "default_limit": DEFAULT_LIMIT,
        "fields": {
            "campaign_id": _field("integer", "A campaign the caller may see"),
            "changed_by_id": _field("integer", "Who stored the value (set by the server)", readonly=True),
            "document_id": _field("integer", "The source document, if any", nullable=True),
            "indicator_id": _field("integer", "An indicator granted to one of the caller's groups"),
            "region_id": _field("integer", "A region the caller may write"),
            "updated_at": _field("datetime", "When the value was stored (set by the server)", readonly=True),
            "value": _field("float", "The value; null removes the stored one", nullable=True),
        },
    },
}


def top_level() -> dict[str, dict[str, str]]:
    """``GET /api/v1/``: every resource by name (sorted, as tastypie sorts them)."""
    return {name: {"list_endpoint": f"{PREFIX}{name}/", "schema": f"{PREFIX}{name}/schema/"}
            for name in sorted(RESOURCES)}


def schema(name: str) -> dict[str, Any]:
    """``GET /api/v1/<name>/schema/``: the resource's fields and methods, in tastypie's shape."""
    return RESOURCES[name]
