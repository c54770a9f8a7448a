"""The sentinel process: the medic feed through the transition engine, and the periodic jobs.

Run as many as you like: one is active, holding the lease (``sentinel.lease``); the others wait and take
over within ``ttl + poll`` seconds when it dies, from the checkpoints the lease holds.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from api.config import Config
from api.couch import Couch
from api.credentials import CredentialStore
from api.settings import SettingsStore

from . import due_messages, info_cleanup, purging, registry, reminders, retries, sms_sender, users_meta
from .engine import Engine
from .foci_feed import CHECKPOINT as FOCI_CHECKPOINT
from .foci_feed import FociRecount, recount_everything
from .lease import Lease
from .scheduler import Job, run_forever
from .worker import Worker

log = logging.getLogger("jamii.sentinel")


def build(couch: Couch, config: Config, settings: SettingsStore,
          lease: Lease | None = None) -> tuple[list[Worker], list[Job]]:
    """The feeds the sentinel follows and the jobs it runs (fenced by ``lease`` when given)."""
    engine = Engine(couch, config, settings, registry.medic_transitions())
    foci = FociRecount(couch, config)
    workers = [Worker(couch, config, engine.process_batch, batch_size=config.sentinel_batch_size,
                      checkpoint_seconds=config.sentinel_checkpoint_seconds, include_docs=False, lease=lease),
               Worker(couch, config, foci.process_batch, db_name=config.db_foci, checkpoint_name=FOCI_CHECKPOINT,
                      batch_size=foci.batch_size, lease=lease)]
    sentinel_db = couch.db(config.db_sentinel)
    credentials = CredentialStore.from_config(couch, config)
    medic_db = couch.db(config.db_medic)
    jobs = [
        Job("retry-transitions", 60, lambda: retries.retry_due(engine, sentinel_db)),
        Job("send-sms", 15, lambda: sms_sender.send_pending(couch, config, settings, credentials)),
        Job("foci-recount-all", 24 * 3600, lambda: recount_everything(couch, config, settings), lease_seconds=3600),
        Job("due-messages", 120, lambda: due_messages.move_due(medic_db, settings)),
        Job("reminders", 300, lambda: reminders.send(couch, config, settings, engine.translations)),
        Job("clean-info-docs", 3600, lambda: info_cleanup.clean(sentinel_db, medic_db)),
        Job("purging", 60, lambda: purging.scheduled(couch, config, settings), lease_seconds=900),
        Job("users-meta", 300, lambda: users_meta.scheduled(couch, config), lease_seconds=3600),
    ]
    return workers, jobs


async def run(config: Config) -> None:
    """Run until SIGTERM or SIGINT; the batch under way is finished first and the lease given up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Couch.from_config(config) as couch:
        settings = SettingsStore(couch.db(config.db_medic))
        settings.start_watching()
        while not stop.is_set():
            lease = Lease(couch.db(config.db_sentinel), ttl=config.sentinel_lease_seconds)
            log.info("sentinel %s waiting for the lease", lease.holder)
            if not await lease.acquire(stop):
                break
            await _active(couch, config, settings, lease, stop)
        await settings.stop_watching()
    log.info("sentinel stopped")


async def _active(couch: Couch, config: Config, settings: SettingsStore, lease: Lease, stop: asyncio.Event) -> None:
    """Feeds and jobs while the lease is held; all of them stop when it is lost or on ``stop``."""
    active = asyncio.Event()
    workers, jobs = build(couch, config, settings, lease)
    tasks = [asyncio.create_task(w.run(active)) for w in workers]
    tasks.append(asyncio.create_task(run_forever(couch.db(config.db_sentinel), jobs, active,
                                                 may_run=lambda: lease.valid)))
    keeper = asyncio.create_task(lease.keep(active))
    ended = [asyncio.create_task(stop.wait()), asyncio.create_task(lease.lost.wait())]
    await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
    for task in ended:
        task.cancel()
    active.set()
    await asyncio.gather(*tasks, keeper, return_exceptions=True)
    if stop.is_set():
        await lease.release()
    else:
        log.warning("sentinel %s lost the lease; waiting to take it again", lease.holder)
