"""The API process killed (SIGKILL) in the middle of bulk operations, then started again.

* bulk delete: the batches written before the kill are deleted, the rest are
  untouched, and sending the same request again completes it;
* a CSV user import: what the batch under way left (places and people for
  users never created, settings docs without their ``_users`` doc, a log stuck
  in ``saving``) is found by ``scripts.repair_contacts`` and
  ``scripts.repair_users``, repaired, and importing the same CSV again then
  makes every user exactly once;
* nested place creation: each create is all or nothing (one ``_bulk_docs``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import aiohttp
import pytest

from scripts import repair_contacts, repair_users
from tests.helpers import PASSWORD, admin_headers, user_prefix
from tests.processes import ApiProcess
from tests.sentinel.world import hierarchy, save


@pytest.fixture(scope="module")
def world(config):
    docs = hierarchy("apicrash", 80)

    async def go():
        from api.couch import Couch

        async with Couch.from_config(config) as couch:
            await save(couch.db(config.db_medic), docs)
    asyncio.run(go())
    return {d["_id"].split("-", 1)[1]: d for d in docs}


@pytest.fixture
async def api(config, tmp_path):
    process = ApiProcess(config, tmp_path)
    await process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.log_text()


async def test_bulk_delete_killed_part_way_is_completed_by_sending_it_again(couch, config, api):
    medic = couch.db(config.db_medic)
    docs = [{"_id": f"crash-report-{i:05d}", "type": "data_record", "form": "V", "reported_date": i,
             "fields": {"n": i}} for i in range(3000)]
    for start in range(0, len(docs), 1000):
        await save(medic, docs[start:start + 1000])
    revs = {d["_id"]: d["_rev"] for d in docs}
    body = {"docs": [{"_id": d["_id"]} for d in docs]}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(api.url + "/api/v1/bulk-delete", json=body, headers=admin_headers(config)) as r:
                assert r.status == 200
                received = b""
                while received.count(b'"ok"') < 300:  # three batches of 100 answered
                    chunk = await r.content.readany()
                    assert chunk, "the whole request finished before the kill"
                    received += chunk
                api.kill()
                await r.read()
        except aiohttp.ClientError:
            pass  # the reply is cut: the client never sees a closed array, so never a false "done"

    rows = (await medic.all_docs(list(revs)))["rows"]
    deleted = {row["id"] for row in rows if row["value"].get("deleted")}
    assert 300 <= len(deleted) < len(docs), "the kill fell after the first batches and before the last"
    untouched = [row["id"] for row in rows if row["id"] not in deleted and row["value"]["rev"] == revs[row["id"]]]
    assert len(untouched) + len(deleted) == len(docs), "a doc is neither deleted nor as it was"

    await api.start()
    async with aiohttp.ClientSession() as session:
        async with session.post(api.url + "/api/v1/bulk-delete", json=body, headers=admin_headers(config)) as r:
            assert r.status == 200
            results = [result for batch in json.loads(await r.read()) for result in batch]
    outcome = Counter("ok" if result.get("ok") else result["error"] for result in results)
    assert outcome == {"ok": len(docs) - len(deleted), "not_found": len(deleted)}
    rows = (await medic.all_docs(list(revs)))["rows"]
    assert all(row["value"].get("deleted") for row in rows), "sending it again completed the deletion"


def users_csv(names: list[str], center_id: str) -> str:
    lines = ["username,password,roles,place.name,place.type,place.parent,contact.name"]
    lines += [f"{name},{PASSWORD},chw,Clinic of {name},clinic,{center_id},Chw {name}" for name in names]
    return "\n".join(lines) + "\n"


async def live_clinics(medic, center_id: str) -> list[dict]:
    rows = (await medic.view("medic-client", "contacts_by_parent", key=[center_id, "clinic"],
                             include_docs=True))["rows"]
    return [row["doc"] for row in rows if row["doc"]["name"].startswith("Clinic of ")]


async def import_csv(session: aiohttp.ClientSession, api: ApiProcess, config, csv: str) -> aiohttp.ClientResponse:
    return await session.post(api.url + "/api/v2/users", data=csv.encode(),
                              headers={**admin_headers(config), "Content-Type": "text/csv"},
                              timeout=aiohttp.ClientTimeout(total=300))


@pytest.mark.slow  # two imports of 250 users and the repairs: about 2 minutes on the shared 2-core machine
async def test_csv_import_killed_part_way_is_repaired_then_imported_again(couch, config, api, world):
    medic, users = couch.db(config.db_medic), couch.db(config.db_users)
    prefix = user_prefix(config) + "csv"
    names = [f"{prefix}{i:04d}" for i in range(250)]
    center = world["center"]["_id"]
    csv = users_csv(names, center)
    key = f"org.couchdb.user:{prefix}"

    async def made() -> int:
        return len((await users.all_docs(startkey=key, endkey=key + "\ufff0"))["rows"])

    async def ahead() -> bool:
        """Places, people or settings docs (3 per user) written for users not made yet: inside a batch."""
        docs = (await medic.info())["doc_count"] - base  # read first: users made meanwhile count below
        users_made = await made()
        return 100 <= users_made < 200 and docs > 3 * users_made  # the second batch, never the last

    base = (await medic.info())["doc_count"]
    async with aiohttp.ClientSession() as session:
        upload = asyncio.create_task(import_csv(session, api, config, csv))
        deadline = time.monotonic() + 120
        while not await ahead():
            if upload.done():
                response = upload.result()
                pytest.fail(f"the import finished before the kill: {response.status} {await response.text()}")
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        api.kill()
        with pytest.raises(aiohttp.ClientError):
            await upload
    created_before = await made()
    assert 100 <= created_before < len(names)

    found = await repair_contacts.run(config, dry_run=True, stale_minutes=0, out=lambda _: None)
    assert len(found.imports) == 1 and not found.dangling
    # the places and people of the batch under way (none only if the kill fell just after its last write)
    assert found.leftovers or created_before % 100 == 0
    leftovers = set(found.leftovers)
    assert all(doc_id not in leftovers for doc_id in await user_places(users, names)), "a real user's place"
    user_lines: list[str] = []
    await repair_users.run(config, prefix=prefix, out=user_lines.append)  # settings docs without _users, if any

    # repair, then nothing is left to repair (the scripts are idempotent)
    await repair_users.run(config, prefix=prefix, fix=True, out=lambda _: None)
    repaired = await repair_contacts.run(config, stale_minutes=0, out=lambda _: None)
    assert set(repaired.leftovers) == leftovers
    again = await repair_contacts.run(config, dry_run=True, stale_minutes=0, out=lambda _: None)
    assert again.count == 0 and await repair_users.run(config, prefix=prefix, out=lambda _: None) == 0
    assert len(await live_clinics(medic, center)) == created_before, "only the users' own places are left"
    log_id = found.imports[0]
    log = await couch.db(config.db_logs).get(log_id)
    assert log["progress"]["status"] == "error"
    assert Counter(entry["import"]["status"] for entry in log["data"]) == \
        {"imported": created_before, "error": len(names) - created_before}

    # importing the same CSV again makes the rest; the users made before answer "already taken"
    await api.start()
    async with aiohttp.ClientSession() as session:
        response = await import_csv(session, api, config, csv)
        assert response.status == 200, await response.text()
        results = await response.json()
    taken = [r for r in results if "error" in r]
    assert len(taken) == created_before and all("already taken" in str(r["error"]) for r in taken)
    assert await made() == len(names)
    assert await repair_users.run(config, prefix=prefix, out=lambda _: None) == 0
    clinics = await live_clinics(medic, center)
    assert Counter(c["name"] for c in clinics) == {f"Clinic of {name}": 1 for name in names}, "no place twice"
    by_id = {c["_id"]: c for c in clinics}
    for doc in (await users.get_many(f"org.couchdb.user:{name}" for name in names)).values():
        place = by_id[doc["facility_id"]]
        assert place["contact"]["_id"] == doc["contact_id"] and place["name"] == f"Clinic of {doc['name']}"


async def user_places(users, names: list[str]) -> set[str]:
    docs = await users.get_many(f"org.couchdb.user:{name}" for name in names)
    return {doc.get("facility_id") for doc in docs.values()} | {doc.get("contact_id") for doc in docs.values()}


async def quiet(db, seconds: float = 1.0, limit: float = 20.0) -> None:
    """Wait until ``db`` has not changed for ``seconds``: the killed API's last ``_bulk_docs`` may still be
    being applied. CouchDB writes a bulk request shard by shard, and readers can see the shards at
    different moments ("Bulk Documents Transaction Semantics": not atomic); the group is whole once the
    write has finished."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        # seqs are opaque (on a cluster two reads of update_seq may name other copies): count what follows
        seq = (await db.info())["update_seq"]
        await asyncio.sleep(seconds)
        if await db.pending_changes(seq) == 0:
            return
    raise AssertionError(f"{db.name} kept changing for {limit} s after the API was killed")


async def test_nested_place_creation_killed_is_all_or_nothing(couch, config, api, world):
    medic = couch.db(config.db_medic)
    tag = "Crash nest"
    counter = iter(range(100000))
    acked: list[int] = []

    async def client(session: aiohttp.ClientSession) -> None:
        while True:
            n = next(counter)
            try:
                async with session.post(api.url + "/api/v1/places", headers=admin_headers(config), json={
                        "name": f"{tag} clinic {n}", "type": "clinic", "contact": {"name": f"{tag} chw {n}"},
                        "parent": {"name": f"{tag} center {n}", "type": "health_center",
                                   "parent": {"name": f"{tag} district {n}", "type": "district_hospital"}}}) as r:
                    if r.status == 200:
                        acked.append(n)
            except aiohttp.ClientError:
                return

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(6)]
        deadline = time.monotonic() + 60
        while len(acked) < 6 and time.monotonic() < deadline:  # however loaded the machine, kill mid-stream
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        api.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await quiet(medic)
    rows = (await medic.all_docs(include_docs=True))["rows"]
    parts = Counter(row["doc"]["name"].rsplit(" ", 1)[1] for row in rows
                    if str((row.get("doc") or {}).get("name", "")).startswith(tag))
    assert set(parts.values()) == {4}, f"every nested create is whole (district, center, clinic, chw): {parts}"
    assert {str(n) for n in acked} <= set(parts), "every acknowledged create is there"
    found = await repair_contacts.run(config, dry_run=True, stale_minutes=0, out=lambda _: None)
    assert found.dangling == []
