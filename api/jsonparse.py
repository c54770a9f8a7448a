"""The one reader of untrusted JSON (request bodies, JSON-valued query parameters, cursors).

``json.loads`` alone lets through what JSON, CouchDB or the rest of the server
cannot take: it recurses once per nesting level (100,000 ``[`` raise
``RecursionError``, a crash rather than a 400), accepts ``NaN`` and
``Infinity``, guesses UTF-16/32 from the bytes, and keeps lone surrogate
escapes (``"\\ud800"``) that no UTF-8 writer can encode. ``loads`` refuses all
of these with a ``ValueError`` subclass whose message says which it was, so
every caller's existing ``except ValueError`` turns it into a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deep enough for any document, settings or GeoJSON Jamii knows (they nest < 20 levels), shallow enough
# that code walking the value recursively (validation, merges, the JSON writer) stays far from
# Python's recursion limit.
MAX_DEPTH = 100

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSON(ValueError):
    """Not JSON; ``problem`` is ``syntax``, ``encoding`` or ``depth``."""

    def __init__(self, message: str, problem: str = "syntax"):
        super().__init__(message)
        self.problem = problem


def _not_json(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON value")


def loads(raw: bytes | str) -> Any:
    """Parse JSON text (bytes must be UTF-8), refusing what ``json.loads`` would let through or crash on."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"not valid UTF-8 (byte {exc.start})", "encoding") from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise InvalidJSON(f"nested more than {MAX_DEPTH} levels deep", "depth") from None
    except InvalidJSON:
        raise
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from None
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InvalidJSON("not valid UTF-8 text: a \\u escape names a lone UTF-16 surrogate", "encoding")
    return value


def _check_depth(value: Any) -> None:
    """Raise when ``value`` nests deeper than ``MAX_DEPTH`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            raise InvalidJSON(f"nested more than {MAX_DEPTH} levels deep", "depth")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
