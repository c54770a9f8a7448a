"""Forms: XForms and JSON forms.

XForms are ``form:<name>`` docs (``type: form``, ``internalId``, ``title``)
with the XForm as the ``xml`` attachment and media files as other
attachments, exactly as cht-conf uploads them. JSON forms (for SMS) live in
settings ``forms``. Untrusted XML is parsed with ``defusedxml`` with DTDs
refused, so entity expansion (an "XML bomb") and external entities never
happen.

For ODK Collect, the OpenRosa form list (``xformsList``) is written exactly as cht-core's does (its
``openrosa-formlist`` library): only forms whose ``context.collect`` is set, each with the ``name``,
``formID`` and ``version`` read from the XForm's tags as written, the ``md5:`` hash of its bytes and a
``downloadUrl`` by that ``formID``. The media manifest (``xformsManifest``) is a Jamii extension.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import time
import xml.sax
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml
import defusedxml.sax
from defusedxml.ElementTree import fromstring

from api import jsonparse
from api.couch import Database
from api.errors import BadRequest, NotFound


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
log = logging.getLogger("jamii.forms")


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


def xform_attachment_name(doc: Mapping[str, Any]) -> str | None:
    """The XForm's attachment, as cht-core finds it: ``xml``, or the first ``*.xml`` that is not ``model.xml``."""
    attachments = doc.get("_attachments")
    names = list(attachments) if isinstance(attachments, Mapping) else []
    return next((n for n in names if n == XML_ATTACHMENT or (n.endswith(".xml") and n != "model.xml")), None)


async def xform_docs(db: Database) -> list[dict[str, Any]]:
    """Every form doc (ids ``form:...``, ``type: form``) that has an XForm attachment, in id order."""
    rows = (await db.all_docs(startkey=DOC_PREFIX, endkey=DOC_PREFIX + "\ufff0", include_docs=True))["rows"]
    return [row["doc"] for row in rows
            if row.get("doc") and row["doc"].get("type") == "form" and xform_attachment_name(row["doc"])]


async def list_names(db: Database) -> list[str]:
    """The JSON list, as cht-core's: ``<internalId>.xml`` for every XForm."""
    return [f"{doc.get('internalId')}.xml" for doc in await xform_docs(db)]


async def find_xform(db: Database, name: str) -> dict[str, Any]:
    """A form doc by name (``form:<name>``), else by ``internalId`` in any case (the manifest and media routes,
    a Jamii extension); NotFound otherwise."""
    doc = await db.get_or_none(DOC_PREFIX + name)
    if doc and xform_attachment_name(doc):
        return doc
    for doc in await xform_docs(db):
        if str(doc.get("internalId", "")).lower() == name.lower() or name_of(doc["_id"]).lower() == name.lower():
            return doc
    raise NotFound(f"No XForm named {name}")


async def download(db: Database, requested: str) -> tuple[bytes, str]:
    """``GET /api/v1/forms/<internalId>.xml`` as cht-core answers it: the XForm's bytes and content type."""
    form, _, fmt = requested.rpartition(".")
    if not form:
        raise BadRequest(f'Invalid form name (form="{form}", format="{fmt}")')
    if fmt != "xml":
        raise BadRequest(f'Invalid file format (format="{fmt}")')
    doc = next((d for d in await xform_docs(db) if d.get("internalId") == form), None)
    if doc is None:
        raise NotFound(f"Form not found: {form} ({fmt})")
    return await db.get_attachment(doc["_id"], xform_attachment_name(doc) or XML_ATTACHMENT)


async def xform_bytes(db: Database, doc: Mapping[str, Any]) -> bytes:
    data, _ = await db.get_attachment(doc["_id"], xform_attachment_name(doc) or XML_ATTACHMENT)
    return data


NAME_PATH = "/h:html/h:head/h:title"
INSTANCE_PATH = "/h:html/h:head/model/instance"


class _ListEntryReader(xml.sax.ContentHandler):
    """What ``openrosa-formlist`` reads from an XForm, by the tag names as written: the first text of
    ``h:html/h:head/h:title`` and the id (else the tag name) and version of the first element inside
    ``h:html/h:head/model/instance``, in the order they are found."""

    def __init__(self) -> None:
        super().__init__()
        self.path = ""
        self.text = ""
        self.meta: dict[str, str] = {}

    def _flush(self) -> None:
        if self.text and self.path == NAME_PATH and "name" not in self.meta:
            self.meta["name"] = self.text
        self.text = ""

    def startElement(self, name: str, attrs: Any) -> None:  # noqa: N802 (the SAX interface)
        self._flush()
        if self.path == INSTANCE_PATH and "formID" not in self.meta:
            self.meta["formID"] = attrs.get("id") or name
            if attrs.get("version"):
                self.meta["version"] = attrs.get("version")
        self.path += "/" + name

    def endElement(self, name: str) -> None:  # noqa: N802
        self._flush()
        suffix = "/" + name
        if self.path.lower().endswith(suffix.lower()):
            self.path = self.path[: -len(suffix)]

    def characters(self, content: str) -> None:
        self.text += content


def list_entry(data: bytes, download_url: str) -> dict[str, str]:
    """One ``<xform>`` of the list: name (when titled), formID, version (when given), hash, downloadUrl.

    Raises XFormError when the XForm is not well-formed XML (or declares a DTD).
    """
    reader = _ListEntryReader()
    parser = defusedxml.sax.make_parser()  # entities and external references refused
    parser.setContentHandler(reader)
    try:
        parser.parse(io.BytesIO(data))
    except (xml.sax.SAXException, defusedxml.DefusedXmlException) as exc:
        raise XFormError(f"The XForm cannot be read: {exc}") from None
    meta = dict(reader.meta)
    meta["hash"] = "md5:" + hashlib.md5(data).hexdigest()
    meta["downloadUrl"] = download_url.replace("${formId}", meta.get("formID", "undefined"))
    return meta


class HashCache:
    """The list entry of each XForm by (doc id, rev, download URL): read once per revision, not on every list."""

    def __init__(self, size: int = 1000):
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], dict[str, str] | None] = OrderedDict()

    async def get(self, db: Database, doc: Mapping[str, Any], download_url: str) -> dict[str, str] | None:
        key = (doc["_id"], doc["_rev"], download_url)
        if key not in self._items:
            try:
                self._items[key] = list_entry(await xform_bytes(db, doc), download_url)
            except XFormError as exc:
                log.warning("form %s left out of the OpenRosa list: %s", doc["_id"], exc)
                self._items[key] = None
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return self._items[key]


def _text(value: str) -> str:
    """Element text escaped as xmlbuilder (cht-core's writer) escapes it."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _xml(root: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode").encode("utf-8")


async def openrosa_list(db: Database, base_url: str, hashes: HashCache) -> bytes:
    """The OpenRosa ``xformsList``, byte for byte as cht-core writes it (two-space indents, no final newline):
    the forms whose ``context.collect`` is set. A form that is not well-formed XML is left out (cht-core
    fails the whole list)."""
    download_url = base_url + "/api/v1/forms/${formId}.xml"
    entries = []
    for doc in await xform_docs(db):
        context = doc.get("context")
        if not (isinstance(context, Mapping) and context.get("collect")):
            continue
        entry = await hashes.get(db, doc, download_url)
        if entry is not None:
            entries.append(entry)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if not entries:
        return (head + f'<xforms xmlns="{OPENROSA_LIST}"/>').encode("utf-8")
    lines = [f'<xforms xmlns="{OPENROSA_LIST}">']
    for entry in entries:
        lines.append("  <xform>")
        lines.extend(f"    <{key}>{_text(value)}</{key}>" for key, value in entry.items())
        lines.append("  </xform>")
    lines.append("</xforms>")
    return (head + "\n".join(lines)).encode("utf-8")


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
        "internalId": info.internal_id,  # the XForm's own id, as cht-conf sets it (downloads go by it)
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
