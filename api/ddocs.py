"""Design documents: built from the files under ``ddocs/``, compared with what is
installed, and swapped in without making queries wait on a cold index.

Layout: ``ddocs/<db>/<ddoc>/`` holds ``views/<view>/map.js`` (and optional
``reduce.js``), an optional ``validate_doc_update.js`` and an optional
``ddoc.json`` with any other fields. ``<db>`` is the logical database name
(``medic``, ``medic-sentinel``, ...), mapped to the configured one.

A changed ddoc is first written as a staged copy (``_design/:staged:<name>``,
without its ``validate_doc_update``), each of its views is queried until built,
and only then is the real ddoc overwritten. CouchDB (and PouchDB) key view
indexes by the views' content, not the ddoc's name, so the swapped-in ddoc
answers from the index the staged copy built. The same code serves the upload
script and the upgrade endpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from .config import ROOT, Config
from .couch import Couch, Database
from .errors import NotFound, ServiceUnavailable

log = logging.getLogger("jamii.ddocs")

DDOC_ROOT = ROOT / "ddocs"
STAGED_PREFIX = "_design/:staged:"
BUILTIN_REDUCES = frozenset({"_count", "_sum", "_stats", "_approx_count_distinct"})
_FUNCTION = re.compile(r"^\s*function\s*\w*\s*\(")

Progress = Callable[[str], None]


class DdocError(ValueError):
    """A design doc on disk is malformed; the message says which file and why."""


def ddoc_names(logical_db: str, root: Path = DDOC_ROOT) -> list[str]:
    folder = root / logical_db
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def load(logical_db: str, name: str, root: Path = DDOC_ROOT) -> dict[str, Any]:
    """Build one design doc from its folder."""
    folder = root / logical_db / name
    doc: dict[str, Any] = {"_id": f"_design/{name}"}
    extra = folder / "ddoc.json"
    if extra.exists():
        try:
            doc.update(json.loads(extra.read_text()))
        except ValueError as exc:
            raise DdocError(f"{extra}: invalid JSON: {exc}") from None
    views_dir = folder / "views"
    if views_dir.is_dir():
        views: dict[str, dict[str, str]] = {}
        for view_dir in sorted(p for p in views_dir.iterdir() if p.is_dir()):
            map_file = view_dir / "map.js"
            if not map_file.exists():
                raise DdocError(f"{view_dir}: no map.js")
            view = {"map": _read(map_file)}
            if (view_dir / "reduce.js").exists():
                view["reduce"] = _read(view_dir / "reduce.js")
            views[view_dir.name] = view
        doc["views"] = views
        doc.setdefault("language", "javascript")
    validate = folder / "validate_doc_update.js"
    if validate.exists():
        doc["validate_doc_update"] = _read(validate)
    return doc


def load_all(root: Path = DDOC_ROOT) -> dict[str, list[dict[str, Any]]]:
    """Every design doc on disk, by logical database."""
    if not root.is_dir():
        return {}
    return {db.name: [load(db.name, n, root) for n in ddoc_names(db.name, root)]
            for db in sorted(root.iterdir()) if db.is_dir()}


def functions(doc: dict[str, Any]) -> dict[str, str]:
    """The JavaScript sources of a ddoc, by a readable path."""
    found: dict[str, str] = {}
    for view_name, view in (doc.get("views") or {}).items():
        found[f"{doc['_id']}/views/{view_name}/map.js"] = view["map"]
        if "reduce" in view and view["reduce"] not in BUILTIN_REDUCES:
            found[f"{doc['_id']}/views/{view_name}/reduce.js"] = view["reduce"]
    if doc.get("validate_doc_update"):
        found[f"{doc['_id']}/validate_doc_update.js"] = doc["validate_doc_update"]
    return found


def check(docs: list[dict[str, Any]]) -> list[str]:
    """Problems with the ddocs' functions; compiled with Node when it is installed."""
    sources: dict[str, str] = {}
    for doc in docs:
        sources.update(functions(doc))
    problems = [f"{path}: does not start with 'function ('" for path, src in sources.items()
                if not _FUNCTION.match(src)]
    node = shutil.which("node")
    if node and sources:
        out = subprocess.run([node, str(ROOT / "scripts" / "check-js.js")], input=json.dumps(sources),
                             capture_output=True, text=True, timeout=60, check=True)
        problems.extend(f"{path}: {error}" for path, error in json.loads(out.stdout).items())
    return sorted(set(problems))


# Fields the server keeps on a ddoc that are not part of its definition.
RUNTIME_FIELDS = ("_id", "_rev", "deploy_info")


def _content(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in RUNTIME_FIELDS}


def _staged_copy(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return {"_id": STAGED_PREFIX + name, "language": doc.get("language", "javascript"),
            "views": doc.get("views", {})}


async def _put_over(db: Database, doc: dict[str, Any]) -> None:
    """Write a doc whatever revision is stored (ours is the truth for ddocs)."""
    current = await db.get_or_none(doc["_id"])
    body = dict(doc)
    body.pop("_rev", None)
    if current:
        body["_rev"] = current["_rev"]
    await db.put(body)


async def warm(db: Database, ddoc_id: str, views: dict[str, Any], progress: Progress,
               timeout: float = 3600) -> None:
    """Query each view until its index is built, saying how it goes."""
    name = ddoc_id[len("_design/"):]
    for view_name, view in views.items():
        started = time.monotonic()
        params: dict[str, Any] = {"limit": 0}
        if "reduce" in view:
            params["reduce"] = False
        query = asyncio.ensure_future(db.view(name, view_name, timeout=timeout, **params))
        while True:
            done, _ = await asyncio.wait({query}, timeout=5)
            if done:
                query.result()
                break
            tasks = await db.couch.get_json("/_active_tasks")
            busy = [t for t in tasks if t.get("type") == "indexer" and t.get("design_document") == ddoc_id]
            share = f"{busy[0].get('progress', 0)}%" if busy else "building"
            progress(f"  {db.name}/{ddoc_id}/{view_name}: {share} ({time.monotonic() - started:.0f}s)")
        progress(f"  {db.name}/{ddoc_id}/{view_name}: ready in {time.monotonic() - started:.1f}s")


async def stage(db: Database, doc: dict[str, Any], progress: Progress = lambda _: None) -> bool:
    """Write the staged copy of a ddoc that differs from the installed one and warm its views.

    Returns False when the installed ddoc already matches (nothing staged).
    """
    installed = await db.get_or_none(doc["_id"])
    if _content(installed) == _content(doc):
        return False
    views = doc.get("views") or {}
    if views:
        staged = _staged_copy(doc, doc["_id"][len("_design/"):])
        progress(f"{db.name}/{doc['_id']}: staging")
        await _put_over(db, staged)
        try:
            await warm(db, staged["_id"], views, progress)
        except BaseException:
            await _delete_if_present(db, staged["_id"])
            raise
    return True


async def swap(db: Database, doc: dict[str, Any]) -> str:
    """Put the ddoc in place (its views are warm if it was staged) and drop the staged copy.

    A ``deploy_info`` already on the installed ddoc is kept unless ``doc`` brings its own.
    """
    installed = await db.get_or_none(doc["_id"])
    wanted = {k: v for k, v in doc.items() if k != "_rev"}
    if installed and "deploy_info" in installed:
        wanted.setdefault("deploy_info", installed["deploy_info"])
    staged_id = STAGED_PREFIX + doc["_id"][len("_design/"):]
    if installed and {k: v for k, v in installed.items() if k != "_rev"} == wanted:
        await _delete_if_present(db, staged_id)
        return "unchanged"
    await _put_over(db, wanted)
    await _delete_if_present(db, staged_id)
    return "created" if installed is None else "updated"


async def cleanup_indexes(db: Database) -> None:
    """Let CouchDB remove index files no ddoc uses any more."""
    await db.couch.request("POST", f"{db.path}/_view_cleanup", json_body={})


async def install(db: Database, doc: dict[str, Any], progress: Progress = lambda _: None) -> str:
    """Bring one ddoc up to date: "unchanged", "created" or "updated"."""
    if not await stage(db, doc, progress):
        return "unchanged"
    outcome = await swap(db, doc)
    await cleanup_indexes(db)
    return outcome


async def _delete_if_present(db: Database, doc_id: str) -> None:
    current = await db.get_or_none(doc_id)
    if current:
        try:
            await db.delete(doc_id, current["_rev"])
        except NotFound:
            pass


async def upload_all(couch: Couch, config: Config, progress: Progress = print,
                     root: Path | None = None) -> dict[str, str]:
    """Check then install every ddoc on disk; returns ``{"<db>/<ddoc id>": outcome}``."""
    all_docs = load_all(root or config.ddocs_dir)
    problems = check([d for docs in all_docs.values() for d in docs])
    if problems:
        raise DdocError("invalid design documents:\n  " + "\n  ".join(problems))
    outcomes: dict[str, str] = {}
    for logical, docs in all_docs.items():
        db = couch.db(config.databases.get(logical, logical))
        for doc in docs:
            outcome = await install(db, doc, progress)
            outcomes[f"{db.name}/{doc['_id']}"] = outcome
            progress(f"{db.name}/{doc['_id']}: {outcome}")
    return outcomes


# Views the API's hot paths wait on, warmed first and from the start: an offline user's visible set and
# users-info (contacts_by_depth, docs_by_replication_key) and the short ids of reports' subjects.
FIRST = (("medic", "medic", "contacts_by_depth"), ("medic", "medic", "docs_by_replication_key"),
         ("medic", "medic-client", "contacts_by_reference"))
OTHERS_EVERY = 10  # ticks between looks at the databases other than medic


class ViewWarmer:
    """Keeps the views the API uses caught up, so that requests do not wait for an index to catch up with a
    backlog of writes, least of all all at once after CouchDB restarts.

    Which views: the hot-path ones (``FIRST``) from the start, then every view the API has queried (its
    CouchDB clients note them, ``Couch.views_used``), in that order. Views nothing queries are left to
    build when first asked: building them all would make requests wait behind that work instead.
    Every ``interval`` seconds it reads the medic database's ``update_seq`` (the other databases' every
    ``OTHERS_EVERY`` ticks) and, when it moved, queries those views with ``limit=0``, one at a time: the
    query brings the index up to date and returns nothing. The same happens as soon as CouchDB answers again
    after being away (the failed read is retried every ``interval``), so catching up starts at once, in
    priority order, once. On Apache CouchDB all views of a design doc share one index, so one view per design
    doc is queried (its background indexer, ken, does most of this already); pouchdb-server keeps an index
    per view and builds none unasked. Its CouchDB client should have the limit of catching-up work
    (``api.deadline.SHARED_WORK_SECONDS``).
    """

    def __init__(self, couch: Couch, config: Config, interval: float = 1.0, root: Path | None = None,
                 used: tuple[Couch, ...] = ()):
        self.couch = couch
        self.interval = interval
        self.used = (couch, *used)
        self.databases = {logical: name for logical, name in config.databases.items()}
        self.reduces: dict[tuple[str, str, str], bool] = {}  # (db name, ddoc, view) -> has a reduce
        for logical, docs in load_all(root or config.ddocs_dir).items():
            for doc in docs:
                for view_name, view in (doc.get("views") or {}).items():
                    key = (self.databases.get(logical, logical), doc["_id"][len("_design/"):], view_name)
                    self.reduces[key] = "reduce" in view
        self.medic = config.db_medic
        self._seqs: dict[str, object] = {}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0  # databases warmed since start (for tests)

    def views(self) -> dict[str, list[tuple[str, str]]]:
        """What to warm, by database: the hot-path views, then the others used so far (known ddocs only)."""
        chosen = [(self.databases.get(db, db), ddoc, view) for db, ddoc, view in FIRST]
        for client in self.used:
            chosen.extend(client.views_used)
        found: dict[str, list[tuple[str, str]]] = {}
        for key in dict.fromkeys(chosen):
            if key in self.reduces:
                found.setdefault(key[0], []).append(key[1:])
        return found

    def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="view-warmer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        tick, away = 0, True  # at start-up, as after an outage: look at everything
        while True:
            try:
                if away:
                    self._seqs.clear()  # a restarted server opens every index again: warm them all
                await self.couch.info()  # is it there? (an outage raises ServiceUnavailable)
                couchdb = await self.couch.is_apache_couchdb()
                for name, views in self.views().items():
                    if away or name == self.medic or tick % OTHERS_EVERY == 0:
                        await self._warm_if_moved(name, views, couchdb)
                if away:
                    log.info("views caught up")
                away = False
            except ServiceUnavailable:
                away = True
            except Exception as exc:  # noqa: BLE001 - it must never stop: a database not there yet, or a
                # server still starting that answers oddly; the next tick tries again
                log.warning("warming views: %r", exc)
            tick += 1
            await asyncio.sleep(self.interval)

    async def _warm_if_moved(self, name: str, views: list[tuple[str, str]], couchdb: bool) -> None:
        db = self.couch.db(name)
        try:
            seq = (await db.info()).get("update_seq")
        except NotFound:
            return
        if self._seqs.get(name) == seq:
            return
        warmed: set[str] = set()
        for ddoc, view in views:
            if couchdb and ddoc in warmed:
                continue  # CouchDB brings every view of the design doc up to date at once
            try:
                await db.view(ddoc, view, limit=0, **({"reduce": False} if self.reduces[(name, ddoc, view)] else {}))
            except NotFound:
                continue
            warmed.add(ddoc)
        self._seqs[name] = seq  # read before warming: writes made meanwhile are warmed next time
        self.rounds += 1
