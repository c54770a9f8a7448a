"""When purging runs: the ``purge`` settings' ``text_expression`` or ``cron``, as CHT reads them.

CHT lets ``text_expression`` win over ``cron`` when both are given (its
reminders do the opposite; ``sentinel.reminders.cron_of`` follows them). Of
later.js's texts, the simple forms ``sentinel.reminders`` understands are read;
give ``cron`` for anything else. No schedule, no purging (``"purge": {}`` is
how CHT's docs say to turn it off). A run is due when the schedule's latest
occurrence (within the last day, server local time) has not been handled yet:
unlike CHT, an occurrence missed while the sentinel was down still runs when it
comes back, that day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from croniter import croniter

from sentinel.reminders import cron_of as reminder_cron, occurrence


def cron_of(purge: Any) -> str | None:
    """The schedule as a cron expression; None when there is none (or none understood)."""
    if not isinstance(purge, Mapping):
        return None
    text = purge.get("text_expression")
    if isinstance(text, str) and text.strip():
        understood = reminder_cron({"text_expression": text})
        if understood is not None:
            return understood
    cron = purge.get("cron")
    if isinstance(cron, str) and croniter.is_valid(cron):
        return cron
    return None


def not_understood(purge: Any) -> str | None:
    """What to warn an admin about: a schedule given but not understood."""
    if not isinstance(purge, Mapping) or cron_of(purge) is not None:
        return None
    if purge.get("text_expression") or purge.get("cron"):
        return (f"purge schedule not understood (text_expression {purge.get('text_expression')!r}, "
                f"cron {purge.get('cron')!r}); purging will not run")
    return None


def due(purge: Any, handled_ms: int | None, now: dt.datetime) -> dt.datetime | None:
    """The occurrence to run now, or None (no schedule, none within the last day, or already handled)."""
    cron = cron_of(purge)
    if cron is None:
        return None
    when = occurrence(cron, now)
    if when is None:
        return None
    if handled_ms is not None and int(when.timestamp() * 1000) <= handled_ms:
        return None
    return when
