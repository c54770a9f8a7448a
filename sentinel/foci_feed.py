"""The foci database's feed: every cluster's ``cases`` follows each case and cluster change.

Each batch of changes goes to ``api.foci.recount.recount_changes``, which
recounts exactly the clusters the changed docs touch. A change that needs a
whole country recounted (a bulk upload, a case never seen before) is deferred
until the feed has caught up, so a backlog costs one full recount per country
rather than one per batch; the deferred countries are kept in a doc of the sentinel database
before the checkpoint moves, so a crash cannot lose them. Recounts are
idempotent: a batch read again after a crash writes nothing new.
"""

from __future__ import annotations

import logging
from typing import Any

from api.config import Config
from api.couch import Couch
from api.errors import Conflict
from api.foci.recount import recount_all, recount_changes, recount_country
from api.settings import SettingsStore

log = logging.getLogger("jamii.sentinel.foci")

CHECKPOINT = "sentinel-checkpoint-foci"
DEFERRED = "foci-deferred-recounts"


class FociRecount:
    def __init__(self, couch: Couch, config: Config, batch_size: int = 100):
        self.db = couch.db(config.db_foci)
        self.state = couch.db(config.db_sentinel)
        self.batch_size = batch_size

    async def _deferred(self) -> set[str]:
        doc = await self.state.get_or_none(DEFERRED)
        return set(doc.get("countries", [])) if doc else set()

    async def _keep(self, countries: set[str]) -> None:
        """A normal doc, not ``_local``: on a cluster a stale ``_local`` copy can win a read after a node's
        restart and forget deferred countries."""
        for _ in range(5):
            doc = await self.state.get_or_none(DEFERRED) or {"_id": DEFERRED, "type": "foci-deferred"}
            doc["countries"] = sorted(countries)
            try:
                await self.state.put(doc)
                return
            except Conflict:
                continue
        raise Conflict("the deferred recounts kept changing")

    async def process_batch(self, batch: list[dict[str, Any]]) -> None:
        docs = [change["doc"] for change in batch if change.get("doc")]
        result = await recount_changes(self.db, self.state, docs, defer_full=True)
        deferred = await self._deferred()
        if result.deferred and not set(result.deferred) <= deferred:
            deferred.update(result.deferred)
            await self._keep(deferred)
        if deferred and len(batch) < self.batch_size:  # caught up: the full recounts now
            for country in sorted(deferred):
                counted = await recount_country(self.db, country)
                log.info("foci: recounted %s in full (%d clusters changed)", country, len(counted.changed))
            await self._keep(set())
        if result.changed:
            log.info("foci: %d cluster count(s) updated", len(result.changed))


async def recount_everything(couch: Couch, config: Config, settings: SettingsStore) -> None:
    """The nightly job: a full recount of every configured country (mends anything missed)."""
    countries = ((await settings.get()).get("foci") or {}).get("countries") or []
    await recount_all(couch.db(config.db_foci), [str(c).lower() for c in countries])
