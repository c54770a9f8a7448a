"""``make run``: everything for development in one command.

Starts the embedded CouchDB (unless COUCH_URL names one), creates the
databases, uploads the design docs, seeds the settings, then runs the API and
the sentinel, restarting any of them that dies. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from api.config import ROOT, Config

from .couchdb import EmbeddedCouch, ensure_admin
from .setup_db import setup

log = logging.getLogger("jamii.run")


class Child:
    """A Python process of ours (API or sentinel), restarted if it dies."""

    def __init__(self, name: str, module: str, env: dict[str, str]):
        self.name, self.module, self.env = name, module, env
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(sys.executable, "-m", self.module, env=self.env,
                                                            cwd=str(ROOT))

    async def keep_alive(self) -> None:
        delay = 1.0
        while True:
            await self.start()
            assert self.process is not None
            code = await self.process.wait()
            log.warning("%s exited with %s; restarting in %.0fs", self.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()


async def main() -> None:
    config = Config.from_env()
    env = dict(os.environ)
    couch = None
    if config.embedded_couch:
        name, password = ensure_admin(config.data_dir, config.couch_user, config.couch_password)
        config = config.with_admin(name, password)
        env.update(COUCH_USER=name, COUCH_PASSWORD=password)
        couch = EmbeddedCouch(config.data_dir, config.couch_port, (name, password))
        couch.start()
        print(f"embedded CouchDB on {couch.url} (data in {config.data_dir / 'couchdb'})", flush=True)
    await setup(config)
    children = [Child("api", "api", env), Child("sentinel", "sentinel", env)]
    tasks = [asyncio.create_task(child.keep_alive()) for child in children]
    if couch is not None:
        tasks.append(asyncio.create_task(couch.supervise()))
    print(f"\nJamii is running: http://{config.api_host}:{config.api_port}/api/docs\n"
          f"  admin user: {config.couch_user}\n  password:   {config.couch_password}\n"
          "Ctrl-C stops everything.\n", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(child.stop() for child in children))
    if couch is not None:
        couch.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
