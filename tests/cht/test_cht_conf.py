"""cht-conf 6.6.1 (npm, a devDependency) configures a fresh Jamii, unchanged.

A small cht-conf project (``tests/data/cht-conf-project``, copied per run) is
driven against this module's own API server on a free port, as an admin would:
``cht --url=http://admin:pass@127.0.0.1:<port> --force ...``. Every action
must exit 0 and have its documented effect in the database; a second run of
the uploads reports no changes and writes nothing; a wrong password fails
with cht-conf's "Authentication failed". cht-conf retries a failing request
for ~13 s, so every response is recorded and no ``/api`` request may fail.

The steps build on one another (forms are deleted after they were uploaded,
contacts moved after they were imported); each test asks for the steps it
needs, which run once per module, so any test can also run alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from api.app import create_app
from api.config import ROOT, Config
from api.couch import Couch, Database
from api.deploy_info import CHT_VERSION
from tests.helpers import admin_headers, data_path, user_prefix

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROJECT = data_path("cht-conf-project")
CHT = ROOT / "node_modules" / "cht-conf" / "src" / "bin" / "index.js"
OFFLINE = ("--force", "--skip-dependency-check", "--skip-version-check")  # no prompts, no registry look-ups
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PASSWORD = "Secret-passw0rd!-x9"
UPLOADS = ("upload-app-settings", "upload-app-forms", "upload-contact-forms", "upload-resources", "upload-branding",
           "upload-partners", "upload-custom-translations", "upload-privacy-policies", "upload-extension-libs",
           "upload-ui-extensions", "upload-database-indexes")
# What cht-conf says for each upload when nothing changed.
NO_CHANGES = ("Settings not updated - no changes detected",
              "pregnancy.xml not uploaded, no changes",
              "person-create.xml not uploaded, no changes",
              "Configuration not uploaded as no changes found",  # resources, branding, partners
              "messages-en.properties not uploaded as no changes were found",
              "messages-sw.properties not uploaded as no changes were found",
              "Privacy policies file not uploaded as no changes found",
              "Extension libs not uploaded as already up to date",
              'UI Extension "stock-tab" not uploaded as already up to date',
              "database-indexes file not uploaded as no changes found")


@dataclass
class Run:
    args: tuple[str, ...]
    code: int
    output: str


@dataclass
class Stack:
    config: Config
    couch: Couch
    port: int
    project: Path
    responses: list[tuple[str, str, int]]
    runs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    @property
    def medic(self) -> Database:
        return self.couch.db(self.config.db_medic)

    @property
    def prefix(self) -> str:
        return user_prefix(self.config)

    async def cht(self, *args: str, password: str | None = None) -> Run:
        """One cht-conf invocation; its output without colours."""
        user = quote(self.config.couch_user or "", safe="")
        secret = quote((self.config.couch_password or "") if password is None else password, safe="")
        tmp = self.project.parent / "tmp"  # webpack writes its bundles to TMPDIR under fixed names
        tmp.mkdir(exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node", str(CHT), f"--url=http://{user}:{secret}@127.0.0.1:{self.port}",
            *OFFLINE, *args, cwd=str(self.project), env={**os.environ, "TMPDIR": str(tmp)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 120)
        except BaseException:  # timed out, or the module ended first: no cht-conf left running
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
        return Run(args, process.returncode or 0, ANSI.sub("", out.decode()))

    async def ok(self, *args: str) -> Run:
        run = await self.cht(*args)
        assert run.code == 0, f"cht {' '.join(args)} failed:\n{run.output}"
        return run

    def step(self, name: str, make: Callable[[], Awaitable[Any]]) -> Awaitable[Any]:
        """Run a step once per module; later callers share its result."""
        if name not in self.steps:
            self.steps[name] = asyncio.ensure_future(make())
        return self.steps[name]

    async def update_seq(self) -> Any:
        return (await self.medic.info())["update_seq"]

    async def changes_since(self, since: Any) -> int:
        """How many changes follow ``since``: seqs are opaque (on a cluster two reads of ``update_seq`` name
        whichever copies answered, so equal positions need not be equal strings)."""
        return await self.medic.pending_changes(since)

    async def attachment(self, doc_id: str, name: str) -> bytes:
        return (await self.medic.get_attachment(doc_id, name))[0]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(config: Config, tmp_path_factory: pytest.TempPathFactory):
    assert CHT.exists(), "cht-conf is not installed: run `npm ci --omit=optional` (make install does)"
    assert shutil.which("node"), "Node.js is needed to run cht-conf"
    project = tmp_path_factory.mktemp("cht-conf") / "project"
    shutil.copytree(PROJECT, project)
    prefix = user_prefix(config)
    (project / "users.csv").write_text(
        "username,password,roles,phone,contact.name,contact.phone,place,contact\n"
        f"{prefix}baraka,{PASSWORD},chw,+254712000010,Baraka Otieno,+254712000010,clinic2,\n"
        f"{prefix}amina,{PASSWORD},chw,+254712000011,,,clinic1,p1\n")
    app = create_app(config)
    responses: list[tuple[str, str, int]] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        responses.append((request.method, request.path, response.status))

    app.on_response_prepare.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with Couch.from_config(config) as couch:
        stack = Stack(config, couch, port, project, responses)
        try:
            yield stack
        finally:
            pending = [t for t in (*stack.steps.values(), *stack.runs.values()) if not t.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*stack.steps.values(), *stack.runs.values(), return_exceptions=True)
            await runner.cleanup()


# -- the steps ----------------------------------------------------------------------------

def uploads(stack: Stack) -> Awaitable[Run]:
    """Every upload, the JSON docs, the users and the SMS, in one invocation (validation is added by cht-conf)."""
    async def run() -> Run:
        stack.runs["wrong-password"] = asyncio.ensure_future(stack.cht("upload-app-settings", password="wrong"))
        return await stack.ok(*UPLOADS, "backup-app-settings", "upload-docs", "create-users", "upload-sms-from-csv")
    return stack.step("uploads", run)


def uploads_again(stack: Stack) -> Awaitable[tuple[Run, int]]:
    async def run() -> tuple[Run, int]:
        await uploads(stack)
        before = await stack.update_seq()
        again = await stack.ok(*UPLOADS, "upload-docs")
        return again, await stack.changes_since(before)
    return stack.step("uploads-again", run)


def forms_backed_up_and_deleted(stack: Stack) -> Awaitable[Run]:
    async def run() -> Run:
        await uploads_again(stack)
        return await stack.ok("backup-all-forms", "delete-forms", "--", "pregnancy")
    return stack.step("forms", run)


def contacts_moved(stack: Stack) -> Awaitable[Run]:
    async def run() -> Run:
        await forms_backed_up_and_deleted(stack)
        return await stack.ok("move-contacts", "upload-docs", "--", "--contacts=clinic1", "--parent=hc2")
    return stack.step("move", run)


def supervisor(stack: Stack) -> Awaitable[str]:
    """A user with two places (hc2 and hc1), made through the users API as an admin would."""
    async def run() -> str:
        await uploads(stack)
        name = stack.prefix + "wanjiru"
        base = f"http://127.0.0.1:{stack.port}/api/v1/users"
        async with aiohttp.ClientSession(headers=admin_headers(stack.config)) as http:
            async with http.post(base, json={"username": name, "password": PASSWORD, "roles": ["chw_supervisor"],
                                             "place": "hc1", "contact": "s1"}) as created:
                assert created.status == 200, await created.text()
            async with http.post(f"{base}/{name}", json={"place": ["hc2", "hc1"]}) as updated:
                assert updated.status == 200, await updated.text()
        return name
    return stack.step("supervisor", run)


def contacts_deleted(stack: Stack) -> Awaitable[Run]:
    async def run() -> Run:
        await contacts_moved(stack)
        await supervisor(stack)
        return await stack.ok("delete-contacts", "upload-docs", "--", "--contacts=hc2", "--disable-users")
    return stack.step("delete", run)


def bare_run(stack: Stack) -> Awaitable[Run]:
    async def run() -> Run:
        await contacts_deleted(stack)
        return await stack.ok()
    return stack.step("bare", run)


async def wrong_password(stack: Stack) -> Run:
    """The wrong-password run started beside the uploads (it spends ~13 s in cht-conf's retries)."""
    await uploads(stack)
    return await stack.runs["wrong-password"]


def project_json(stack: Stack, name: str) -> Any:
    return json.loads((stack.project / name).read_text())


def digest(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode()


# -- the tests ------------------------------------------------------------------------------

async def test_uploads_configure_a_fresh_jamii(stack: Stack) -> None:
    run = await uploads(stack)
    assert "Settings updated successfully" in run.output
    assert '"update_notifications" transition is deprecated in 3.2.x' in run.output  # from deprecated-transitions
    assert "Summary: 10 of 10 docs uploaded OK" in run.output

    medic = stack.medic
    settings = (await medic.get("settings"))["settings"]
    wanted = project_json(stack, "app_settings.json")
    assert settings["contact_types"] == wanted["contact_types"] and settings["transitions"] == wanted["transitions"]
    assert settings["locale_outgoing"] == "sw" and "can_view_contacts" in settings["permissions"], "replace=1"
    backups = sorted((stack.project / "backups").glob("app_settings.json.*.bak"))
    assert backups and json.loads(backups[-1].read_text()) == settings

    form = await medic.get("form:pregnancy")
    assert form["type"] == "form" and form["internalId"] == "pregnancy" and form["icon"] == "icon-pregnancy"
    assert form["context"]["person"] is True and form["title"][1]["locale"] == "sw"
    media = (stack.project / "forms/app/pregnancy-media/images/danger.png").read_bytes()
    assert form["_attachments"]["images/danger.png"]["digest"] == digest(media)
    assert await stack.attachment("form:pregnancy", "images/danger.png") == media
    xml = (stack.project / "forms/app/pregnancy.xml").read_bytes()
    assert await stack.attachment("form:pregnancy", "xml") == xml
    contact_form = await medic.get("form:contact:person:create")
    assert contact_form["internalId"] == "contact:person:create"
    assert contact_form["context"] == {"person": False, "place": False} and "duplicate_check" in contact_form

    resources = await medic.get("resources")
    assert resources["resources"] == project_json(stack, "resources.json")
    assert list(resources["_attachments"]) == ["icon-pregnancy.png"]
    branding = await medic.get("branding")
    assert branding["title"] == "Jamii Health" and list(branding["_attachments"]) == ["logo.png"]
    assert (await medic.get("partners"))["resources"] == {"county": "partner.png"}
    swahili = await medic.get("messages-sw")
    assert swahili["type"] == "translations" and swahili["code"] == "sw" and swahili["enabled"] is True
    assert swahili["generic"] == {} and swahili["custom"]["contact.type.clinic"] == "Kaya", "the 3.4+ layout"
    policies = await medic.get("privacy-policies")
    assert policies["privacy_policies"] == {"en": "privacy-en.html", "sw": "privacy-sw.html"}
    assert await stack.attachment("privacy-policies", "privacy-sw.html") == \
        (stack.project / "privacy-policies/privacy-sw.html").read_bytes()
    assert await stack.attachment("extension-libs", "bmi.js") == (stack.project / "extension-libs/bmi.js").read_bytes()
    tab = await medic.get("ui-extension:stock-tab")
    assert tab["type"] == "ui-extension" and tab["extension_type"] == "header_tab" and tab["roles"] == ["chw_supervisor"]
    assert await stack.attachment("ui-extension:stock-tab", "extension.js") == \
        (stack.project / "ui-extensions/stock-tab.js").read_bytes()
    indexes = (await stack.couch.get_json(medic.path + "/_index"))["indexes"]
    index = next(i for i in indexes if i["name"] == "reports_by_form_and_date")
    assert [list(f) for f in index["def"]["fields"]] == [["form"], ["reported_date"]]
    assert (await medic.get("database-indexes"))["database-indexes"] == project_json(stack, "database-indexes.json")

    imported = await medic.get_many(["dh1", "hc1", "hc2", "clinic1", "clinic2", "p1", "p2", "s1", "r1", "r2"])
    assert len(imported) == 10 and all("imported_date" in d for d in imported.values())

    users = stack.couch.db(stack.config.db_users)
    baraka = await users.get(f"org.couchdb.user:{stack.prefix}baraka")
    assert baraka["roles"] == ["chw"] and baraka["facility_id"] == ["clinic2"]  # a list, as CHT writes it
    assert (await medic.get(baraka["contact_id"]))["name"] == "Baraka Otieno", "a new contact at the place"
    amina = await users.get(f"org.couchdb.user:{stack.prefix}amina")
    assert (amina["facility_id"], amina["contact_id"]) == (["clinic1"], "p1")

    rows = (await medic.all_docs(include_docs=True))["rows"]
    sms = sorted((r["doc"]["from"], r["doc"]["sms_message"]["message"]) for r in rows if "sms_message" in r["doc"])
    assert sms == [("+254712000001", "Hello from Amina"), ("+254712000002", "Mtoto ni mgonjwa")]


async def test_second_run_of_the_uploads_changes_nothing(stack: Stack) -> None:
    again, written = await uploads_again(stack)
    for message in NO_CHANGES:
        assert message in again.output, message
    assert again.output.count("Configuration not uploaded as no changes found") == 3
    assert "Summary: 0 of 10 docs uploaded OK" in again.output, "the JSON docs exist already (conflicts)"
    assert written == 0, "nothing was written"


async def test_backup_all_forms_then_delete_forms(stack: Stack) -> None:
    await forms_backed_up_and_deleted(stack)
    backup = next((stack.project / "backups").glob("forms.*.bak"))
    pregnancy = backup / "form_pregnancy"
    assert (pregnancy / "xml").read_bytes() == (stack.project / "forms/app/pregnancy.xml").read_bytes()
    assert (pregnancy / "images" / "danger.png").read_bytes() == \
        (stack.project / "forms/app/pregnancy-media/images/danger.png").read_bytes()
    assert json.loads((pregnancy / "context.json").read_text())["person"] is True
    assert (backup / "form_contact_person_create" / "xml").exists()
    assert await stack.medic.get_or_none("form:pregnancy") is None
    assert await stack.medic.get_or_none("form:contact:person:create") is not None


async def test_move_contacts_then_upload_docs(stack: Stack) -> None:
    run = await contacts_moved(stack)
    assert "Summary: 3 of 3 docs uploaded OK" in run.output
    lineage = {"_id": "clinic1", "parent": {"_id": "hc2", "parent": {"_id": "dh1"}}}
    assert (await stack.medic.get("clinic1"))["parent"] == lineage["parent"]
    assert (await stack.medic.get("p1"))["parent"] == lineage
    assert (await stack.medic.get("r1"))["contact"] == {"_id": "p1", "parent": lineage}, "found by reports_by_freetext"
    assert (await stack.medic.get("clinic2"))["parent"]["_id"] == "hc2"


async def test_delete_contacts_disables_users_then_upload_docs(stack: Stack) -> None:
    run = await contacts_deleted(stack)
    assert "2 users disabled. 1 users updated." in run.output
    medic, users = stack.medic, stack.couch.db(stack.config.db_users)
    baraka_contact = (await medic.get(f"org.couchdb.user:{stack.prefix}baraka"))["contact_id"]
    gone = ["hc2", "clinic1", "clinic2", "p1", "p2", "r1", "r2", baraka_contact]
    assert await medic.get_many(gone) == {}, "the place, everything under it and the reports about them"
    assert set(await medic.get_many(["dh1", "hc1", "s1"])) == {"dh1", "hc1", "s1"}
    for name in ("baraka", "amina"):
        assert await users.get_or_none(f"org.couchdb.user:{stack.prefix}{name}") is None
        assert (await medic.get(f"org.couchdb.user:{stack.prefix}{name}"))["inactive"] is True
    name = await supervisor(stack)
    assert (await users.get(f"org.couchdb.user:{name}"))["facility_id"] == ["hc1"], "the place left"


async def test_bare_default_run(stack: Stack) -> None:
    run = await bare_run(stack)
    assert "All actions completed." in run.output and "Settings updated successfully" in run.output
    settings = (await stack.medic.get("settings"))["settings"]
    assert isinstance(settings["contact_summary"], str) and settings["contact_summary"]
    assert settings["tasks"]["isDeclarative"] is True and settings["tasks"]["rules"], "4.2+: no nools boilerplate"
    assert settings["tasks"]["targets"]["items"][0]["id"] == "pregnancies-registered"
    assert (await stack.medic.get("form:pregnancy"))["internalId"] == "pregnancy", "forms are uploaded again"
    assert "database-indexes file not uploaded as no changes found" in run.output


async def test_wrong_password_fails_with_authentication_failed(stack: Stack) -> None:
    run = await wrong_password(stack)
    assert run.code != 0
    assert f"Authentication failed connecting to http://{stack.config.couch_user}:****@127.0.0.1:{stack.port}/medic/" \
        in run.output


async def test_every_api_request_cht_conf_made_succeeded(stack: Stack) -> None:
    await bare_run(stack)
    await wrong_password(stack)
    api = [(m, p, s) for m, p, s in stack.responses if p.startswith("/api/") or "/_rewrite/" in p]
    called = {p for _, p, _ in api}
    for path in ("/api/deploy-info", "/api/couch-config-attachments", "/api/v1/settings/deprecated-transitions",
                 "/medic/_design/medic/_rewrite/app_settings/medic", "/api/v1/forms/validate", "/api/v1/users-info",
                 "/api/v1/users", "/api/v2/users", "/api/sms"):
        assert path in called, path
    assert [r for r in api if r[2] >= 400] == [], "a failing /api request costs cht-conf ~13 s of retries"
    assert [r for r in stack.responses if r[2] >= 500] == []
    assert {r for r in stack.responses if r[2] == 401} == {("GET", "/medic/", 401)}, "only the wrong password"


async def test_deploy_info_is_a_4x_version(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{stack.port}/api/deploy-info",
                            headers=admin_headers(stack.config)) as response:
            info = await response.json()
    ddoc = await stack.medic.get("_design/medic-client")
    assert info["version"] == ddoc["deploy_info"]["version"] == CHT_VERSION
    assert CHT_VERSION.startswith("4."), "cht-conf uses views below 5.0, Nouveau from 5.0"
