"""Lineage: how contacts and reports point up the hierarchy, stored small and filled in on read.

Docs are stored with a **minified** lineage, as CHT does: ``parent`` is
``{"_id": ..., "parent": {"_id": ..., ...}}`` (ids only, all the way up) and a
``contact`` is ``{"_id": ..., "parent": <minified lineage of that contact>}``.
Because the whole chain of ancestor ids is in the doc, every ancestor can be
fetched at once.

``Hydrator`` fills lineages in (ancestors as full docs, each with its primary
contact; a report's contact, patient and place) with one batched fetch per
level: ancestors first, then their contacts, then what only those revealed;
three rounds at most whatever the number of docs. It does no I/O itself: it
is given ``fetch`` (ids -> docs, e.g. one ``_all_docs?keys``) and
``resolve_shortcodes`` (short ids -> contact docs), so the rules are tested
without a database. A ``visible`` predicate keeps docs a caller may not see as
bare ``{_id, parent}`` stubs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Awaitable, Callable, Iterable

from .contact_types import CONTACT_DOC_TYPES

Doc = dict[str, Any]
Fetch = Callable[[list[str]], Awaitable[Mapping[str, Doc]]]
Visible = Callable[[Mapping[str, Any]], bool]

MAX_DEPTH = 64  # no real hierarchy is deeper; stops a malformed doc from looping


def _id_of(node: Any) -> str | None:
    if isinstance(node, Mapping):
        value = node.get("_id")
        if isinstance(value, str) and value:
            return value
    return None


def parent_ids(doc: Mapping[str, Any] | None) -> list[str]:
    """Ids of a doc's ancestors, nearest first, read from its (minified or hydrated) ``parent`` chain."""
    ids: list[str] = []
    node = doc.get("parent") if isinstance(doc, Mapping) else None
    while isinstance(node, Mapping) and len(ids) < MAX_DEPTH:
        node_id = _id_of(node)
        if node_id is None:
            break
        ids.append(node_id)
        node = node.get("parent")
    return ids


def lineage_ids(doc: Mapping[str, Any]) -> list[str]:
    """The doc's own id followed by its ancestors' ids: index i is the ancestor i levels up."""
    own = _id_of(doc)
    return ([own] if own else []) + parent_ids(doc)


def minify_lineage(node: Any) -> dict[str, Any] | None:
    """``{"_id", "parent": {...}}`` of a (possibly hydrated) lineage; None when it has no id."""
    chain: list[str] = []
    while isinstance(node, Mapping) and len(chain) < MAX_DEPTH:
        node_id = _id_of(node)
        if node_id is None:
            break
        chain.append(node_id)
        node = node.get("parent")
    result: dict[str, Any] | None = None
    for node_id in reversed(chain):
        result = {"_id": node_id, "parent": result} if result else {"_id": node_id}
    return result


def minify_contact(contact: Any) -> Any:
    """A ``contact`` field as stored: ``{"_id", "parent": <minified lineage>}``."""
    contact_id = _id_of(contact)
    if contact_id is None:
        return contact
    result: dict[str, Any] = {"_id": contact_id}
    parent = minify_lineage(contact.get("parent"))
    if parent:
        result["parent"] = parent
    return result


def minify(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the doc as it should be stored: lineages minified, hydrated report subjects dropped."""
    result = dict(doc)
    if isinstance(result.get("parent"), Mapping):
        parent = minify_lineage(result["parent"])
        if parent:
            result["parent"] = parent
        else:
            del result["parent"]
    if _id_of(result.get("contact")):
        result["contact"] = minify_contact(result["contact"])
    if result.get("type") == "data_record":
        result.pop("patient", None)
        result.pop("place", None)
    if has_linked_docs(result):
        result["linked_docs"] = minify_linked_docs(result["linked_docs"])
    return result


def has_linked_docs(doc: Mapping[str, Any]) -> bool:
    """A contact doc's ``linked_docs`` (a key -> doc id object) is filled and minified; anyone else's is not."""
    return doc.get("type") in CONTACT_DOC_TYPES and isinstance(doc.get("linked_docs"), Mapping)


def minify_linked_docs(linked: Mapping[str, Any]) -> dict[str, Any]:
    """Each linked doc as its id, as CHT stores them: an id stays, a doc becomes its ``_id``, a falsy value stays,
    and anything else (a doc without an id, a number) is dropped."""
    result: dict[str, Any] = {}
    for key, value in linked.items():
        if isinstance(value, str) or value is None or value is False or (type(value) in (int, float) and not value):
            result[key] = value
        elif isinstance(value, Mapping) and value.get("_id") is not None:
            result[key] = value["_id"]
    return result


def is_report(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == "data_record" and bool(doc.get("form"))


def report_subject_keys(report: Mapping[str, Any]) -> dict[str, str]:
    """What a report names as its patient and place: a uuid or a short id, as CHT reads them."""
    fields = report.get("fields") if isinstance(report.get("fields"), Mapping) else {}
    keys: dict[str, str] = {}
    for name, candidates in (("patient", (fields.get("patient_uuid"), fields.get("patient_id"),
                                          report.get("patient_id"))),
                             ("place", (fields.get("place_uuid"), fields.get("place_id"),
                                        report.get("place_id")))):
        for value in candidates:
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                keys[name] = str(value)
                break
    return keys


def _is_contact_doc(doc: Mapping[str, Any] | None) -> bool:
    return isinstance(doc, Mapping) and doc.get("type") in CONTACT_DOC_TYPES


class Hydrator:
    """Fills in lineages of many docs with a few batched fetches (see the module doc)."""

    def __init__(self, fetch: Fetch, resolve_shortcodes: Fetch | None = None,
                 visible: Visible | None = None):
        self._fetch = fetch
        self._resolve_shortcodes = resolve_shortcodes
        self._visible = visible or (lambda doc: True)
        self.docs: dict[str, Doc] = {}
        self.by_shortcode: dict[str, Doc] = {}
        self._absent: set[str] = set()
        self._codes_tried: set[str] = set()
        self.rounds = 0

    async def hydrate(self, docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        docs = [doc for doc in docs if isinstance(doc, Mapping)]
        for doc in docs:
            doc_id = _id_of(doc)
            if doc_id:
                self.docs.setdefault(doc_id, dict(doc))
        for _ in range(MAX_DEPTH):
            ids, codes = self._needed(docs)
            ids = [i for i in dict.fromkeys(ids) if i not in self.docs and i not in self._absent]
            codes = [c for c in dict.fromkeys(codes) if c not in self._codes_tried]
            if not ids and not codes:
                break
            self.rounds += 1
            await asyncio.gather(self._load(ids), self._load_codes(codes))
        return [self._fill(doc) for doc in docs]

    async def _load(self, ids: list[str]) -> None:
        if not ids:
            return
        found = await self._fetch(ids)
        for doc_id in ids:
            doc = found.get(doc_id)
            if doc is None:
                self._absent.add(doc_id)
            else:
                self.docs[doc_id] = doc

    async def _load_codes(self, codes: list[str]) -> None:
        self._codes_tried.update(codes)
        if not codes or self._resolve_shortcodes is None:
            return
        found = await self._resolve_shortcodes(codes)
        for code, doc in found.items():
            self.by_shortcode[code] = doc
            doc_id = _id_of(doc)
            if doc_id:
                self.docs.setdefault(doc_id, doc)

    # -- what to fetch ------------------------------------------------------

    def _subject(self, key: str) -> Doc | None:
        doc = self.by_shortcode.get(key)
        if doc is None:
            doc = self.docs.get(key)
        return doc if _is_contact_doc(doc) else None

    def _needed(self, docs: list[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
        ids: list[str] = []
        codes: list[str] = []

        def lineage(holder: Mapping[str, Any]) -> None:
            for ancestor_id in parent_ids(holder):
                ids.append(ancestor_id)
                ancestor = self.docs.get(ancestor_id)
                contact_id = _id_of(ancestor.get("contact")) if ancestor else None
                if contact_id:
                    ids.append(contact_id)

        for doc in docs:
            lineage(doc)
            contact_id = _id_of(doc.get("contact"))
            if contact_id:
                ids.append(contact_id)
            if not is_report(doc):
                continue
            if isinstance(doc.get("contact"), Mapping):
                lineage(doc["contact"])
            for key in report_subject_keys(doc).values():
                subject = self._subject(key)
                if subject is None:
                    ids.append(key)
                    codes.append(key)
                    continue
                lineage(subject)
                subject_contact = _id_of(subject.get("contact"))
                if subject_contact:
                    ids.append(subject_contact)
        return ids, codes

    # -- putting it together --------------------------------------------------

    def _known(self, doc_id: str | None) -> Doc | None:
        doc = self.docs.get(doc_id) if doc_id else None
        return doc if doc is not None and self._visible(doc) else None

    def _lineage(self, node: Any) -> Any:
        """A filled copy of a ``parent`` chain: known, visible ancestors as docs with their contacts."""
        chain: list[Mapping[str, Any]] = []
        while isinstance(node, Mapping) and _id_of(node) and len(chain) < MAX_DEPTH:
            chain.append(node)
            node = node.get("parent")
        if not chain:
            return node
        result: dict[str, Any] | None = None
        for link in reversed(chain):
            ancestor = self._known(link["_id"])
            filled = dict(ancestor) if ancestor is not None else {"_id": link["_id"]}
            if result is not None:
                filled["parent"] = result
            else:
                filled.pop("parent", None)
            if ancestor is not None:
                filled["contact"] = self._contact(ancestor.get("contact"))
                if filled["contact"] is None:
                    del filled["contact"]
            result = filled
        return result

    def _contact(self, contact: Any, *, with_lineage: bool = False) -> Any:
        """A ``contact`` field filled with the contact's doc (its own lineage filled when asked)."""
        doc = self._known(_id_of(contact))
        if doc is None:
            return contact
        filled = dict(doc)
        if with_lineage and isinstance(filled.get("parent"), Mapping):
            filled["parent"] = self._lineage(filled["parent"])
        return filled

    def _fill(self, doc: Mapping[str, Any]) -> Doc:
        filled = dict(doc)
        if isinstance(filled.get("parent"), Mapping):
            filled["parent"] = self._lineage(filled["parent"])
        if not is_report(doc):
            if _id_of(filled.get("contact")):
                filled["contact"] = self._contact(filled["contact"])
            return filled
        contact = doc.get("contact")
        if _id_of(contact):
            contact_doc = self._known(_id_of(contact))
            if contact_doc is not None:
                filled_contact = dict(contact_doc)
                # the report's own copy of the lineage is what was true when it was written
                lineage_source = contact.get("parent") if isinstance(contact.get("parent"), Mapping) \
                    else contact_doc.get("parent")
                if isinstance(lineage_source, Mapping):
                    filled_contact["parent"] = self._lineage(lineage_source)
                filled["contact"] = filled_contact
        for name, key in report_subject_keys(doc).items():
            subject = self._subject(key)
            if subject is None or not self._visible(subject):
                continue
            filled_subject = dict(subject)
            if isinstance(subject.get("parent"), Mapping):
                filled_subject["parent"] = self._lineage(subject["parent"])
            if _id_of(subject.get("contact")):
                filled_subject["contact"] = self._contact(subject["contact"])
            filled[name] = filled_subject
        return filled
