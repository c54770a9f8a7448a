"""Lineage: how contacts and reports point up the hierarchy, stored small and filled in on read.

Docs are stored with a **minified** lineage, as CHT does: ``parent`` is
``{"_id": ..., "parent": {"_id": ..., ...}}`` (ids only, all the way up) and a
``contact`` is ``{"_id": ..., "parent": <minified lineage of that contact>}``.
Because the whole chain of ancestor ids is in the doc, every ancestor can be
fetched at once.

``Hydrator`` fills lineages in exactly as cht-core's ``shared-libs/lineage`` does
(ancestors as full docs, each with its primary contact and linked docs; a
report's contact, patient and place), in its two modes (one doc, or a batch),
with batched fetches. It does no I/O itself: it is given ``fetch`` (ids -> docs,
e.g. one ``_all_docs?keys``) and ``resolve_shortcodes`` (short ids -> contact
docs), so the rules are tested without a database.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Awaitable, Callable, Iterable

from api.jsonparse import copy_json

from .contact_types import CONTACT_DOC_TYPES

Doc = dict[str, Any]
_READ_WITH = "\x00read with:"  # a hint key: what a ``with_lineage`` read of this doc read beside it last time
Fetch = Callable[[list[str]], Awaitable[Mapping[str, Doc]]]

MAX_DEPTH = 64  # no real hierarchy is deeper; stops a malformed doc from looping


_copy = copy_json  # not copy.deepcopy: hydration copies every doc it places, and deepcopy was a large share of
# a ``with_lineage`` read's CPU


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


def _truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (an empty object or array is true)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0
    return True


def _get_id(item: Any) -> str | None:
    """A reference's id: the string itself, or an object's ``_id``."""
    if isinstance(item, str):
        return item or None
    return _id_of(item)


def _is_contact_doc(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("type") in CONTACT_DOC_TYPES


def _is_data_record(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("type") == "data_record"


def _fills_linked_docs(doc: Any) -> bool:
    return _is_contact_doc(doc) and isinstance(doc.get("linked_docs"), Mapping)


def patient_id_of(report: Mapping[str, Any]) -> Any:
    """What hydration reads as a report's patient: ``fields.patient_id``, ``fields.patient_uuid``, ``patient_id``."""
    fields = report.get("fields")
    found = None
    if isinstance(fields, Mapping):
        found = fields.get("patient_id") if _truthy(fields.get("patient_id")) else fields.get("patient_uuid")
    return found if _truthy(found) else report.get("patient_id")


def place_id_of(report: Mapping[str, Any]) -> Any:
    """What hydration reads as a report's place: ``fields.place_id``, then ``place_id``."""
    fields = report.get("fields")
    found = fields.get("place_id") if isinstance(fields, Mapping) else None
    return found if _truthy(found) else report.get("place_id")


def _self_and_parents(node: Any) -> list[Any]:
    chain: list[Any] = []
    while _truthy(node) and len(chain) < MAX_DEPTH and not any(node is seen for seen in chain):
        chain.append(node)
        node = node.get("parent") if isinstance(node, Mapping) else None
    return chain


def _extract_parent_ids(node: Any) -> list[str]:
    return [i for i in (_id_of(n) for n in _self_and_parents(node)) if i]


def _chain_ids(node: Any) -> list[str]:
    ids: list[str] = []
    while _id_of(node) and len(ids) < MAX_DEPTH:
        ids.append(node["_id"])
        node = node.get("parent")
    return ids


def _contact_ids(docs: Iterable[Any]) -> list[str]:
    """Ids of the docs' ``contact`` and (contacts only) ``linked_docs``, each once."""
    ids: list[str] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            continue
        contact_id = _get_id(doc.get("contact"))
        if contact_id:
            ids.append(contact_id)
        if _fills_linked_docs(doc):
            ids.extend(i for i in (_get_id(v) for v in doc["linked_docs"].values()) if i)
    return list(dict.fromkeys(ids))


class _ById:
    """Each id's first doc among ``docs``: a batch looks up hundreds of ids in hundreds of docs, which scanning
    the list for each made quadratic (it was the sentinel's largest CPU cost)."""

    def __init__(self, docs: Iterable[Any]):
        self._docs: dict[str, Doc] = {}
        for doc in docs:
            if isinstance(doc, dict) and isinstance(doc.get("_id"), str):
                self._docs.setdefault(doc["_id"], doc)

    def __call__(self, doc_id: Any) -> Doc | None:
        return self._docs.get(doc_id) if isinstance(doc_id, str) and doc_id else None


def _fill_contacts(docs: Iterable[Any], contacts: _ById) -> None:
    """Each doc's ``contact`` and ``linked_docs`` values replaced by copies of the docs they name, when known."""
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        found = contacts(_get_id(doc.get("contact")))
        if found is not None:
            doc["contact"] = _copy(found)
        if _fills_linked_docs(doc):
            linked = doc["linked_docs"] = dict(doc["linked_docs"])
            for key, value in linked.items():
                found = contacts(_get_id(value))
                if found is not None:
                    linked[key] = _copy(found)


def _fill_parents(doc: Any, lineage: list[Any]) -> Any:
    """Hang copies of the ancestors (nearest first) under the doc, or under a report's contact (the first entry).

    A missing ancestor becomes ``{_id}``; the last one keeps its own stored ``parent``.
    """
    if not isinstance(doc, dict) or not lineage:
        return doc
    if _is_data_record(doc):
        first = lineage.pop(0)
        current = first if _truthy(first) else doc.get("contact")
        if current is not None or "contact" in doc:
            doc["contact"] = current
    else:
        current = doc
    if not isinstance(current, dict):
        return doc
    ids = _extract_parent_ids(current.get("parent"))
    for i, ancestor in enumerate(lineage):
        link = _copy(ancestor) if _truthy(ancestor) else ({"_id": ids[i]} if i < len(ids) else {})
        current["parent"] = link
        current = link
    return doc


def _merge(lineage: list[Any], patient: list[Any], place: list[Any]) -> Any:
    doc = lineage.pop(0)
    _fill_parents(doc, lineage)
    for name, chain in (("patient", patient), ("place", place)):
        if chain:
            subject = chain.pop(0)
            _fill_parents(subject, chain)
            doc[name] = _copy(subject) if subject is doc else subject
    return doc


def _lineage_ids(doc: Mapping[str, Any]) -> list[str]:
    if _is_contact_doc(doc):
        return _chain_ids(doc)
    if _is_data_record(doc) and _truthy(doc.get("form")):
        return [str(doc.get("_id"))] + _chain_ids(doc.get("contact"))
    return []


class Hydrator:
    """cht-core's lineage hydration (``shared-libs/lineage``), with the I/O injected.

    ``hydrate_one`` is cht-core's single-doc mode (``fetchHydratedDoc``, used by ``?with_lineage=true``): a
    contact gets its ancestors, each with its primary contact and linked docs; a report with a form gets its
    contact (ancestors from the report's own copy of the lineage), patient and place. ``hydrate`` is the batch
    mode (``hydrateDocs``): the same shapes, but a report's contact chain is the contact's current one, every
    ``data_record`` gets its contact and subjects, and any doc its ``contact``. ``hydrate_ids`` picks the mode
    as cht-core's ``fetchHydratedDocs`` does (one id: single). Patient and place are read from
    ``fields.patient_id``/``patient_uuid``/``patient_id`` and ``fields.place_id``/``place_id``, resolved as short
    ids, else taken as doc ids. Whatever the number of docs, a batch takes a short-id lookup and three fetches.

    ``fetch`` (ids -> docs) and ``resolve_shortcodes`` (short ids -> contacts) may hand out shared objects:
    everything is copied before it is filled, unless ``fresh_fetches`` says ``fetch`` parses new ones on each
    call (a CouchDB read): copying them was an eighth of a ``with_lineage`` read's CPU.
    """

    def __init__(self, fetch: Fetch, resolve_shortcodes: Fetch | None = None,
                 contact_hints: MutableMapping[str, list[str]] | None = None, *, fresh_fetches: bool = False):
        self._fetch = fetch
        self._fresh = fresh_fetches
        self._resolve_shortcodes = resolve_shortcodes
        # ancestor id -> the ids of its contact and linked docs when last seen: in single-doc mode they are
        # read with the ancestors (one request, not two); what the ancestors name now is still what is filled
        self._hints = contact_hints
        self.rounds = 0

    async def fetch_docs(self, ids: Iterable[Any]) -> list[Doc]:
        """Copies of the docs, in the order asked, missing ones left out."""
        keys = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))
        if not keys:
            return []
        self.rounds += 1
        found = await self._fetch(keys)
        return [found[i] if self._fresh else _copy(found[i]) for i in keys if found.get(i) is not None]

    async def _uuids(self, codes: list[Any]) -> dict[Any, Any]:
        """Short id -> the id of the contact that has it, else the value itself."""
        keys = list(dict.fromkeys(c for c in codes if isinstance(c, str) and c))
        found: Mapping[str, Doc] = {}
        if keys and self._resolve_shortcodes is not None:
            self.rounds += 1
            found = await self._resolve_shortcodes(keys)
        return {c: (_id_of(found.get(c)) if isinstance(c, str) and found.get(c) else c) for c in codes if _truthy(c)}

    async def _contacts(self, lineage: list[Any], read: Iterable[Any] = ()) -> list[Any]:
        """The contacts and linked docs the lineage names: from the lineage, from docs already ``read``, or
        fetched."""
        known, wanted = [], []
        in_lineage, in_read = _ById(lineage), _ById(read)
        for contact_id in _contact_ids(lineage):
            found = in_lineage(contact_id)
            if found is None:
                found = in_read(contact_id)
            if found is not None:
                known.append(_copy(found))
            else:
                wanted.append(contact_id)
        return known + await self.fetch_docs(wanted)

    async def hydrate_one(self, doc_id: str) -> Doc | None:
        """One doc by id, hydrated in single-doc mode; None when there is no such doc."""
        # the ancestors and contacts this doc led to when last read come with it (one request when warm)
        prefetch = list((self._hints or {}).get(_READ_WITH + doc_id, ()))
        docs = await self.fetch_docs([doc_id, *prefetch])
        if not docs or docs[0]["_id"] != doc_id:
            return None
        doc, read = docs[0], docs[1:]
        ids = _lineage_ids(doc)
        if not ids:
            return doc
        ancestor_ids = ids[1:]
        hinted = [i for a in ancestor_ids for i in (self._hints or {}).get(a, ())]
        wanted = list(dict.fromkeys([*ancestor_ids, *_contact_ids([doc]), *hinted]))
        have = {d["_id"] for d in read}
        if any(i not in have for i in wanted):
            read += await self.fetch_docs([i for i in wanted if i not in have])
        read_by_id = _ById(read)
        lineage: list[Any] = [doc] + [read_by_id(i) for i in ancestor_ids]
        if self._hints is not None:
            for ancestor in lineage[1:]:
                if ancestor is not None:
                    self._hints[ancestor["_id"]] = _contact_ids([ancestor])
            self._hints[_READ_WITH + doc_id] = [*ancestor_ids, *_contact_ids([doc]),
                                                *(i for a in lineage[1:] if a is not None for i in _contact_ids([a]))]
        patient: list[Any] = []
        place: list[Any] = []
        if _is_data_record(doc):
            codes = [patient_id_of(doc), place_id_of(doc)]
            if any(_truthy(c) for c in codes):
                uuids = await self._uuids(codes)
                patient_uuid, place_uuid = (uuids.get(c) if _truthy(c) else None for c in codes)
                chains = [_self_and_parents(d) for d in await self.hydrate(
                    await self.fetch_docs([patient_uuid, place_uuid]))]
                patient = next((c for c in chains if patient_uuid and c[0].get("_id") == patient_uuid), [])
                place = next((c for c in chains if place_uuid and c[0].get("_id") == place_uuid), [])
                patient, place = list(patient), list(place)
        contacts = _ById(await self._contacts(lineage + patient + place, read))
        for chain in (lineage, patient, place):
            _fill_contacts(chain, contacts)
        return _merge(lineage, patient, place)

    async def hydrate(self, docs: Iterable[Mapping[str, Any]]) -> list[Doc]:
        """Copies of the docs, hydrated in batch mode."""
        hydrated = [_copy(dict(d)) for d in docs if isinstance(d, Mapping)]
        if not hydrated:
            return []
        known: list[Any] = list(hydrated)
        patient_of: dict[int, Any] = {}
        place_of: dict[int, Any] = {}
        codes: list[Any] = []
        for index, doc in enumerate(hydrated):
            if _is_data_record(doc):
                patient_of[index], place_of[index] = patient_id_of(doc), place_id_of(doc)
                codes += [patient_of[index], place_of[index]]
        if any(_truthy(c) for c in codes):
            uuids = await self._uuids(codes)
            patient_of = {i: uuids.get(c) if _truthy(c) else None for i, c in patient_of.items()}
            place_of = {i: uuids.get(c) if _truthy(c) else None for i, c in place_of.items()}
        subjects = await self.fetch_docs([*place_of.values(), *patient_of.values()])
        known += subjects
        first = await self.fetch_docs([*_parent_ids_of(hydrated), *_leaf_contact_ids(hydrated),
                                       *_parent_ids_of(subjects), *_leaf_contact_ids(subjects)])
        known += first
        known_ids = {d.get("_id") for d in known if isinstance(d, Mapping)}
        known += await self.fetch_docs(i for i in _leaf_contact_ids(first) if i not in known_ids)
        by_id = _ById(known)  # filling contacts below changes no doc's id, nor which docs ``known`` holds
        _fill_contacts(known, by_id)
        for index, doc in enumerate(hydrated):
            is_record = _is_data_record(doc)
            lineage: list[Any] = [by_id(i) for i in _extract_parent_ids(doc.get("contact") if is_record else doc)]
            if is_record:
                lineage.insert(0, doc)
            patient_doc = by_id(patient_of.get(index))
            place_doc = by_id(place_of.get(index))
            _merge(lineage, [by_id(i) for i in _extract_parent_ids(patient_doc)],
                   [by_id(i) for i in _extract_parent_ids(place_doc)])
        return hydrated

    async def hydrate_ids(self, ids: list[str]) -> list[Doc]:
        """The docs of these ids hydrated as cht-core's ``fetchHydratedDocs``: one id in single-doc mode, more
        in batch mode; missing ids are left out."""
        if len(ids) == 1:
            doc = await self.hydrate_one(ids[0])
            return [doc] if doc is not None else []
        return await self.hydrate(await self.fetch_docs(ids))


def _parent_ids_of(docs: list[Any]) -> list[str]:
    """Ancestors to fetch: a doc's parents; for a report, its contact and the contact's parents."""
    ids: list[str] = []
    for doc in docs:
        node = doc.get("parent")
        if _is_data_record(doc):
            contact_id = _get_id(doc.get("contact"))
            if not contact_id:
                continue
            ids.append(contact_id)
            node = doc.get("contact")
        ids.extend(_extract_parent_ids(node))
    return list(dict.fromkeys(ids))


def _leaf_contact_ids(docs: list[Any]) -> list[str]:
    """Contacts and linked docs to fetch: those of the doc (a report: its contact) and of its stored chain."""
    ids: list[str] = []
    for doc in docs:
        ids.extend(_contact_ids(_self_and_parents(doc.get("contact") if _is_data_record(doc) else doc)))
    return list(dict.fromkeys(ids))
