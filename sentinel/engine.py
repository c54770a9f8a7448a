"""Runs the enabled transitions over a batch of changes.

Phase by phase, in the fixed order of the registry: each transition is
offered every doc of the batch; docs it already handled at this revision
(info doc; at any revision for a ``once`` transition) or that its filter
refuses are left out, the rest are hydrated if it asks, its ``prepare`` makes
the batch's lookups, and it runs on each doc in memory. All changes, to the
batch's docs and to the other docs transitions wrote through the workspace,
are saved in one write per doc (one ``_bulk_docs`` per batch), then the info
docs record the runs (one ``_bulk_docs``), and only then does the worker move
the checkpoint. The engine's ``Memory`` keeps lookups between batches, kept
true by the feed.

A transition that raises ``TransitionError`` (or anything unexpected) fails
alone: the failure is recorded on the doc (``errors``) and in the info doc,
the retry job tries it again with backoff a bounded number of times, and the
feed moves on. CouchDB being unreachable fails the whole batch instead: the
worker retries it from the checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Sequence

from api.cht import shortcodes
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.lineage import minify
from api.config import Config
from api.couch import Couch, rev_generation
from api.errors import ServiceUnavailable
from api.settings import SETTINGS_ID, SettingsStore

from . import info as infos
from .reports import is_registration
from .transitions import Context, Transition, TransitionError, add_error, is_enabled
from .translations import TRANSLATIONS_PREFIX, Translations
from .workspace import Memory, Workspace

log = logging.getLogger("jamii.sentinel.engine")


class Engine:
    def __init__(self, couch: Couch, config: Config, settings: SettingsStore, transitions: Sequence[Transition],
                 *, db_name: str | None = None, namespace: str = ""):
        self.couch = couch
        self.config = config
        self.settings = settings
        self.transitions = list(transitions)
        self.db = couch.db(db_name or config.db_medic)
        self.sentinel = couch.db(config.db_sentinel)
        self.namespace = namespace
        self.runs = 0
        self.requests = 0
        self.echoes = 0
        self.created = 0  # docs that did not exist before (the patients registrations make)
        self.translations = Translations()
        self.memory = Memory()
        self._memory_settings: dict[str, Any] | None = None

    async def process_batch(self, batch: list[dict[str, Any]]) -> None:
        """The worker's batch processor; a failed batch leaves the memory empty (it is read again)."""
        try:
            await self._process_batch(batch)
        except BaseException:
            self.memory.clear()
            raise

    async def _process_batch(self, batch: list[dict[str, Any]]) -> None:
        if any(change["id"] == SETTINGS_ID for change in batch) and self.db.name == self.config.db_medic:
            await self.settings.reload()
        if any(change["id"].startswith(TRANSLATIONS_PREFIX) for change in batch):
            self.translations.forget()
        settings = await self.settings.get()
        if settings is not self._memory_settings:
            self.memory.registrations.clear()  # which forms are registrations may have changed
            self._memory_settings = settings
        echoes = await self._fill_docs(batch)
        for change in batch:
            doc = change.get("doc")
            if change["id"] not in echoes:  # the memory learnt our own writes when it made them
                self.memory.seen(doc, change["id"], bool(doc) and is_registration(doc, settings))
        await self._adopt_codes([c.get("doc") for c in batch])
        live = [c for c in batch if c.get("doc") and not c.get("deleted") and not c["id"].startswith("_")]
        deleted = [c["id"] for c in batch if c.get("deleted")]
        await self.run_docs([(c["doc"], c.get("seq")) for c in live])
        if deleted:
            await self._drop_infos(deleted)

    async def _fill_docs(self, batch: list[dict[str, Any]]) -> set[str]:
        """Give each change its doc (the worker reads the feed without them); returns the ids of echoes.

        A change whose revision is the engine's own last write of the doc (an
        echo) gets the doc as it was written, from memory; the others are
        read in one request (the current revision, as ``include_docs`` gives).
        The echo still goes through the transitions: one whose filter refused
        the previous revision may apply to this one, and runs; those that ran
        recorded this revision in the info doc and are not run again.

        That request reads a quorum of each doc's copies (two of three). On a
        cluster the feed may come from a copy that already has a write the
        copies read lack (a write answered 202, or one still on its way
        between copies), and a
        change whose doc was not found would be passed over for good, its
        checkpoint moved past it. So a doc the read did not return, or
        returned at an older revision than the feed's, is read again from
        every live copy (``get_many(latest=True)``); only a doc gone from
        all of them (deleted or purged since) is left out.
        """
        echoes, wanted = set(), []
        for change in batch:
            rev = (change.get("changes") or [{}])[0].get("rev")
            own = self.memory.own_write(change["id"], rev)
            if "doc" in change:
                continue
            if change.get("deleted"):
                change["doc"] = {"_id": change["id"], "_rev": rev, "_deleted": True}
            elif own is not None:
                change["doc"] = own
                echoes.add(change["id"])
            else:
                wanted.append(change)
        if wanted:
            found = await self.db.get_many(c["id"] for c in wanted)
            stale = [c["id"] for c in wanted if _behind(found.get(c["id"]), c)]
            if stale:
                again = await self.db.get_many(stale, latest=True)
                for doc_id in stale:
                    found.pop(doc_id, None)
                found.update(again)
            for change in wanted:
                if change["id"] in found:
                    change["doc"] = found[change["id"]]
        self.echoes += len(echoes)
        return echoes

    async def run_docs(self, docs: list[tuple[dict[str, Any], Any]], only: set[str] | None = None,
                       retry: bool = False) -> dict[str, list[str]]:
        """Run transitions on these docs; returns which transitions ran on which doc id.

        ``only`` limits the run to some transitions and ``retry`` runs them even
        on a revision they already handled (the retry job uses both).
        """
        settings = await self.settings.get()
        enabled = [t for t in self.transitions if is_enabled(settings, t.name) and (only is None or t.name in only)]
        if not enabled or not docs:
            return {}
        info_docs = {doc["_id"]: self.memory.infos[doc["_id"]] for doc, _ in docs
                     if doc["_id"] in self.memory.infos}
        info_docs.update(await infos.load(self.sentinel, [doc["_id"] for doc, _ in docs if doc["_id"] not in info_docs],
                                          self.namespace))
        work = Workspace(self.db, self.memory, codes=self.sentinel)
        work.settings = settings
        for doc, _ in docs:
            work.add_feed(doc)
        base = Context(self.couch, self.config, settings, work=work,
                       translations=await self.translations.get(self.db))
        seqs = {doc["_id"]: seq for doc, seq in docs}
        ran: dict[str, list[tuple[str, bool]]] = {}
        changed: set[str] = set()
        ctx_of = {doc["_id"]: replace(base, seq=seqs[doc["_id"]]) for doc, _ in docs}
        for transition in enabled:
            candidates = [doc for doc, _ in docs
                          if self._wants(transition, doc, ctx_of[doc["_id"]], info_docs[doc["_id"]], retry,
                                         ran, changed)]
            if not candidates:
                continue
            try:
                if getattr(transition, "hydrate", False):
                    await work.hydrate(candidates)
                prepare = getattr(transition, "prepare", None)
                if prepare is not None:
                    await prepare(candidates, base)
            except ServiceUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - the transition fails on these docs, the feed goes on
                log.exception("transition %s failed to prepare", transition.name)
                for doc in candidates:
                    self._failed(doc, transition, exc, ran, changed)
                continue
            for doc in candidates:
                work.current = (doc["_id"], transition.name)
                if await self._run_one(doc, ctx_of[doc["_id"]], transition, ran, changed):
                    changed.add(doc["_id"])
            work.current = None
        saved_revs, retry_later = await self._save(work, [d for d, _ in docs if d["_id"] in changed])
        now = base.now_ms
        records: dict[str, Any] = {}
        for doc_id, outcomes in ran.items():
            if doc_id in changed and doc_id not in saved_revs:
                continue  # conflict: a newer revision is in the feed and will be handled then
            rev = saved_revs.get(doc_id) or work.docs[doc_id]["_rev"]
            records[doc_id] = [(name, dict(rev=rev, seq=seqs[doc_id], ok=ok and (doc_id, name) not in retry_later,
                                           now_ms=now, error="conflict writing another doc; retried"
                                           if (doc_id, name) in retry_later else None))
                               for name, ok in outcomes]
        await self._record(records, info_docs)
        self.runs += sum(len(o) for o in ran.values())
        self.requests += work.requests
        return {doc_id: [name for name, _ in outcomes] for doc_id, outcomes in ran.items()}

    async def _record(self, records: dict[str, Any], info_docs: dict[str, dict[str, Any]]) -> None:
        """Write the runs into the info docs (one request); an info doc someone else wrote is read again once."""
        for attempt in range(2):
            to_write = []
            for doc_id, runs in records.items():
                info = info_docs[doc_id]
                for name, fields in runs:
                    infos.record(info, name, **fields)
                to_write.append(info)
            if not to_write:
                return
            results = await self.sentinel.bulk_docs(to_write)
            for info, result in zip(to_write, results):
                if result.get("ok"):
                    info["_rev"] = result["rev"]
                    self.memory.remember_info(info)
            conflicts = [info["doc_id"] for info, r in zip(to_write, results) if r.get("error") == "conflict"]
            failed = [r for r in results if not r.get("ok") and r.get("error") != "conflict"]
            if failed or (conflicts and attempt):
                # Only a concurrent writer of the same info docs (a second sentinel) gets here.
                self.memory.clear()
                raise ServiceUnavailable(f"could not record {len(failed + conflicts)} info doc(s)")
            records = {doc_id: records[doc_id] for doc_id in conflicts}
            for doc_id in conflicts:
                self.memory.infos.pop(doc_id, None)
            info_docs = await infos.load(self.sentinel, conflicts, self.namespace)

    def _wants(self, transition: Transition, doc: dict[str, Any], ctx: Context, info: dict[str, Any],
               retry: bool, ran: dict[str, list[tuple[str, bool]]], changed: set[str]) -> bool:
        if not retry:
            if infos.has_run_on(info, transition.name, doc["_rev"]):
                return False
            if getattr(transition, "once", False) and infos.has_succeeded(info, transition.name):
                return False
        try:
            return bool(transition.filter(doc, ctx))
        except Exception as exc:  # noqa: BLE001 - a broken filter fails its transition alone
            log.exception("filter of %s failed on %s", transition.name, doc.get("_id"))
            self._failed(doc, transition, exc, ran, changed)
            return False

    async def _run_one(self, doc: dict[str, Any], ctx: Context, transition: Transition,
                       ran: dict[str, list[tuple[str, bool]]], changed: set[str]) -> bool:
        try:
            result = await transition.run(doc, ctx)
        except ServiceUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken transition must not stop the feed
            if not isinstance(exc, TransitionError):
                log.exception("transition %s failed on %s", transition.name, doc.get("_id"))
            self._failed(doc, transition, exc, ran, changed)
            return True
        ran.setdefault(doc["_id"], []).append((transition.name, True))
        return bool(result)

    @staticmethod
    def _failed(doc: dict[str, Any], transition: Transition, exc: Exception,
                ran: dict[str, list[tuple[str, bool]]], changed: set[str]) -> None:
        if isinstance(exc, TransitionError):
            add_error(doc, exc.code, exc.message)
        else:
            add_error(doc, f"{transition.name}_failed", f"{type(exc).__name__}: {exc}")
        changed.add(doc["_id"])
        ran.setdefault(doc["_id"], []).append((transition.name, False))

    async def _save(self, work: Workspace, feed_docs: list[dict[str, Any]]) -> tuple[dict[str, str],
                                                                                     set[tuple[str, str]]]:
        """Save the changed feed docs and the other docs transitions changed, in one request.

        Returns the new rev of each saved doc, and the (doc id, transition)
        runs whose write to another doc conflicted: those are retried later.
        """
        ids = {doc["_id"] for doc in feed_docs}
        docs = feed_docs + [work.docs[i] for i in work.written if i not in ids]
        saved = await self._save_docs(docs)
        retry_later: set[tuple[str, str]] = set()
        for doc_id, writers in work.written.items():
            if doc_id not in saved:
                retry_later.update(w for w in writers if w[0] != doc_id)
        for doc in docs:
            if doc["_id"] in saved:
                doc["_rev"] = saved[doc["_id"]]
                self._remember(doc, work)
                if saved[doc["_id"]].startswith("1-"):
                    self.created += 1
                    # a doc that never existed before (the patient a registration makes) has no info doc:
                    # only the sentinel writes them, and only for docs it read in the feed
                    self.memory.remember_info(infos.new_info(doc["_id"], self.namespace))
        for callback in work.after_save:
            callback(saved)
        return saved, retry_later

    def _remember(self, doc: dict[str, Any], work: Workspace) -> None:
        """Our own write, as the feed will show it later: the memory must not wait for that.

        It is kept as CouchDB stores it (through JSON, so no tuple or non-string
        key differs) for the change it makes in the feed.
        """
        stored = json.loads(json.dumps(minify(doc)))
        self.memory.wrote(stored)
        self.memory.seen(stored, doc["_id"], is_registration(stored, work.settings))
        if stored.get("type") in CONTACT_DOC_TYPES:
            self.memory.remember_contact(stored)
            for name in ("patient_id", "place_id"):
                if stored.get(name):
                    self.memory.answer(str(stored[name]), stored["_id"])

    async def _save_docs(self, docs: list[dict[str, Any]]) -> dict[str, str]:
        """Save changed docs in one request; returns the new rev of each saved doc."""
        if not docs:
            return {}
        results = await self.db.bulk_docs([minify(doc) for doc in docs])
        saved = {}
        for result in results:
            if result.get("ok"):
                saved[result["id"]] = result["rev"]
            elif result.get("error") == "conflict":
                log.info("%s changed while transitions ran; it will be handled again", result.get("id"))
            else:
                raise ServiceUnavailable(f"could not save {result.get('id')}: {result.get('error')}")
        return saved

    async def _adopt_codes(self, docs: list[dict[str, Any] | None]) -> None:
        """Reserve the short ids of contacts that got theirs without a reservation (replicated, written directly).

        Done before the batch hands out codes, so none of them is given again.
        """
        if self.db.name != self.config.db_medic:
            return
        codes = self.memory.unreserved(docs)
        if not codes:
            return
        for code in await shortcodes.adopt(self.sentinel, codes):
            log.warning("short id %s of %s is reserved for another contact", code, codes[code])
        self.memory.reserved.update(codes)

    async def _drop_infos(self, doc_ids: list[str]) -> None:
        """A deleted doc needs no info doc any more."""
        for doc_id in doc_ids:
            self.memory.infos.pop(doc_id, None)
        found = await self.sentinel.get_many(infos.info_id(d, self.namespace) for d in doc_ids)
        if found:
            await self.sentinel.bulk_docs([{"_id": i, "_rev": d["_rev"], "_deleted": True}
                                           for i, d in found.items()])


def _behind(doc: dict[str, Any] | None, change: dict[str, Any]) -> bool:
    """Whether a doc read for a feed change is missing, or older than the revision the feed names."""
    if doc is None:
        return True
    rev = (change.get("changes") or [{}])[0].get("rev")
    return rev_generation(doc.get("_rev")) < rev_generation(rev)
