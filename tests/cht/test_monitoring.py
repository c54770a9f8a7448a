"""Monitoring JSON and the Prometheus exposition."""

from prometheus_client.parser import text_string_to_metric_families

from api import checkpoint
from api.cht.monitoring import monitoring


DB_KEYS = {"name", "update_sequence", "doc_count", "doc_del_count", "fragmentation", "sizes", "view_indexes",
           "nouveau_indexes"}


async def test_monitoring_has_every_field_of_chts(client, config):
    """cht-core's /api/v2/monitoring fields, keys and types (services/monitoring.js), and v1's."""
    v2 = await (await client.get("/api/v2/monitoring")).json()
    assert set(v2) == {"version", "couchdb", "date", "sentinel", "messaging", "outbound_push", "feedback", "conflict",
                       "replication_limit", "connected_users", "replication_failure"}
    assert v2["version"]["app"] == "4.22.0" and isinstance(v2["version"]["couchdb"], str) and v2["version"]["couchdb"]
    assert v2["version"]["node"] == "" and v2["version"]["python"]  # Jamii runs no Node; python is Jamii's extra
    cht_keys = {"medic": config.db_medic, "sentinel": config.db_sentinel, "usersmeta": config.db_users_meta,
                "users": config.db_users}
    assert set(cht_keys) <= set(v2["couchdb"])
    others = set(config.databases.values()) - set(cht_keys.values())
    assert set(v2["couchdb"]) == set(cht_keys) | others  # Jamii's other databases, under their own names
    for key, name in cht_keys.items():
        entry = v2["couchdb"][key]
        assert set(entry) == DB_KEYS and entry["name"] == name, key
        for field in ("update_sequence", "doc_count", "doc_del_count", "fragmentation"):
            assert isinstance(entry[field], (int, float)), (key, field)
        assert set(entry["sizes"]) == {"active", "file"} and entry["nouveau_indexes"] == []
    assert sorted(v["name"] for v in v2["couchdb"]["medic"]["view_indexes"]) == \
        ["medic", "medic-client", "medic-conflicts"]
    assert [v["name"] for v in v2["couchdb"]["sentinel"]["view_indexes"]] == ["sentinel"]
    assert v2["date"]["current"] > 1.7e12 and v2["date"]["uptime"] >= 0
    assert isinstance(v2["sentinel"]["backlog"], int)
    outgoing = v2["messaging"]["outgoing"]
    assert set(outgoing) == {"total", "seven_days", "last_hundred"}
    for figures in (outgoing["total"], outgoing["seven_days"]):
        assert set(figures) == {"due", "scheduled", "muted", "failed", "delivered"}
    assert set(outgoing["last_hundred"]) == {"pending", "final", "muted"}
    for name in ("outbound_push",):
        assert v2[name] == {"backlog": 0}
    for name in ("feedback", "conflict", "replication_limit", "connected_users", "replication_failure"):
        assert set(v2[name]) == {"count"} and isinstance(v2[name]["count"], int), name
    v1 = await (await client.get("/api/v1/monitoring")).json()
    assert set(v1) == set(v2) - {"replication_failure"}
    assert set(v1["messaging"]["outgoing"]) == {"state"}


async def test_doc_count_and_backlog_follow_the_data(client, couch, config):
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    before = (await (await client.get("/api/v2/monitoring")).json())
    await medic.bulk_docs([{"_id": f"mon-{i}"} for i in range(7)])
    after = (await (await client.get("/api/v2/monitoring")).json())
    assert after["couchdb"]["medic"]["doc_count"] == before["couchdb"]["medic"]["doc_count"] + 7
    assert before["sentinel"]["backlog"] == 0
    assert after["sentinel"]["backlog"] == 7


async def test_couchdb_reads_are_concurrent(couch, config):
    """~40 reads one after another queued behind the load (about 30 s per call with bench.load's 200 clients)."""
    in_flight = peak = 0
    request = couch.request

    async def counted(*args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await request(*args, **kwargs)
        finally:
            in_flight -= 1

    couch.request = counted
    body = await monitoring.collect(couch, config, uptime_seconds=1)
    assert body["couchdb"]["medic"]["doc_count"] >= 0
    assert body["messaging"]["outgoing"]["total"]["due"] >= 0
    assert peak >= len(config.databases)


async def test_failed_metric_is_minus_one(aiohttp_client, config):
    from api.app import create_app

    client = await aiohttp_client(create_app(config.replace(db_logs="missing-database-for-monitoring")))
    body = await (await client.get("/api/v2/monitoring")).json()
    assert body["couchdb"]["missing-database-for-monitoring"]["doc_count"] == -1
    assert body["couchdb"]["missing-database-for-monitoring"]["name"] == ""
    assert body["replication_failure"]["count"] == -1 and body["connected_users"]["count"] == -1
    assert body["couchdb"]["medic"]["doc_count"] >= 0


async def test_prometheus_exposition_parses(client):
    await client.get("/api/v1/settings")  # a 401, counted like any request
    response = await client.get("/api/v1/express-metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert "http_request_duration_seconds" in families
    samples = [s for s in families["http_requests"].samples if s.name == "http_requests_total"]
    assert any(s.labels["route"] == "/api/v1/settings" and s.labels["code"] == "401" for s in samples)
    assert "couchdb_request_duration_seconds" in families
    assert "process_cpu_seconds" in families or "process_cpu_seconds_total" in {
        s.name for f in families.values() for s in f.samples}


async def test_every_spec_field_matches_the_data(client, couch, config, make_user):
    import datetime as dt

    from api.cht import messages
    from tests.helpers import basic

    medic = couch.db(config.db_medic)
    now = dt.datetime.now(dt.timezone.utc)
    doc = {"_id": "monitoring-messages", "type": "data_record", "reported_date": 1}
    for i, state in enumerate(["pending", "pending", "forwarded-to-gateway", "sent", "delivered", "failed",
                               "muted", "denied", "scheduled", "unrecognised"]):
        task = messages.new_task(f"+1{i}", "x", f"mon-{i}", now, state=state)
        if state == "scheduled":
            task["due"] = messages.iso(now + dt.timedelta(days=1))
        if state == "unrecognised":
            task["due"] = messages.iso(now - dt.timedelta(days=2))
        messages.add_task(doc, task, scheduled=state == "scheduled")
    await medic.put(doc)
    # a conflict, as a device pushing an old edit makes one
    await medic.bulk_docs([{"_id": "conflicted", "_rev": "1-aaaa", "v": 1},
                           {"_id": "conflicted", "_rev": "1-bbbb", "v": 2}], new_edits=False)
    await couch.db(config.db_users_meta).put({"_id": "feedback-1", "type": "feedback", "meta": {"time": "x"}})
    logs = couch.db(config.db_logs)
    await logs.bulk_docs([{"_id": "replication-count-a", "user": "a", "count": 12000, "date": 1},
                          {"_id": "replication-count-b", "user": "b", "count": 50, "date": 1}])
    name = await make_user("mon-visitor", ["chw"])
    await client.get("/api/v1/settings", headers=basic(name))
    import asyncio
    for _ in range(50):
        if await logs.get_or_none(f"connected-user-{name}"):
            break
        await asyncio.sleep(0.05)

    v2 = await (await client.get("/api/v2/monitoring")).json()
    outgoing = v2["messaging"]["outgoing"]
    # cht-core's message_queue: "due" is every message not scheduled or muted (sent, delivered, failed and
    # unrecognised included); "delivered" counts sent and delivered again
    assert outgoing["total"] == {"due": 7, "scheduled": 1, "muted": 2, "delivered": 2, "failed": 1}
    # due dates: the task's due, else its timestamp, else the doc's reported_date (1970 here): only the one due
    # within the last seven days counts (the scheduled one is due tomorrow, after now)
    assert outgoing["seven_days"] == {"due": 1, "scheduled": 0, "muted": 0, "delivered": 0, "failed": 0}
    assert outgoing["last_hundred"]["pending"] == {"pending": 2, "forwarded-to-gateway": 1,
                                                   "received-by-gateway": 0, "forwarded-by-gateway": 0,
                                                   "unrecognised": 1}
    assert outgoing["last_hundred"]["final"] == {"sent": 1, "delivered": 1, "failed": 1}
    assert outgoing["last_hundred"]["muted"] == {"denied": 1, "cleared": 0, "muted": 1, "duplicate": 0}
    assert v2["conflict"]["count"] == 1
    assert v2["feedback"]["count"] == 1
    assert v2["replication_limit"]["count"] == 1
    assert v2["connected_users"]["count"] >= 1
    assert v2["outbound_push"]["backlog"] == 0
    v1 = await (await client.get("/api/v1/monitoring")).json()
    assert v1["messaging"]["outgoing"]["state"] == outgoing["total"]
    old = await (await client.get("/api/v2/monitoring?connected_user_interval=1")).json()
    assert old["connected_users"]["count"] >= 1
    # as cht-core, the interval is never refused: what is not a number of days is 7
    default = await client.get("/api/v2/monitoring?connected_user_interval=zero")
    assert default.status == 200 and (await default.json())["connected_users"]["count"] >= 1


async def test_prometheus_has_the_sentinel_figures(client, couch, config):
    sentinel = couch.db(config.db_sentinel)
    await sentinel.bulk_docs([
        {"_id": "a-info", "type": "info", "doc_id": "a", "transitions": {"registration": {"ok": True},
                                                                         "update_clinics": {"ok": False}}},
        {"_id": "b-info", "type": "info", "doc_id": "b", "transitions": {"registration": {"ok": True}}},
    ])
    text = await (await client.get("/api/v1/express-metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("sentinel_transitions", (("outcome", "ok"), ("transition", "registration")))] == 2
    assert samples[("sentinel_transitions", (("outcome", "failed"), ("transition", "update_clinics")))] == 1
    assert samples[("sentinel_backlog", ())] >= 0


async def test_replication_failures_are_logged_and_counted(client, couch, config, make_user):
    """A get-ids answer of 400 or more is logged in replication-fail-<YYYY-MM>-<user>, as cht-core logs it, and
    replication_failure counts the users with a failure in the interval."""
    import asyncio
    import datetime as dt

    from tests.helpers import basic

    logs = couch.db(config.db_logs)
    online = await make_user("mon-online", ["program_officer", "mm-online"])
    offline = await make_user("mon-offline", ["chw"], facility_id="nowhere")
    before = (await (await client.get("/api/v2/monitoring")).json())["replication_failure"]["count"]
    for _ in range(2):
        assert (await client.get("/api/v1/replication/get-ids", headers=basic(online))).status >= 400
    assert (await client.get("/api/v1/replication/get-ids", headers=basic(offline))).status == 200
    now = dt.datetime.now(dt.timezone.utc)
    doc_id = f"replication-fail-{now:%Y-%m}-{online}"
    for _ in range(100):
        doc = await logs.get_or_none(doc_id)
        if doc and doc["total_failures"] == 2:
            break
        await asyncio.sleep(0.05)
    assert doc["user"] == online and doc["total_failures"] == 2
    assert doc["daily_failures"] == {f"{now:%Y-%m-%d}": 2}
    failure = doc["failures"][-1]
    assert set(failure) == {"date", "status_code", "duration", "request_id", "roles", "subjects_count", "docs_count",
                            "unpurged_docs_count"}
    assert failure["status_code"] >= 400 and failure["roles"] == ["program_officer", "mm-online"]
    assert await logs.get_or_none(f"replication-fail-{now:%Y-%m}-{offline}") is None
    old_day = f"{now - dt.timedelta(days=20):%Y-%m-%d}"
    await logs.put({"_id": "replication-fail-1999-01-someone", "user": "someone", "daily_failures": {old_day: 3}})
    v2 = await (await client.get("/api/v2/monitoring")).json()
    assert v2["replication_failure"]["count"] == before + 1  # someone's failure is older than 7 days
    wide = await (await client.get("/api/v2/monitoring?connected_user_interval=30")).json()
    assert wide["replication_failure"]["count"] == before + 2
