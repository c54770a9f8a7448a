"""Passwords of users: at least 8 characters and hard to guess, and random ones when nobody should know it.

"Hard to guess" is zxcvbn's estimate (Dropbox's algorithm: dictionaries,
common passwords, keyboard patterns, dates, repeats, the user's own name),
score 2 or more of 4: "somewhat guessable, protection from unthrottled online
attacks". It rejects ``password1``, ``12345678`` and ``Qwerty12`` and accepts
the spec's ``WrAGyGD9805``. CHT used a simpler character-class score; the
messages and translation keys are CHT's.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Iterable

from zxcvbn import zxcvbn

MIN_LENGTH = 8
MIN_SCORE = 2
# zxcvbn's cost grows with length; nothing longer is needed to judge a password
SCORED_CHARS = 100
GENERATED_LENGTH = 24
_ALPHABET = string.ascii_letters + string.digits + "-_.!@#%+="


@dataclass(frozen=True)
class Problem:
    """A CHT-style validation error: message, translation key and its parameters."""

    message: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)


def problem(password: Any, user_inputs: Iterable[Any] = ()) -> Problem | None:
    """Why this password is refused, or None."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return Problem(f"The password must be at least {MIN_LENGTH} characters long.", "password.length.minimum",
                       {"minimum": MIN_LENGTH})
    inputs = [str(v) for v in user_inputs if isinstance(v, str) and v]
    if zxcvbn(password[:SCORED_CHARS], user_inputs=inputs)["score"] < MIN_SCORE:
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
