"""The sentinel process: the medic feed through the transition engine, and the periodic jobs."""

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
from .scheduler import Job, run_forever
from .worker import Worker

log = logging.getLogger("jamii.sentinel")


def build(couch: Couch, config: Config, settings: SettingsStore) -> tuple[list[Worker], list[Job]]:
    """The feeds the sentinel follows and the jobs it runs."""
    engine = Engine(couch, config, settings, registry.medic_transitions())
    foci = FociRecount(couch, config)
    workers = [Worker(couch, config, engine.process_batch, batch_size=config.sentinel_batch_size,
                      checkpoint_seconds=config.sentinel_checkpoint_seconds, include_docs=False),
               Worker(couch, config, foci.process_batch, db_name=config.db_foci, checkpoint_name=FOCI_CHECKPOINT,
                      batch_size=foci.batch_size)]
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
    """Run until SIGTERM or SIGINT; the batch under way is finished first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Couch.from_config(config) as couch:
        settings = SettingsStore(couch.db(config.db_medic))
        settings.start_watching()
        workers, jobs = build(couch, config, settings)
        tasks = [asyncio.create_task(w.run(stop)) for w in workers]
        tasks.append(asyncio.create_task(run_forever(couch.db(config.db_sentinel), jobs, stop)))
        await asyncio.gather(*tasks)
        await settings.stop_watching()
    log.info("sentinel stopped")
