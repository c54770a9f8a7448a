"""Upgrades: stage (progress doc, warm views, old views still answer), complete, failures, restart."""

import asyncio
import shutil
import uuid

import pytest

from api.app import create_app
from api.config import ROOT
from api.ddocs import STAGED_PREFIX
from api.deploy_info import CHT_VERSION
from scripts.make_release import to_couch, to_dir
from tests.helpers import admin_headers, basic

NEW_VIEW = "function (doc) { if (doc.type === 'upgrade-probe') { emit(doc.n); } }"


def release_tree(tmp_path, broken=False, extra_db=None):
    """This project's ddocs plus a new view in medic-client (or a broken one)."""
    src = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "ddocs", src)
    view = src / "medic" / "medic-client" / "views" / "upgrade_probe"
    view.mkdir()
    (view / "map.js").write_text("function (doc) { emit(; }" if broken else NEW_VIEW)
    if extra_db:
        extra = src / extra_db / "x" / "views" / "v"
        extra.mkdir(parents=True)
        (extra / "map.js").write_text("function (doc) { emit(doc._id); }")
    return src


@pytest.fixture
async def upgrade_client(aiohttp_client, config, tmp_path):
    builds = tmp_path / "builds"
    cfg = config.replace(upgrade_builds=str(builds))
    client = await aiohttp_client(create_app(cfg))
    client.builds = builds
    client.cfg = cfg
    return client


async def wait_for(predicate, timeout=30):
    for _ in range(int(timeout * 10)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


BUILD = {"namespace": "medic", "application": "medic"}


async def test_stage_then_complete(upgrade_client, couch, config, tmp_path):
    client = upgrade_client
    to_dir("9.1.0", client.builds, release_tree(tmp_path))
    medic = couch.db(config.db_medic)
    await medic.bulk_docs([{"_id": f"probe-{i}", "type": "upgrade-probe", "n": i} for i in range(300)])
    before = await medic.get("_design/medic-client")
    admin = admin_headers(config)

    response = await client.post("/api/v1/upgrade/stage", json={"build": {**BUILD, "version": "9.1.0"}},
                                 headers=admin)
    assert response.status == 200 and await response.json() == {"ok": True}
    # the old views keep answering while staging runs
    assert "rows" in await medic.view("medic-client", "doc_by_type", key=["upgrade-probe"], limit=1)
    doc = await wait_for(lambda: _staged(medic))
    assert doc["action"] == "stage" and doc["build_info"]["version"] == "9.1.0"
    assert any("staged, views warm" in entry["message"] for entry in doc["log"])
    assert all("date" in entry for entry in doc["log"])
    assert (await medic.get("_design/medic-client"))["_rev"] == before["_rev"], "running version untouched"
    staged = await medic.get(STAGED_PREFIX + "medic-client")
    assert "upgrade_probe" in staged["views"]
    status = await (await client.get("/api/v1/upgrade", headers=admin)).json()
    assert status["upgradeDoc"]["staging_complete"] is True

    response = await client.post("/api/v1/upgrade/complete", headers=admin)
    assert response.status == 200 and (await response.json())["version"] == "9.1.0"
    installed = await medic.get("_design/medic-client")
    assert "upgrade_probe" in installed["views"]
    # the release is recorded; the version stays the CHT API level the code speaks (clients read it)
    assert installed["deploy_info"]["release"] == "9.1.0"
    assert installed["deploy_info"]["version"] == CHT_VERSION
    assert await medic.get_or_none(STAGED_PREFIX + "medic-client") is None
    assert await medic.get_or_none("horti-upgrade") is None
    rows = (await medic.view("medic-client", "upgrade_probe", limit=2))["rows"]
    assert [r["key"] for r in rows] == [0, 1]

    # downgrade: the project's own ddocs as release "9.0.0" remove the view again
    to_dir("9.0.0", client.builds, ROOT / "ddocs")
    await client.post("/api/v1/upgrade", json={"build": {**BUILD, "version": "9.0.0"}}, headers=admin)
    await wait_for(lambda: _gone(medic))
    assert "upgrade_probe" not in (await medic.get("_design/medic-client"))["views"]


async def _staged(medic):
    doc = await medic.get_or_none("horti-upgrade")
    return doc if doc and doc.get("staging_complete") else None


async def _gone(medic):
    return await medic.get_or_none("horti-upgrade") is None


async def test_complete_without_a_staged_upgrade_is_404(upgrade_client, config):
    response = await upgrade_client.post("/api/v1/upgrade/complete", headers=admin_headers(config))
    assert response.status == 404


@pytest.mark.parametrize("body, field", [
    ({}, "build"),
    ({"build": {"namespace": "other", "application": "medic", "version": "1.0.0"}}, "build.namespace"),
    ({"build": {"namespace": "medic", "application": "x", "version": "1.0.0"}}, "build.application"),
    ({"build": {"namespace": "medic", "application": "medic"}}, "build.version"),
    ({"build": {"namespace": "medic", "application": "medic", "version": "../../etc"}}, "build.version"),
])
async def test_bad_build_is_400(upgrade_client, config, body, field):
    response = await upgrade_client.post("/api/v1/upgrade/stage", json=body, headers=admin_headers(config))
    assert response.status == 400 and (await response.json())["field"] == field


async def test_unknown_version_is_404_and_broken_release_400(upgrade_client, config, tmp_path):
    admin = admin_headers(config)
    missing = await upgrade_client.post("/api/v1/upgrade/stage",
                                        json={"build": {**BUILD, "version": "7.7.7"}}, headers=admin)
    assert missing.status == 404
    to_dir("6.6.6", upgrade_client.builds, release_tree(tmp_path, broken=True))
    broken = await upgrade_client.post("/api/v1/upgrade/stage",
                                       json={"build": {**BUILD, "version": "6.6.6"}}, headers=admin)
    assert broken.status == 400 and "upgrade_probe/map.js" in (await broken.json())["error"]


async def test_failed_stage_leaves_the_running_version(upgrade_client, couch, config, tmp_path):
    medic = couch.db(config.db_medic)
    before = await medic.get("_design/medic-client")
    to_dir("5.0.0", upgrade_client.builds, release_tree(tmp_path, extra_db="no-such-database"))
    response = await upgrade_client.post("/api/v1/upgrade/stage", json={"build": {**BUILD, "version": "5.0.0"}},
                                         headers=admin_headers(config))
    assert response.status == 200

    async def failed():
        doc = await medic.get_or_none("horti-upgrade")
        return doc if doc and doc.get("failed") else None

    doc = await wait_for(failed)
    assert doc["log"][-1]["type"] == "error"
    assert (await medic.get("_design/medic-client"))["_rev"] == before["_rev"]
    assert await medic.get_or_none(STAGED_PREFIX + "medic-client") is None
    assert (await upgrade_client.post("/api/v1/upgrade/complete", headers=admin_headers(config))).status == 404
    await medic.delete("horti-upgrade", doc["_rev"])


async def test_staging_resumes_after_an_api_restart(aiohttp_client, couch, config, tmp_path):
    builds = tmp_path / "builds"
    cfg = config.replace(upgrade_builds=str(builds))
    to_dir("9.2.0", builds, release_tree(tmp_path))
    medic = couch.db(config.db_medic)
    await medic.bulk_docs([{"_id": f"resume-{i}", "type": "upgrade-probe", "n": i} for i in range(2000)])
    first = await aiohttp_client(create_app(cfg))
    await first.post("/api/v1/upgrade/stage", json={"build": {**BUILD, "version": "9.2.0"}},
                     headers=admin_headers(config))
    await first.close()  # the API stops mid-staging
    doc = await medic.get("horti-upgrade")
    assert doc["staging_complete"] is False
    await aiohttp_client(create_app(cfg))  # a new API process resumes it
    doc = await wait_for(lambda: _staged(medic), timeout=60)
    assert any("resuming" in entry["message"] for entry in doc["log"])
    await medic.delete("horti-upgrade", doc["_rev"])
    staged = await medic.get(STAGED_PREFIX + "medic-client")
    await medic.delete(staged["_id"], staged["_rev"])


async def test_release_from_a_builds_database(aiohttp_client, couch, config, tmp_path):
    url = config.couch_url.replace("://", f"://{config.couch_user}:{config.couch_password}@")
    builds_url = f"{url}/{config.db_medic[:-5]}builds"
    await to_couch("9.3.0", builds_url, release_tree(tmp_path))
    client = await aiohttp_client(create_app(config.replace(upgrade_builds=builds_url)))
    response = await client.post("/api/v1/upgrade", json={"build": {**BUILD, "version": "9.3.0"}},
                                 headers=admin_headers(config))
    assert response.status == 200
    medic = couch.db(config.db_medic)
    await wait_for(lambda: _gone(medic))
    assert "upgrade_probe" in (await medic.get("_design/medic-client"))["views"]
    await couch.delete_db(f"{config.db_medic[:-5]}builds")


async def test_permissions(upgrade_client, make_user):
    chw = await make_user("upgrader-chw", ["chw"])
    response = await upgrade_client.post("/api/v1/upgrade/stage", json={"build": {**BUILD, "version": "1.0"}},
                                         headers=basic(chw))
    assert response.status == 403
    assert (await upgrade_client.post("/api/v1/upgrade/complete")).status == 401
