"""CHT's report validations (``validations: {join_responses, list: [{property, rule, message}]}``).

A rule is a pupil expression over the value of ``property`` (read from the
doc, then its ``fields``): functions joined by ``&&`` / ``||``, negated with
``!``, grouped with parentheses, e.g. ``lenMin(1) && lenMax(100)`` or
``integer && between(1, 45)``. Supported: ``lenMin``, ``lenMax``,
``lenEquals``, ``min``, ``max``, ``between``, ``equals``, ``integer``,
``numeric``, ``alpha``, ``alphaNumeric``, ``email``, ``regex``, ``required``,
``optional``. Rules that need the database in CHT (``unique``,
``uniqueWithin``, ``exists``) and unknown names pass, with a warning in the log.

Also the small subset of CHT's ``bool_expr`` (a JavaScript expression there)
that Jamii evaluates: a path (``doc.fields.x``), optionally negated, or
compared with ``==`` / ``!=`` to a quoted string or a number.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable, Mapping

log = logging.getLogger("jamii.sentinel.validation")

TOKEN_RE = re.compile(r"\s*(?:(&&|\|\|)|([!()])|([A-Za-z_]\w*)\s*(\((?:[^()'\"]|'[^']*'|\"[^\"]*\")*\))?)")
ARG_RE = re.compile(r"\s*('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^,]+?)\s*(?:,|$)")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DB_RULES = {"unique", "uniqueWithin", "exists"}


def _args(text: str | None) -> list[Any]:
    if not text:
        return []
    inner = text.strip()[1:-1]
    result: list[Any] = []
    for match in ARG_RE.finditer(inner):
        raw = match.group(1)
        if not raw:
            continue
        if raw[0] in "'\"":
            result.append(raw[1:-1])
        else:
            try:
                result.append(float(raw) if "." in raw else int(raw))
            except ValueError:
                result.append(raw)
    return result


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _check(name: str, args: list[Any], value: str) -> bool:
    number = _number(value)
    checks: dict[str, Callable[[], bool]] = {
        "lenMin": lambda: len(value) >= int(args[0]),
        "lenMax": lambda: len(value) <= int(args[0]),
        "lenEquals": lambda: len(value) == int(args[0]),
        "min": lambda: number is not None and number >= float(args[0]),
        "max": lambda: number is not None and number <= float(args[0]),
        "between": lambda: number is not None and float(args[0]) <= number <= float(args[1]),
        "equals": lambda: value == str(args[0]),
        "integer": lambda: re.fullmatch(r"-?\d+", value) is not None,
        "numeric": lambda: number is not None,
        "alpha": lambda: re.fullmatch(r"[A-Za-z]+", value) is not None,
        "alphaNumeric": lambda: re.fullmatch(r"[A-Za-z0-9]+", value) is not None,
        "email": lambda: EMAIL_RE.match(value) is not None,
        "regex": lambda: re.search(str(args[0]), value) is not None,
        "required": lambda: value != "",
        "optional": lambda: True,
    }
    if name not in checks:
        if name not in DB_RULES:
            log.warning("validation rule %s is not supported; it passes", name)
        return True
    try:
        return checks[name]()
    except (IndexError, ValueError, TypeError, re.error):
        log.warning("validation rule %s%r is malformed; it passes", name, args)
        return True


class _Parser:
    def __init__(self, rule: str, value: str):
        self.tokens: list[tuple[str, str, str | None]] = []
        pos = 0
        rule = rule.strip()
        while pos < len(rule):
            match = TOKEN_RE.match(rule, pos)
            if not match or match.end() == pos:
                raise ValueError(f"cannot read rule at {rule[pos:]!r}")
            op, punct, name, args = match.groups()
            self.tokens.append(("op", op, None) if op else ("p", punct, None) if punct else ("fn", name, args))
            pos = match.end()
            while pos < len(rule) and rule[pos].isspace():
                pos += 1
        self.value = value
        self.pos = 0

    def peek(self) -> tuple[str, str, str | None] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expr(self) -> bool:
        result = self.term()
        while (token := self.peek()) is not None and token[0] == "op":
            self.pos += 1
            right = self.term()
            result = (result and right) if token[1] == "&&" else (result or right)
        return result

    def term(self) -> bool:
        token = self.peek()
        if token is None:
            raise ValueError("rule ends too early")
        self.pos += 1
        if token == ("p", "!", None):
            return not self.term()
        if token == ("p", "(", None):
            result = self.expr()
            if self.peek() != ("p", ")", None):
                raise ValueError("missing )")
            self.pos += 1
            return result
        if token[0] != "fn":
            raise ValueError(f"unexpected {token[1]!r}")
        return _check(token[1], _args(token[2]), self.value)


def rule_passes(rule: str, value: Any) -> bool:
    text = "" if value is None else str(value)
    try:
        parser = _Parser(rule, text)
        result = parser.expr()
    except ValueError as exc:
        log.warning("validation rule %r cannot be read (%s); it passes", rule, exc)
        return True
    return result


def value_of(doc: Mapping[str, Any], prop: str) -> Any:
    fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
    if prop in fields:
        return fields[prop]
    return doc.get(prop)


def failures(config: Mapping[str, Any] | None, doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The validations of ``config["validations"]`` that the doc fails, in order."""
    validations = (config or {}).get("validations") if isinstance(config, dict) else None
    rules = validations.get("list") if isinstance(validations, dict) else None
    failed = []
    for item in rules if isinstance(rules, list) else []:
        if isinstance(item, dict) and isinstance(item.get("property"), str) and isinstance(item.get("rule"), str):
            if not rule_passes(item["rule"], value_of(doc, item["property"])):
                failed.append(item)
    return failed


COMPARE_RE = re.compile(r"^(!?)\s*([\w.]+)\s*(?:(==|!=|===|!==)\s*('[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?))?$")


def bool_expr(expr: Any, doc: Mapping[str, Any]) -> bool:
    """CHT's ``bool_expr``, in the subset described above; empty is true, unreadable is false."""
    if not isinstance(expr, str) or not expr.strip():
        return True
    match = COMPARE_RE.match(expr.strip())
    if not match:
        log.warning("bool_expr %r is not supported; it counts as false", expr)
        return False
    negate, path, op, literal = match.groups()
    parts = path.split(".")
    fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
    value: Any = {"doc": doc} if parts[0] == "doc" else {**fields, **doc}
    for part in parts:
        value = value.get(part) if isinstance(value, dict) else None
    if op:
        expected: Any = literal[1:-1] if literal[0] in "'\"" else float(literal)
        actual = _number(str(value)) if isinstance(expected, float) and value is not None else value
        result = actual == expected
        if op.startswith("!="):
            result = not result
    else:
        result = bool(value)
    return not result if negate else result
