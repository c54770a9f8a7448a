"""``make cluster``: the production layout on one machine, in one command.

    python -m scripts.cluster --tarball path/to/apache-couchdb-3.x.tar.gz   # 3 nodes of our own
    python -m scripts.cluster --runner path/to/couchdb-local                # an extracted release
    python -m scripts.cluster --nodes http://h1:5984,http://h2:5984,http://h3:5984 --admin admin:PASS

It starts (or, with ``--nodes``, uses) a 3-node Apache CouchDB cluster (n=3, q=2), HAProxy in front of it
(``haproxy.cfg`` written from ``scripts/haproxy.cfg.template``: health checks on ``/_up``, retries and
redispatch), N API worker processes on one port (``SO_REUSEPORT``: Linux spreads connections over them;
each also listens on a loopback port of its own for its metrics) and 2 sentinel processes (one holds the
lease, the other stands by). Whatever dies is started again. It waits until everything answers, prints
the URLs, and stops everything on Ctrl-C (or SIGTERM).

Ports, from ``--port P`` (default 16100): HAProxy P, CouchDB nodes P+1..P+3 (Erlang distribution
P+11..P+13), the API P+20, the API workers' own ports P+21..P+20+N. Data and logs under ``--data``.

Why a supervisor of our own and not gunicorn: each worker keeps a stable index (``API_WORKER``), so its
metrics are labelled and scraped on a stable port; a worker is restarted only after it listens; and the
same ~200 lines run the sentinels, HAProxy and the nodes, with one Ctrl-C for all
(docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import quote, urlsplit

import aiohttp

from api.config import ROOT, Config
from api.couch import Couch, basic_auth
from api.errors import JamiiError

from .setup_db import setup

TEMPLATE = Path(__file__).with_name("haproxy.cfg.template")
RESTART_MAX_DELAY = 10.0


@dataclass
class Child:
    """A process of the layout, started again when it dies (unless the layout is stopping)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, cwd=str(ROOT), stdout=out, stderr=out, start_new_session=True)
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None

    async def keep_alive(self, stopping: asyncio.Event) -> None:
        delay = 0.5
        while not stopping.is_set():
            await self.start()
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if stopping.is_set():
                return
            if time.monotonic() - started > 30:
                delay = 0.5
            print(f"[cluster] {self.name} exited ({code}); starting it again in {delay:.1f}s", flush=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_DELAY)

    async def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()


class Layout:
    """Everything of one layout: CouchDB nodes (ours or given), HAProxy, API workers, sentinels."""

    def __init__(self, data: Path, *, port: int = 16100, workers: int = 3, sentinels: int = 2,
                 runner: str | None = None, nodes: list[str] | None = None, admin: tuple[str, str] | None = None,
                 env: dict[str, str] | None = None):
        self.data = data.resolve()
        self.port = port
        self.workers = workers
        self.sentinels = sentinels
        self.runner = runner
        self.admin = admin or ("admin", self._password())
        self.own_nodes = nodes is None
        self.node_ports = [port + i for i in (1, 2, 3)]
        self.nodes = nodes or [f"http://127.0.0.1:{p}" for p in self.node_ports]
        self.extra_env = env or {}
        self.children: dict[str, Child] = {}
        self.rejoining: dict[int, asyncio.Task[float]] = {}  # nodes back in maintenance mode, until caught up
        self.stopping = asyncio.Event()

    # -- addresses ------------------------------------------------------

    @property
    def couch_url(self) -> str:
        """CouchDB through HAProxy, with the admin."""
        return f"http://{self.admin[0]}:{self.admin[1]}@127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 20}"

    def worker_port(self, i: int) -> int:
        return self.port + 20 + i

    def node_url(self, i: int) -> str:
        parts = urlsplit(self.nodes[i])
        return f"{parts.scheme}://{self.admin[0]}:{self.admin[1]}@{parts.netloc}"

    def _password(self) -> str:
        path = self.data / "admin-password"
        if path.exists():
            return path.read_text().strip()
        self.data.mkdir(parents=True, exist_ok=True)
        password = secrets.token_hex(12)
        path.write_text(password)
        path.chmod(0o600)
        return password

    # -- CouchDB nodes --------------------------------------------------

    def node_dir(self, i: int) -> Path:
        return self.data / f"couch{i + 1}"

    def _node_command(self, i: int) -> list[str]:
        assert self.runner
        return [self.runner, "start", "--cluster", "--port", str(self.node_ports[i]),
                "--dist-port", str(self.port + 11 + i), "--data", str(self.node_dir(i)),
                "--node-name", f"jamii{self.port}n{i + 1}", "--admin", f"{self.admin[0]}:{self.admin[1]}"]

    async def start_node(self, i: int, *, rejoin: bool = True) -> None:
        """Start node ``i`` (0-based) with ``couchdb-local``.

        ``rejoin`` (a node coming back to a running cluster): it comes back in maintenance mode, so until
        internal replication has brought its copies up to date no other node reads from them (a returning
        node's stale copies otherwise answer views and ``_all_docs`` without the writes it missed) and HAProxy
        keeps it out (``/_up`` answers 404); ``rejoin`` takes it out once caught up. This is CouchDB's own
        procedure for a shard copy being rebuilt (docs/scaling.md)."""
        log = self.data / "logs" / f"couch{i + 1}-start.log"
        if not rejoin:
            await _run(self._node_command(i), log)
            return
        with open(self.node_dir(i) / "runtime.ini", "a") as ini:  # CouchDB's own config file, read last
            ini.write("\n[couchdb]\nmaintenance_mode = true\n")
        # couchdb-local waits for a 200 from /_up, which a node in maintenance mode never gives: wait for it here
        await _run([*self._node_command(i), "--timeout", "1"], log, check=False)
        await _wait_status(self.nodes[i], "/", 200, 120, f"CouchDB node {i + 1}")
        self.rejoining[i] = asyncio.create_task(self.rejoin(i))

    async def rejoin(self, i: int, *, settle_polls: int = 3) -> float:
        """Take node ``i`` out of maintenance mode once internal replication has caught up. Writes made while
        it is in maintenance mode reach it only when a sync is asked for (measured: ``_sync_shards`` pushes to
        it, a write's own push does not), so: every database's shards synced, no internal replication job on
        any node for ``settle_polls`` polls in a row, the same once more for what was written meanwhile, then
        out, and one more sync for the last second's writes. A failed step is tried again (a node may die
        meanwhile). Returns the seconds taken."""
        started = time.monotonic()
        while not self.stopping.is_set():
            try:
                # through HAProxy: a node in maintenance mode coordinates nothing ("nodedown")
                async with Couch.from_config(self.config()) as cluster, \
                        Couch(self.nodes[i], *self.admin) as node:
                    for polls in (settle_polls, 1):
                        await _sync_all(cluster)
                        await _replication_quiet(cluster, polls)
                    await _sync_all(cluster)  # what the last quiet poll let through, right before it serves reads
                    await node.request("PUT", "/_node/_local/_config/couchdb/maintenance_mode", json_body="false")
                    await _sync_all(cluster)
                break
            except JamiiError as exc:
                print(f"[cluster] node {i + 1} rejoining: {exc}; trying again", flush=True)
                await asyncio.sleep(2)
        took = time.monotonic() - started
        print(f"[cluster] node {i + 1} caught up, out of maintenance mode after {took:.1f}s", flush=True)
        return took

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i``: a crash."""
        pid = int((self.node_dir(i) / "couchdb.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)

    async def stop_node(self, i: int) -> None:
        assert self.runner
        await _run([self.runner, "stop", "--data", str(self.node_dir(i))],
                   self.data / "logs" / f"couch{i + 1}-stop.log", check=False)

    async def _start_nodes(self) -> None:
        await asyncio.gather(*(self.start_node(i, rejoin=False) for i in range(3)))  # all at once: none is behind
        members = await _json(f"{self.node_url(0)}/_membership")
        if len(members.get("cluster_nodes") or ()) < 3:
            assert self.runner
            await _run([self.runner, "cluster-setup", "--admin", f"{self.admin[0]}:{self.admin[1]}",
                        *(arg for i in range(3) for arg in ("--data", str(self.node_dir(i))))],
                       self.data / "logs" / "cluster-setup.log")

    # -- HAProxy --------------------------------------------------------

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server couch{i + 1} {urlsplit(url).netloc}" for i, url in enumerate(self.nodes))
        tracked = "\n".join(
            f"    server couch{i + 1} {urlsplit(url).netloc} track couch_reads/couch{i + 1}"
            for i, url in enumerate(self.nodes))
        return Template(TEMPLATE.read_text()).substitute(bind=f"127.0.0.1:{self.port}", servers=servers,
                                                         tracked=tracked)

    async def _start_haproxy(self) -> None:
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(haproxy):
            raise SystemExit("the layout needs HAProxy: install the Debian package (apt-get install haproxy)")
        cfg = self.data / "haproxy.cfg"
        cfg.write_text(self.haproxy_config())
        check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise SystemExit(f"haproxy refused {cfg}:\n{check.stdout}{check.stderr}")
        self._child("haproxy", [haproxy, "-db", "-f", str(cfg)], dict(os.environ))

    # -- Jamii ----------------------------------------------------------

    def config(self) -> Config:
        return Config.from_env({"COUCH_URL": self.couch_url, "JAMII_DATA_DIR": str(self.data / "jamii")})

    def _jamii_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COUCH_", "JAMII_", "API_"))}
        env.update(COUCH_URL=self.couch_url, JAMII_DATA_DIR=str(self.data / "jamii"), LOG_LEVEL="INFO",
                   API_PORT=str(self.port + 20), API_HOST="127.0.0.1", LOGIN_THROTTLE_STORE="couch")
        env.update(self.extra_env)
        env.update(extra)
        return env

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.data / "logs" / f"{name}.log")
        self.children[name] = child
        child.task = asyncio.create_task(child.keep_alive(self.stopping))
        return child

    def _start_jamii(self) -> None:
        for i in range(1, self.workers + 1):
            self._child(f"api{i}", [sys.executable, "-m", "api"],
                        self._jamii_env(API_WORKER=str(i), API_REUSE_PORT="1", METRICS_PORT=str(self.worker_port(i))))
        for i in range(1, self.sentinels + 1):
            self._child(f"sentinel{i}", [sys.executable, "-m", "sentinel"], self._jamii_env())

    # -- the whole ------------------------------------------------------

    async def start(self, timeout: float = 180) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if self.own_nodes:
            await self._start_nodes()
        await self._start_haproxy()
        await self.wait_couch(timeout)
        await setup(self.config(), progress=lambda line: print(f"[cluster] {line}", flush=True))
        self._start_jamii()
        await self.wait_api(timeout)

    async def wait_couch(self, timeout: float) -> None:
        await _wait_status(f"http://127.0.0.1:{self.port}", "/_up", 200, timeout, "CouchDB through HAProxy")

    async def wait_api(self, timeout: float) -> None:
        """Every worker answers on its own port (bound after the shared one: it is ready)."""
        deadline = time.monotonic() + timeout
        for i in range(1, self.workers + 1):
            await _wait_status(f"http://127.0.0.1:{self.worker_port(i)}", "/api/info", 200,
                               max(0.0, deadline - time.monotonic()),
                               f"API worker {i} (see {self.data / 'logs'})")

    async def stop(self) -> None:
        self.stopping.set()
        jamii = [c for name, c in self.children.items() if name != "haproxy"]
        await asyncio.gather(*(c.stop() for c in jamii))
        if "haproxy" in self.children:
            await self.children["haproxy"].stop()
        for child in self.children.values():
            if child.task is not None:
                child.task.cancel()
        if self.own_nodes and self.runner:
            await asyncio.gather(*(self.stop_node(i) for i in range(3)))

    def urls(self) -> str:
        lines = [f"  API (any of {self.workers} workers): {self.api_url}/api/docs",
                 *(f"  API worker {i} (its own metrics): http://127.0.0.1:{self.worker_port(i)}/api/v1/express-metrics"
                   for i in range(1, self.workers + 1)),
                 f"  CouchDB through HAProxy:  http://127.0.0.1:{self.port}  (admin {self.admin[0]}, password in "
                 f"{self.data / 'admin-password'})",
                 f"  HAProxy stats:            http://127.0.0.1:{self.port}/_haproxy_stats",
                 *(f"  CouchDB node {i + 1}:           {url}" for i, url in enumerate(self.nodes)),
                 f"  sentinels: {self.sentinels} (one holds the lease)   logs: {self.data / 'logs'}"]
        return "\n".join(lines)


async def _run(argv: list[str], log: Path, check: bool = True) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        process = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=out)
        code = await process.wait()
    if check and code != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed ({code}): see {log}")


async def _json(url: str) -> dict:
    """GET a CouchDB URL with credentials in it (as Basic auth)."""
    parts = urlsplit(url)
    headers = {"Accept": "application/json"}
    if parts.username:
        headers["Authorization"] = basic_auth(parts.username, parts.password or "")
        url = url.replace(f"{parts.username}:{parts.password}@", "")
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=headers) as response:
            return await response.json(content_type=None)


async def _sync_all(cluster: Couch) -> None:
    """Ask every database's shard copies to sync with each other (internal replication, now)."""
    for name in await cluster.get_json("/_all_dbs"):
        if not name.startswith("_"):
            await cluster.request("POST", f"/{quote(name, safe='')}/_sync_shards")


async def _replication_quiet(cluster: Couch, polls: int) -> None:
    """Until no node has an internal replication job for ``polls`` polls a second apart."""
    quiet = 0
    while quiet < polls:
        await asyncio.sleep(1)
        members = (await cluster.get_json("/_membership")).get("all_nodes") or []
        jobs = [(await cluster.get_json(f"/_node/{quote(m, safe='')}/_system")).get("internal_replication_jobs")
                for m in members]
        quiet = quiet + 1 if not any(jobs) else 0


async def _wait_status(url: str, path: str, status: int, timeout: float, what: str) -> None:
    """Until ``url`` + ``path`` answers ``status``; SystemExit naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(urlsplit(url)._replace(path=path).geturl()) as response:
                    if response.status == status:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not answer {status} on {path} within {timeout:.0f}s")
            await asyncio.sleep(0.3)


def extract(tarball: Path, dest: Path) -> str:
    """The ``couchdb-local`` runner of a release tarball, extracted once into ``dest``."""
    runners = list(dest.glob("*/couchdb-local"))
    if not runners:
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(dest, filter="tar")
        runners = list(dest.glob("*/couchdb-local"))
    if not runners:
        raise SystemExit(f"{tarball} holds no couchdb-local runner")
    runner = str(runners[0])
    deps = [runner, "check-deps"] + (["--install-deps"] if os.geteuid() == 0 else [])
    if subprocess.run(deps).returncode != 0:
        raise SystemExit("CouchDB's runtime packages are missing (see above)")
    return runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tarball", type=Path, help="an Apache CouchDB 3 release with couchdb-local")
    source.add_argument("--runner", help="couchdb-local of an extracted release")
    source.add_argument("--nodes", help="three CouchDB node URLs, comma-separated (a cluster you run)")
    parser.add_argument("--admin", help="USER:PASS of the CouchDB admin (with --nodes)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", 16100)))
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--sentinels", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CLUSTER_DATA", ROOT / ".data" / "cluster")))
    args = parser.parse_args(argv)
    if args.nodes and not args.admin:
        parser.error("--nodes needs --admin USER:PASS")
    return args


def layout_from(args: argparse.Namespace) -> Layout:
    runner = args.runner
    if args.tarball:
        runner = extract(args.tarball.resolve(), args.data.resolve() / "release")
    admin = tuple(args.admin.split(":", 1)) if args.admin else None
    nodes = [u.strip() for u in args.nodes.split(",")] if args.nodes else None
    return Layout(args.data, port=args.port, workers=args.workers, sentinels=args.sentinels, runner=runner,
                  nodes=nodes, admin=admin)  # type: ignore[arg-type]


async def main(argv: list[str] | None = None) -> None:
    layout = layout_from(parse_args(argv))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        starting = asyncio.create_task(layout.start())
        done, _ = await asyncio.wait({starting, asyncio.create_task(stop.wait())},
                                     return_when=asyncio.FIRST_COMPLETED)
        if starting in done:
            starting.result()
            print(f"\nJamii's cluster layout is running:\n{layout.urls()}\nCtrl-C stops everything.\n", flush=True)
            await stop.wait()
        else:
            starting.cancel()
    finally:
        print("[cluster] stopping everything", flush=True)
        await layout.stop()
        print("[cluster] stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
