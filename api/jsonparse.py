"""The one reader of untrusted JSON (request bodies, JSON-valued query parameters, cursors).

``json.loads`` alone lets through what JSON, CouchDB or the rest of the server
cannot take: it recurses once per nesting level (100,000 ``[`` raise
``RecursionError``, a crash rather than a 400), accepts ``NaN`` and
``Infinity``, turns ``1e400`` into infinity (which ``json.dumps`` then writes
as ``Infinity``, not JSON), guesses UTF-16/32 from the bytes, and keeps lone
surrogate escapes (``"\\ud800"``) that no UTF-8 writer can encode. ``loads``
refuses all of these with a ``ValueError`` subclass whose message says which
it was and where (a line and column, or the path to the value), so every
caller's existing ``except ValueError`` turns it into a 400.

Bodies forwarded to CouchDB are parsed here and written again with ``dumps``,
so CouchDB only ever reads JSON the API has read the same way (one value per
key: the last, as JavaScript's ``JSON.parse`` keeps).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, Callable

# Deep enough for any document, settings or GeoJSON Jamii knows (they nest < 20 levels), shallow enough
# that code walking the value recursively (validation, merges, the JSON writer) stays far from
# Python's recursion limit.
MAX_DEPTH = 100
# The largest number a JSON reader that uses doubles (JavaScript, CouchDB's views) can hold.
MAX_NUMBER = sys.float_info.max

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Text that may hold a number beyond a double: an exponent of 3+ digits, or 300+ digits in a row.
_BIG_NUMBER = re.compile(r"[eE][+-]?\d{3}|\d{300}")


class InvalidJSON(ValueError):
    """Not JSON; ``problem`` is ``syntax``, ``encoding`` or ``depth``; ``place`` is the path to the value at
    fault (``docs[2].value``) when the problem is in one value."""

    def __init__(self, message: str, problem: str = "syntax", place: str | None = None):
        super().__init__(message + (f" (at {place})" if place else ""))
        self.problem = problem
        self.place = place


class _Constant:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to, so the walk can tell where they were."""

    def __init__(self, name: str):
        self.name = name


def loads(raw: bytes | str) -> Any:
    """Parse JSON text (bytes must be UTF-8), refusing what ``json.loads`` would let through or crash on."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"not valid UTF-8 (byte {exc.start})", "encoding") from None
    else:
        text = raw
    constants: list[_Constant] = []

    def constant(name: str) -> _Constant:
        constants.append(_Constant(name))
        return constants[-1]

    try:
        value = json.loads(text, parse_constant=constant)
    except RecursionError:
        raise InvalidJSON(f"nested more than {MAX_DEPTH} levels deep", "depth") from None
    except ValueError as exc:
        message = str(exc)
        if "integer string conversion" in message:  # Python's 4300-digit limit: far beyond a double
            message = "a number is too large for JSON (more than a double holds)"
        raise InvalidJSON(message) from None
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    if constants:
        place = _find(value, lambda item: isinstance(item, _Constant))
        raise InvalidJSON(f"{constants[0].name} is not a JSON value", place=place)
    if _BIG_NUMBER.search(text):
        place = _find(value, _too_big)
        if place is not None:
            raise InvalidJSON("the number is too large for JSON (more than a double holds)", place=place)
    if _SURROGATE_ESCAPE.search(text):
        place = _find(value, lambda item: isinstance(item, str) and _SURROGATE.search(item) is not None,
                      keys=True)
        if place is not None:
            raise InvalidJSON("not valid UTF-8 text: a \\u escape names a lone UTF-16 surrogate", "encoding",
                              place=place)
    return value


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON (UTF-8), for a body the API forwards; only what ``loads`` returns goes in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _too_big(item: Any) -> bool:
    if isinstance(item, float):
        return item in (float("inf"), float("-inf"))
    return isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_NUMBER


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


def _find(value: Any, wanted: Callable[[Any], bool], *, keys: bool = False) -> str | None:
    """The path (``docs[2].value``) of the first item, in document order, for which ``wanted`` is true
    (``keys``: object keys are tested too); ``$`` for the whole value; None when there is none."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if wanted(item):
            return path or "$"
        if isinstance(item, dict):
            children = []
            for key, child in item.items():
                step = _step(path, key)
                if keys and wanted(key):
                    return step
                children.append((child, step))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(child, f"{path}[{index}]") for index, child in enumerate(item)]))
    return None


_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def _step(path: str, key: str) -> str:
    if _NAME.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


def copy_json(value: Any) -> Any:
    """A deep copy of a parsed JSON value (dicts, lists, scalars). Several times faster than
    ``copy.deepcopy``, which keeps a memo for cycles and shared objects that parsed JSON never has."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
