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
from typing import Any, Sequence

from api.config import Config
from api.couch import Couch
from api.errors import ServiceUnavailable
from api.settings import SETTINGS_ID, SettingsStore

from . import info as infos
from .transitions import Context, Transition, TransitionError, add_error, is_enabled

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

    async def process_batch(self, batch: list[dict[str, Any]]) -> None:
        """The worker's batch processor."""
        if any(change["id"] == SETTINGS_ID for change in batch) and self.db.name == self.config.db_medic:
            await self.settings.reload()
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
        ran: dict[str, list[tuple[str, bool]]] = {}
        changed_docs: dict[str, dict[str, Any]] = {}
        seqs: dict[str, Any] = {}
        for doc, seq in docs:
            ctx = Context(self.couch, self.config, settings, seq=seq)
            seqs[doc["_id"]] = seq
            outcomes, changed = await self._run_one(doc, ctx, enabled, info_docs[doc["_id"]], retry)
            if outcomes:
                ran[doc["_id"]] = outcomes
            if changed:
                changed_docs[doc["_id"]] = doc
        saved_revs = await self._save_docs(list(changed_docs.values()))
        now = Context(self.couch, self.config, settings).now_ms
        to_write = []
        for doc_id, outcomes in ran.items():
            if doc_id in changed_docs and doc_id not in saved_revs:
                continue  # conflict: a newer revision is in the feed and will be handled then
            doc = changed_docs.get(doc_id)
            rev = saved_revs.get(doc_id) or next(d for d, _ in docs if d["_id"] == doc_id)["_rev"]
            info = info_docs[doc_id]
            for name, ok in outcomes:
                infos.record(info, name, rev=rev, seq=seqs[doc_id], ok=ok, now_ms=now)
            to_write.append(info)
            if doc is not None:
                doc["_rev"] = rev
        if to_write:
            results = await self.sentinel.bulk_docs(to_write)
            failed = [r for r in results if not r.get("ok")]
            if failed:
                # Only a concurrent writer of the same info docs (a second sentinel) gets here.
                raise ServiceUnavailable(f"could not record {len(failed)} info doc(s): {failed[0]}")
        self.runs += sum(len(o) for o in ran.values())
        return {doc_id: [name for name, _ in outcomes] for doc_id, outcomes in ran.items()}

    async def _run_one(self, doc: dict[str, Any], ctx: Context, enabled: list[Transition], info: dict[str, Any],
                       retry: bool) -> tuple[list[tuple[str, bool]], bool]:
        outcomes: list[tuple[str, bool]] = []
        changed = False
        for transition in enabled:
            if not retry and infos.has_run_on(info, transition.name, doc["_rev"]):
                continue
            try:
                if not transition.filter(doc, ctx):
                    continue
                changed = await transition.run(doc, ctx) or changed
                outcomes.append((transition.name, True))
            except TransitionError as exc:
                add_error(doc, exc.code, exc.message)
                changed = True
                outcomes.append((transition.name, False))
            except ServiceUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken transition must not stop the feed
                log.exception("transition %s failed on %s", transition.name, doc.get("_id"))
                add_error(doc, f"{transition.name}_failed", f"{type(exc).__name__}: {exc}")
                changed = True
                outcomes.append((transition.name, False))
        return outcomes, changed

    async def _save_docs(self, docs: list[dict[str, Any]]) -> dict[str, str]:
        """Save changed docs in one request; returns the new rev of each saved doc."""
        if not docs:
            return {}
        results = await self.db.bulk_docs(docs)
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
