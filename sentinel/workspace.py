"""What one batch shares: docs fetched once, lookups made once, and the writes to other docs.

Transitions change the doc of the change in place, but some also change
*other* docs (the patient a registration creates, the registration whose
schedule a visit clears, the contacts a mute report mutes). They fetch those
through the workspace, so every transition of the batch works on the same
object, and call ``write`` to have it saved: the engine saves the batch's docs
and these together, one write per doc, in one ``_bulk_docs``. A doc written
here by a transition is remembered with who wrote it, so that a conflict on it
retries that transition instead of losing its effect.

The workspace also hydrates docs (lineage, contact, patient and place, as
CHT's sentinel does before running transitions) with one batched fetch per
level for the whole batch, and keeps any lookup a transition wants to share
(``cache``).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from api.couch import Database
from api.lineage import Hydrator

Doc = dict[str, Any]


class Workspace:
    def __init__(self, db: Database):
        self.db = db
        self.docs: dict[str, Doc] = {}
        self.absent: set[str] = set()
        self.feed_ids: set[str] = set()
        self.written: dict[str, set[tuple[str, str]]] = {}
        self.cache: dict[str, Any] = {}
        self.current: tuple[str, str] | None = None
        self.shortcodes: dict[str, Doc] = {}
        self._hydrated: set[str] = set()
        self._hydrator = Hydrator(self._hydrator_fetch, self._resolve_shortcodes)
        self.requests = 0

    # -- docs ----------------------------------------------------------------

    def add_feed(self, doc: Doc) -> None:
        self.docs[doc["_id"]] = doc
        self.feed_ids.add(doc["_id"])

    def known(self, doc: Mapping[str, Any]) -> Doc:
        """The batch's own object for this doc (e.g. one read by a view): the first seen wins."""
        doc_id = doc["_id"]
        if doc_id not in self.docs:
            self.docs[doc_id] = dict(doc)
            self.absent.discard(doc_id)
        return self.docs[doc_id]

    async def fetch(self, ids: Iterable[str]) -> dict[str, Doc]:
        """Docs by id (the batch's objects), fetching the unknown ones in one request."""
        ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i]
        missing = [i for i in ids if i not in self.docs and i not in self.absent]
        if missing:
            self.requests += 1
            found = await self.db.get_many(missing)
            for doc_id in missing:
                if doc_id in found:
                    self.docs[doc_id] = found[doc_id]
                else:
                    self.absent.add(doc_id)
        return {i: self.docs[i] for i in ids if i in self.docs}

    async def get(self, doc_id: str | None) -> Doc | None:
        if not doc_id:
            return None
        return (await self.fetch([doc_id])).get(doc_id)

    def write(self, doc: Doc) -> None:
        """Save this doc (a new one, or one got from ``fetch``) with the batch."""
        self.docs[doc["_id"]] = doc
        self.absent.discard(doc["_id"])
        if self.current is not None:
            self.written.setdefault(doc["_id"], set()).add(self.current)

    # -- contacts by short id ----------------------------------------------------

    def remember_shortcode(self, code: str, doc: Doc) -> None:
        """A contact made in this batch, findable by its short id before it is saved."""
        self.shortcodes[str(code)] = doc

    async def contacts_by_shortcode(self, codes: Iterable[str]) -> dict[str, Doc]:
        codes = [str(c) for c in dict.fromkeys(codes) if c not in (None, "")]
        wanted = [c for c in codes if c not in self.shortcodes and ("code", c) not in self.absent_codes]
        if wanted:
            self.requests += 1
            body = await self.db.view("medic-client", "contacts_by_reference",
                                      keys=[["shortcode", c] for c in wanted], include_docs=True)
            for row in body["rows"]:
                if row.get("doc"):
                    self.shortcodes.setdefault(row["key"][1], self.known(row["doc"]))
            self.absent_codes.update(("code", c) for c in wanted if c not in self.shortcodes)
        return {c: self.shortcodes[c] for c in codes if c in self.shortcodes}

    @property
    def absent_codes(self) -> set[tuple[str, str]]:
        return self.cache.setdefault("_absent_codes", set())

    # -- hydration -----------------------------------------------------------------

    async def hydrate(self, docs: list[Doc]) -> None:
        """Fill in lineage, contact, patient and place of these docs, in place, once per batch."""
        todo = [d for d in docs if d["_id"] not in self._hydrated]
        if not todo:
            return
        filled = await self._hydrator.hydrate(todo)
        for doc, full in zip(todo, filled):
            doc.update(full)
            self._hydrated.add(doc["_id"])

    async def hydrated(self, doc: Doc) -> Doc:
        """A filled copy of any doc (e.g. a contact found by phone), its lineage included."""
        [full] = await self._hydrator.hydrate([doc])
        return full

    async def _hydrator_fetch(self, ids: list[str]) -> Mapping[str, Doc]:
        return await self.fetch(ids)

    async def _resolve_shortcodes(self, codes: list[str]) -> Mapping[str, Doc]:
        return await self.contacts_by_shortcode(codes)
