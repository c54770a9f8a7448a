"""Upgrades without downtime: stage a release's design docs, warm their views, then swap them in.

A release is a version and a set of design docs. Releases come from a builds
source (``UPGRADE_BUILDS``): a directory of bundles (``<dir>/<version>/ddocs/``,
laid out like this project's ``ddocs/``), or a CouchDB database of release docs
``medic:medic:<version>`` whose attachments ``<db>/<ddoc>.json`` are the
design docs — so an air-gapped server upgrades from a USB stick or a mirror.

Progress is recorded in the medic database's ``horti-upgrade`` doc
(``action``, ``staging_complete``, ``log``), which admins can watch. Staging
runs in the background, uses the same stage/swap code as the upload script,
and leaves the running version untouched until ``complete``; an API restart
resumes it. Downgrades are allowed: a release is whatever version is asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from . import ddocs, deploy_info
from .config import Config, split_credentials
from .couch import Couch
from .errors import BadRequest, Conflict, JamiiError, NotFound

log = logging.getLogger("jamii.upgrades")

UPGRADE_DOC = "horti-upgrade"
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,100}$")
STALE_SECONDS = 120  # a staging run silent this long is taken over by another process


def parse_build(body: Any) -> dict[str, str]:
    """Check ``{"build": {"namespace": "medic", "application": "medic", "version": ...}}``."""
    build = body.get("build") if isinstance(body, dict) else None
    if not isinstance(build, dict):
        raise BadRequest("build is required: {namespace, application, version}", field="build")
    for key in ("namespace", "application"):
        if build.get(key) != "medic":
            raise BadRequest(f"build.{key} must be \"medic\"", field=f"build.{key}")
    version = build.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise BadRequest("build.version must be a release version such as 4.2.0", field="build.version")
    return {"namespace": "medic", "application": "medic", "version": version}


# CouchDB refuses attachment names starting with "_": in a builds database the _users ddocs
# are stored under "users-db/" (CHT's name for that folder).
ATTACHMENT_DB_NAMES = {"_users": "users-db"}


def attachment_db(logical: str) -> str:
    """The folder of a logical database's ddocs among a release doc's attachments."""
    return ATTACHMENT_DB_NAMES.get(logical, logical)


def logical_db(attachment_folder: str) -> str:
    return next((k for k, v in ATTACHMENT_DB_NAMES.items() if v == attachment_folder), attachment_folder)


async def load_release(couch: Couch, config: Config, version: str) -> dict[str, list[dict[str, Any]]]:
    """The release's design docs by logical database; NotFound when the source has no such version."""
    source = config.upgrade_builds
    if source.startswith(("http://", "https://")):
        return await _load_from_couch(source, version, config)
    folder = Path(source) / version
    if not (folder / "ddocs").is_dir():
        raise NotFound(f"No release {version} in the builds source")
    try:
        return ddocs.load_all(folder / "ddocs")
    except ddocs.DdocError as exc:
        raise BadRequest(f"release {version} is malformed: {exc}", field="build.version") from None


async def _load_from_couch(url: str, version: str, config: Config) -> dict[str, list[dict[str, Any]]]:
    base, user, password = split_credentials(url)
    server, _, db_name = base.rpartition("/")
    async with Couch(server, user, password, timeout=config.couch_timeout) as builds:
        db = builds.db(db_name)
        release = await db.get_or_none(f"medic:medic:{version}")
        if release is None:
            raise NotFound(f"No release {version} in the builds source")
        result: dict[str, list[dict[str, Any]]] = {}
        for name in sorted(release.get("_attachments") or {}):
            if not name.endswith(".json") or "/" not in name:
                continue
            raw, _ = await db.get_attachment(release["_id"], name)
            try:
                ddoc = json.loads(raw)
            except ValueError:
                raise BadRequest(f"release {version}: {name} is not JSON", field="build.version") from None
            result.setdefault(logical_db(name.split("/", 1)[0]), []).append(ddoc)
        return result


def check_release(release: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse a release whose ddocs do not compile (before anything is staged)."""
    problems = ddocs.check([d for docs in release.values() for d in docs])
    if problems:
        raise BadRequest("invalid design documents in the release: " + "; ".join(problems), field="build.version")


class Upgrader:
    """Stages and completes upgrades for one API process; one instance per app."""

    def __init__(self, couch: Couch, config: Config):
        self.couch = couch
        self.config = config
        self.medic = couch.db(config.db_medic)
        self.task: asyncio.Task[None] | None = None

    # -- the horti-upgrade doc ------------------------------------------

    async def status(self) -> dict[str, Any] | None:
        return await self.medic.get_or_none(UPGRADE_DOC)

    async def _log(self, doc: dict[str, Any], message: str, **fields: Any) -> None:
        doc.setdefault("log", []).append({"type": "info", "message": message, "date": int(time.time() * 1000)})
        doc.update(fields, staging_by=HOLDER, heartbeat=time.time())
        await self.medic.put(doc)
        log.info("upgrade %s: %s", doc["build_info"]["version"], message)

    # -- stage -------------------------------------------------------------

    async def start(self, build: dict[str, str], user: str, *, complete: bool) -> dict[str, Any]:
        """Begin staging (and completing, for a full upgrade) in the background; returns at once."""
        release = await load_release(self.couch, self.config, build["version"])
        check_release(release)
        current = await self.status()
        if current and not current.get("staging_complete") and not current.get("failed") and self._alive(current):
            raise Conflict("An upgrade is already being staged")
        doc = {"_id": UPGRADE_DOC, "user": user, "action": "install" if complete else "stage",
               "build_info": build, "staging_complete": False, "failed": False, "log": []}
        if current:
            doc["_rev"] = current["_rev"]
        await self._log(doc, f"{doc['action']} of {build['version']} requested by {user}")
        self.task = asyncio.create_task(self._stage(doc, release), name="upgrade-stage")
        return doc

    def _alive(self, doc: dict[str, Any]) -> bool:
        return time.time() - doc.get("heartbeat", 0) < STALE_SECONDS

    async def resume(self) -> None:
        """On start-up: take over a staging run that a stopped process left unfinished."""
        doc = await self.status()
        if not doc or doc.get("staging_complete") or doc.get("failed"):
            return
        if doc.get("staging_by") != HOLDER and self._alive(doc):
            return  # another live process is on it
        try:
            await self._log(doc, "resuming after a restart")
        except Conflict:
            return  # another process took it over first
        try:
            release = await load_release(self.couch, self.config, doc["build_info"]["version"])
        except JamiiError as exc:
            await self._fail(doc, f"cannot resume: {exc}")
            return
        self.task = asyncio.create_task(self._stage(doc, release), name="upgrade-stage")

    async def _stage(self, doc: dict[str, Any], release: dict[str, list[dict[str, Any]]]) -> None:
        try:
            for logical, docs in release.items():
                db = self.couch.db(self.config.databases.get(logical, logical))
                for ddoc in docs:
                    staged = await ddocs.stage(db, ddoc, progress=lambda line: log.info("%s", line))
                    await self._log(doc, f"{db.name}/{ddoc['_id']}: {'staged, views warm' if staged else 'unchanged'}")
            await self._log(doc, "staging complete", staging_complete=True)
            if doc["action"] == "install":
                await self.complete()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the doc for the admin
            log.exception("upgrade staging failed")
            await self._fail(doc, f"staging failed: {exc}")

    async def _fail(self, doc: dict[str, Any], message: str) -> None:
        """Record the failure and drop staged copies; the running version is untouched."""
        for logical in self.config.databases:
            db = self.couch.db(self.config.databases[logical])
            try:
                rows = (await db.all_docs(startkey=ddocs.STAGED_PREFIX, endkey=ddocs.STAGED_PREFIX + "\ufff0"))["rows"]
                for row in rows:
                    await db.delete(row["id"], row["value"]["rev"])
            except JamiiError:
                pass
        latest = await self.status() or doc
        latest.setdefault("log", []).append({"type": "error", "message": message, "date": int(time.time() * 1000)})
        latest.update(failed=True, staging_complete=False)
        try:
            await self.medic.put(latest)
        except JamiiError:
            log.error("could not record the upgrade failure: %s", message)

    # -- complete ------------------------------------------------------------

    async def complete(self) -> dict[str, Any]:
        """Swap the staged ddocs in; NotFound when nothing is staged."""
        doc = await self.status()
        if not doc or not doc.get("staging_complete") or doc.get("failed"):
            raise NotFound("No upgrade has been staged")
        version = doc["build_info"]["version"]
        release = await load_release(self.couch, self.config, version)
        for logical, docs in release.items():
            db = self.couch.db(self.config.databases.get(logical, logical))
            for ddoc in docs:
                if ddoc["_id"] == deploy_info.CLIENT_DDOC:
                    ddoc = {**ddoc, "deploy_info": deploy_info.deploy_info(doc.get("user"), release=version)}
                await ddocs.swap(db, ddoc)
            await ddocs.cleanup_indexes(db)
        await self.medic.delete(doc["_id"], doc["_rev"])
        log.info("upgrade to %s complete", version)
        return {"version": version}
