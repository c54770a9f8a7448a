"""How fast the sentinel drains a backlog of reports, against reading and writing as many docs raw.

    python -m bench.sentinel [--reports 10000] [--batch 500] [--checkpoint-seconds 1]

A hierarchy (12 districts' worth of clinics and CHWs) and ``--reports`` SMS
reports are loaded (35% registrations with a schedule and a reply, 35%
visits naming a patient, 20% free text, 10% from unknown numbers), with the
transitions a typical deployment enables: ``generate_shortcode_on_contacts``,
``update_clinics``, ``registration``, ``accept_patient_reports``,
``default_responses``, ``update_sent_by``. The views are brought up to date
first (a running API keeps them so).

* raw: read those changes from ``_changes`` (``include_docs``, in batches of
  ``--batch``, the sentinel's batch size, ``SENTINEL_BATCH_SIZE`` by default)
  and write each batch with one ``_bulk_docs`` — the least any worker that
  reads and writes every doc does. Two ways: a copy into a fresh database
  (no views, nothing else), and the rewrite of the same reports in place in
  the medic database (its design docs and views, as the sentinel writes);
* sentinel: the worker and engine, in this process, from the checkpoint
  until the backlog is empty (its own writes come back through the feed and
  are drained too).

* contract floor: the least I/O any crash-safe sentinel does for the same
  backlog, done raw on fresh databases (``contract_floor``): every change
  read, every report written once more, the patients created, an info doc
  read before and written after each write. No lookups and no logic.

The ratio raw / sentinel is the figure (goal: at least 0.5), printed for both
raw runs; raw / floor is the most any sentinel could reach on the server
measured. The server's CPU time is printed for each run when the server runs
on this machine (pouchdb-server, or CouchDB with its ``couchjs`` processes).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from api import checkpoint
from api.config import Config
from api.couch import new_id
from api.settings import SettingsStore
from sentinel import registry
from sentinel.engine import Engine
from sentinel.worker import Worker
from tests.sentinel.world import (
    build_backlog,
    save,
    save_existing_contacts,
    transition_settings,
    use_settings,
)

from .common import bench_stack, server_cpu, server_cpu_parts

VIEWS = [("medic-client", "contacts_by_phone"), ("medic-client", "contacts_by_reference"),
         ("medic-client", "reports_by_subject"), ("medic", "messages_by_state")]


def time_requests(couch) -> dict[str, list]:
    """Count and time CouchDB requests by method, database and path (ids left out)."""
    spent: dict[str, list] = {}
    request = couch.request

    async def timed(method, path, **kwargs):
        started = time.perf_counter()
        try:
            return await request(method, path, **kwargs)
        finally:
            parts = path.split("/")
            named = parts[2:6] if parts[2:3] == ["_design"] else [p for p in parts[2:6] if p.startswith("_")]
            kind = " ".join([method, parts[1].split("-", 1)[-1]] + ["/".join(p for p in named if len(p) < 40)])
            entry = spent.setdefault(kind, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    couch.request = timed
    return spent


async def warm(db) -> float:
    started = time.perf_counter()
    for ddoc, view in VIEWS:
        extra = {"reduce": False} if view == "messages_by_state" else {}
        await db.view(ddoc, view, limit=1, timeout=3600, **extra)  # indexing a big backlog takes a while
    return time.perf_counter() - started


async def raw_run(medic, since, count: int, batch: int, stack, copy_to=None) -> tuple[float, float | None]:
    """Read ``count`` changes from ``since`` with their docs, a batch at a time, and write each batch with one
    ``_bulk_docs``: copied into ``copy_to`` (fresh ids), or in place (same docs, their ``_rev``). Returns the
    seconds taken and the server CPU seconds used (None when not measurable)."""
    began, server, seen = time.perf_counter(), server_cpu(stack), 0
    while seen < count:
        body = await medic.changes(since=since, limit=batch, include_docs=True)
        results = body["results"]
        if not results:
            break
        if copy_to is not None:
            written = await copy_to.bulk_docs([{**{k: v for k, v in r["doc"].items() if k != "_rev"},
                                                "_id": new_id()} for r in results])
        else:
            written = await medic.bulk_docs([r["doc"] for r in results])
        failed = [r for r in written if not r.get("ok")]
        if failed:
            raise RuntimeError(f"raw write failed: {failed[0]}")
        seen += len(results)
        since = body["last_seq"]
    elapsed, used = time.perf_counter() - began, server_cpu(stack)
    return elapsed, (used - server if used is not None and server is not None else None)


async def contract_floor(couch, config, docs: list[dict], created: int, batch: int) -> float:
    """The least I/O any crash-safe sentinel does for this backlog, done raw: seconds taken.

    On fresh databases holding the same reports: read the feed with its docs in
    batches of ``batch``, the next batch read ahead, until it is drained (the
    worker's own writes come back through it). Per batch of reports: read their
    info docs, write each report once more, create the ``created`` new docs
    (the registrations' patients) and write an info doc for every doc written,
    after it. No lookup, no transition logic, no checkpoint, no short id: what
    is left is the contract.
    """
    medic, sentinel = couch.db(config.db_medic + "-floor"), couch.db(config.db_sentinel + "-floor")
    for db in (medic, sentinel):
        await couch.create_db(db.name)
    try:
        for first in range(0, len(docs), 1000):
            await medic.bulk_docs([{k: v for k, v in d.items() if k != "_rev"} for d in docs[first:first + 1000]])
        per_report, owed = created / max(len(docs), 1), 0.0
        began, since, wrote = time.perf_counter(), 0, False

        def read(since):
            return asyncio.ensure_future(medic.changes(since=since, limit=batch, include_docs=True))

        ahead = read(since)
        while True:
            body = await ahead
            if not body["results"] and not wrote:
                break  # drained, echoes of the last writes included
            since, wrote = body["last_seq"], False
            ahead = read(since)  # the next batch is read while this one is worked on, as the worker does
            reports = [r["doc"] for r in body["results"] if "floor" not in r["doc"]]
            if not reports:
                continue  # echoes of our own writes: read, nothing to do
            await sentinel.get_many(f"{d['_id']}-info" for d in reports)
            owed += per_report * len(reports)
            new = [{"_id": new_id(), "type": "person", "floor": True} for _ in range(int(owed))]
            owed -= len(new)
            written = await medic.bulk_docs([{**d, "floor": True} for d in reports] + new)
            await sentinel.bulk_docs([{"_id": f"{r['id']}-info", "type": "info", "doc_id": r["id"],
                                       "transitions": {"t": {"last_rev": r["rev"], "seq": 1, "ok": True}}}
                                      for r in written])
            wrote = True
        return time.perf_counter() - began
    finally:
        for db in (medic, sentinel):
            await couch.delete_db(db.name)


async def main(reports: int, batch: int = Config.sentinel_batch_size,
               checkpoint_seconds: float = Config.sentinel_checkpoint_seconds,
               include_docs: bool = False) -> dict[str, float]:
    async with bench_stack() as stack:
        couch, config = stack.couch, stack.config
        medic, sentinel = couch.db(config.db_medic), couch.db(config.db_sentinel)
        store = SettingsStore(medic)
        settings = transition_settings()
        settings["transitions"].pop("death_reporting")
        settings["transitions"].pop("muting")
        await use_settings(store, settings)
        contacts, docs, _ = build_backlog(reports, worlds=12, seed=3, new_contacts=0.0)
        await save_existing_contacts(medic, sentinel, contacts)
        start = (await medic.info())["update_seq"]
        await checkpoint.write(sentinel, checkpoint.SENTINEL, start)
        for first in range(0, len(docs), 1000):
            await save(medic, docs[first:first + 1000])
        warm_s = await warm(medic)

        raw_db = couch.db(config.db_medic + "-raw")
        await couch.create_db(raw_db.name)
        raw_s, raw_server = await raw_run(medic, start, len(docs), batch, stack, raw_db)
        await couch.delete_db(raw_db.name)
        inplace_s, inplace_server = await raw_run(medic, start, len(docs), batch, stack)
        server = server_cpu(stack)
        inplace_index_s = await warm(medic)  # the rewrite is indexed before the drain, as a running API keeps views
        inplace_index_server = server_cpu(stack) - server if server is not None else None

        request = couch.request
        spent = time_requests(couch)
        engine = Engine(couch, config, store, registry.medic_transitions())
        worker = Worker(couch, config, engine.process_batch, batch_size=batch, wait_seconds=1,
                        checkpoint_seconds=checkpoint_seconds, include_docs=include_docs)
        worker.seq = start
        began, cpu, server = time.perf_counter(), time.process_time(), server_cpu_parts(stack)
        ended = began
        while True:  # the drain ends with the last batch; the wait that finds nothing more is not counted
            if await worker.step():
                ended, cpu_end, server_end = time.perf_counter(), time.process_time(), server_cpu_parts(stack)
            elif await medic.pending_changes(worker.seq) == 0:
                break
        couch.request = request  # what follows (the views catching up, the floor) is not the drain's
        sentinel_s, cpu = ended - began, cpu_end - cpu
        sentinel_server = helpers = None
        if server is not None and server_end is not None:
            sentinel_server, helpers = sum(server_end) - sum(server), server_end[1] - server[1]
        server = server_cpu(stack)
        drain_index_s = await warm(medic)
        drain_index_server = server_cpu(stack) - server if server is not None else None
        backlog = await medic.pending_changes(await checkpoint.read(sentinel, checkpoint.SENTINEL))

        print(f"reports: {reports}, batch: {batch}, checkpoint every {checkpoint_seconds}s, "
              f"feed read {'with' if include_docs else 'without'} docs, "
              f"views brought up to date in {warm_s:.1f}s")
        def cpu_note(seconds: float | None) -> str:
            return f", server CPU {seconds:.1f}s" if seconds is not None else ""

        print(f"raw read + bulk write, copied into a fresh database: {raw_s:6.1f}s ({reports / raw_s:5.0f} docs/s"
              f"{cpu_note(raw_server)})")
        print(f"raw read + bulk write, rewritten in place in medic:   {inplace_s:6.1f}s ({reports / inplace_s:5.0f} "
              f"docs/s{cpu_note(inplace_server)}); its views caught up {inplace_index_s:.1f}s after"
              f"{cpu_note(inplace_index_server)}")
        print(f"sentinel drain:         {sentinel_s:7.1f}s  ({reports / sentinel_s:6.0f} reports/s, "
              f"{worker.processed} changes incl. its own writes, {engine.runs} transition runs, "
              f"{engine.requests} lookups, {engine.echoes} own writes taken from memory, backlog after: {backlog}"
              f"{cpu_note(sentinel_server)}"
              + (f", of which helper processes (couchjs) {helpers:.1f}s" if helpers else "")
              + f"); its views caught up {drain_index_s:.1f}s after{cpu_note(drain_index_server)}")
        print(f"ratio raw / sentinel:   {raw_s / sentinel_s:7.2f} (fresh copy), {inplace_s / sentinel_s:.2f} (in place)"
              f"  (goal >= 0.5)")
        waited = sum(seconds for _, seconds in spent.values())
        print(f"time in CouchDB requests during the drain: {waited:.1f}s (they overlap); "
              f"this process's CPU time: {cpu:.1f}s")
        for kind, (count, seconds) in sorted(spent.items(), key=lambda item: -item[1][1])[:8]:
            print(f"  {kind:58s} {count:6d} requests {seconds:7.1f}s")
        created = engine.created
        server = server_cpu(stack)
        floor_s = await contract_floor(couch, config, docs, created, batch)
        floor_server = server_cpu(stack) - server if server is not None else None
        print(f"contract floor:         {floor_s:7.1f}s  (read every change, rewrite every report, create "
              f"{created} docs, an info doc after each write; no logic{cpu_note(floor_server)})")
        print(f"ratio raw / floor:      {raw_s / floor_s:7.2f} (fresh copy), {inplace_s / floor_s:.2f} (in place)"
              f"  (the most any sentinel could reach on this server)")
        return {"reports": reports, "raw_s": raw_s, "inplace_s": inplace_s, "sentinel_s": sentinel_s,
                "ratio": raw_s / sentinel_s, "inplace_ratio": inplace_s / sentinel_s,
                "floor_s": floor_s, "floor_ratio": raw_s / floor_s, "reports_per_s": reports / sentinel_s,
                "raw_server_s": raw_server, "inplace_server_s": inplace_server,
                "sentinel_server_s": sentinel_server, "sentinel_helpers_s": helpers, "floor_server_s": floor_server,
                "inplace_index_s": inplace_index_s, "drain_index_s": drain_index_s}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=Config.sentinel_batch_size)
    parser.add_argument("--checkpoint-seconds", type=float, default=Config.sentinel_checkpoint_seconds)
    parser.add_argument("--include-docs", action="store_true",
                        help="read the feed with its docs instead of taking the sentinel's own writes from memory")
    args = parser.parse_args()
    asyncio.run(main(args.reports, args.batch, args.checkpoint_seconds, args.include_docs))
