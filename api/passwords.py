"""Passwords of users: CHT's rules exactly, and random ones when nobody should know it.

CHT (``simple-password-tester``) refuses a password shorter than 8 characters
or scoring under 50, where the score is the length, plus twice the number of
distinct characters, plus 15 for each kind of character beyond the first
(digits, lower-case and upper-case ASCII letters, and anything else but ``_``).
JavaScript measures strings in UTF-16 code units, so this does too: an emoji
counts twice. ``Secret_1`` scores 52 and passes; ``password`` scores 22.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

MIN_LENGTH = 8
MIN_SCORE = 50
GENERATED_LENGTH = 24
_ALPHABET = string.ascii_letters + string.digits + "-_.!@#%+="
_KINDS = (re.compile(r"\d", re.ASCII), re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"\W", re.ASCII))


@dataclass(frozen=True)
class Problem:
    """A CHT-style validation error: message, translation key and its parameters."""

    message: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def _units(password: str) -> list[bytes]:
    raw = password.encode("utf-16-le", "surrogatepass")
    return [raw[i:i + 2] for i in range(0, len(raw), 2)]


def score(password: Any) -> int:
    """CHT's strength score (``simple-password-tester``); 0 for anything but a string."""
    if not isinstance(password, str):
        return 0
    units = _units(password)
    kinds = sum(1 for kind in _KINDS if kind.search(password))
    return len(units) + 2 * len(set(units)) + 15 * (kinds - 1)


def problem(password: Any) -> Problem | None:
    """Why CHT would refuse this password, or None."""
    if isinstance(password, str) and len(_units(password)) < MIN_LENGTH:
        return Problem(f"The password must be at least {MIN_LENGTH} characters long.", "password.length.minimum",
                       {"minimum": MIN_LENGTH})
    if score(password) < MIN_SCORE:
        return Problem("The password is too easy to guess. Include a range of types of characters to increase the "
                       "score.", "password.weak")
    return None


def generate(length: int = GENERATED_LENGTH) -> str:
    """A random password nobody knows (token login, SSO users, a token login's session)."""
    while True:
        value = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if (any(c.islower() for c in value) and any(c.isupper() for c in value)
                and any(c.isdigit() for c in value)):
            return value
