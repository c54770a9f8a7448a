"""What every benchmark needs: a fresh embedded CouchDB, the databases set up, and the API on a port.

    async with bench_stack() as stack:
        ... stack.api_url, stack.couch_url, stack.admin, stack.config ...
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from api.app import create_app
from api.config import Config
from api.couch import Couch, Database, basic_auth
from api.errors import ServiceUnavailable
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


USER_PREFIXES = ("org.couchdb.user:bench-", "org.couchdb.user:load-", "org.couchdb.user:direct-")


async def drop_bench_dbs(config: Config) -> None:
    """On a COUCH_URL server, what an earlier run left: the prefixed databases and the benches' users in
    ``_users`` (a bench starts from empty ones)."""
    async with Couch.from_config(config) as couch:
        for name in await couch.all_dbs():
            if name.startswith(PREFIX):
                await couch.delete_db(name)
        users = couch.db(config.db_users)
        rows = (await users.all_docs(startkey="org.couchdb.user:", endkey="org.couchdb.user:\ufff0"))["rows"]
        gone = [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True} for r in rows
                if r["id"].startswith(USER_PREFIXES)]
        if gone:
            await users.bulk_docs(gone)


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


def _listener_pid(port: int) -> int | None:
    """The process listening on this local TCP port, from /proc (Linux; None when it cannot be seen)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def _cpu_of_tree(root: int) -> tuple[float, float] | None:
    """CPU seconds of a process, and of its descendants (couchjs under CouchDB: live ones and reaped ones)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    own: dict[int, int] = {}
    reaped: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry.name)
            parents[pid], own[pid], reaped[pid] = int(fields[1]), int(fields[11]) + int(fields[12]), \
                int(fields[13]) + int(fields[14])
    if root not in own:
        return None
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    helpers = sum(own[pid] for pid in tree - {root}) + sum(reaped[pid] for pid in tree)
    return own[root] / tick, helpers / tick


def server_cpu_parts(stack: Stack) -> tuple[float, float] | None:
    """CPU seconds the database server has used so far, as (the server process, its helper processes: CouchDB's
    ``couchjs``), for pouchdb-server or a CouchDB on this machine; None when it cannot be seen."""
    if stack.embedded is not None:
        process = getattr(stack.embedded, "process", None)
        return _cpu_of_tree(process.pid) if process is not None else None
    parts = urlsplit(stack.couch_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    pid = _listener_pid(parts.port or 5984)
    return _cpu_of_tree(pid) if pid is not None else None


def server_cpu(stack: Stack) -> float | None:
    """CPU seconds the database server (helpers included) has used so far; None when it cannot be seen."""
    found = server_cpu_parts(stack)
    return sum(found) if found is not None else None


INDEX_BUDGET_SECONDS = 4 * 3600


async def build_views(db: Database, views: list[tuple[str, str]], *, budget: float = INDEX_BUDGET_SECONDS,
                      reduced: frozenset[str] = frozenset({"reports_by_form"})) -> float:
    """Query each (design doc, view) until its index is built (``reduced``: views with a reduce, asked for
    rows); the seconds it took.

    On CouchDB a query that waits for a long index build gets a 500 ``timeout`` after fabric's request
    timeout, and ``couchjs`` (64 MiB by default) may run out of memory while it indexes hundreds of thousands
    of docs and exit (``os_process_error``); either way the indexer goes on (a new ``couchjs`` from the
    index's last checkpoint), so the query is sent again until ``budget`` is spent, and each such answer is
    printed."""
    started = time.perf_counter()
    for ddoc, view in views:
        while True:
            try:
                await db.view(ddoc, view, limit=1, timeout=3600,
                              **({"reduce": False} if view in reduced else {}))
                break
            except ServiceUnavailable as exc:
                transient = "os_process_error" in str(exc) or "timeout" in str(exc)
                if not transient or time.perf_counter() - started > budget:
                    raise
                print(f"  indexing {ddoc}/{view} after {time.perf_counter() - started:.0f} s: {exc}; "
                      "the indexer goes on, asking again")
    return time.perf_counter() - started


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def percentile_ms(seconds: list[float], pct: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000
