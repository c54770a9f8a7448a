"""The API and the sentinel as real processes (``python -m api``, ``python -m sentinel``), for crash and outage tests.

Each gets the test's config through environment variables, as in production,
and writes its log to a file in the test's folder, so a test can assert that
no traceback was logged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from api.config import ROOT, Config
from scripts.couchdb import free_port

from .helpers import JWT_SECRET


def process_env(config: Config, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment that gives a child process ``config`` (its own COUCH_/JAMII_ variables dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUCH_", "JAMII_"))}
    env.update(COUCH_URL=config.couch_url_with_credentials(), JAMII_DB_PREFIX=config.db_medic[: -len("medic")],
               JAMII_DATA_DIR=str(data_dir), LOG_LEVEL="WARNING")
    env.update(extra)
    return env


def start_sentinel(config: Config, data_dir: Path, **env: str) -> subprocess.Popen:
    with open(data_dir / "sentinel.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "sentinel"], cwd=ROOT, env=process_env(config, data_dir, **env),
                                stdout=subprocess.DEVNULL, stderr=log)


class ApiProcess:
    """``python -m api`` on a free port; ``kill()`` is SIGKILL, ``start()`` may be called again (same port)."""

    def __init__(self, config: Config, data_dir: Path, **env: str):
        self.config = config
        self.data_dir = data_dir
        self.port = free_port()
        self.env = process_env(config, data_dir, API_PORT=str(self.port), JWT_SECRET=JWT_SECRET,
                               COUCH_TIMEOUT=str(int(config.couch_timeout)),
                               AUTH_CACHE_SECONDS=str(config.auth_cache_seconds), **env)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "api.log"

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    async def start(self, timeout: float = 30) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=self.env,
                                            stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process.poll() is None, "the API exited:\n" + self.log_text()[-3000:]
                try:
                    async with session.get(self.url + "/api/info", timeout=aiohttp.ClientTimeout(2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()  # never leave a process behind
                    raise AssertionError("the API did not start:\n" + self.log_text()[-3000:])
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode
