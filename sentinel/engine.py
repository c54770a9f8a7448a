"""Runs the enabled transitions over a batch of changes.

For each changed document, in the fixed order of the registry: skip a
transition that already handled this revision (info doc) or whose filter says
no; run the others on the doc in memory. All their changes are saved in one
write per doc (one ``_bulk_docs`` per batch), then the info docs record the
runs (one ``_bulk_docs``), and only then does the worker move the checkpoint.

A transition that raises ``TransitionError`` (or anything unexpected) fails
alone: the failure is recorded on the doc (``errors``) and in the info doc,
the retry job tries it again with backoff a bounded number of times, and the
feed moves on. CouchDB being unreachable fails the whole batch instead: the
worker retries it from the checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Sequence

from api.config import Config
from api.couch import Couch
from api.errors import ServiceUnavailable
from api.lineage import minify
from api.settings import SETTINGS_ID, SettingsStore

from . import info as infos
from .transitions import Context, Transition, TransitionError, add_error, is_enabled
from .translations import TRANSLATIONS_PREFIX, Translations
from .workspace import Workspace

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
        self.translations = Translations()

    async def process_batch(self, batch: list[dict[str, Any]]) -> None:
        """The worker's batch processor."""
        if any(change["id"] == SETTINGS_ID for change in batch) and self.db.name == self.config.db_medic:
            await self.settings.reload()
        if any(change["id"].startswith(TRANSLATIONS_PREFIX) for change in batch):
            self.translations.forget()
        live = [c for c in batch if c.get("doc") and not c.get("deleted") and not c["id"].startswith("_")]
        deleted = [c["id"] for c in batch if c.get("deleted")]
        await self.run_docs([(c["doc"], c.get("seq")) for c in live])
        if deleted:
            await self._drop_infos(deleted)

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
        info_docs = await infos.load(self.sentinel, [doc["_id"] for doc, _ in docs], self.namespace)
        work = Workspace(self.db)
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
        to_write = []
        for doc_id, outcomes in ran.items():
            if doc_id in changed and doc_id not in saved_revs:
                continue  # conflict: a newer revision is in the feed and will be handled then
            doc = work.docs[doc_id]
            rev = saved_revs.get(doc_id) or doc["_rev"]
            info = info_docs[doc_id]
            for name, ok in outcomes:
                later = (doc_id, name) in retry_later
                infos.record(info, name, rev=rev, seq=seqs[doc_id], ok=ok and not later, now_ms=now,
                             error="conflict writing another doc; retried" if later else None)
            to_write.append(info)
        if to_write:
            results = await self.sentinel.bulk_docs(to_write)
            failed = [r for r in results if not r.get("ok")]
            if failed:
                # Only a concurrent writer of the same info docs (a second sentinel) gets here.
                raise ServiceUnavailable(f"could not record {len(failed)} info doc(s): {failed[0]}")
        self.runs += sum(len(o) for o in ran.values())
        self.requests += work.requests
        return {doc_id: [name for name, _ in outcomes] for doc_id, outcomes in ran.items()}

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
        return saved, retry_later

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

    async def _drop_infos(self, doc_ids: list[str]) -> None:
        """A deleted doc needs no info doc any more."""
        found = await self.sentinel.get_many(infos.info_id(d, self.namespace) for d in doc_ids)
        if found:
            await self.sentinel.bulk_docs([{"_id": i, "_rev": d["_rev"], "_deleted": True}
                                           for i, d in found.items()])
