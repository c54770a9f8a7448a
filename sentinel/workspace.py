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

import copy
from typing import Any, Iterable, Mapping

from api.cht import phones, shortcodes
from api.cht.contact_types import CONTACT_DOC_TYPES
from api.cht.lineage import Hydrator, report_subject_keys
from api.couch import Database

Doc = dict[str, Any]
MEMORY_LIMIT = 50_000


def phone_view_keys(doc: Mapping[str, Any]) -> set[str]:
    """The keys ``medic-client/contacts_by_phone`` emits for a contact (its map function, in Python)."""
    keys = set()
    for name in phones.FIELDS:
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            continue
        text = str(value).lstrip()
        key = ("+" if text.startswith("+") else "") + "".join(c for c in text if c.isdigit())
        if len(key.replace("+", "")) > 2:
            keys.add(key)
    return keys


class PhoneIndex:
    """Every contact's phone keys, read once from ``contacts_by_phone`` and then kept by the feed.

    Reports come through the feed after the contacts they come from, so the
    index answers "who has this number" for every report without asking the
    view again (which would first have to index everything written since).
    """

    def __init__(self) -> None:
        self.ids_by_key: dict[str, set[str]] | None = None
        self.keys_of: dict[str, set[str]] = {}

    async def ensure(self, db: Database) -> None:
        if self.ids_by_key is not None:
            return
        ids_by_key: dict[str, set[str]] = {}
        keys_of: dict[str, set[str]] = {}
        async for row in db.iter_view("medic-client", "contacts_by_phone", page_size=5000):
            ids_by_key.setdefault(row["key"], set()).add(row["id"])
            keys_of.setdefault(row["id"], set()).add(row["key"])
        self.ids_by_key, self.keys_of = ids_by_key, keys_of

    def update(self, doc_id: str, doc: Mapping[str, Any] | None) -> None:
        if self.ids_by_key is None:
            return
        for key in self.keys_of.pop(doc_id, set()):
            self.ids_by_key.get(key, set()).discard(doc_id)
        if doc is not None and not doc.get("_deleted") and doc.get("type") in CONTACT_DOC_TYPES:
            keys = phone_view_keys(doc)
            if keys:
                self.keys_of[doc_id] = keys
                for key in keys:
                    self.ids_by_key.setdefault(key, set()).add(doc_id)

    def ids(self, keys: Iterable[str]) -> set[str]:
        assert self.ids_by_key is not None
        return {i for key in keys for i in self.ids_by_key.get(key, ())}


class Memory:
    """What the engine remembers between batches: contacts, who has which phone or short id, registrations.

    The sentinel reads every change of the database in order, so it knows
    when a remembered answer may have gone stale: a contact in the feed is
    forgotten, with the answers that named it and the "nobody" answers for
    its phone numbers and short ids (it may be the one now); a registration in
    the feed is added to its subjects' lists. The engine's own writes update
    it the same way. So a batch asks the views only about what it has not
    seen before, instead of every batch asking the same questions while the
    views re-index. It also keeps the info docs it last wrote, so the change
    its own write makes needs no read of them.
    """

    def __init__(self) -> None:
        self.contacts: dict[str, Doc] = {}
        self.phones = getattr(self, "phones", None) or PhoneIndex()
        self.by_shortcode: dict[str, str | None] = {}
        self.owner_keys: dict[str, set[tuple[str, str]]] = {}
        self.registrations: dict[str, list[str]] = {}
        self.infos: dict[str, Doc] = {}
        self.reserved: set[str] = set()
        self.written: dict[str, tuple[str, Doc]] = {}

    def clear(self) -> None:
        """Forget everything (the phone index too: a failed batch may have left it ahead of the database)."""
        self.phones = PhoneIndex()
        self.__init__()  # type: ignore[misc]

    def _bounded(self) -> None:
        if len(self.contacts) + len(self.by_shortcode) + len(self.registrations) > MEMORY_LIMIT:
            infos, index, written = self.infos, self.phones, self.written
            self.__init__()  # type: ignore[misc]
            self.infos, self.phones, self.written = infos, index, written
        if len(self.infos) > MEMORY_LIMIT:
            self.infos = {}
        if len(self.reserved) > MEMORY_LIMIT:
            self.reserved = set()
        if len(self.written) > MEMORY_LIMIT:
            self.written = {}

    def wrote(self, doc: Doc) -> None:
        """A doc as the engine just saved it (``_rev`` included): its change in the feed needs no read."""
        self._bounded()
        self.written[doc["_id"]] = (doc["_rev"], doc)

    def own_write(self, doc_id: str, rev: str | None) -> Doc | None:
        """The doc the feed shows at ``rev``, if that revision is the engine's own write (once)."""
        entry = self.written.pop(doc_id, None)
        return entry[1] if entry is not None and entry[0] == rev else None

    def answer(self, key: str, contact_id: str | None) -> None:
        """Remember who has this short id (None: nobody)."""
        self._bounded()
        self.by_shortcode[key] = contact_id
        if contact_id:
            self.owner_keys.setdefault(contact_id, set()).add(("code", key))

    def forget_contact(self, doc_id: str, doc: Mapping[str, Any] | None) -> None:
        self.contacts.pop(doc_id, None)
        self.phones.update(doc_id, doc)
        for _, key in self.owner_keys.pop(doc_id, set()):
            self.by_shortcode.pop(key, None)
        if doc is None or doc.get("_deleted"):
            return
        for name in ("patient_id", "place_id"):
            if doc.get(name) not in (None, ""):
                self.by_shortcode.pop(str(doc[name]), None)

    def remember_contact(self, doc: Mapping[str, Any]) -> None:
        self._bounded()
        self.contacts[doc["_id"]] = copy.deepcopy(dict(doc))

    def remember_info(self, info: Doc) -> None:
        """An info doc as we last wrote it."""
        self._bounded()
        self.infos[info["doc_id"]] = info

    def add_registration(self, doc: Mapping[str, Any]) -> None:
        for key in set(report_subject_keys(doc).values()):
            ids = self.registrations.get(key)
            if ids is not None and doc["_id"] not in ids:
                ids.append(doc["_id"])

    def seen(self, doc: Mapping[str, Any] | None, doc_id: str, is_registration: bool) -> None:
        """A change in the feed (or our own write)."""
        if doc_id in self.contacts or doc_id in self.owner_keys or doc is None or doc.get("_deleted") \
                or doc.get("type") in CONTACT_DOC_TYPES:
            self.forget_contact(doc_id, doc)
        if doc is not None and is_registration:
            self.add_registration(doc)

    def unreserved(self, docs: Iterable[Mapping[str, Any] | None]) -> dict[str, str]:
        """The short ids these contacts carry that are not known to be reserved (code → contact id)."""
        codes = {}
        for doc in docs:
            if doc is None or doc.get("_deleted") or doc.get("type") not in CONTACT_DOC_TYPES:
                continue
            for name in ("patient_id", "place_id"):
                if doc.get(name) not in (None, "") and str(doc[name]) not in self.reserved:
                    codes[str(doc[name])] = doc["_id"]
        return codes


class Workspace:
    def __init__(self, db: Database, memory: Memory | None = None, *, codes: Database):
        self.db = db
        self.codes = codes  # where short ids are reserved (the sentinel database)
        self.memory = memory or Memory()
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
        self.after_save: list[Any] = []
        self.settings: Mapping[str, Any] = {}

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
        for doc_id in ids:
            if doc_id not in self.docs and doc_id in self.memory.contacts:
                self.docs[doc_id] = copy.deepcopy(self.memory.contacts[doc_id])
        missing = [i for i in ids if i not in self.docs and i not in self.absent]
        if missing:
            self.requests += 1
            found = await self.db.get_many(missing)
            for doc_id in missing:
                if doc_id in found:
                    self.docs[doc_id] = found[doc_id]
                    if found[doc_id].get("type") in CONTACT_DOC_TYPES:
                        self.memory.remember_contact(found[doc_id])
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

    async def fresh_codes(self, owners: list[str]) -> dict[str, str]:
        """A newly reserved short id for each of these contact ids (one request for all, see ``api.cht.shortcodes``).

        The reservation makes the code unique whatever the views have indexed,
        so no view is asked (and made to index the batch's writes).
        """
        if not owners:
            return {}
        self.requests += 1
        codes = await shortcodes.fresh(self.codes, list(owners))
        self.memory.reserved.update(codes)
        return dict(zip(owners, codes))

    def remember_shortcode(self, code: str, doc: Doc) -> None:
        """A contact made in this batch, findable by its short id before it is saved."""
        self.shortcodes[str(code)] = doc

    async def contacts_by_shortcode(self, codes: Iterable[str]) -> dict[str, Doc]:
        codes = [str(c) for c in dict.fromkeys(codes) if c not in (None, "")]
        remembered = self.memory.by_shortcode
        await self.fetch(remembered[c] for c in codes if c not in self.shortcodes and remembered.get(c))
        for code in codes:
            if code not in self.shortcodes and remembered.get(code) in self.docs:
                self.shortcodes[code] = self.docs[remembered[code]]  # type: ignore[index]
        wanted = [c for c in codes if c not in self.shortcodes and c not in remembered]
        if wanted:
            self.requests += 1
            body = await self.db.view("medic-client", "contacts_by_reference",
                                      keys=[["shortcode", c] for c in wanted], include_docs=True)
            for row in body["rows"]:
                if row.get("doc"):
                    doc = self.known(row["doc"])
                    self.shortcodes.setdefault(row["key"][1], doc)
                    self.memory.remember_contact(doc)
            for code in wanted:
                self.memory.answer(code, self.shortcodes[code]["_id"] if code in self.shortcodes else None)
        return {c: self.shortcodes[c] for c in codes if c in self.shortcodes}

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

    async def prefetch_lineages(self, docs: Iterable[Doc | None]) -> None:
        """Read what hydrating each of these docs needs, for all of them at once (a fetch per level).

        The ``hydrated`` calls that follow, one per doc, then find every doc
        they need here and read nothing (they used to take two requests each).
        """
        wanted = [d for d in docs if d and d.get("_id")]
        if wanted:
            await self._hydrator.hydrate(wanted)

    async def hydrated(self, doc: Doc) -> Doc:
        """A filled copy of any doc (e.g. a contact found by phone), its lineage included."""
        [full] = await self._hydrator.hydrate([doc])
        return full

    async def _hydrator_fetch(self, ids: list[str]) -> Mapping[str, Doc]:
        return await self.fetch(ids)

    async def _resolve_shortcodes(self, codes: list[str]) -> Mapping[str, Doc]:
        return await self.contacts_by_shortcode(codes)
