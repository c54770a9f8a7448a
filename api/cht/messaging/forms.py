"""Forms: XForms and JSON forms.

XForms are ``form:<name>`` docs (``type: form``, ``internalId``, ``title``)
with the XForm as the ``xml`` attachment and media files as other
attachments, exactly as cht-conf uploads them. JSON forms (for SMS) live in
settings ``forms``. Untrusted XML is parsed with ``defusedxml`` with DTDs
refused, so entity expansion (an "XML bomb") and external entities never
happen.

For ODK Collect, the OpenRosa form list (``xformsList``) and manifest
(``xformsManifest``) are built here; ``md5:`` hashes are of the files' bytes.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml
from defusedxml.ElementTree import fromstring

from api import jsonparse
from api.couch import Database
from api.errors import BadRequest, NotFound

from . import sms_parser

XHTML = "http://www.w3.org/1999/xhtml"
XFORMS = "http://www.w3.org/2002/xforms"
OPENROSA_LIST = "http://openrosa.org/xforms/xformsList"
OPENROSA_MANIFEST = "http://openrosa.org/xforms/xformsManifest"
XML_ATTACHMENT = "xml"
# Attachments of a form doc that are not media for the device (CHT's compiled forms).
NOT_MEDIA = frozenset({XML_ATTACHMENT, "form.html", "model.xml"})
# cht-conf's properties file keys copied onto the form doc.
PROPERTIES = ("context", "icon", "title", "xml2sms", "subject_key", "hidden_fields")
DOC_PREFIX = "form:"


class XFormError(ValueError):
    """What is wrong with an XForm, in words for the person who wrote it."""


@dataclass
class XFormInfo:
    internal_id: str
    title: str | None
    version: str | None


def parse_xform(data: bytes) -> XFormInfo:
    """Check an XForm has what one needs (model, primary instance with an id, meta/instanceID, body)."""
    if not data.strip():
        raise XFormError("The XForm is empty")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise XFormError("DTDs and entity declarations are not allowed in an XForm") from None
    except ParseError as exc:
        raise XFormError(f"The XForm is not well-formed XML: {exc}") from None
    if root.tag != f"{{{XHTML}}}html":
        raise XFormError("The root element must be h:html (XHTML namespace)")
    head = root.find(f"{{{XHTML}}}head")
    if head is None:
        raise XFormError("The XForm has no h:head")
    model = head.find(f"{{{XFORMS}}}model")
    if model is None:
        raise XFormError("The XForm has no model in h:head (XForms namespace)")
    instance = next((i for i in model.findall(f"{{{XFORMS}}}instance") if i.get("id") is None), None)
    if instance is None:
        raise XFormError("The model has no primary instance")
    children = list(instance)
    if len(children) != 1:
        raise XFormError("The primary instance must have exactly one root element")
    data_root = children[0]
    if not data_root.get("id"):
        raise XFormError("The instance's root element has no id attribute (the form id)")
    if data_root.find("{*}meta/{*}instanceID") is None:
        raise XFormError("The instance has no meta/instanceID")
    if root.find(f"{{{XHTML}}}body") is None:
        raise XFormError("The XForm has no h:body")
    title_el = head.find(f"{{{XHTML}}}title")
    title = (title_el.text or "").strip() if title_el is not None else ""
    return XFormInfo(data_root.get("id") or "", title or None, data_root.get("version"))


def name_of(doc_id: str) -> str:
    return doc_id[len(DOC_PREFIX):] if doc_id.startswith(DOC_PREFIX) else doc_id


def md5_hex_of_digest(digest: Any) -> str | None:
    """CouchDB's ``md5-<base64>`` attachment digest as hex."""
    if isinstance(digest, str) and digest.startswith("md5-"):
        try:
            return base64.b64decode(digest[4:]).hex()
        except ValueError:
            return None
    return None


def media_names(doc: Mapping[str, Any]) -> list[str]:
    return sorted(n for n in (doc.get("_attachments") or {}) if n not in NOT_MEDIA)


async def xform_docs(db: Database) -> list[dict[str, Any]]:
    """Every form doc that has an XForm, by name."""
    rows = (await db.view("medic-client", "doc_by_type", key=["form"], include_docs=True))["rows"]
    docs = [row["doc"] for row in rows if row.get("doc") and XML_ATTACHMENT in (row["doc"].get("_attachments") or {})]
    return sorted(docs, key=lambda d: d["_id"])


def json_form_codes(settings: Mapping[str, Any]) -> list[str]:
    forms = settings.get("forms")
    return sorted(forms) if isinstance(forms, Mapping) else []


async def list_names(db: Database, settings: Mapping[str, Any]) -> list[str]:
    """The JSON list: ``<name>.xml`` for each XForm, then ``<code>.json`` for each JSON form."""
    return [name_of(d["_id"]) + ".xml" for d in await xform_docs(db)] + \
        [code + ".json" for code in json_form_codes(settings)]


async def find_xform(db: Database, name: str) -> dict[str, Any]:
    """A form doc by name (``form:<name>``), else by ``internalId`` in any case; NotFound otherwise."""
    doc = await db.get_or_none(DOC_PREFIX + name)
    if doc and XML_ATTACHMENT in (doc.get("_attachments") or {}):
        return doc
    for doc in await xform_docs(db):
        if str(doc.get("internalId", "")).lower() == name.lower() or name_of(doc["_id"]).lower() == name.lower():
            return doc
    raise NotFound(f"No XForm named {name}")


async def xform_bytes(db: Database, doc: Mapping[str, Any]) -> bytes:
    data, _ = await db.get_attachment(doc["_id"], XML_ATTACHMENT)
    return data


class HashCache:
    """md5 and form id of each XForm by (doc id, rev): read once per revision, not on every list."""

    def __init__(self, size: int = 1000):
        self.size = size
        self._items: OrderedDict[tuple[str, str], tuple[str, XFormInfo | None]] = OrderedDict()

    async def get(self, db: Database, doc: Mapping[str, Any]) -> tuple[str, XFormInfo | None]:
        key = (doc["_id"], doc["_rev"])
        if key not in self._items:
            data = await xform_bytes(db, doc)
            try:
                info: XFormInfo | None = parse_xform(data)
            except XFormError:
                info = None
            self._items[key] = (hashlib.md5(data).hexdigest(), info)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return self._items[key]


def _xml(root: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode("utf-8")


async def openrosa_list(db: Database, base_url: str, hashes: HashCache) -> bytes:
    """The OpenRosa ``xformsList`` of the XForms.

    ``formID`` is the XForm's own id (ODK Collect matches the downloaded form
    against it); the download URL uses the doc's name.
    """
    root = Element("xforms", xmlns=OPENROSA_LIST)
    for doc in await xform_docs(db):
        name = name_of(doc["_id"])
        md5, info = await hashes.get(db, doc)
        item = SubElement(root, "xform")
        SubElement(item, "formID").text = info.internal_id if info else str(doc.get("internalId") or name)
        SubElement(item, "name").text = str(doc.get("title") or (info and info.title) or name)
        if info and info.version:
            SubElement(item, "version").text = info.version
        SubElement(item, "hash").text = "md5:" + md5
        SubElement(item, "downloadUrl").text = f"{base_url}/api/v1/forms/{name}.xml"
        if media_names(doc):
            SubElement(item, "manifestUrl").text = f"{base_url}/api/v1/forms/{name}/manifest"
    return _xml(root)


def openrosa_manifest(doc: Mapping[str, Any], base_url: str) -> bytes:
    """The OpenRosa ``xformsManifest`` of a form's media files."""
    root = Element("manifest", xmlns=OPENROSA_MANIFEST)
    name = name_of(doc["_id"])
    attachments = doc.get("_attachments") or {}
    for file in media_names(doc):
        item = SubElement(root, "mediaFile")
        SubElement(item, "filename").text = file.rsplit("/", 1)[-1]
        SubElement(item, "hash").text = "md5:" + (md5_hex_of_digest(attachments[file].get("digest")) or "")
        SubElement(item, "downloadUrl").text = f"{base_url}/api/v1/forms/{name}/media/{file}"
    return _xml(root)


def json_form(settings: Mapping[str, Any], code: str) -> dict[str, Any]:
    found = sms_parser.find_form(settings.get("forms") or {}, code)
    if found is None:
        raise NotFound(f"No JSON form {code}")
    return found[1]


# -- installing -------------------------------------------------------------------------


def _attachment(data: bytes, content_type: str) -> dict[str, str]:
    return {"content_type": content_type, "data": base64.b64encode(data).decode("ascii")}


def _digest(data: bytes) -> str:
    return "md5-" + base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def form_doc(name: str, xml: bytes, media: Mapping[str, tuple[bytes, str]],
             properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The doc cht-conf would upload for ``<name>.xml`` (and its ``-media`` folder and properties file)."""
    try:
        info = parse_xform(xml)
    except XFormError as exc:
        raise BadRequest(f"{name}: {exc}", field="xml") from None
    doc: dict[str, Any] = {
        "_id": DOC_PREFIX + name,
        "type": "form",
        "internalId": name,
        "title": info.title or name,
        "xmlVersion": {"time": int(time.time() * 1000), "sha256": hashlib.sha256(xml).hexdigest()},
    }
    for key in PROPERTIES:
        if properties and key in properties:
            doc[key] = properties[key]
    doc["_attachments"] = {file: _attachment(data, ctype) for file, (data, ctype) in sorted(media.items())}
    doc["_attachments"][XML_ATTACHMENT] = _attachment(xml, "application/xml")
    return doc


def _same(existing: Mapping[str, Any], new: Mapping[str, Any], media: Mapping[str, tuple[bytes, str]]) -> bool:
    if (existing.get("xmlVersion") or {}).get("sha256") != new["xmlVersion"]["sha256"]:
        return False
    if any(existing.get(k) != new.get(k) for k in ("internalId", "title", *PROPERTIES)):
        return False
    stored = existing.get("_attachments") or {}
    if sorted(n for n in stored if n != XML_ATTACHMENT) != sorted(media):
        return False
    return all(stored[n].get("digest") == _digest(data) for n, (data, _) in media.items())


async def install_xform(db: Database, name: str, xml: bytes, media: Mapping[str, tuple[bytes, str]] | None = None,
                        properties: Mapping[str, Any] | None = None) -> bool:
    """Write the form doc in one request (XForm and media together); False when it is already installed."""
    media = dict(media or {})
    doc = form_doc(name, xml, media, properties)
    existing = await db.get_or_none(doc["_id"])
    if existing is not None:
        if _same(existing, doc, media):
            return False
        doc["_rev"] = existing["_rev"]
    await db.put(doc)
    return True


def load_json_forms(texts: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """JSON form files (name, text) as settings ``forms`` entries keyed by their code."""
    forms: dict[str, Any] = {}
    for name, text in texts:
        try:
            definition = jsonparse.loads(text)
        except ValueError as exc:
            raise BadRequest(f"{name}: not valid JSON: {exc}", field=name) from None
        if not isinstance(definition, dict) or not isinstance(definition.get("fields"), dict):
            raise BadRequest(f"{name}: a JSON form is an object with fields", field=name)
        code = (definition.get("meta") or {}).get("code") or name.rsplit(".", 1)[0]
        forms[str(code).upper()] = definition
    return forms
