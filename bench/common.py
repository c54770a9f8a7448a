"""What every benchmark needs: a fresh embedded CouchDB, the databases set up, and the API on a port.

    async with bench_stack() as stack:
        ... stack.api_url, stack.couch_url, stack.admin, stack.config ...
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from api.app import create_app
from api.config import Config
from api.couch import Couch, basic_auth
from scripts.couchdb import EmbeddedCouch, free_port
from scripts.setup_db import setup


@dataclass
class Stack:
    config: Config
    api_url: str
    couch_url: str
    admin: tuple[str, str]
    couch: Couch
    embedded: EmbeddedCouch | None

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": basic_auth(*self.admin)}


PREFIX = "bench-"


async def drop_bench_dbs(config: Config) -> None:
    """On a COUCH_URL server, the prefixed databases an earlier run left (a bench starts from empty ones)."""
    async with Couch.from_config(config) as couch:
        for name in await couch.all_dbs():
            if name.startswith(PREFIX):
                await couch.delete_db(name)


@contextlib.asynccontextmanager
async def bench_stack(**config_changes: object) -> AsyncIterator[Stack]:
    """A throwaway server stack (or the COUCH_URL server, with prefixed databases made afresh and dropped after)."""
    base = Config.from_env({k: v for k, v in os.environ.items() if k == "COUCH_URL"})
    with tempfile.TemporaryDirectory(prefix="jamii-bench-") as tmp:
        embedded = None
        if base.embedded_couch:
            embedded = EmbeddedCouch(Path(tmp), free_port(), ("admin", "bench-admin-pass"))
            embedded.start()
            base = base.replace(couch_url=embedded.url).with_admin(*embedded.admin)
        config = base.with_prefix(PREFIX).replace(**config_changes)
        if embedded is None:
            await drop_bench_dbs(config)
        await setup(config, progress=lambda _: None)
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        couch = Couch.from_config(config)
        try:
            yield Stack(config, f"http://127.0.0.1:{port}", config.couch_url,
                        (config.couch_user or "", config.couch_password or ""), couch, embedded)
        finally:
            await couch.close()
            await runner.cleanup()
            if embedded is not None:
                embedded.stop()
            else:
                await drop_bench_dbs(config)


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile_ms(seconds: list[float], pct: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000
