"""``make cluster-test``: the cluster layout under a mixed load, with a CouchDB node, the active sentinel and
an API worker killed with SIGKILL part-way, and nothing lost or doubled.

    python -m scripts.cluster_test --tarball path/to/apache-couchdb-3.x.tar.gz [--seconds 120]

The layout of ``scripts/cluster.py`` (3 nodes, HAProxy, 3 API workers on one port, 2 sentinels) on ports
from ``--port`` (16140), with data in a temporary folder. For ``--seconds``:

* 50 online clients (the admin's Basic credentials) mix idempotent reads (a person, a place, the settings),
  person creations (each read back at once through the API: read-your-writes), and the sentinel's
  SMS reports, sent as ``/medic/_bulk_docs`` in batches (registrations, visits, texts, strangers, new
  contacts: ``tests/sentinel/world.py``);
* 2 cht-gateways poll ``/api/sms`` for the outgoing messages the sentinel makes, reporting each one received
  with their next poll as cht-gateway does (a reply lost with the killed worker is handed out again after
  ``sms.gateway_redeliver_minutes``, set to 0.5 here);
* 5 offline users, each a stock PouchDB (``tests/pouchdb_device.js``), write a report locally, push,
  and pull, over and over.

At 20 % of the run node 3 is killed (started again at 50 %); at 35 % the sentinel holding the lease; at
65 % API worker 2 (its supervisor starts it again). Then the load stops, the cluster settles, and it
asserts:

1. every acknowledged write (people, reports, pushed device docs) is on every node: read through each
   node as coordinator both by quorum (``_all_docs`` + keys) and by a range (one copy per shard range);
2. each offline user's local database holds exactly the docs the server says they may see;
3. every report's transitions ran exactly once (its info doc, its messages), no short id twice;
4. every outgoing message was handed to a gateway exactly once;
5. errors during the node loss were only 503 with ``Retry-After``, fewer than 1 % of requests, and none
   for an idempotent read; the standby sentinel took over within 15 s;
6. setup's node settings (``scripts/setup_db.py``), run just after node 3 died, set the two live nodes and
   name node 3 as down, also when node 3 is asked directly (as if it died after ``_membership`` was read).

Exit status 0 when all hold; the figures are printed either way (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from api import checkpoint, couch_config
from api.auth import Principal
from api.cht import messages
from api.cht.visibility import doc_visible, replication_keys, scope_for
from api.couch import Couch, basic_auth
from api.settings import SettingsStore
from tests.device import Device
from tests.hierarchy import build, load
from tests.sentinel.world import (EXPECTED_TRANSITIONS, build_backlog, save_existing_contacts, transition_settings,
                                  use_settings)

from .cluster import Layout, extract
from .setup_db import NODE_SETTINGS

PASSWORD = "Cluster-passw0rd!"
ONLINE_CLIENTS = 50
DEVICES = 5
GATEWAYS = 2
TAKEOVER_LIMIT = 15.0
REDELIVER_MINUTES = 0.5  # a poll's reply cut by the killed API worker is handed out again after this


@dataclass
class Tally:
    """What the load saw: per (kind, status) counts, with the time of each failure."""

    requests: Counter = field(default_factory=Counter)
    # (seconds into the run, kind, method, status or exception, Retry-After present)
    failures: list[tuple[float, str, str, Any, bool]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    handed: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def note(self, kind: str, method: str, status: Any, retry_after: bool = False) -> None:
        self.requests[kind] += 1
        if not (isinstance(status, int) and status < 400):
            self.failures.append((time.monotonic() - self.started, kind, method, status, retry_after))


class Run:
    def __init__(self, layout: Layout, seconds: float, seed: int):
        self.layout = layout
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.events: dict[str, float] = {}
        self.stop = asyncio.Event()
        self.admin_headers = {"Authorization": basic_auth(*layout.admin), "Accept": "application/json"}

    # -- seeding ----------------------------------------------------------

    async def seed(self) -> None:
        config = self.layout.config()
        self.h = build(seed=24, districts=1, centers=2, clinics=3, people=4, reports_per_clinic=3)
        self.contacts, self.backlog, self.kinds = build_backlog(600, worlds=6, seed=24)
        async with Couch.from_config(config) as couch:
            medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
            await load(medic, self.h)
            settings = transition_settings()
            settings["sms"] = {**settings.get("sms", {}), "gateway_redeliver_minutes": REDELIVER_MINUTES}
            await use_settings(SettingsStore(medic), settings)
            await save_existing_contacts(medic, sentinel, self.contacts)
            await medic.bulk_docs([{"_id": "form:P", "type": "form", "title": "P"}])
            self.users = {}
            docs = []
            for i in range(DEVICES):
                clinic = self.h.by_id[self.h.clinics[i % len(self.h.clinics)]]
                name = f"cluster-chw{i}"
                self.users[name] = clinic
                docs.append({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": ["chw"],
                             "password": PASSWORD, "facility_id": clinic["_id"],
                             "contact_id": clinic["contact"]["_id"]})
            await couch.db(config.db_users).bulk_docs(docs)
            await medic.bulk_docs([{"_id": f"org.couchdb.user:{n}", "type": "user-settings", "name": n}
                                   for n in self.users])

    # -- the load ---------------------------------------------------------

    async def _request(self, session: aiohttp.ClientSession, kind: str, method: str, path: str,
                       idempotent: bool, **kwargs: Any) -> tuple[Any, Any]:
        """One request; a connection cut (an API worker killed) is tried again once for a read, as any
        HTTP client or proxy would; the status (or the exception's name) is tallied."""
        for attempt in (0, 1):
            try:
                async with session.request(method, self.layout.api_url + path, headers=self.admin_headers,
                                           **kwargs) as response:
                    body = await response.json(content_type=None) if response.status != 204 else None
                    self.tally.note(kind, method, response.status, "Retry-After" in response.headers)
                    return response.status, body
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if attempt == 0 and idempotent and not isinstance(exc, asyncio.TimeoutError):
                    continue
                self.tally.note(kind, method, type(exc).__name__)
                return None, None
        return None, None

    async def online_client(self, n: int) -> None:
        rng = random.Random(n)
        people, places = self.h.people, self.h.clinics
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not self.stop.is_set():
                pick = rng.random()
                if pick < 0.35:
                    await self._request(session, "read", "GET", f"/api/v1/person/{rng.choice(people)}", True)
                elif pick < 0.55:
                    await self._request(session, "read", "GET", f"/api/v1/place/{rng.choice(places)}", True)
                elif pick < 0.65:
                    await self._request(session, "read", "GET", "/api/v1/settings", True)
                elif pick < 0.9:
                    status, body = await self._request(
                        session, "write", "POST", "/api/v1/people", False,
                        json={"name": f"Cluster Person {n}-{rng.randrange(10**9)}", "place": rng.choice(places)})
                    if status == 200 and body:
                        self.tally.created.append(body["id"])
                        status, _ = await self._request(session, "read-own-write", "GET",
                                                        f"/api/v1/person/{body['id']}", True)
                elif not self.backlog:
                    await self._request(session, "read", "GET", f"/api/v1/person/{rng.choice(people)}", True)
                else:
                    batch, self.backlog[:] = self.backlog[:10], self.backlog[10:]
                    status, body = await self._request(session, "write", "POST", "/medic/_bulk_docs", False,
                                                       json={"docs": batch})
                    if status == 201 and isinstance(body, list):
                        self.tally.reports += [r["id"] for r in body if r.get("ok")]
                    else:
                        self.failed_batches.append(batch)

    async def gateway(self, n: int) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            updates: list[dict[str, str]] = []  # cht-gateway reports what it received with its next poll
            while not self.stop.is_set() or not self.drained:
                status, body = await self._request(session, "gateway", "POST", "/api/sms", False,
                                                   json={"messages": [], "updates": updates})
                if status == 200:
                    updates = []
                if status == 200 and body:
                    for message in body.get("messages") or ():
                        self.tally.handed[message["id"]] += 1
                        updates.append({"id": message["id"], "status": "PENDING"})
                    if not body.get("messages") and self.caught_up:
                        self.empty_polls[n] = True  # nothing left to hand out after the sentinel caught up
                await asyncio.sleep(1.0)

    async def device(self, name: str) -> None:
        device = await Device.start(self.layout.api_url + "/medic", name, PASSWORD)
        self.devices[name] = device
        clinic = self.users[name]
        k = 0
        while not self.stop.is_set():
            k += 1
            doc_id = f"cluster-{name}-{k}"
            await device.call("put", doc={"_id": doc_id, "type": "data_record", "form": "P",
                                          "reported_date": int(time.time() * 1000), "fields": {"n": k},
                                          "contact": {"_id": clinic["contact"]["_id"],
                                                      "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}}})
            await self.replicate(device, "push")
            await self.replicate(device, "pull")
            self.local_writes[name].append(doc_id)
            await asyncio.sleep(1.0)

    async def replicate(self, device: Device, way: str) -> None:
        """One replication, tried again after a failure as PouchDB's ``retry`` does (a connection cut by the
        killed API worker, a 503 during the node loss), up to three times; tallied as failed if all fail."""
        outcome: Any = None
        for attempt in range(3):
            try:
                result = await device.call(way, timeout=120)
                ok = result["ok"] and not result.get("doc_write_failures")
                outcome = 200 if ok else f"{way}-failed {result}"
            except Exception as exc:  # noqa: BLE001 - PouchDB's own error, tallied
                outcome = f"{way}:{exc}"
            if outcome == 200:
                break
            self.device_retries.append((time.monotonic() - self.tally.started, way, outcome))
            await asyncio.sleep(2.0)  # a killed worker's restart takes 1-3 s
        self.tally.note(f"device-{way}", "REPL", outcome)

    async def chaos(self) -> None:
        """The kills, at fixed fractions of the run."""
        s = self.seconds
        await asyncio.sleep(0.2 * s)
        self.layout.kill_node(2)
        self.events["node3 killed"] = time.monotonic() - self.tally.started
        print(f"[test] t={self.events['node3 killed']:.0f}s: node 3 killed (SIGKILL)", flush=True)
        await self.setup_while_node_down()
        await asyncio.sleep(0.15 * s)
        await self.kill_sentinel()
        await asyncio.sleep(0.15 * s)
        await self.layout.start_node(2)
        self.events["node3 back"] = time.monotonic() - self.tally.started
        print(f"[test] t={self.events['node3 back']:.0f}s: node 3 started again", flush=True)
        await asyncio.sleep(0.15 * s)
        worker = self.layout.children["api2"]
        if worker.pid:
            os.kill(worker.pid, signal.SIGKILL)
        self.events["api2 killed"] = time.monotonic() - self.tally.started
        print(f"[test] t={self.events['api2 killed']:.0f}s: API worker 2 killed (SIGKILL)", flush=True)

    async def setup_while_node_down(self) -> None:
        """``scripts/setup_db.py``'s node settings, run while node 3 is down: node 3 named unreachable, the others
        set; asked of node 3 directly (as when it dies after ``_membership`` was read), unreachable too."""
        [(section, key, value)] = NODE_SETTINGS
        async with Couch.from_config(self.layout.config()) as couch:
            try:  # one more than setup set, so that the two live nodes are raised
                members = await couch.membership() or {}
                down = next(n for n in members.get("cluster_nodes", []) if n.startswith(f"jamii{self.layout.port}n3@"))
                done = await couch_config.ensure_at_least(couch, section, key, value + 1)
                direct = await couch_config.raise_on_node(couch, down, section, key, value + 1)
            except Exception as exc:  # noqa: BLE001 - a failure of the check, reported by check()
                self.setup_down = f"{type(exc).__name__}: {exc}"
                return
            if done.unreachable != [down] or len(done.raised) != 2 or direct is not None:
                self.setup_down = f"node 3 ({down}) down: {done}, asked directly: {direct}"
            print(f"[test] node settings with node 3 down: {done}", flush=True)

    async def kill_sentinel(self) -> None:
        config = self.layout.config()
        async with Couch.from_config(config) as couch:
            lease = await couch.db(config.db_sentinel).get(checkpoint.LEASE_ID)
            holder = lease["holder"]
            victim = next(c for name, c in self.layout.children.items()
                          if name.startswith("sentinel") and c.pid and f":{c.pid}:" in holder)
            os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
            killed = time.monotonic()
            self.events["sentinel killed"] = killed - self.tally.started
            print(f"[test] t={self.events['sentinel killed']:.0f}s: active sentinel {victim.name} killed", flush=True)
            while True:
                try:
                    current = await couch.db(config.db_sentinel).get(checkpoint.LEASE_ID)
                    if current.get("holder") and current["holder"] != holder:
                        break
                except Exception:  # noqa: BLE001 - a read during the node loss; try again
                    pass
                await asyncio.sleep(0.2)
            self.takeover = time.monotonic() - killed
            print(f"[test] standby took the lease {self.takeover:.1f}s after the kill", flush=True)

    async def load(self) -> None:
        self.devices: dict[str, Device] = {}
        self.local_writes: dict[str, list[str]] = defaultdict(list)
        self.failed_batches: list[list[dict[str, Any]]] = []
        self.drained = False
        self.caught_up = False
        self.empty_polls = [False] * GATEWAYS
        self.device_retries: list[tuple[float, str, Any]] = []
        self.takeover = float("inf")
        self.setup_down = ""
        tasks = [asyncio.create_task(self.online_client(n)) for n in range(ONLINE_CLIENTS)]
        tasks += [asyncio.create_task(self.device(name)) for name in self.users]
        gateways = [asyncio.create_task(self.gateway(n)) for n in range(GATEWAYS)]
        chaos = asyncio.create_task(self.chaos())
        await asyncio.sleep(self.seconds)
        self.stop.set()
        await chaos
        await asyncio.gather(*tasks)
        self.load_seconds = time.monotonic() - self.tally.started
        return_gateways = gateways
        await self.settle()
        self.drained = True
        await asyncio.gather(*return_gateways)

    # -- settling and checking ---------------------------------------------

    async def settle(self) -> None:
        """The returned node caught up (out of maintenance mode), remaining reports written, the sentinel
        caught up, every message handed out."""
        for i, rejoin in self.layout.rejoining.items():
            took = await asyncio.wait_for(asyncio.shield(rejoin), 300)
            self.events[f"node{i + 1} caught up (s after its start)"] = took
        config = self.layout.config()
        async with Couch.from_config(config) as couch:
            medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
            rest = self.backlog + [d for batch in self.failed_batches for d in batch]
            for start in range(0, len(rest), 100):
                chunk = [{k: v for k, v in d.items() if k != "_rev"} for d in rest[start:start + 100]]
                results = await medic.bulk_docs(chunk)
                self.tally.reports += [r["id"] for r in results if r.get("ok") or r.get("error") == "conflict"]
            self.backlog = []
            deadline = time.monotonic() + 240
            while True:
                since = await checkpoint.read(sentinel, checkpoint.SENTINEL)
                if await medic.pending_changes(since) == 0:
                    break
                assert time.monotonic() < deadline, "the sentinel did not catch up"
                await asyncio.sleep(1)
            self.caught_up = True  # the gateways poll until each gets an empty answer and every message
            while not all(self.empty_polls) or await _awaiting_gateway(medic):  # handed out was reported on
                assert time.monotonic() < deadline + 120, "the gateways never got an empty answer"
                await asyncio.sleep(1)

    async def _describe(self, medic, where, message_uuid) -> str:
        return await _describe_message(medic, where, message_uuid)

    async def check(self) -> list[str]:
        failures: list[str] = []
        config = self.layout.config()
        async with Couch.from_config(config) as couch:
            medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
            # 2. each offline user's local database is their server-side scope
            settings = await SettingsStore(medic).get()
            everything = [r["doc"] for r in (await medic.all_docs(include_docs=True))["rows"] if r.get("doc")]
            for name, device in self.devices.items():
                result = {"ok": False}
                for attempt in range(3):  # PouchDB itself retries a failed replication later
                    try:
                        pushed = await device.call("push", timeout=120)
                        result = await device.call("pull", timeout=120)
                        result["ok"] = result["ok"] and pushed["ok"] and not pushed["doc_write_failures"]
                        if result["ok"]:
                            break
                        print(f"[test] {name}: final replication, try {attempt + 1}: push {pushed}, pull {result}",
                              flush=True)
                    except Exception as exc:  # noqa: BLE001 - PouchDB's own error
                        print(f"[test] {name}: final replication, try {attempt + 1}: {exc}", flush=True)
                    await asyncio.sleep(2)
                local = set(await device.call("ids"))
                clinic = self.users[name]
                expected = visible(everything, Principal(name, ("chw",), facility_id=clinic["_id"],
                                                         contact_id=clinic["contact"]["_id"]), settings)
                expected.add(f"org.couchdb.user:{name}")
                local_ids = {i for i in local if not i.startswith("_local/")}
                if local_ids != expected or not result["ok"]:
                    by_id = {d["_id"]: d for d in everything}
                    failures.append(f"{name}: local {len(local_ids)} docs, scope {len(expected)}: "
                                    f"missing {[_sketch(by_id.get(i)) for i in sorted(expected - local_ids)[:4]]}, "
                                    f"extra {sorted(local_ids - expected)[:4]}")
                await device.close()
            # 1. every acknowledged write on every node
            device_ids = {i for ids in self.local_writes.values() for i in ids}  # pushed again just now
            acknowledged = set(self.tally.created) | set(self.tally.reports) | device_ids
            for i in range(3):
                async with Couch(self.layout.nodes[i], *self.layout.admin) as node:
                    db = node.db(config.db_medic)
                    rows = (await db.all_docs(sorted(acknowledged)))["rows"]
                    missing = {r["key"] for r in rows if "error" in r or r.get("value", {}).get("deleted")}
                    missing_acked = missing & acknowledged
                    if missing_acked:
                        failures.append(f"node {i + 1}: {len(missing_acked)} acknowledged writes missing (quorum read)")
                    ranged = {r["id"] for r in (await db.all_docs())["rows"]}
                    if acknowledged - ranged:
                        failures.append(f"node {i + 1}: {len(acknowledged - ranged)} acknowledged writes missing "
                                        "from a one-copy range read")
            # 3. transitions once, no short id twice, no message twice
            docs = await medic.get_many(self.kinds)
            infos = await sentinel.get_many(f"{i}-info" for i in self.kinds)
            for doc_id, kind in self.kinds.items():
                info = infos.get(f"{doc_id}-info")
                if doc_id not in docs:
                    failures.append(f"{kind} {doc_id} was never written")
                    continue
                ran = {n for n, run in (info or {}).get("transitions", {}).items() if run.get("ok")}
                if ran != EXPECTED_TRANSITIONS[kind]:
                    failures.append(f"{kind} {doc_id}: transitions {sorted(ran)}")
                uuids = [m["uuid"] for _, _, m in messages.iter_messages(docs[doc_id])]
                if len(uuids) != len(set(uuids)):
                    failures.append(f"{doc_id}: a message doubled")
            codes = Counter()
            async for row in medic.iter_view("medic-client", "contacts_by_reference", startkey=["shortcode"],
                                             endkey=["shortcode", {}]):
                codes[row["key"][1]] += 1
            if [c for c, n in codes.items() if n > 1]:
                failures.append(f"short ids used twice: {[c for c, n in codes.items() if n > 1][:5]}")
            # 4. every outgoing message handed out exactly once
            outgoing = set()
            for doc in docs.values():
                for _, task, message in messages.iter_messages(doc):
                    if task.get("state") not in (None, "scheduled", "cleared", "muted", "denied", "duplicate"):
                        outgoing.add(message["uuid"])
            on_docs: dict[str, set[str]] = defaultdict(set)  # a uuid on two docs is two messages with one id
            for doc in docs.values():
                for _, _, message in messages.iter_messages(doc):
                    on_docs[message["uuid"]].add(doc["_id"])
            shared = [u for u, ids in on_docs.items() if len(ids) > 1]
            if shared:
                failures.append(f"{len(shared)} message uuids on more than one doc: "
                                f"{[(u, sorted(on_docs[u])) for u in shared[:3]]}")
            doubled = [u for u, n in self.tally.handed.items() if n > 1 and len(on_docs.get(u, ())) <= 1]
            never = outgoing - set(self.tally.handed)
            where = {m["uuid"]: (doc, task) for doc in docs.values() for _, task, m in messages.iter_messages(doc)}
            if doubled:
                failures.append(f"{len(doubled)} messages handed out twice: " + "; ".join(
                    [await self._describe(medic, where, u) for u in doubled[:3]]))
            if never:
                failures.append(f"{len(never)} of {len(outgoing)} messages never handed out: " + "; ".join(
                    [await self._describe(medic, where, u) for u in sorted(never)[:3]]))
            self.outgoing = outgoing
        # 5. errors
        total = sum(v for k, v in self.tally.requests.items() if not k.startswith("device"))
        worker_kill = self.events.get("api2 killed", -1)
        # requests in flight on the API worker killed with SIGKILL have their connection cut: reads are
        # sent again by the client (as any client or proxy does), writes are lost with an unknown outcome
        cut = [f for f in self.tally.failures
               if f[2] != "REPL" and isinstance(f[3], str) and 0 <= f[0] - worker_kill < 3]
        http_errors = [f for f in self.tally.failures if f[2] != "REPL" and f not in cut]
        bad = [f for f in http_errors if not (f[3] == 503 and f[4])]
        reads = [f for f in http_errors if f[1].startswith("read")]
        if bad:
            failures.append(f"{len(bad)} errors other than 503 with Retry-After: {bad[:5]}")
        if reads:
            failures.append(f"{len(reads)} idempotent reads failed: {reads[:5]}")
        if len(http_errors) >= 0.01 * total:
            failures.append(f"{len(http_errors)} errors of {total} requests (1 % or more): {http_errors[:5]}")
        device_errors = [f for f in self.tally.failures if f[2] == "REPL"]
        if device_errors:
            failures.append(f"{len(device_errors)} device replications failed: {device_errors[:3]}")
        if self.takeover > TAKEOVER_LIMIT:
            failures.append(f"the standby sentinel took over after {self.takeover:.1f}s")
        if self.setup_down:
            failures.append(f"setup's node settings with a node down: {self.setup_down}")
        self.summary = {
            "requests": total, "by kind": dict(self.tally.requests), "errors": len(http_errors),
            "writes in flight on the killed worker (cut)": len(cut),
            "device replication errors": len(device_errors), "error samples": http_errors[:5],
            "device replications tried again": self.device_retries[:5],
            "people created": len(self.tally.created), "reports": len(self.tally.reports),
            "device docs": sum(len(v) for v in self.local_writes.values()),
            "messages handed out": sum(self.tally.handed.values()), "outgoing messages": len(self.outgoing),
            "sentinel takeover s": round(self.takeover, 1), "load s": round(self.load_seconds, 1),
            "requests/s": round(total / max(self.load_seconds, 1), 1), "events": self.events,
            "load average": os.getloadavg(),
        }
        return failures


async def _awaiting_gateway(medic: Any) -> int:
    """Messages pending or handed out without a gateway's report yet (a reply lost with a killed worker)."""
    counted = 0
    for state in ("pending", "forwarded-to-gateway"):
        rows = (await medic.view("medic", "messages_by_state", reduce=False, startkey=[state],
                                 endkey=[state, {}], limit=1))["rows"]
        counted += len(rows)
    return counted


def _sketch(doc: dict[str, Any] | None) -> dict[str, Any]:
    """What decides a doc's visibility, for a failure message."""
    if doc is None:
        return {}
    fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
    return {"id": doc["_id"], "rev": doc.get("_rev"), "type": doc.get("type"), "form": doc.get("form"),
            "contact": (doc.get("contact") or {}).get("_id") if isinstance(doc.get("contact"), dict) else None,
            "patient_id": fields.get("patient_id") or doc.get("patient_id"), "parent": doc.get("parent")}


async def _describe_message(medic, where, message_uuid) -> str:
    doc, task = where.get(message_uuid, (None, None))
    if doc is None:
        return f"{message_uuid}: on no doc"
    current = await medic.get(doc["_id"], conflicts=True, revs_info=True)
    history = [h.get("state") for h in (task or {}).get("state_history") or ()]
    return (f"{message_uuid} on {doc['_id']} ({current['_rev']}, conflicts {current.get('_conflicts')}): "
            f"state {task.get('state')}, history {history}")


def _rss_mb(pid: int | None) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def _du_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


async def measure(layout: Layout) -> dict[str, Any]:
    """Memory per process, disk per node and per doc, the sentinel's rate (docs/scaling.md's inputs)."""
    out: dict[str, Any] = {}
    out["rss MB"] = {name: _rss_mb(child.pid) for name, child in layout.children.items()}
    for i in range(3):
        try:
            pid = int((layout.node_dir(i) / "couchdb.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        out["rss MB"][f"couch{i + 1}"] = _rss_mb(pid)
        out.setdefault("node disk MB", {})[f"couch{i + 1}"] = _du_mb(layout.node_dir(i))
    config = layout.config()
    async with Couch.from_config(config) as couch:
        sizes = {}
        for name in config.own_databases + [config.db_users]:
            info = await couch.db(name).info()
            sizes[name] = (info.get("doc_count"), round((info.get("sizes") or {}).get("file", 0) / 2**20, 2))
        out["databases (docs, file MB per copy)"] = sizes
    processed = millis = 0
    for log in layout.data.glob("logs/sentinel*.log"):
        for line in log.read_text().splitlines():
            if ": processed " in line and " medic: " in line.replace(f"{config.db_medic}:", " medic:"):
                parts = line.split(": processed ")[1].split()
                processed += int(parts[0])
                millis += int(parts[3])
    out["sentinel changes/s while busy"] = round(processed / max(millis / 1000, 0.001), 1)
    return out


def visible(docs: list[dict[str, Any]], who: Principal, settings: dict[str, Any]) -> set[str]:
    """Brute force: every doc judged one by one by ``api.cht.visibility`` (as the replication tests do)."""
    scope = scope_for(who, settings)
    by_key: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc.get("type") in ("person", "clinic", "health_center", "district_hospital", "contact"):
            by_key[doc["_id"]] = doc
            for code in (doc.get("patient_id"), doc.get("place_id")):
                if code:
                    by_key[str(code)] = doc
    out = set()
    for doc in docs:
        subjects = {k: by_key[k] for k, _ in replication_keys(doc) if k in by_key}
        if doc_visible(scope, doc, subjects):
            out.add(doc["_id"])
    return out


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tarball", type=Path)
    source.add_argument("--runner")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_TEST_PORT", 16140)))
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs) afterwards")
    args = parser.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="jamii-cluster-test."))
    runner = args.runner or extract(args.tarball.resolve(), data / "release")
    layout = Layout(data / "layout", port=args.port, workers=3, sentinels=2, runner=runner)
    started = time.monotonic()
    failures: list[str] = ["did not finish"]
    try:
        await layout.start()
        print(f"[test] layout up in {time.monotonic() - started:.0f}s:\n{layout.urls()}", flush=True)
        run = Run(layout, args.seconds, args.seed)
        await run.seed()
        await run.load()
        failures = await run.check()
        run.summary.update(await measure(layout))
        for key, value in run.summary.items():
            print(f"[test] {key}: {value}", flush=True)
    finally:
        await layout.stop()
        if args.keep or failures:
            print(f"[test] logs kept in {data / 'layout' / 'logs'}", flush=True)
        else:
            shutil.rmtree(data, ignore_errors=True)
    print(f"[test] {time.monotonic() - started:.0f}s in all", flush=True)
    for failure in failures:
        print(f"FAIL: {failure}", flush=True)
    print("cluster test passed" if not failures else "cluster test FAILED", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
