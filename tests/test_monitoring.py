"""Monitoring JSON and the Prometheus exposition."""

from prometheus_client.parser import text_string_to_metric_families

from api import checkpoint
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
