"""Create the databases, lock them to admins, raise the CouchDB settings Jamii needs on each node, upload
the design docs, record the CHT version Jamii answers as (``deploy_info``), seed the settings, and, once,
reserve the short ids of contacts written before short ids were reserved (``api.cht.shortcodes``).

Safe to run again: existing databases and settings are kept, and design docs
that already match are left alone. ``python -m scripts.setup_db``
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Callable

from api import couch_config, deploy_info
from api.cht import shortcodes
from api.cht.replication.scope import DOC_IDS_LOOKUP_THRESHOLD
from api.config import Config
from api.couch import Couch
from api.ddocs import DdocError, upload_all
from api.errors import ServiceUnavailable
from api.settings import SettingsStore

from .admin import admin_config

# Only admins may read or write these databases directly; users go through the API.
ADMIN_ONLY = {"admins": {"names": [], "roles": []}, "members": {"names": [], "roles": ["_admin"]}}
# (section, key, at least): first syncs filter ``_changes`` by the user's ids (api.cht.replication.scope)
NODE_SETTINGS = [("couchdb", "changes_doc_ids_optimization_threshold", DOC_IDS_LOOKUP_THRESHOLD)]


async def wait_for(couch: Couch, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await couch.info()
            return
        except ServiceUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def setup(config: Config, progress: Callable[[str], None] = print) -> None:
    async with Couch.from_config(config) as couch:
        await wait_for(couch)
        created = set()
        for name in config.databases.values():
            if await couch.create_db(name):
                created.add(name)
                progress(f"created database {name}")
            if name != config.db_users:
                await couch.request("PUT", couch.db(name).path + "/_security", json_body=ADMIN_ONLY)
        for section, key, value in NODE_SETTINGS:
            done = await couch_config.ensure_at_least(couch, section, key, value)
            if done.raised:
                progress(f"set [{section}] {key} = {value} on {', '.join(done.raised)}")
            if done.unreachable:
                progress(f"warning: [{section}] {key} not checked on {', '.join(done.unreachable)} (down): "
                         "run this again when they are back")
        await upload_all(couch, config, progress)
        if await deploy_info.ensure(couch.db(config.db_medic), config.couch_user):
            progress(f"recorded deploy_info: CHT {deploy_info.CHT_VERSION}")
        if await SettingsStore(couch.db(config.db_medic)).seed_defaults():
            progress("stored the default app settings")
        medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
        if config.db_medic in created:
            await shortcodes.mark_backfilled(sentinel)
        elif reserved := await shortcodes.backfill(medic, sentinel):
            progress(f"reserved the short ids of {reserved} existing contact(s)")


def main() -> int:
    config = admin_config()
    if config is None:
        return 2
    try:
        asyncio.run(setup(config))
    except DdocError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ServiceUnavailable as exc:
        print(f"error: {exc} ({config.couch_url})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
