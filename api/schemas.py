"""JSON Schemas from ``schemas/``: the one source of truth for validating documents and bodies."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .config import ROOT
from .errors import BadRequest

SCHEMA_DIR = ROOT / "schemas"


@lru_cache(maxsize=1)
def registry() -> Registry:
    """Every schema in ``schemas/`` by its ``$id``, so one may ``$ref`` another (``other.json#/$defs/x``).

    Nothing is ever fetched from the network: an unknown ``$ref`` is an error.
    """
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text())
        resources.append((contents.get("$id", path.name),
                          Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def field_of(error: ValidationError) -> str:
    """The dotted path of the field an error is about (the missing one for ``required``)."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.validator_value, list):
        for name in error.validator_value:
            if isinstance(error.instance, dict) and name not in error.instance:
                path.append(name)
                break
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            path.append(extra[0])
    return ".".join(path)


def errors(name: str, instance: Any) -> list[tuple[str, str]]:
    """Every problem as (field, message), for endpoints that report all of them."""
    return [(field_of(e), e.message) for e in validator(name).iter_errors(instance)]


def validate(name: str, instance: Any) -> None:
    """Raise BadRequest naming the field of the most relevant problem."""
    error = best_match(validator(name).iter_errors(instance))
    if error is None:
        return
    field = field_of(error)
    raise BadRequest(f"{field}: {error.message}" if field else error.message, field=field or None)
