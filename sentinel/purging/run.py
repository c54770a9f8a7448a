"""One purge run, as CHT's sentinel does it, all or nothing.

1. Compile the admin's function (``purge.fn``) in a sandbox.
2. The role sets: each offline user's roles, de-duplicated and sorted; one purge
   database per set, with ``_local/info``.
3. Contacts in batches (``medic/contacts_by_type_id``), with the records about
   them (``medic/docs_by_replication_key``) grouped as ``groups`` says; the function
   is called per group and role set, and the ids it returns that belong to the
   group are to be purged; every other doc of the group is to be un-purged. A
   batch with too many records is halved, and a contact that alone has too many
   is skipped (listed in the log), as CHT does.
4. Unallocated reports and messages, one call per doc and role set; tasks in a
   terminal state for 60 days and targets older than 6 months, purged for every
   role set without a call.
5. The differences with what the purge databases hold are staged (``staging``),
   then applied, then logged as ``purgelog:<ms>`` in the sentinel database.

A function that fails (syntax, exception, too slow, too much memory, too deep)
stops the run: nothing is applied, ``purgelog:error:<ms>`` says what failed and
where, and one error line is logged. CouchDB becoming unreachable stops it too
(the scheduler tries again).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

from api.auth import Principal
from api.cht.purging.names import INFO_ID, purge_db_name, role_hash, sorted_unique_roles
from api.cht.purging.store import purged_revs
from api.cht.visibility import UNASSIGNED_KEY
from api.config import Config
from api.couch import Couch, Database
from api.errors import Conflict
from api.permissions import is_offline

from . import groups as grouping
from .sandbox import PurgeFunctionError, Sandbox
from .staging import Staging, create_admin_only

log = logging.getLogger("jamii.sentinel.purging")

KEY_BATCH = 2000   # subject keys per view request
LOOKUP_BATCH = 10000  # ids per purge database lookup: one request per role set for most batches
USERS_PAGE = 1000


@dataclass(frozen=True)
class Limits:
    """CHT's batch sizes and expiry periods (tests and the bench make them smaller)."""

    contacts: int = 1000       # contacts per batch, at most
    max_records: int = 20000   # more records than this in a batch: halve it; one contact alone: skip it
    min_records: int = 5000    # fewer: double the batch (up to ``contacts``)
    page: int = 1000           # rows per page of unallocated docs, tasks, targets
    task_days: int = 60
    target_months: int = 6


@dataclass
class Report:
    """What a run did (also written, in CHT's shape plus ``counts``, as its purge log)."""

    status: str                       # done | error | skipped
    reason: str = ""
    purgelog: str | None = None
    roles: dict[str, list[str]] = field(default_factory=dict)
    skipped_contacts: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_kind: str | None = None
    at: dict[str, Any] | None = None
    seconds: float = 0.0
    js_cpu_seconds: float = 0.0


class _Stop(Exception):
    """The function failed somewhere: carries where."""

    def __init__(self, error: PurgeFunctionError, at: dict[str, Any]):
        super().__init__(str(error))
        self.error = error
        self.at = at


Progress = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


async def role_sets(couch: Couch, config: Config, settings: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{hash: sorted roles}`` of every offline user's role set."""
    users = couch.db(config.db_users)
    found: dict[str, list[str]] = {}
    params: dict[str, Any] = {"include_docs": True, "limit": USERS_PAGE,
                              "startkey": "org.couchdb.user:", "endkey": "org.couchdb.user:\ufff0"}
    while True:
        rows = (await users.all_docs(**params))["rows"]
        for row in rows:
            doc = row.get("doc") or {}
            roles = doc.get("roles")
            if not isinstance(roles, list) or not roles or not isinstance(doc.get("name"), str):
                continue
            roles = [r for r in roles if isinstance(r, str)]
            if roles and is_offline(Principal(doc["name"], tuple(roles)), settings):
                found[role_hash(roles)] = sorted_unique_roles(roles)
        if len(rows) < USERS_PAGE:
            return found
        params.update(startkey=rows[-1]["id"], skip=1)


class _Run:
    def __init__(self, couch: Couch, config: Config, sandbox: Sandbox, roles: dict[str, list[str]],
                 staging: Staging, limits: Limits, now: dt.datetime, progress: Progress):
        self.couch = couch
        self.medic = couch.db(config.db_medic)
        self.config = config
        self.sandbox = sandbox
        self.roles = roles
        self.hashes = sorted(roles)
        self.staging = staging
        self.limits = limits
        self.now = now
        self.progress = progress
        self.skipped: list[str] = []
        self.counts = {"contacts": 0, "groups": 0, "calls": 0, "records": 0, "staged": 0}

    def purge_db(self, hash_: str) -> Database:
        return self.couch.db(purge_db_name(self.medic.name, hash_))

    async def init_purge_dbs(self) -> None:
        for hash_, roles in self.roles.items():
            db = await create_admin_only(self.couch, purge_db_name(self.medic.name, hash_))
            try:
                await db.put({"_id": INFO_ID, "roles": roles})
            except Conflict:
                pass

    async def diff_and_stage(self, ids: list[str], should: Mapping[str, set[str]]) -> None:
        """Stage, per role set, what differs between ``should`` (ids to purge) and the purge database."""
        lookups = await asyncio.gather(*(purged_revs(self.purge_db(h), ids, LOOKUP_BATCH) for h in self.hashes))
        for hash_, already in zip(self.hashes, lookups):
            wanted = should.get(hash_, set())
            purge = [i for i in ids if i in wanted and i not in already]
            unpurge = {i: rev for i, rev in already.items() if i not in wanted}
            self.counts["staged"] += await self.staging.stage(hash_, dict.fromkeys(purge), unpurge)
        await self.progress()

    async def call(self, batch: list[tuple[grouping.Group, list[str] | None]]) -> dict[str, set[str]]:
        """The function over each group (per role set); ``{hash: ids to purge}``. A group's own ids only."""
        calls, owners = [], []
        for group, single in batch:
            for hash_ in self.hashes:
                calls.append((self.roles[hash_], group.contact, group.reports, group.messages))
                owners.append((group, hash_, single))
        try:
            results = await self.sandbox.call_many(calls)
        except PurgeFunctionError as exc:
            group, hash_, _ = owners[exc.index or 0]
            raise _Stop(exc, {**group.where, "roles": self.roles[hash_]}) from None
        self.counts["calls"] += len(calls)
        should: dict[str, set[str]] = {h: set() for h in self.hashes}
        for (group, hash_, single), result in zip(owners, results):
            if result is None:
                continue
            allowed = set(single) if single is not None else set(group.ids)
            should[hash_].update(i for i in result if i in allowed)
        return should

    # -- contacts -------------------------------------------------------------------------------

    async def contacts(self) -> None:
        size, after = self.limits.contacts, None
        while True:
            params: dict[str, Any] = {"include_docs": True, "limit": size}
            if after is not None:
                params.update(startkey=after, skip=1)
            rows = (await self.medic.view("medic", "contacts_by_type_id", **params))["rows"]
            contacts = [r["doc"] for r in rows if r.get("doc")]
            if not rows:
                return
            records = await self._records(contacts)
            if records is None:  # too many records for this batch
                if size > 1:
                    size //= 2
                    log.warning("purging: too many records; %d contacts per batch now", size)
                    continue
                log.warning("purging: too many records about contact %s; skipped", rows[0]["id"])
                self.skipped.extend(r["id"] for r in rows)
                after = rows[-1]["key"]
                continue
            record_rows, docs = records
            if len(record_rows) < self.limits.min_records:
                size = min(self.limits.contacts, size * 2)
            batch = grouping.assign(contacts, record_rows, docs)
            self.counts["contacts"] += len(contacts)
            self.counts["groups"] += len(batch)
            self.counts["records"] += len(docs)
            should = await self.call([(g, None) for g in batch])
            await self.diff_and_stage([i for g in batch for i in g.ids], should)
            after = rows[-1]["key"]
            if len(rows) < params["limit"]:
                return

    async def _records(self, contacts: list[dict[str, Any]]
                       ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]] | None:
        """The record rows about these contacts and their docs; None when there are too many."""
        contact_ids = {c["_id"] for c in contacts}
        keys = list(dict.fromkeys(k for c in contacts for k in grouping.contact_subject_ids(c)))
        kept: list[dict[str, Any]] = []
        docs: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), KEY_BATCH):
            rows = await self.medic.view("medic", "docs_by_replication_key", keys=keys[start:start + KEY_BATCH],
                                         include_docs=True)
            for row in rows["rows"]:
                if grouping.relevant(row, contact_ids) and row.get("doc"):
                    docs[row["id"]] = row.pop("doc")
                    kept.append(row)
            if len(kept) > self.limits.max_records:
                return None
        return kept, docs

    # -- unallocated records, tasks, targets ----------------------------------------------------

    async def unallocated(self) -> None:
        async for rows in _pages(self.medic.iter_view("medic", "docs_by_replication_key", key=UNASSIGNED_KEY,
                                                      include_docs=True, page_size=self.limits.page),
                                 self.limits.page):
            docs = list({r["id"]: r["doc"] for r in rows if r.get("doc")}.values())
            batch = [(grouping.Group(contact={}, reports=[d]) if d.get("form") else
                      grouping.Group(contact={}, messages=[d]), [d["_id"]]) for d in docs]
            should = await self.call(batch)
            await self.diff_and_stage([d["_id"] for d in docs], should)

    async def tasks(self) -> None:
        end = (self.now.astimezone() - dt.timedelta(days=self.limits.task_days)).strftime("%Y-%m-%d")
        async for rows in _pages(self.medic.iter_view("medic", "tasks_in_terminal_state", startkey="", endkey=end,
                                                      page_size=self.limits.page), self.limits.page):
            await self._everyone(list(dict.fromkeys(r["id"] for r in rows)))

    async def targets(self) -> None:
        local = self.now.astimezone()
        months = local.year * 12 + local.month - 1 - self.limits.target_months
        end = f"target~{months // 12:04d}-{months % 12 + 1:02d}~"
        params: dict[str, Any] = {"startkey": "target~", "endkey": end, "limit": self.limits.page}
        while True:
            rows = (await self.medic.all_docs(**params))["rows"]
            if rows:
                await self._everyone([r["id"] for r in rows])
            if len(rows) < self.limits.page:
                return
            params.update(startkey=rows[-1]["id"], skip=1)

    async def _everyone(self, ids: list[str]) -> None:
        """Docs every role set purges, without asking the function."""
        await self.diff_and_stage(ids, {h: set(ids) for h in self.hashes})


async def _pages(rows: AsyncIterator[dict[str, Any]], size: int) -> AsyncIterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    async for row in rows:
        page.append(row)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def _write_log(sentinel: Database, report: Report, finished: dt.datetime) -> None:
    """CHT's purge log: ``purgelog:<ms>`` (or ``purgelog:error:<ms>``) with the run's date, roles and duration."""
    doc: dict[str, Any] = {"_id": report.purgelog, "date": _iso(finished), "roles": report.roles,
                           "duration": round(report.seconds * 1000), "skipped_contacts": report.skipped_contacts,
                           "counts": report.counts}
    if report.error is not None:
        doc.update(error=report.error, error_kind=report.error_kind, at=report.at)
    try:
        await sentinel.put(doc)
    except Conflict:
        pass  # written already by a run that stopped just after


async def _finish_staged(couch: Couch, config: Config, staging: Staging) -> None:
    """Apply what a run left staged when it stopped half-way through applying, and log it; drop anything else."""
    state = await staging.state()
    if state is None:
        return
    if state.get("phase") == "apply" and isinstance(state.get("purgelog"), str):
        applied = await staging.apply()
        report = Report("done", purgelog=state["purgelog"], roles=state.get("roles") or {},
                        skipped_contacts=state.get("skipped_contacts") or [],
                        counts={**(state.get("counts") or {}), "purged": applied.purged, "unpurged": applied.unpurged})
        report.seconds = max(0.0, time.time() - dt.datetime.fromisoformat(state["started"]).timestamp())
        await _write_log(couch.db(config.db_sentinel), report, _utcnow())
        log.info("purging: finished applying the run %s that had stopped", state.get("run_id"))
    await staging.drop()


async def run(couch: Couch, config: Config, settings: Mapping[str, Any], *, now: dt.datetime | None = None,
              limits: Limits = Limits(), progress: Progress = _nothing) -> Report:
    """One purge run; returns what it did. ``progress`` is awaited after every batch (the job's lease)."""
    now = now or _utcnow()
    staging = Staging(couch, config.db_medic)
    await _finish_staged(couch, config, staging)
    purge = settings.get("purge")
    source = purge.get("fn") if isinstance(purge, Mapping) else None
    if not isinstance(source, str) or not source.strip():
        log.info("purging: no purge function configured")
        return Report("skipped", reason="no purge function configured")
    sandbox = Sandbox(source, settings.get("permissions"), timeout_ms=config.purge_call_timeout_ms,
                      memory_mb=config.purge_memory_mb)
    try:
        return await _run(couch, config, settings, sandbox, staging, now, limits, progress)
    finally:
        sandbox.close()


async def _run(couch: Couch, config: Config, settings: Mapping[str, Any], sandbox: Sandbox, staging: Staging,
               now: dt.datetime, limits: Limits, progress: Progress) -> Report:
    clock = time.monotonic()
    sentinel = couch.db(config.db_sentinel)
    report = Report("done")
    work: _Run | None = None
    try:
        await sandbox.open()
        report.roles = await role_sets(couch, config, settings)
        if not report.roles:
            log.info("purging: no offline users; skipped")
            return Report("skipped", reason="no offline users")
        state = {"run_id": uuid.uuid4().hex, "started": now.isoformat(), "roles": report.roles}
        await staging.start(state)
        work = _Run(couch, config, sandbox, report.roles, staging, limits, now, progress)
        await work.init_purge_dbs()
        await work.contacts()
        await work.unallocated()
        await work.tasks()
        await work.targets()
    except (PurgeFunctionError, _Stop) as exc:
        failure = exc.error if isinstance(exc, _Stop) else exc
        await staging.drop()
        report.status, report.error, report.error_kind = "error", failure.message, failure.kind
        report.at = exc.at if isinstance(exc, _Stop) else None
        if work is not None:
            report.counts, report.skipped_contacts = dict(work.counts), list(work.skipped)
        report.seconds, report.js_cpu_seconds = time.monotonic() - clock, sandbox.cpu_seconds
        finished = _utcnow()
        report.purgelog = f"purgelog:error:{_ms(finished)}"
        await _write_log(sentinel, report, finished)
        log.error("purging stopped, nothing purged: the purge function failed (%s) at %s: %s",
                  report.error_kind, report.at or "compile", report.error.splitlines()[0] if report.error else "")
        return report
    finished = _utcnow()
    report.purgelog = f"purgelog:{_ms(finished)}"
    report.skipped_contacts = work.skipped
    await staging.mark_apply({**state, "purgelog": report.purgelog, "skipped_contacts": work.skipped,
                              "counts": work.counts})
    applied = await staging.apply()
    report.counts = {**work.counts, "purged": applied.purged, "unpurged": applied.unpurged}
    report.seconds, report.js_cpu_seconds = time.monotonic() - clock, sandbox.cpu_seconds
    await _write_log(sentinel, report, _utcnow())
    await staging.drop()
    log.info("purging done in %.1fs: %d purged, %d un-purged, %d role set(s), %d contact(s) skipped",
             report.seconds, applied.purged, applied.unpurged, len(report.roles), len(work.skipped))
    return report
