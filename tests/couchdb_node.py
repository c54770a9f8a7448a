"""A database server of a test's own, for tests that stop, kill or hang it (outages, crashes part-way).

On the embedded server that is another pouchdb-server (``scripts.couchdb.EmbeddedCouch``). With
``COUCH_URL`` the suite runs against Apache CouchDB; the server at ``COUCH_URL`` is shared by every test
and cannot be stopped, so when ``COUCHDB_LOCAL`` names a ``couchdb-local`` (the runner of a CouchDB
release, as ``make test-couchdb`` and ``.ci/run`` set it) ``CouchDBNode`` starts one single node of the
test's own with CouchDB's default configuration. Both have the same handful of calls: ``url``,
``admin``, ``start``, ``stop``, ``kill`` (SIGKILL, as a crash), ``pause``/``resume`` (SIGSTOP/SIGCONT: a hung
server) and ``alive``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from scripts.couchdb import EmbeddedCouch, free_port


class CouchDBNode:
    """One Apache CouchDB node started with ``couchdb-local`` (its data in ``data_dir``)."""

    def __init__(self, local: str | Path, data_dir: Path, port: int, admin: tuple[str, str]):
        self.local = str(local)
        self.data_dir = Path(data_dir) / "couchdb-node"
        self.port = port
        self.admin = admin
        self.log = Path(data_dir) / "couchdb-local.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float) -> None:
        with open(self.log, "ab") as log:
            done = subprocess.run([self.local, *args], stdout=log, stderr=subprocess.STDOUT, timeout=timeout + 30)
        if done.returncode != 0:
            raise RuntimeError(f"couchdb-local {args[0]} failed ({done.returncode}): {self.log.read_text()[-2000:]}")

    def start(self, timeout: float = 90) -> None:
        self._run("start", "--port", str(self.port), "--data", str(self.data_dir), "--admin",
                  f"{self.admin[0]}:{self.admin[1]}", "--dist-port", str(free_port()), "--timeout", str(int(timeout)),
                  timeout=timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.pid is not None:
            self.resume()
            self._run("stop", "--data", str(self.data_dir), "--timeout", str(int(timeout)), timeout=timeout)

    @property
    def pid(self) -> int | None:
        """beam.smp's pid while it runs."""
        try:
            pid = int((self.data_dir / "couchdb.pid").read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state in ("Z", "X") else pid  # a killed process nobody has reaped yet is gone

    def alive(self) -> bool:
        return self.pid is not None

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed or closed."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.pid is not None and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGCONT)


OwnServer = EmbeddedCouch | CouchDBNode
