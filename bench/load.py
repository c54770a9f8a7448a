"""Load: many concurrent clients mixing reads, writes, replication and exports against the API.

A generated hierarchy is loaded and users are placed in it: an online
program officer (contact, person, place and report reads; person and record
writes), a national admin (exports) and offline CHWs and supervisors who
replicate as PouchDB does (``_changes`` from their checkpoint, then
``_bulk_get`` of what changed in batches of 100, ``_all_docs`` by keys, and a
push of a new report with ``_revs_diff`` + ``_bulk_docs new_edits=false``).
Anyone reads ``/api/v2/monitoring``.

Each client is a closed loop with one keep-alive connection: it picks a
weighted-random action, waits for the answer and picks again (no think time,
so the figures show the server saturated). The clients run in a separate
process so they do not share the API's event loop. The API runs as
``--api-processes`` processes (default: one per core) listening on one port
with ``SO_REUSEPORT``, so Linux spreads the connections over them and both
cores serve requests. Printed: one row per route with requests, errors, the
503s with ``Retry-After`` that were waited out and tried again (exports beyond
``EXPORT_CONCURRENCY``: a polite client's behaviour, counted apart from
errors), p50, p99 and max latency, then the total rate. Any other non-2xx
answer or client exception is an error, and the exit status is 1.
``--profile DIR`` writes a cProfile of each API process there (``api-N.prof``).
``--each SECONDS`` runs every action alone instead of the mix, each from quiet
(the views caught up with the previous action's writes, that catching up
printed apart), and prints CouchDB's CPU per API request by action: where the
mix's database time goes.

    python -m bench.load [--clients 200] [--seconds 300] [--api-processes 2] [--profile DIR] [--each SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import json
import multiprocessing
import os
import random
import signal
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from api import server
from api.app import create_app
from api.cht.lineage import minify_contact
from api.config import Config
from api.couch import Couch, basic_auth
from scripts.couchdb import free_port
from tests.hierarchy import build, load

from .common import Stack, bench_stack, build_views, percentile_ms, server_cpu, server_cpu_parts

PASSWORD = "Load-passw0rd!"
BULK_GET_BATCH = 100  # PouchDB's default batch_size
REQUEST_TIMEOUT = 120.0  # seconds; a request slower than this counts as an error
ERROR_SAMPLES = 20
MAX_RETRY_AFTER = 30.0  # seconds; a longer Retry-After is an error


@dataclass
class World:
    """What the clients need to know about the seeded data (picklable, sent to the client process)."""

    api_url: str
    contacts: list[str]
    people: list[str]
    places: list[str]
    clinics: list[str]
    reports: list[str]
    online: dict[str, str]  # purpose -> Authorization header
    offline: list[dict[str, Any]]  # {"auth", "contact", "patients"}


@dataclass
class Tally:
    """Latencies and errors per route, as collected by the client process."""

    timings: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retried: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # 503 + Retry-After, waited out
    samples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def error(self, route: str, what: str) -> None:
        self.errors[route] += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(f"{route}: {what}")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per route: requests, errors, p50/p99/max in ms."""
        out = []
        for route in sorted(set(self.timings) | set(self.errors)):
            times = self.timings.get(route) or [0.0]
            out.append({"route": route, "requests": len(self.timings.get(route, [])) + self.errors.get(route, 0),
                        "errors": self.errors.get(route, 0), "retried": self.retried.get(route, 0),
                        "p50": percentile_ms(times, 50),
                        "p99": percentile_ms(times, 99), "max": max(times) * 1000})
        return out

    @property
    def requests(self) -> int:
        return sum(len(t) for t in self.timings.values()) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# -- seeding ---------------------------------------------------------------------------------

async def seed(stack: Stack, rng: random.Random) -> World:
    """The hierarchy, users, a JSON form for records, and every view the actions use built once."""
    h = build(seed=14, districts=2, centers=3, clinics=4, people=10, reports_per_clinic=10)
    medic = stack.couch.db(stack.config.db_medic)
    await load(medic, h)
    users: list[dict[str, Any]] = [
        {"name": "load-po", "roles": ["program_officer"]},
        {"name": "load-national", "roles": ["national_admin"]},
    ]
    offline_at = [(f"load-chw-{i}", ["chw"], h.by_id[c]) for i, c in enumerate(h.clinics[:8])]
    offline_at += [(f"load-sup-{i}", ["chw_supervisor"], h.by_id[c]) for i, c in enumerate(h.centers[:2])]
    for name, roles, place in offline_at:
        users.append({"name": name, "roles": roles, "facility_id": place["_id"],
                      "contact_id": place["contact"]["_id"]})
    await stack.couch.db(stack.config.db_users).bulk_docs([
        {"_id": f"org.couchdb.user:{u['name']}", "type": "user", "password": PASSWORD, **u} for u in users])
    await medic.bulk_docs([{"_id": f"org.couchdb.user:{u['name']}", "type": "user-settings", "name": u["name"],
                            **({"facility_id": u["facility_id"], "contact_id": u["contact_id"]}
                               if "facility_id" in u else {})} for u in users])
    offline = []
    for name, _, place in offline_at:
        patients = [d["patient_id"] for d in h.docs if d.get("type") == "person"
                    and (d.get("parent") or {}).get("_id") == place["_id"]]
        offline.append({"auth": basic_auth(name, PASSWORD), "contact": minify_contact(h.by_id[place["contact"]["_id"]]),
                        "patients": patients or [h.by_id[place["contact"]["_id"]]["patient_id"]]})
    places = [d["_id"] for d in h.docs if d.get("type") in ("district_hospital", "health_center", "clinic")]
    world = World(stack.api_url, places + h.people, h.people, places, h.clinics, h.reports,
                  {"po": basic_auth("load-po", PASSWORD), "exports": basic_auth("load-national", PASSWORD)},
                  offline)
    async with aiohttp.ClientSession() as session:  # a first pass builds the views and fills the caches
        tally = Tally()
        client = Client(session, world, tally, rng)
        for action, _ in ACTIONS:
            await action(client)
        for device in world.offline:
            await pull(client, device)
        if tally.error_count:
            raise SystemExit("the warm-up failed:\n  " + "\n  ".join(tally.samples))
    return world


# -- the actions -----------------------------------------------------------------------------

class Client:
    """One simulated client: a session with one connection, and the checkpoints of the devices it plays."""

    def __init__(self, session: aiohttp.ClientSession, world: World, tally: Tally, rng: random.Random):
        self.session, self.world, self.tally, self.rng = session, world, tally, rng
        self.checkpoints: dict[str, Any] = {}

    async def call(self, route: str, method: str, path: str, auth: str, **kwargs: Any) -> Any:
        """One timed request; returns the parsed JSON body (or None), or None after recording an error.

        A 503 with ``Retry-After`` is waited out and the request sent again (counted in ``retried``, and
        the timing is the answered request's).
        """
        while True:
            started = time.perf_counter()
            try:
                async with self.session.request(method, self.world.api_url + path,
                                                headers={"Authorization": auth, "Accept": "application/json"},
                                                **kwargs) as response:
                    raw = await response.read()
                    status = response.status
                    retry_after = response.headers.get("Retry-After", "")
            except Exception as exc:  # noqa: BLE001 -- every failure is a figure of the run
                self.tally.error(route, f"{type(exc).__name__}: {exc}"[:300])
                return None
            elapsed = time.perf_counter() - started
            if status == 503 and retry_after.isdigit() and int(retry_after) <= MAX_RETRY_AFTER:
                self.tally.retried[route] += 1
                await asyncio.sleep(int(retry_after))
                continue
            break
        if not 200 <= status < 300:
            self.tally.error(route, f"{status} {raw[:300]!r}")
            return None
        self.tally.timings[route].append(elapsed)
        if raw[:1] in (b"{", b"["):
            try:
                return json.loads(raw)
            except ValueError:
                return None
        return raw


async def read_contact(c: Client) -> None:
    await c.call("GET /api/v1/contact/{uuid}", "GET", f"/api/v1/contact/{c.rng.choice(c.world.contacts)}",
                 c.world.online["po"])


async def read_person(c: Client) -> None:
    await c.call("GET /api/v1/person/{uuid}", "GET", f"/api/v1/person/{c.rng.choice(c.world.people)}",
                 c.world.online["po"])


async def read_place(c: Client) -> None:
    await c.call("GET /api/v1/place/{uuid}", "GET", f"/api/v1/place/{c.rng.choice(c.world.places)}",
                 c.world.online["po"])


async def read_report(c: Client) -> None:
    await c.call("GET /api/v1/report/{uuid}", "GET", f"/api/v1/report/{c.rng.choice(c.world.reports)}",
                 c.world.online["po"])


async def write_person(c: Client) -> None:
    await c.call("POST /api/v1/people", "POST", "/api/v1/people", c.world.online["po"],
                 json={"name": f"Load person {uuid.uuid4().hex[:8]}", "place": c.rng.choice(c.world.clinics),
                       "phone": f"+2547{c.rng.randrange(10**8):08d}"})


async def write_record(c: Client) -> None:
    await c.call("POST /api/v2/records", "POST", "/api/v2/records", c.world.online["po"],
                 json={"_meta": {"form": "P", "from": f"+2547{c.rng.randrange(10**8):08d}"},
                       "patient_name": f"Load {uuid.uuid4().hex[:6]}", "lmp": c.rng.randrange(1, 40)})


async def pull(c: Client, device: dict[str, Any] | None = None) -> None:
    """One replication pull of an offline device from its checkpoint (now and then a fresh device)."""
    device = device or c.rng.choice(c.world.offline)
    auth = device["auth"]
    since = c.checkpoints.get(auth, 0)
    if c.rng.random() < 0.05:
        since = 0
    body = await c.call("GET /medic/_changes", "GET", "/medic/_changes", auth,
                        params={"style": "all_docs", "since": str(since), "limit": "100"})
    if not isinstance(body, dict):
        return
    c.checkpoints[auth] = body["last_seq"]
    wanted = [{"id": r["id"], "rev": ch["rev"]} for r in body["results"] for ch in r["changes"]]
    for start in range(0, len(wanted), BULK_GET_BATCH):
        await c.call("POST /medic/_bulk_get", "POST", "/medic/_bulk_get", auth,
                     params={"revs": "true", "latest": "true"}, json={"docs": wanted[start:start + BULK_GET_BATCH]})


async def all_docs(c: Client) -> None:
    device = c.rng.choice(c.world.offline)
    keys = c.rng.sample(c.world.contacts, 20)  # some visible to the device, most not (rows say not_found)
    await c.call("POST /medic/_all_docs", "POST", "/medic/_all_docs", device["auth"],
                 params={"include_docs": "true"}, json={"keys": keys})


async def push(c: Client) -> None:
    """An offline CHW's new report, pushed as PouchDB does."""
    device = c.rng.choice(c.world.offline)
    doc_id, rev = str(uuid.uuid4()), f"1-{uuid.uuid4().hex}"
    await c.call("POST /medic/_revs_diff", "POST", "/medic/_revs_diff", device["auth"], json={doc_id: [rev]})
    doc = {"_id": doc_id, "_rev": rev, "_revisions": {"start": 1, "ids": [rev[2:]]}, "type": "data_record",
           "form": "V", "content_type": "xml", "reported_date": int(time.time() * 1000),
           "contact": device["contact"], "fields": {"patient_id": c.rng.choice(device["patients"])}}
    await c.call("POST /medic/_bulk_docs", "POST", "/medic/_bulk_docs", device["auth"],
                 json={"docs": [doc], "new_edits": False})


async def export_reports(c: Client) -> None:
    await c.call("GET /api/v2/export/reports", "GET", "/api/v2/export/reports", c.world.online["exports"])


async def export_contacts(c: Client) -> None:
    await c.call("GET /api/v2/export/contacts", "GET", "/api/v2/export/contacts", c.world.online["exports"])


async def monitoring(c: Client) -> None:
    await c.call("GET /api/v2/monitoring", "GET", "/api/v2/monitoring", c.world.online["po"])


Action = Callable[[Client], Awaitable[None]]
ACTIONS: list[tuple[Action, int]] = [  # (action, weight in %): reads and replication dominate, as in the field
    (read_contact, 16), (read_person, 12), (read_place, 10), (read_report, 12),
    (write_person, 6), (write_record, 6),
    (pull, 18), (all_docs, 8), (push, 8),
    (export_reports, 1), (export_contacts, 1),
    (monitoring, 2),
]


# -- the client process ----------------------------------------------------------------------

async def _client(world: World, tally: Tally, seed: int, until: float,
                  chosen: list[tuple[Action, int]]) -> None:
    rng = random.Random(seed)
    actions, weights = zip(*chosen)
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session, world, tally, rng)
        while time.monotonic() < until:
            await rng.choices(actions, weights)[0](client)


async def _clients(world: World, clients: int, seconds: float, chosen: list[tuple[Action, int]]) -> Tally:
    tally = Tally()
    started = time.monotonic()
    await asyncio.gather(*(_client(world, tally, seed, started + seconds, chosen) for seed in range(clients)))
    tally.seconds = time.monotonic() - started
    return tally


def run_clients(world: World, clients: int, seconds: float,
                only: str | None = None) -> tuple[list[dict[str, Any]], list[str], float]:
    """The client process's entry point: returns the per-route rows, error samples and elapsed seconds
    (``only``: the one action, by name, every client repeats)."""
    chosen = [(action, weight) for action, weight in ACTIONS if only is None or action.__name__ == only]
    tally = asyncio.run(_clients(world, clients, seconds, chosen))
    return tally.rows(), tally.samples, tally.seconds


@dataclass
class Result:
    rows: list[dict[str, Any]]
    samples: list[str]
    seconds: float
    clients: int
    api_processes: int = 1

    @property
    def requests(self) -> int:
        return sum(r["requests"] for r in self.rows)

    @property
    def errors(self) -> int:
        return sum(r["errors"] for r in self.rows)

    @property
    def retried(self) -> int:
        return sum(r.get("retried", 0) for r in self.rows)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def table(self) -> str:
        """The per-route figures as a Markdown table, then the totals."""
        lines = ["| route | requests | errors | 503 + Retry-After, retried | p50 ms | p99 ms | max ms |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in self.rows:
            lines.append(f"| `{r['route']}` | {r['requests']} | {r['errors']} | {r.get('retried', 0)} "
                         f"| {r['p50']:.0f} | {r['p99']:.0f} | {r['max']:.0f} |")
        lines.append(f"| **all** | {self.requests} | {self.errors} | {self.retried} | | | |")
        return "\n".join(lines) + (f"\n\n{self.clients} clients for {self.seconds:.0f} s: {self.requests} requests, "
                                   f"{self.rate:.0f} requests/s, {self.errors} errors, {self.retried} answers 503 "
                                   f"with Retry-After waited out; {self.api_processes} API process(es), "
                                   f"{os.cpu_count()} cores")


ROUTE: contextvars.ContextVar[str] = contextvars.ContextVar("route", default="(background)")


def count_couch_requests(app: web.Application) -> dict[str, dict[str, int]]:
    """Profiling: CouchDB requests counted by the API route that caused them (tasks a request starts inherit
    its route; the view warmer and other background work are ``(background)``), and the routes' own count."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    request = Couch.request

    async def counted(self: Couch, method: str, path: str, **kwargs: Any) -> Any:
        parts = [p for p in path.split("?")[0].split("/") if p]
        database = parts[0].split("-", 1)[-1] if parts else ""
        if "_view" in parts:
            kind = "view " + parts[-1]
        else:
            kind = next((p for p in reversed(parts[1:]) if p.startswith("_")), "doc" if len(parts) > 1 else "db")
        counts[ROUTE.get()][f"{method} {database} {kind}"] += 1
        return await request(self, method, path, **kwargs)

    @web.middleware
    async def route_of(request: web.Request, handler: Any) -> web.StreamResponse:
        route = f"{request.method} {request.match_info.route.resource.canonical}" \
            if request.match_info.route.resource is not None else f"{request.method} (no route)"
        ROUTE.set(route)
        counts[route]["(API requests)"] += 1
        return await handler(request)

    Couch.request = counted  # type: ignore[method-assign]
    app.middlewares.insert(0, route_of)
    return counts


def serve_api(config: Config, port: int, profile: str | None) -> None:
    """One API process on the shared port (``SO_REUSEPORT``), until SIGTERM; ``profile``: a cProfile file, and
    beside it the CouchDB requests per route (``.requests.json``)."""
    app = create_app(config)
    counts = count_couch_requests(app) if profile else None

    profiler = cProfile.Profile() if profile else None
    with profiler or contextlib.nullcontext():
        server.run(app, "127.0.0.1", port, reuse_port=True)  # as production runs it (scripts/cluster.py)
    if profiler is not None and profile is not None:
        profiler.dump_stats(profile)
        with open(profile.replace(".prof", ".requests.json"), "w") as out:
            json.dump(counts, out, indent=1, sort_keys=True)


@contextlib.asynccontextmanager
async def api_processes(config: Config, count: int, profile_dir: str | None) -> Any:
    """``count`` API processes sharing one new port; yields its URL once every one answers."""
    port = free_port()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=serve_api, daemon=True,
                                 args=(config, port, os.path.join(profile_dir, f"api-{i}.prof") if profile_dir
                                       else None)) for i in range(count)]
    for process in processes:
        process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # each process binds on its own; wait until all are up (a connection may reach any)
            await asyncio.sleep(0.1)
            if all(p.is_alive() for p in processes) and await _answers(url, count * 4):
                break
        else:
            raise SystemExit("the API processes did not start")
        yield url
    finally:
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(timeout=30)


def machine_busy() -> float:
    """CPU seconds every process on the machine has used since boot (``/proc/stat``, idle and iowait left out)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


CAUGHT_UP_VIEWS = [("medic", "docs_by_replication_key"), ("medic-client", "contacts_by_reference"),
                   ("medic-conflicts", "conflicts")]  # one view of each medic design doc: each has one index


async def caught_up(stack: Stack) -> float:
    """Bring the medic views up to date and wait until CouchDB's CPU goes quiet; the server CPU seconds it took
    (what the previous action's writes cost the indexes, which the mix pays on the next view query)."""
    before = server_cpu(stack)
    await build_views(stack.couch.db(stack.config.db_medic), CAUGHT_UP_VIEWS)
    for _ in range(30):  # a minute at most: a server that never goes quiet is measured as it is
        start = server_cpu(stack)
        await asyncio.sleep(2)
        if start is None or (server_cpu(stack) or 0.0) - start < 0.2:
            break
    after = server_cpu(stack)
    return after - before if after is not None and before is not None else float("nan")


async def each_action(stack: Stack, world: World, clients: int, seconds: float) -> str:
    """CouchDB's CPU per API request, one action at a time: every client repeats one action for ``seconds``,
    from quiet (the views caught up with the previous action's writes, and that catching up printed apart)."""
    lines = ["| action | docs in medic | API requests | errors | requests/s | CouchDB CPU per request: `beam.smp` + "
             "`couchjs` ms | the rest of the machine per request ms | views caught up after it: server CPU s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    medic = stack.couch.db(stack.config.db_medic)
    loop = asyncio.get_running_loop()
    await caught_up(stack)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for action, _ in ACTIONS:
            docs = (await medic.read_info())["doc_count"]  # the actions before it wrote; costs grow with it
            server, busy = server_cpu_parts(stack), machine_busy()
            rows, _, _ = await loop.run_in_executor(pool, run_clients, world, clients, seconds, action.__name__)
            server_end, busy_end = server_cpu_parts(stack), machine_busy()
            after = await caught_up(stack)
            made = sum(r["requests"] for r in rows)
            count = made or 1
            if server is None or server_end is None:
                couch = "not measurable"
                rest = f"{1000 * (busy_end - busy) / count:.1f}"
            else:
                beam, js = server_end[0] - server[0], server_end[1] - server[1]
                couch = f"{1000 * beam / count:.1f} + {1000 * js / count:.1f}"
                rest = f"{1000 * (busy_end - busy - beam - js) / count:.1f}"
            errors = sum(r["errors"] for r in rows)
            lines.append(f"| `{action.__name__}` | {docs} | {made} | {errors} | {made / seconds:.0f} | {couch} "
                         f"| {rest} | {after:.1f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines)


async def _answers(url: str, tries: int) -> bool:
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(tries):
                async with session.get(url + "/api/v2/monitoring", headers={"Connection": "close"}) as response:
                    if response.status != 200:
                        return False
        return True
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def seeded(api_count: int, profile_dir: str | None = None) -> Any:
    """A fresh stack with ``api_count`` API processes and the load's world seeded; yields (stack, world)."""
    async with bench_stack() as stack:
        async with api_processes(stack.config, api_count, profile_dir) as url:
            stack.api_url = url
            yield stack, await seed(stack, random.Random(14))


async def run(clients: int = 200, seconds: float = 300, api_count: int | None = None,
              profile_dir: str | None = None) -> Result:
    """Seed a fresh stack, run the clients against ``api_count`` API processes, return the figures."""
    api_count = api_count or os.cpu_count() or 1
    async with seeded(api_count, profile_dir) as (_, world):
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows, samples, elapsed = await asyncio.get_running_loop().run_in_executor(
                pool, run_clients, world, clients, seconds)
    return Result(rows, samples, elapsed, clients, api_count)


async def run_each(clients: int = 50, seconds: float = 40, api_count: int | None = None) -> str:
    """Seed a fresh stack and run every action alone (``each_action``); its table."""
    async with seeded(api_count or os.cpu_count() or 1) as (stack, world):
        return await each_action(stack, world, clients, seconds)


def figures(clients: int = 200, seconds: float = 300, api_processes: int | None = None) -> dict[str, Any]:
    """Run the load and return its headline figures and per-route table (for ``bench.run``)."""
    result = asyncio.run(run(clients, seconds, api_processes))
    print(result.table())
    if result.errors:
        print("errors, first ones:\n  " + "\n  ".join(result.samples), file=sys.stderr)
    worst = max(result.rows, key=lambda r: r["p99"])
    return {"clients": clients, "seconds": result.seconds, "requests": result.requests, "errors": result.errors,
            "retried": result.retried, "api_processes": result.api_processes,
            "rate": result.rate, "worst_route": worst["route"], "worst_p99_ms": worst["p99"],
            "details": "## Load, per route\n\n" + result.table()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--api-processes", type=int, default=None, help="default: one per core")
    parser.add_argument("--profile", default=None, help="a directory for a cProfile of each API process")
    parser.add_argument("--each", type=float, default=None, metavar="SECONDS",
                        help="run each action alone for SECONDS and print CouchDB's CPU per request")
    args = parser.parse_args()
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    if args.each:
        print(asyncio.run(run_each(args.clients, args.each, args.api_processes)))
        return
    result = asyncio.run(run(args.clients, args.seconds, args.api_processes, args.profile))
    print(result.table())
    if result.errors:
        print("errors, first ones:\n  " + "\n  ".join(result.samples), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
