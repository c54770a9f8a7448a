"""Timestamps as the CHT API accepts them: ISO 8601 (with a zone) or milliseconds since the epoch."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from .errors import BadRequest


def now_ms() -> int:
    return int(time.time() * 1000)


def to_ms(value: Any, field: str = "reported_date") -> int:
    """Milliseconds since the epoch from an int, a string of digits or an ISO 8601 date-time.

    A date-time without a zone is taken as UTC (the spec's examples all carry one).
    """
    if isinstance(value, bool):
        raise BadRequest(f"{field} must be a timestamp", field=field)
    if isinstance(value, (int, float)):
        if value < 0:
            raise BadRequest(f"{field} must not be negative", field=field)
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdecimal():
            return int(text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadRequest(f"{field} is not a valid date: {value!r} (ISO 8601 or milliseconds since the epoch)",
                             field=field) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return int(parsed.timestamp() * 1000)
    raise BadRequest(f"{field} must be a timestamp", field=field)
