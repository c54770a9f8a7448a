"""Set-up from scratch and the design doc upload: first upload, no-op rerun, staged swap, bad ddocs."""

import asyncio
import os
import shutil
import subprocess
import sys

import pytest

from api import couch_config, ddocs
from api.cht.replication.scope import DOC_IDS_LOOKUP_THRESHOLD
from api.config import ROOT
from api.couch import Couch, node_config_path
from api.deploy_info import CHT_VERSION
from api.settings import SETTINGS_ID
from scripts.couchdb import free_port
from scripts.setup_db import setup
from tests.helpers import module_config


@pytest.fixture
def fresh_config(couch_server):
    """A config naming databases that do not exist yet."""
    import uuid

    cfg = module_config(couch_server, f"s{uuid.uuid4().hex[:8]}-")
    yield cfg

    async def drop():
        async with Couch.from_config(cfg) as couch:
            for name in cfg.own_databases:
                await couch.delete_db(name)

    asyncio.run(drop())


async def test_setup_from_scratch_then_again_changes_nothing(fresh_config):
    lines = []
    await setup(fresh_config, progress=lines.append)
    assert any("created database" in line for line in lines)
    async with Couch.from_config(fresh_config) as couch:
        dbs = set(await couch.all_dbs())
        assert set(fresh_config.own_databases) <= dbs
        medic = couch.db(fresh_config.db_medic)
        security = await medic.get("_security")
        assert security["members"]["roles"] == ["_admin"]
        client_ddoc = await medic.get("_design/medic-client")
        assert "doc_by_type" in client_ddoc["views"]
        settings = await medic.get(SETTINGS_ID)
        assert settings["settings"]["contact_types"][0]["id"] == "district_hospital"
        assert client_ddoc["deploy_info"]["version"] == CHT_VERSION
        assert f"recorded deploy_info: CHT {CHT_VERSION}" in lines
        revs_before = {d: (await medic.get(d))["_rev"] for d in ("_design/medic-client", SETTINGS_ID)}

        lines.clear()
        await setup(fresh_config, progress=lines.append)
        assert not any(word in line for line in lines for word in ("created", "updated", "stored", "recorded")), lines
        revs_after = {d: (await medic.get(d))["_rev"] for d in revs_before}
        assert revs_after == revs_before


THRESHOLD = ("couchdb", "changes_doc_ids_optimization_threshold")


async def test_setup_raises_the_doc_ids_lookup_threshold_on_every_node(config, couch):
    """First syncs filter ``_changes`` by thousands of ids: CouchDB must look them up, not scan the database."""
    if not await couch.is_apache_couchdb():
        assert await couch_config.ensure_at_least(couch, *THRESHOLD, 5) == couch_config.NodeSettings()
        return
    nodes = (await couch.membership())["cluster_nodes"]
    paths = [node_config_path(node, *THRESHOLD) for node in nodes]
    before = [(await couch.request("GET", path))[1] for path in paths]
    try:
        for path in paths:
            await couch.request("PUT", path, json_body="100")  # CouchDB's default
        lines = []
        await setup(config, progress=lines.append)
        assert [(await couch.request("GET", path))[1] for path in paths] == [str(DOC_IDS_LOOKUP_THRESHOLD)] * len(nodes)
        assert f"set [couchdb] changes_doc_ids_optimization_threshold = {DOC_IDS_LOOKUP_THRESHOLD} " \
            f"on {', '.join(nodes)}" in lines

        await couch.request("PUT", paths[0], json_body=str(DOC_IDS_LOOKUP_THRESHOLD * 3))  # an admin's own choice
        again = await couch_config.ensure_at_least(couch, *THRESHOLD, DOC_IDS_LOOKUP_THRESHOLD)
        assert again == couch_config.NodeSettings()
        assert (await couch.request("GET", paths[0]))[1] == str(DOC_IDS_LOOKUP_THRESHOLD * 3)
    finally:
        for path, value in zip(paths, before):
            await couch.request("PUT", path, json_body=value)


async def test_a_node_setting_read_written_and_unset(couch):
    """``Couch.node_config``: a setting's value, None when unset, and one written there read back."""
    if not await couch.is_apache_couchdb():
        pytest.skip("pouchdb-server has no nodes")
    node = (await couch.membership())["cluster_nodes"][0]
    assert await couch.node_config(node, "jamii_test", "unset_key") is None
    try:
        assert await couch.node_config(node, "jamii_test", "probe", "7") == ""  # CouchDB answers the old value
        assert await couch.node_config(node, "jamii_test", "probe") == "7"
        assert await couch.node_config(node, "jamii_test", "probe", "8") == "7"
    finally:
        await couch.request("DELETE", node_config_path(node, "jamii_test", "probe"))
    assert await couch.node_config(node, "jamii_test", "probe") is None


def _ddoc_tree(tmp_path, map_body):
    root = tmp_path / "ddocs"
    view = root / "medic" / "probe" / "views" / "by_n"
    view.mkdir(parents=True)
    (view / "map.js").write_text(map_body)
    return root


async def test_changed_view_is_staged_warmed_and_swapped(config, couch, tmp_path):
    db = couch.db(config.db_medic)
    await db.bulk_docs([{"_id": f"probe-{i}", "n": i} for i in range(50)])
    root = _ddoc_tree(tmp_path, "function (doc) { if (typeof doc.n === 'number') { emit(doc.n); } }")
    lines = []
    assert (await ddocs.upload_all(couch, config, lines.append, root))[f"{db.name}/_design/probe"] == "created"
    assert (await ddocs.upload_all(couch, config, lines.append, root))[f"{db.name}/_design/probe"] == "unchanged"
    rev_unchanged = (await db.get("_design/probe"))["_rev"]

    (root / "medic" / "probe" / "views" / "by_n" / "map.js").write_text(
        "function (doc) { if (typeof doc.n === 'number') { emit(-doc.n); } }")
    lines.clear()
    outcome = await ddocs.upload_all(couch, config, lines.append, root)
    assert outcome[f"{db.name}/_design/probe"] == "updated"
    assert any("staging" in line for line in lines)
    assert any("ready in" in line for line in lines)
    installed = await db.get("_design/probe")
    assert installed["_rev"] != rev_unchanged and "-doc.n" in installed["views"]["by_n"]["map"]
    assert await db.get_or_none(ddocs.STAGED_PREFIX + "probe") is None
    rows = (await db.view("probe", "by_n", limit=3))["rows"]
    assert [r["key"] for r in rows] == [-49, -48, -47]


def test_the_project_ddocs_are_valid():
    all_docs = ddocs.load_all()
    assert "medic" in all_docs
    assert ddocs.check([d for docs in all_docs.values() for d in docs]) == []


def test_syntax_errors_are_reported(tmp_path):
    root = _ddoc_tree(tmp_path, "function (doc) { emit(doc.n; }")
    problems = ddocs.check(ddocs.load_all(root)["medic"])
    assert len(problems) == 1 and "probe/views/by_n/map.js" in problems[0] and "SyntaxError" in problems[0]
    root2 = _ddoc_tree(tmp_path / "b", "emit(doc.n)")
    assert any("does not start with" in p for p in ddocs.check(ddocs.load_all(root2)["medic"]))


def test_missing_map_is_refused(tmp_path):
    (tmp_path / "medic" / "x" / "views" / "v").mkdir(parents=True)
    with pytest.raises(ddocs.DdocError, match="no map.js"):
        ddocs.load_all(tmp_path)


def _run_upload(env_changes):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUCH", "JAMII"))}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "scripts.upload_ddocs"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_upload_script_exits_non_zero_when_the_server_is_unreachable():
    result = _run_upload({"COUCH_URL": f"http://admin:x@127.0.0.1:{free_port()}"})
    assert result.returncode == 1
    assert "unreachable" in result.stderr


def test_upload_script_is_a_no_op_on_a_second_run(config):
    env = {"COUCH_URL": config.couch_url_with_credentials(), "JAMII_DB_PREFIX": config.db_medic[:-5]}
    result = _run_upload(env)
    assert result.returncode == 0, result.stderr
    assert "0 design document(s) changed" in result.stdout


def test_upload_script_refuses_a_bad_ddoc(config, tmp_path):
    shutil.copytree(ROOT / "ddocs", tmp_path / "ddocs")
    broken = tmp_path / "ddocs" / "medic" / "medic-client" / "views" / "doc_by_type" / "map.js"
    broken.write_text("function (doc) { emit(; }")
    env = {"COUCH_URL": config.couch_url_with_credentials(), "JAMII_DB_PREFIX": config.db_medic[:-5],
           "JAMII_DDOCS_DIR": str(tmp_path / "ddocs")}
    result = _run_upload(env)
    assert result.returncode == 1
    assert "doc_by_type/map.js" in result.stderr and "SyntaxError" in result.stderr


async def _indexed(db, ddoc: str, view: str) -> int:
    """Rows the view's index holds now, without bringing it up to date (``stale=ok``); asked for without
    ``Database.view``, so the warmer does not count it as a use."""
    _, body, _ = await db.couch.request("GET", f"{db.path}/_design/{ddoc}/_view/{view}",
                                        params={"stale": "ok", "reduce": False})
    return len(body["rows"])


async def test_the_view_warmer_keeps_indexes_caught_up_without_being_asked(config, couch):
    """Writes are indexed in the background, hot-path views first, then those the API used, so no request
    waits for an index to catch up with them (after a restart, all at once). Observed with ``stale=ok``
    queries, which read an index as it is without updating it."""
    medic = couch.db(config.db_medic)
    await medic.bulk_docs([{"_id": f"warm-{i}", "type": "person", "name": f"Warm {i}",
                            "parent": {"_id": "warm-place"}} for i in range(30)])
    async with Couch.from_config(config) as requests:  # the API's client, through which requests query views
        await requests.db(config.db_medic).view("medic-client", "contacts_by_parent", limit=0)
        warmer = ddocs.ViewWarmer(couch, config, interval=0.2, used=(requests,))
    never_asked = await _indexed(medic, "medic-client", "contacts_by_type")
    warmer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while await _indexed(medic, "medic-client", "contacts_by_parent") < 30:
            assert asyncio.get_running_loop().time() < deadline, "the writes were never indexed"
            await asyncio.sleep(0.2)
        rounds = warmer.rounds
        await medic.bulk_docs([{"_id": f"warm-more-{i}", "type": "person", "parent": {"_id": "warm-place"}}
                               for i in range(5)])
        while await _indexed(medic, "medic-client", "contacts_by_parent") < 35:
            assert asyncio.get_running_loop().time() < deadline, "later writes were never indexed"
            await asyncio.sleep(0.2)
        assert warmer.rounds > rounds
    finally:
        await warmer.close()
    assert warmer.views()[config.db_medic][:4] == [
        ("medic", "contacts_by_depth"), ("medic", "docs_by_replication_key"), ("medic-client", "contacts_by_reference"),
        ("medic-client", "contacts_by_parent")]
    if not await couch.is_apache_couchdb():  # left alone: nothing used it (CouchDB's indexer, ken, builds it anyway)
        assert await _indexed(medic, "medic-client", "contacts_by_type") == never_asked
