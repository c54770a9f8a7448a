"""The embedded CouchDB-protocol server (express-pouchdb), for development and tests.

``EmbeddedCouch`` starts ``scripts/embedded-couchdb.js`` with Node on loopback,
waits until it answers, restarts it if it dies (``supervise``) and stops it.
Its admin credentials come from COUCH_USER / COUCH_PASSWORD or are generated on
the first start and saved, readable by the owner only, in the data folder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from api.config import ROOT, admin_file, saved_admin

log = logging.getLogger("jamii.couchdb")
LAUNCHER = ROOT / "scripts" / "embedded-couchdb.js"


def ensure_admin(data_dir: Path, name: str | None = None, password: str | None = None) -> tuple[str, str]:
    """The embedded server's admin: given, saved earlier, or generated now and saved."""
    if name and password:
        return name, password
    saved_name, saved_password = saved_admin(data_dir)
    if saved_name and saved_password:
        return saved_name, saved_password
    name, password = name or "admin", secrets.token_urlsafe(18)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = admin_file(data_dir)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"name": name, "password": password}, out)
    return name, password


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedCouch:
    def __init__(self, data_dir: Path, port: int, admin: tuple[str, str], host: str = "127.0.0.1"):
        self.data_dir = Path(data_dir)
        self.port = port
        self.host = host
        self.admin = admin
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("Node.js is needed for the embedded CouchDB (or set COUCH_URL)")
        if not (ROOT / "node_modules" / "pouchdb-server").exists():
            raise RuntimeError("pouchdb-server is not installed: run `npm ci --omit=optional`")
        db_dir = self.data_dir / "couchdb"
        db_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "JAMII_COUCH_ADMIN_NAME": self.admin[0], "JAMII_COUCH_ADMIN_PASSWORD": self.admin[1]}
        out = open(self.data_dir / "couchdb-stdout.log", "ab")
        self.process = subprocess.Popen(
            [node, str(LAUNCHER), "--dir", str(db_dir), "--port", str(self.port), "--host", self.host],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=str(db_dir), start_new_session=True,
        )
        out.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the embedded CouchDB exited with {self.process.returncode}; "
                                   f"see {self.data_dir / 'couchdb-stdout.log'}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the embedded CouchDB did not answer on {self.url} within {timeout}s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def pause(self) -> None:
        """SIGSTOP: a hung server, there but answering nothing (for outage tests)."""
        if self.alive():
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.alive():
            os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Stop it hard, as a crash would (for outage tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def supervise(self, interval: float = 0.5) -> None:
        """Restart the server whenever it dies (data survives; a restart takes ~0.3 s)."""
        delay = 0.2
        while True:
            await asyncio.sleep(interval)
            if self.alive():
                delay = 0.2
                continue
            log.warning("the embedded CouchDB stopped; restarting it")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)
            try:
                await asyncio.to_thread(self.start)
                self.restarts += 1
            except RuntimeError as exc:
                log.error("%s", exc)
