"""Offline initial replication through the API against a direct PouchDB replication from CouchDB.

A generated hierarchy of ~``--docs`` documents in ten districts; an offline
supervisor placed at one district sees about a tenth of them. Printed: the
time of a stock PouchDB's first pull through the API (the visible set computed
and served, filtered); the time of the same PouchDB pulling the same docs
straight from CouchDB (admin, ``doc_ids``) with CouchDB's default
``changes_doc_ids_optimization_threshold`` (PouchDB asks for a ``doc_ids`` feed
100 changes at a time, and CouchDB looking every id up for each page is slower
than its scan); their ratio (goal <= 2x); the time of an incremental sync after
100 new docs in the user's district; and the first sync's ``_changes`` alone
through the API (median of 3), as ``scripts/setup_db.py`` leaves CouchDB and,
on CouchDB, with the default threshold (a scan of the whole feed per request).

    python -m bench.replication [--docs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from typing import AsyncIterator

import aiohttp

from api.couch import basic_auth, node_config_path
from tests.device import Device
from tests.helpers import PASSWORD
from tests.hierarchy import build, load

from .common import Stack, bench_stack

THRESHOLD = ("couchdb", "changes_doc_ids_optimization_threshold")


def sizes(docs: int) -> dict[str, int]:
    """Hierarchy sizes for about ``docs`` documents in 10 districts (~200 docs per clinic)."""
    clinics_total = max(10, docs // 200)
    centers = max(1, round((clinics_total / 10) ** 0.5))
    clinics = max(1, clinics_total // (10 * centers))
    return {"districts": 10, "centers": centers, "clinics": clinics, "people": 60, "reports_per_clinic": 140}


async def timed_pull(url: str, user: str, password: str, **options: object) -> tuple[float, dict, Device]:
    device = await Device.start(url, user, password)
    started = time.perf_counter()
    result = await device.call("pull", timeout=3600, **options)
    return time.perf_counter() - started, result, device


async def first_sync_changes(url: str, user: str, password: str, tries: int = 3) -> tuple[float, int]:
    """The median seconds of a first sync's ``_changes`` through the API, and the changes it listed."""
    times, listed = [], 0
    async with aiohttp.ClientSession(headers={"Authorization": basic_auth(user, password)}) as session:
        for _ in range(tries):
            started = time.perf_counter()
            async with session.get(f"{url}/medic/_changes", params={"since": "0", "style": "all_docs"}) as response:
                response.raise_for_status()
                listed = len((await response.json())["results"])
            times.append(time.perf_counter() - started)
    return statistics.median(times), listed


@contextlib.asynccontextmanager
async def couchdb_default_threshold(stack: Stack) -> AsyncIterator[bool]:
    """Every node with CouchDB's default threshold for looking ``_doc_ids`` up (100), restored after; yields
    False on a server without nodes (pouchdb-server)."""
    members = await stack.couch.membership()
    if members is None:
        yield False
        return
    paths = [node_config_path(node, *THRESHOLD) for node in members["all_nodes"]]
    before = [await stack.couch.request("GET", path, raise_errors=False) for path in paths]
    try:
        for path in paths:
            await stack.couch.request("PUT", path, json_body="100")
        yield True
    finally:
        for path, (status, value, _) in zip(paths, before):
            if status == 200:
                await stack.couch.request("PUT", path, json_body=value)
            else:  # it was unset
                await stack.couch.request("DELETE", path)


async def main(docs: int) -> dict[str, float]:
    """Print the figures; return the headline ones (for ``bench.run``)."""
    async with bench_stack() as stack:
        hierarchy = build(seed=3, **sizes(docs))
        medic = stack.couch.db(stack.config.db_medic)
        started = time.perf_counter()
        await load(medic, hierarchy)
        print(f"{len(hierarchy.docs)} docs loaded in {time.perf_counter() - started:.1f}s")
        district = hierarchy.by_id[hierarchy.districts[0]]
        name = "bench-supervisor"
        await stack.couch.db(stack.config.db_users).put({
            "_id": f"org.couchdb.user:{name}", "name": name, "type": "user", "roles": ["chw_supervisor"],
            "password": PASSWORD, "facility_id": district["_id"], "contact_id": district["contact"]["_id"]})

        started = time.perf_counter()  # build the views once, as a running server has them
        for ddoc, view in (("medic", "contacts_by_depth"), ("medic", "docs_by_replication_key"),
                           ("medic-client", "contacts_by_reference")):
            await medic.view(ddoc, view, limit=1, timeout=3600)
        print(f"view indexes built in {time.perf_counter() - started:.1f}s")

        through_api, result, device = await timed_pull(f"{stack.api_url}/medic", name, PASSWORD)
        ids = [i for i in await device.call("ids")]
        print(f"through the API: {len(ids)} docs in {through_api:.2f}s ({result['docs_written']} written)")
        async with couchdb_default_threshold(stack):  # PouchDB pages a doc_ids feed by 100: CouchDB's default is
            direct, direct_result, direct_device = await timed_pull(  # its faster setting for that (see below)
                f"{stack.couch_url}/{stack.config.db_medic}", *stack.admin, doc_ids=ids)
        await direct_device.close()
        print(f"direct from CouchDB (doc_ids, CouchDB's default threshold): {direct_result['docs_written']} docs "
              f"in {direct:.2f}s")
        print(f"ratio API / direct: {through_api / direct:.2f}x  (goal <= 2x)")

        clinic = hierarchy.by_id[next(c for c in hierarchy.clinics
                                      if hierarchy.by_id[c]["parent"]["parent"]["_id"] == district["_id"])]
        await medic.bulk_docs([{"_id": f"bench-new-{i}", "type": "person", "name": f"New {i}",
                                "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}} for i in range(100)])
        started = time.perf_counter()
        incremental = await device.call("pull", timeout=3600)
        incremental_s = time.perf_counter() - started
        print(f"incremental sync of 100 new docs: {incremental_s:.2f}s "
              f"({incremental['docs_written']} written)")
        await device.close()

        changes_s, listed = await first_sync_changes(stack.api_url, name, PASSWORD)
        print(f"first sync's _changes alone through the API: {listed} changes in {changes_s:.3f}s")
        async with couchdb_default_threshold(stack) as on_couchdb:
            if on_couchdb:
                scanned_s, _ = await first_sync_changes(stack.api_url, name, PASSWORD)
                print(f"  the same with CouchDB's default changes_doc_ids_optimization_threshold (100): "
                      f"{scanned_s:.3f}s")
        return {"docs": len(hierarchy.docs), "pulled": len(ids), "api_s": through_api, "direct_s": direct,
                "ratio": through_api / direct, "incremental_s": incremental_s, "first_sync_changes_s": changes_s}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100000)
    asyncio.run(main(parser.parse_args().docs))
