"""Monitoring JSON and the Prometheus exposition."""

from prometheus_client.parser import text_string_to_metric_families

from api import checkpoint
from api.cht.monitoring import monitoring
from api.ddocs import ddoc_names


async def test_monitoring_shape(client, config):
    for version in ("v1", "v2"):
        response = await client.get(f"/api/{version}/monitoring")
        assert response.status == 200
        body = await response.json()
        assert body["version"]["app"] and isinstance(body["version"]["couchdb"], str)
        assert set(body["couchdb"]) == set(config.databases.values())
        medic = body["couchdb"][config.db_medic]
        assert medic["name"] == config.db_medic
        for key in ("update_sequence", "doc_count", "doc_del_count", "fragmentation"):
            assert isinstance(medic[key], (int, float)), key
        assert isinstance(medic["sizes"]["active"], (int, float))
        assert sorted(v["name"] for v in medic["view_indexes"]) == ddoc_names("medic")
        assert body["date"]["current"] > 1.7e12 and body["date"]["uptime"] >= 0
        assert isinstance(body["sentinel"]["backlog"], int)


async def test_doc_count_and_backlog_follow_the_data(client, couch, config):
    medic = couch.db(config.db_medic)
    await checkpoint.write(couch.db(config.db_sentinel), checkpoint.SENTINEL, (await medic.info())["update_seq"])
    before = (await (await client.get("/api/v2/monitoring")).json())
    await medic.bulk_docs([{"_id": f"mon-{i}"} for i in range(7)])
    after = (await (await client.get("/api/v2/monitoring")).json())
    assert after["couchdb"][config.db_medic]["doc_count"] == before["couchdb"][config.db_medic]["doc_count"] + 7
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
    assert body["couchdb"][config.db_medic]["doc_count"] >= 0
    assert body["messaging"]["outgoing"]["total"]["due"] >= 0
    assert peak >= len(config.databases)


async def test_failed_metric_is_minus_one(aiohttp_client, config):
    from api.app import create_app

    client = await aiohttp_client(create_app(config.replace(db_logs="missing-database-for-monitoring")))
    body = await (await client.get("/api/v2/monitoring")).json()
    assert body["couchdb"]["missing-database-for-monitoring"]["doc_count"] == -1
    assert body["couchdb"][config.db_medic]["doc_count"] >= 0


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
                               "muted", "denied", "scheduled"]):
        task = messages.new_task(f"+1{i}", "x", f"mon-{i}", now, state=state)
        if state == "scheduled":
            task["due"] = messages.iso(now + dt.timedelta(days=1))
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
    assert outgoing["total"] == {"due": 3, "scheduled": 1, "muted": 2, "delivered": 2, "failed": 1}
    assert outgoing["seven_days"] == outgoing["total"]
    assert outgoing["last_hundred"]["pending"] == {"pending": 2, "forwarded-to-gateway": 1,
                                                   "received-by-gateway": 0, "forwarded-by-gateway": 0}
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
    bad = await client.get("/api/v2/monitoring?connected_user_interval=zero")
    assert bad.status == 400


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
