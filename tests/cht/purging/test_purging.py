"""Server-side purging end to end: the sentinel's run (real QuickJS, real CouchDB) and what devices get through
the API, with a real PouchDB device doing what CHT's app does (get-ids, get-deletes, local purge records)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from api.app import create_app
from api.cht.purging.names import INFO_ID, purge_db_name, role_hash
from api.cht.purging.store import purged_among
from api.settings import default_settings
from sentinel.purging import Limits, run
from sentinel.purging.staging import Staging, staging_db_name
from tests.device import Device
from tests.helpers import PASSWORD, admin_headers, basic, forget_replication_count
from tests.hierarchy import build, load
from tests.world import make_users

YEAR_MS = 365 * 24 * 3600 * 1000
NOW_MS = int(time.time() * 1000)

OLD_REPORTS = """function (userCtx, contact, reports) {
  var yearAgo = Date.now() - 365 * 24 * 60 * 60 * 1000;
  return reports.filter(r => r.reported_date < yearAgo).map(r => r._id);
}"""

SUPERVISORS_ONLY = """function (userCtx, contact, reports) {
  if (userCtx.roles.indexOf('chw_supervisor') === -1) { return []; }
  return reports.map(function (r) { return r._id; });
}"""


@pytest.fixture(scope="module")
def world(config):
    """One district: two clinics with a CHW each (one role set), a supervisor at the health center, and an
    online program officer. The generated reports are old (2023); each clinic also gets two recent ones."""
    h = build(seed=22, districts=1, centers=1, clinics=2, people=4, reports_per_clinic=4)
    clinics = [h.by_id[c] for c in h.clinics]
    center = h.by_id[h.centers[0]]
    recent = []
    for n, clinic in enumerate(clinics):
        patient = next(d for d in h.docs if d.get("type") == "person" and d["parent"]["_id"] == clinic["_id"]
                       and d["_id"] != clinic["contact"]["_id"])
        for k in range(2):
            doc = {"_id": f"recent-{n}-{k}", "type": "data_record", "form": "V", "content_type": "xml",
                   "reported_date": NOW_MS - 10 * 24 * 3600 * 1000, "fields": {"patient_id": patient["patient_id"]},
                   "contact": {"_id": clinic["contact"]["_id"],
                               "parent": {"_id": clinic["_id"], "parent": clinic["parent"]}}}
            h.add(doc)
            recent.append(doc["_id"])
    specs = {
        "chw": (["chw"], {"facility_id": clinics[0]["_id"], "contact_id": clinics[0]["contact"]["_id"]}),
        "chw2": (["chw"], {"facility_id": clinics[1]["_id"], "contact_id": clinics[1]["contact"]["_id"]}),
        "sup": (["chw_supervisor"], {"facility_id": center["_id"], "contact_id": center["contact"]["_id"]}),
        "officer": (["program_officer"], {}),
    }

    async def go():
        from api.couch import Couch
        async with Couch.from_config(config) as couch:
            await load(couch.db(config.db_medic), h)
    asyncio.run(go())
    users = make_users(config, specs)

    async def settings_docs():
        from api.couch import Couch
        async with Couch.from_config(config) as couch:
            await couch.db(config.db_medic).bulk_docs([
                {"_id": f"org.couchdb.user:{full}", "type": "user-settings", "name": full}
                for full in users.values()])
    asyncio.run(settings_docs())
    old = {r for r in h.reports}
    by_clinic = {c["_id"]: {r for r in old | set(recent) if h.by_id[r]["contact"]["_id"] == c["contact"]["_id"]}
                 for c in clinics}
    return {"h": h, "users": users, "old": old, "recent": set(recent), "clinics": clinics,
            "by_clinic": by_clinic}


def settings_with(purge: dict[str, Any] | None) -> dict[str, Any]:
    settings = default_settings()
    if purge is not None:
        settings["purge"] = purge
    return settings


async def purge_with(couch, config, fn: str | None, **options: Any):
    return await run(couch, config, settings_with({"fn": fn} if fn is not None else {}), **options)


@pytest.fixture
async def server(aiohttp_server, config):
    return await aiohttp_server(create_app(config))


async def device_for(server, world, short) -> Device:
    return await Device.start(f"http://127.0.0.1:{server.port}/medic", world["users"][short], PASSWORD)


def chw_hash() -> str:
    return role_hash(["chw"])


async def purged_records(couch, config, hash_: str) -> dict[str, str]:
    """Every purge record of a role set: {doc id: rev}."""
    db = couch.db(purge_db_name(config.db_medic, hash_))
    if not await db.exists():
        return {}
    rows = (await db.all_docs(startkey="purged:", endkey="purged:\ufff0"))["rows"]
    return {r["id"][len("purged:"):]: r["value"]["rev"] for r in rows}


async def purgelogs(couch, config) -> list[dict[str, Any]]:
    rows = (await couch.db(config.db_sentinel).all_docs(startkey="purgelog:", endkey="purgelog:\ufff0",
                                                       include_docs=True))["rows"]
    return [r["doc"] for r in rows]


# -- the headline ---------------------------------------------------------------------------------------

async def test_old_reports_disappear_from_a_replicating_device_and_never_return(server, world, couch, config,
                                                                                client):
    chw_clinic = world["clinics"][0]["_id"]
    mine_old = world["by_clinic"][chw_clinic] & world["old"]
    mine_recent = world["by_clinic"][chw_clinic] & world["recent"]
    assert mine_old and mine_recent
    device = await device_for(server, world, "chw")
    stock = None
    try:
        first = await device.call("cht_sync")
        held = set(await device.call("ids"))
        assert mine_old | mine_recent <= held and first["purged"] == 0

        report = await purge_with(couch, config, OLD_REPORTS)
        assert report.status == "done" and report.error is None
        assert report.counts["purged"] >= len(world["old"])
        assert world["old"] <= set(await purged_records(couch, config, chw_hash()))
        assert not world["recent"] & set(await purged_records(couch, config, chw_hash()))

        second = await device.call("cht_sync")
        assert set(second["purged_ids"]) == mine_old
        held = set(await device.call("ids"))
        assert not held & mine_old and mine_recent <= held

        # the server's docs are untouched; an edit there does not bring a purged report back
        medic = couch.db(config.db_medic)
        edited = next(iter(mine_old))
        stored = await medic.get(edited)
        await medic.put({**stored, "note": "edited on the server"})
        assert (await device.call("pull"))["ok"]
        await device.call("cht_sync")
        assert not set(await device.call("ids")) & mine_old

        # the device's purge records never reach the server, and the reports stay there
        pushed = await device.call("push", skip_purged=True)
        assert pushed["doc_write_failures"] == 0
        assert set(await medic.get_many(mine_old)) == mine_old
        assert (await medic.get(edited))["note"] == "edited on the server"

        # a new device replicating with stock PouchDB never gets them either
        stock = await device_for(server, world, "chw")
        assert (await stock.call("pull"))["ok"]
        stock_ids = set(await stock.call("ids"))
        assert not stock_ids & mine_old and mine_recent <= stock_ids
    finally:
        await device.close()
        if stock is not None:
            await stock.close()
    logs = [d for d in await purgelogs(couch, config) if d["_id"] == report.purgelog]
    assert logs and logs[0]["roles"][chw_hash()] == ["chw"] and logs[0]["duration"] >= 0
    assert not await couch.db(staging_db_name(config.db_medic)).exists()


async def test_every_read_hides_purged_docs_and_get_deletes_lists_them(client, world, couch, config):
    await forget_replication_count(couch, config, world["users"]["chw"])  # an earlier test's count may stand
    await purge_with(couch, config, OLD_REPORTS)
    auth = basic(world["users"]["chw"])
    clinic = world["clinics"][0]["_id"]
    purged = sorted(world["by_clinic"][clinic] & world["old"])
    recent = sorted(world["by_clinic"][clinic] & world["recent"])
    one = purged[0]
    assert (await client.get(f"/medic/{one}", headers=auth)).status == 404
    assert (await client.get(f"/medic/{recent[0]}", headers=auth)).status == 200
    rows = (await (await client.post("/medic/_all_docs", json={"keys": [one, recent[0]]}, headers=auth)).json())
    assert rows["rows"][0] == {"key": one, "error": "not_found"} and rows["rows"][1]["id"] == recent[0]
    listed = {r["id"] for r in (await (await client.get("/medic/_all_docs", headers=auth)).json())["rows"]}
    assert not listed & set(purged) and set(recent) <= listed
    got = (await (await client.post("/medic/_bulk_get", json={"docs": [{"id": one}]}, headers=auth)).json())
    assert got["results"][0]["docs"][0]["error"]["error"] == "not_found"
    feed = await (await client.get("/medic/_changes", headers=auth)).json()
    assert not {c["id"] for c in feed["results"]} & set(purged)
    ids = await (await client.get("/api/v1/replication/get-ids", headers=auth)).json()
    assert not {p["id"] for p in ids["doc_ids_revs"]} & set(purged)
    gone = await (await client.post("/api/v1/replication/get-deletes", json={"doc_ids": purged + recent},
                                    headers=auth)).json()
    assert sorted(gone["doc_ids"]) == purged
    # the replication count is what the user replicates, purged docs left out (as CHT counts it)
    await client.get("/medic/_changes", headers=auth)
    logs, wanted = couch.db(config.db_logs), len(ids["doc_ids_revs"])
    for _ in range(100):
        counted = await logs.get_or_none(f"replication-count-{world['users']['chw']}")
        if counted and counted["count"] == wanted:
            break
        await asyncio.sleep(0.05)
    assert counted and counted["count"] == wanted
    # an online user, and the server's data, are untouched
    officer = basic(world["users"]["officer"])
    assert (await client.get(f"/medic/{one}", headers=officer)).status == 200
    # writes are judged on the area: a device's edit of a doc it had not yet purged is kept
    stored = await couch.db(config.db_medic).get(one)
    written = await client.put(f"/medic/{one}", json={**stored, "edited": "offline, before purging"},
                               headers=auth)
    assert written.status == 201, await written.text()


async def test_purges_are_per_role_set(server, world, couch, config, client):
    report = await purge_with(couch, config, SUPERVISORS_ONLY)
    assert report.status == "done"
    sup_hash, chw = role_hash(["chw_supervisor"]), chw_hash()
    assert set(report.roles) == {sup_hash, chw}
    for hash_, roles in ((sup_hash, ["chw_supervisor"]), (chw, ["chw"])):
        info = await couch.db(purge_db_name(config.db_medic, hash_)).get(INFO_ID)
        assert info["roles"] == roles
    every_report = world["old"] | world["recent"]
    assert set(await purged_records(couch, config, sup_hash)) == every_report
    assert not set(await purged_records(couch, config, chw)) & every_report, "the CHWs' earlier purges undone"
    sup_ids = {p["id"] for p in (await (await client.get("/api/v1/replication/get-ids",
                                                         headers=basic(world["users"]["sup"]))).json())["doc_ids_revs"]}
    chw_ids = {p["id"] for p in (await (await client.get("/api/v1/replication/get-ids",
                                                         headers=basic(world["users"]["chw"]))).json())["doc_ids_revs"]}
    assert not sup_ids & every_report
    assert world["by_clinic"][world["clinics"][0]["_id"]] <= chw_ids
    log = next(d for d in await purgelogs(couch, config) if d["_id"] == report.purgelog)
    assert log["roles"] == {sup_hash: ["chw_supervisor"], chw: ["chw"]}


async def test_changing_the_function_unpurges(client, world, couch, config):
    await purge_with(couch, config, OLD_REPORTS)
    assert world["old"] <= set(await purged_records(couch, config, chw_hash()))
    report = await purge_with(couch, config, "function () { return []; }")
    assert report.status == "done" and report.counts["unpurged"] >= len(world["old"])
    assert not set(await purged_records(couch, config, chw_hash())) & world["old"]
    ids = await (await client.get("/api/v1/replication/get-ids", headers=basic(world["users"]["chw"]))).json()
    clinic = world["clinics"][0]["_id"]
    assert world["by_clinic"][clinic] <= {p["id"] for p in ids["doc_ids_revs"]}
    again = await purge_with(couch, config, "function () { return []; }")
    assert again.counts["staged"] == 0 and again.counts["purged"] == 0, "an unchanged outcome writes nothing"


async def test_results_that_are_not_arrays_and_ids_of_other_groups_purge_nothing(couch, config):
    await purge_with(couch, config, "function () { return []; }")
    report = await purge_with(couch, config, "function (u, contact) { return contact._id ? 'nope' : null; }")
    assert report.status == "done" and report.counts["purged"] == 0
    foreign = await purge_with(couch, config, "function (u, contact, reports) { "
                                              "return reports.length ? ['settings', '_design/medic-client'] : []; }")
    assert foreign.status == "done" and foreign.counts["purged"] == 0
    assert not await purged_records(couch, config, chw_hash())


# -- failures: reported, and nothing purged ----------------------------------------------------------

# each failing function fails at one contact (TARGET), in a later batch than the first: earlier batches
# have been staged by then, and must not be applied
FAILING = {
    "syntax": ("function (userCtx, contact { return []; }", {}),
    "not_a_function": ("'just a string'", {}),
    "exception": ("function (u, contact, reports) { if (contact._id === 'TARGET') { throw new Error('boom'); } "
                  "return reports.map(r => r._id); }", {}),
    "timeout": ("function (u, contact, reports) { if (contact._id === 'TARGET') { while (true) {} } "
                "return reports.map(r => r._id); }", {"purge_call_timeout_ms": 200}),
    "memory": ("function (u, contact, reports) { var a = []; if (contact._id === 'TARGET') { "
               "while (true) { a.push(new Array(100000).fill(reports.length)); } } return reports.map(r => r._id); }",
               {"purge_memory_mb": 16}),
    "stack": ("function (u, contact, reports) { var deeper = function (n) { return deeper(n + 1) + 1; }; "
              "return contact._id === 'TARGET' ? [String(deeper(0))] : reports.map(r => r._id); }", {}),
}


@pytest.mark.parametrize("kind", sorted(FAILING))
async def test_a_failing_function_purges_nothing_and_is_reported(kind, client, world, couch, config, caplog):
    await purge_with(couch, config, OLD_REPORTS)
    before = await purged_records(couch, config, chw_hash())
    sup_before = await purged_records(couch, config, role_hash(["chw_supervisor"]))
    target = max(d["_id"] for d in world["h"].docs if d.get("type") == "person")  # in the last batch
    source, changes = FAILING[kind]
    started = time.monotonic()
    report = await purge_with(couch, config.replace(**changes), source.replace("TARGET", target),
                              limits=Limits(contacts=3))
    assert time.monotonic() - started < 60
    assert report.status == "error" and report.error_kind == kind, report
    assert report.error
    if kind in ("syntax", "not_a_function"):
        assert report.at is None
    else:
        assert report.at["contact"] == target and report.at["roles"] in (["chw"], ["chw_supervisor"])
        assert report.counts["staged"] > 0, "earlier batches were staged, and are not applied"
    assert await purged_records(couch, config, chw_hash()) == before, "nothing purged, nothing un-purged"
    assert await purged_records(couch, config, role_hash(["chw_supervisor"])) == sup_before
    assert not await couch.db(staging_db_name(config.db_medic)).exists()
    log = next(d for d in await purgelogs(couch, config) if d["_id"] == report.purgelog)
    assert log["_id"].startswith("purgelog:error:") and log["error_kind"] == kind and log["error"]
    assert any("nothing purged" in r.getMessage() and kind in r.getMessage() for r in caplog.records
               if r.levelname == "ERROR")
    # devices still get what the last good run left them
    ids = await (await client.get("/api/v1/replication/get-ids", headers=basic(world["users"]["chw"]))).json()
    clinic = world["clinics"][0]["_id"]
    held = {p["id"] for p in ids["doc_ids_revs"]}
    assert world["by_clinic"][clinic] & world["recent"] <= held and not held & world["old"]


async def test_a_bad_function_takes_nothing_from_a_replicating_device(server, world, couch, config):
    """Each failing function would purge every report of every contact it reached before failing; a device
    holding everything (CHT's protocol and the legacy one) and a stock PouchDB still get everything."""
    await purge_with(couch, config, "function () { return []; }")
    clinic = world["clinics"][0]["_id"]
    mine = world["by_clinic"][clinic]
    target = max(d["_id"] for d in world["h"].docs if d.get("type") == "person")
    device = await device_for(server, world, "chw")
    stock = None
    try:
        await device.call("cht_sync")
        assert mine <= set(await device.call("ids"))
        for kind in ("syntax", "exception", "timeout"):
            source, changes = FAILING[kind]
            report = await purge_with(couch, config.replace(**changes), source.replace("TARGET", target),
                                      limits=Limits(contacts=3))
            assert report.status == "error" and report.error_kind == kind
            log = next(d for d in await purgelogs(couch, config) if d["_id"] == report.purgelog)
            assert log["_id"].startswith("purgelog:error:") and log["error_kind"] == kind
            assert not await purged_records(couch, config, chw_hash()), kind
            synced = await device.call("cht_sync")
            assert synced["purged"] == 0, kind
            assert (await device.call("legacy_purge", replication_id=f"after-{kind}"))["purged"] == 0, kind
            assert mine <= set(await device.call("ids")), kind
        stock = await device_for(server, world, "chw")
        assert (await stock.call("pull"))["ok"]
        assert mine <= set(await stock.call("ids"))
    finally:
        await device.close()
        if stock is not None:
            await stock.close()


async def test_a_slow_function_does_not_stop_the_event_loop(couch, config):
    """The function runs on a thread of its own: the sentinel's feed and jobs go on meanwhile."""
    source = "function (u, contact) { if (contact.type === 'clinic') { while (true) {} } return []; }"
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        report = await purge_with(couch, config.replace(purge_call_timeout_ms=500), source)
    finally:
        task.cancel()
    assert report.error_kind == "timeout" and ticks >= 5


# -- what CHT purges besides contacts' reports ----------------------------------------------------------

async def test_unallocated_reports_tasks_and_targets(couch, config, world):
    medic = couch.db(config.db_medic)
    today = dt.datetime.now().astimezone()
    ended = lambda days: (today - dt.timedelta(days=days)).strftime("%Y-%m-%d")  # noqa: E731
    month = lambda months: f"{(today.year * 12 + today.month - 1 - months) // 12:04d}-" \
                           f"{(today.year * 12 + today.month - 1 - months) % 12 + 1:02d}"  # noqa: E731
    docs = [
        {"_id": "unallocated-old", "type": "data_record", "form": "X", "reported_date": 1, "fields": {}},
        {"_id": "unallocated-new", "type": "data_record", "form": "X", "reported_date": NOW_MS, "fields": {}},
        {"_id": "task-done-long-ago", "type": "task", "state": "Completed", "user": world["users"]["chw"],
         "emission": {"endDate": ended(61)}},
        {"_id": "task-done-lately", "type": "task", "state": "Completed", "user": world["users"]["chw"],
         "emission": {"endDate": ended(59)}},
        {"_id": "task-open-long-ago", "type": "task", "state": "Ready", "user": world["users"]["chw"],
         "emission": {"endDate": ended(90)}},
        {"_id": f"target~{month(7)}~someone~org.couchdb.user:x", "type": "target", "owner": "someone"},
        {"_id": f"target~{month(2)}~someone~org.couchdb.user:x", "type": "target", "owner": "someone"},
    ]
    await medic.bulk_docs(docs)
    unallocated_fn = """function (u, contact, reports, messages) {
      var out = [];
      if (!contact._id) {
        reports.forEach(function (r) { if (r.reported_date < Date.now() - 365 * 864e5) { out.push(r._id); } });
      }
      return out;
    }"""
    try:
        report = await purge_with(couch, config, unallocated_fn)
        assert report.status == "done"
        for hash_ in (chw_hash(), role_hash(["chw_supervisor"])):
            purged = set(await purged_records(couch, config, hash_))
            assert {"unallocated-old", "task-done-long-ago", docs[5]["_id"]} <= purged
            assert not {"unallocated-new", "task-done-lately", "task-open-long-ago", docs[6]["_id"]} & purged
            assert not purged & world["old"], "contacts' reports come with their contact, not as unallocated"
    finally:
        stored = await medic.get_many(d["_id"] for d in docs)
        await medic.bulk_docs([{**d, "_deleted": True} for d in stored.values()])


async def test_a_contact_with_too_many_records_is_skipped(couch, config, world):
    await purge_with(couch, config, "function () { return []; }")
    limits = Limits(contacts=4, max_records=1, min_records=1)
    report = await purge_with(couch, config, OLD_REPORTS, limits=limits)
    assert report.status == "done" and report.skipped_contacts
    skipped = set(report.skipped_contacts)
    purged = set(await purged_records(couch, config, chw_hash()))
    h = world["h"]
    for report_id in world["old"]:
        subject = next(d["_id"] for d in h.docs if d.get("patient_id") == h.by_id[report_id]["fields"]["patient_id"])
        assert (report_id in purged) == (subject not in skipped)
    log = next(d for d in await purgelogs(couch, config) if d["_id"] == report.purgelog)
    assert set(log["skipped_contacts"]) == skipped


async def test_a_run_stopped_while_applying_is_finished_by_the_next(couch, config, world):
    await purge_with(couch, config, "function () { return []; }")
    staging = Staging(couch, config.db_medic)
    hash_ = chw_hash()
    some = sorted(world["old"])[:6]
    state = {"run_id": "crashed", "started": dt.datetime.now(dt.timezone.utc).isoformat(), "roles": {hash_: ["chw"]}}
    await staging.start(state)
    await staging.stage(hash_, some, {})
    await staging.mark_apply({**state, "purgelog": "purgelog:1", "skipped_contacts": [], "counts": {"calls": 1}})
    db = couch.db(purge_db_name(config.db_medic, hash_))
    await db.bulk_docs([{"_id": f"purged:{i}"} for i in some[:3]])  # half applied when it stopped
    report = await purge_with(couch, config, None)
    assert report.status == "skipped"
    assert set(some) <= await purged_among(db, some)
    assert not await staging.db.exists()
    log = await couch.db(config.db_sentinel).get("purgelog:1")
    assert log["roles"] == {hash_: ["chw"]} and log["counts"]["purged"] == 3
    await purge_with(couch, config, "function () { return []; }")
    assert not await purged_among(db, some)


# -- CHT 3.7-4.2's endpoints ---------------------------------------------------------------------------

async def test_legacy_purging_endpoints(server, client, world, couch, config):
    auth = basic(world["users"]["chw"])
    device_header = {"medic-replication-id": "device-one"}
    clinic = world["clinics"][0]["_id"]
    mine = world["by_clinic"][clinic] & world["old"]
    # a device of the 3.7-4.2 era purges with them
    await purge_with(couch, config, "function () { return []; }")
    device = await device_for(server, world, "chw")
    try:
        await device.call("cht_sync")
        assert mine <= set(await device.call("ids"))
        await purge_with(couch, config, OLD_REPORTS)
        result = await device.call("legacy_purge", replication_id="legacy-device")
        assert result["purged"] == len(mine)
        assert not set(await device.call("ids")) & mine
        assert (await device.call("legacy_purge", replication_id="legacy-device"))["purged"] == 0
    finally:
        await device.close()
    info = await (await client.get("/purging", headers=auth)).json()
    assert info["db_name"] == purge_db_name(config.db_medic, chw_hash())
    first = await (await client.get("/purging/changes?limit=2", headers={**auth, **device_header})).json()
    assert len(first["purged_ids"]) == 2 and set(first["purged_ids"]) <= mine and "last_seq" in first
    everything = await (await client.get("/purging/changes", headers=auth)).json()
    assert set(everything["purged_ids"]) == mine, "only the user's area, without a header from the start"
    done = await client.get(f"/purging/checkpoint?seq={first['last_seq']}", headers={**auth, **device_header})
    assert done.status == 200 and await done.json() == {"success": True}
    rest = await (await client.get("/purging/changes", headers={**auth, **device_header})).json()
    assert set(rest["purged_ids"]) == mine - set(first["purged_ids"])
    alias = await client.get("/purging/changes/checkpoint?seq=now", headers={**auth, **device_header})
    assert alias.status == 200
    assert (await (await client.get("/purging/changes", headers={**auth, **device_header})).json())["purged_ids"] == []
    # another user with the same role set has a checkpoint of their own under the same device id
    other = await (await client.get("/purging/changes", headers={**basic(world["users"]["chw2"]),
                                                                  **device_header})).json()
    assert set(other["purged_ids"]) == world["by_clinic"][world["clinics"][1]["_id"]] & world["old"]
    # CHT's errors
    missing_header = await client.get("/purging/checkpoint?seq=now", headers=auth)
    assert missing_header.status == 400 and "medic-replication-id" in (await missing_header.json())["error"]
    missing_seq = await client.get("/purging/checkpoint", headers={**auth, **device_header})
    assert missing_seq.status == 400 and "seq" in (await missing_seq.json())["error"]
    assert (await client.get("/purging/changes?limit=x", headers=auth)).status == 400
    for online in (basic(world["users"]["officer"]), admin_headers(config)):
        answer = await client.get("/purging", headers=online)
        assert answer.status == 404 and await answer.json() == {"error": "not_found",
                                                                "reason": "Database does not exist."}
    assert (await client.get("/purging")).status == 401


async def test_legacy_purge_changes_read_page_by_page(client, world, couch, config, monkeypatch):
    """The purge feed is filtered by the API: pages of other areas' rows are read past, ``limit`` still holds."""
    from api.cht.purging import legacy

    await purge_with(couch, config, OLD_REPORTS)
    monkeypatch.setattr(legacy, "PAGE", 2)
    auth = basic(world["users"]["chw"])
    device = {"medic-replication-id": "paged-device"}
    mine = world["by_clinic"][world["clinics"][0]["_id"]] & world["old"]
    assert len(mine) > 3
    got: list[str] = []
    while True:
        page = await (await client.get("/purging/changes?limit=3", headers={**auth, **device})).json()
        assert len(page["purged_ids"]) <= 3
        if not page["purged_ids"]:
            break
        got += page["purged_ids"]
        done = await client.get(f"/purging/checkpoint?seq={page['last_seq']}", headers={**auth, **device})
        assert done.status == 200
    assert sorted(got) == sorted(mine), "each purged id of the area once, none of another area's"


async def test_purging_before_any_run_answers_false(client, world, couch, config):
    for name in await couch.all_dbs():
        if name.startswith(config.db_medic + "-purged-role-"):
            await couch.delete_db(name)
    auth = basic(world["users"]["chw"])
    assert await (await client.get("/purging", headers=auth)).json() is False
    assert await (await client.get("/purging/changes", headers=auth)).json() == {}
    done = await client.get("/purging/checkpoint?seq=now", headers={**auth, "medic-replication-id": "d"})
    assert await done.json() == {"success": True}
