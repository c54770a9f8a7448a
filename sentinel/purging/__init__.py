"""Server-side purging in the sentinel: the scheduled job that runs the admin's purge function.

``schedule`` (when), ``sandbox`` (the function in QuickJS, with limits),
``groups`` (what it is called with), ``staging`` (all or nothing) and ``run``
(one run). The API serves the result: ``api.cht.purging``.
"""

from __future__ import annotations

import datetime as dt
import logging

from api.config import Config
from api.couch import Couch
from api.settings import SettingsStore

from ..scheduler import keep_lease
from . import schedule
from .run import Limits, Report, run

log = logging.getLogger("jamii.sentinel.purging")

STATE = "purging"  # _local/purging in the sentinel database: {occurrence: <ms of the last one handled>}
_warned: list[str] = []  # the last schedule warning given, so it is given once

__all__ = ["Limits", "Report", "run", "scheduled"]


async def scheduled(couch: Couch, config: Config, store: SettingsStore, *,
                    now: dt.datetime | None = None) -> Report | None:
    """The job: a run when the ``purge`` schedule has come round since the last one; None when not due."""
    settings = await store.get()
    now = now or dt.datetime.now(dt.timezone.utc)
    purge = settings.get("purge")
    warning = schedule.not_understood(purge)
    if warning and warning not in _warned:
        log.warning(warning)
    _warned[:] = [warning] if warning else []
    sentinel = couch.db(config.db_sentinel)
    handled = (await sentinel.get_local(STATE) or {}).get("occurrence")
    when = schedule.due(purge, handled if isinstance(handled, int) else None, now)
    if when is None:
        return None
    await sentinel.put_local(STATE, {"occurrence": int(when.timestamp() * 1000), "started": now.isoformat()})
    return await run(couch, config, settings, now=now, progress=keep_lease)
