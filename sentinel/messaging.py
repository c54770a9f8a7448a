"""Outgoing messages as the transitions configure them (CHT's message configuration).

A message configuration is ``{"message": [{"content", "locale"}], "recipient",
"event_type", "translation_key"}``: the text is the content for the doc's
locale (else the outgoing locale, else the first), or the translation of
``translation_key``. Texts are mustache-like templates: ``{{path.to.value}}``
reads the template context (the doc, its ``fields`` at top level, ``contact``,
``patient``, ``place``, their ancestors by level) and ``{{#date}}..{{/date}}``
/ ``{{#datetime}}..{{/datetime}}`` format a date (ms or ISO).

Recipients, as CHT names them: ``reporting_unit`` (the sender, default),
``patient``, ``parent`` / ``grandparent`` (the contact of the reporting
contact's place / the place above), ``clinic`` / ``health_center`` /
``district`` (the contact of the ancestor of that type), a doc path
(``fields.phone``) or a phone number. A message with nobody to send to is not
added.

Messages go on the doc as tasks through ``api.cht.messages``, with uuids made from
what the message is for, so a transition replayed after a crash adds nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any, Mapping

from api.cht import messages, phones

from .transitions import Context
from .translations import translate

TEMPLATE_RE = re.compile(r"{{\s*([#/]?)\s*([\w.\-]+)\s*}}")
SECTION_RE = re.compile(r"{{#(date|datetime)}}(.*?){{/\1}}", re.S)
ANCESTOR_TYPES = {"clinic": ("clinic",), "health_center": ("health_center",),
                  "district": ("district_hospital",)}


def locale_of(doc: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    for value in (doc.get("locale"), (doc.get("sms_message") or {}).get("locale"),
                  settings.get("locale_outgoing"), settings.get("locale")):
        if isinstance(value, str) and value:
            return value
    return "en"


def text_of(config: Mapping[str, Any], ctx: Context, locale: str) -> str | None:
    """The configured text in this locale (before templating); None when there is none."""
    key = config.get("translation_key")
    if isinstance(key, str) and key:
        return translate(ctx.translations, key, locale)
    content = config.get("message")
    if isinstance(content, str):
        return content or None
    if isinstance(content, list):
        entries = [m for m in content if isinstance(m, dict) and isinstance(m.get("content"), str)]
        for wanted in (locale, ctx.settings.get("locale_outgoing"), ctx.settings.get("locale"), "en"):
            for entry in entries:
                if entry.get("locale") == wanted and entry["content"]:
                    return entry["content"]
        return entries[0]["content"] if entries and entries[0]["content"] else None
    return None


def _lookup(context: Mapping[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _format_date(text: str, with_time: bool) -> str:
    text = text.strip()
    try:
        moment = dt.datetime.fromtimestamp(int(text) / 1000, dt.timezone.utc) if text.isdecimal() \
            else dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return text
    return moment.strftime("%d-%b-%Y %H:%M" if with_time else "%d-%b-%Y")


def render(text: str, context: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1):
            return ""
        found = _lookup(context, match.group(2))
        if found is None or isinstance(found, (dict, list)):
            return ""
        return str(found)

    text = SECTION_RE.sub(lambda m: _format_date(TEMPLATE_RE.sub(value, m.group(2)), m.group(1) == "datetime"),
                          text)
    return TEMPLATE_RE.sub(value, text)


def ancestors(contact: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The (hydrated) places above a contact, nearest first."""
    found = []
    node = contact.get("parent") if isinstance(contact, dict) else None
    while isinstance(node, dict) and len(found) < 64:
        found.append(node)
        node = node.get("parent")
    return found


def _type(doc: Mapping[str, Any]) -> str | None:
    return doc.get("contact_type") if doc.get("type") == "contact" else doc.get("type")


def template_context(doc: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``{{...}}`` can read: CHT's extended template context."""
    context: dict[str, Any] = dict(doc)
    if isinstance(doc.get("fields"), dict):
        context.update(doc["fields"])
    contact = doc.get("contact") if isinstance(doc.get("contact"), dict) else None
    places = ancestors(contact)
    if places:
        context.setdefault("parent", places[0])
    if len(places) > 1:
        context.setdefault("grandparent", places[1])
    for name, types in ANCESTOR_TYPES.items():
        for place in places:
            if _type(place) in types:
                context.setdefault(name, place)
    patient = doc.get("patient") if isinstance(doc.get("patient"), dict) else None
    if patient:
        context.setdefault("patient_name", patient.get("name"))
        context.setdefault("patient_id", patient.get("patient_id"))
    context.update(extra or {})
    return context


def _phone_of(contact: Any) -> str | None:
    if not isinstance(contact, dict):
        return None
    phone = contact.get("phone")
    if isinstance(phone, str) and phone:
        return phone
    inner = contact.get("contact")
    if isinstance(inner, dict) and isinstance(inner.get("phone"), str) and inner["phone"]:
        return inner["phone"]
    return None


def recipient(doc: Mapping[str, Any], name: Any, settings: Mapping[str, Any]) -> str | None:
    """The phone number a message for this recipient goes to; None when there is none."""
    contact = doc.get("contact") if isinstance(doc.get("contact"), dict) else None
    sender = doc.get("from") if isinstance(doc.get("from"), str) and doc.get("from") else _phone_of(contact)
    if not name or name == "reporting_unit":
        return sender
    places = ancestors(contact)
    if name == "patient":
        return _phone_of(doc.get("patient"))
    if name == "parent":
        return _phone_of(places[0]) if places else None
    if name == "grandparent":
        return _phone_of(places[1]) if len(places) > 1 else None
    if name in ANCESTOR_TYPES:
        return next((_phone_of(p) for p in places if _type(p) in ANCESTOR_TYPES[name]), None)
    if isinstance(name, str):
        found = _lookup(doc, name)
        if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found):
            return phones.normalize(found, settings) or str(found)
        if phones.normalize(name, settings):
            return name
    return sender


@functools.lru_cache(maxsize=4096)
def _e164(raw: str, country_code: Any, validation: Any) -> str | None:
    return phones.normalize(raw, {"default_country_code": country_code, "phone_validation": validation})


def same_phone(a: str, b: str, settings: Mapping[str, Any]) -> bool:
    """Two numbers are the same (E.164), however written; parsed once per number and settings."""
    key = (settings.get("default_country_code"), settings.get("phone_validation"))
    first = _e164(a, *key)
    return first is not None and first == _e164(b, *key)


def outgoing_allowed(to: str, settings: Mapping[str, Any]) -> bool:
    """CHT's deny rules: the gateway's own number, ``outgoing_deny_list`` prefixes, short codes, letters."""
    gateway = settings.get("gateway_number")
    if isinstance(gateway, str) and gateway and same_phone(gateway, to, settings):
        return False
    clean = to.strip().lower()
    deny_list = settings.get("outgoing_deny_list")
    if isinstance(deny_list, str) and any(p.strip().lower() and clean.startswith(p.strip().lower())
                                          for p in deny_list.split(",")):
        return False
    try:
        shorter = int(settings.get("outgoing_deny_shorter_than") or 0)
    except (TypeError, ValueError):
        shorter = 0
    if shorter > 0 and len(clean) < shorter:
        return False
    if settings.get("outgoing_deny_with_alphas") is True and re.search(r"[a-z]", clean):
        return False
    return True


def add_message(doc: dict[str, Any], ctx: Context, config: Mapping[str, Any], *key: Any,
                extra: Mapping[str, Any] | None = None, text: str | None = None) -> bool:
    """Add one configured message to ``doc.tasks``; ``key`` names it among the doc's messages.

    Returns whether the doc changed (False when it is already there or has
    nobody to go to).
    """
    if text is None:
        text = text_of(config, ctx, locale_of(doc, ctx.settings))
    if not text:
        return False
    to = recipient(doc, config.get("recipient"), ctx.settings)
    if not to:
        return False
    msg_uuid = messages.message_uuid(doc["_id"], *key)
    if messages.find_task(doc, msg_uuid) is not None:
        return False
    body = render(text, template_context(doc, extra))
    state = "pending" if outgoing_allowed(to, ctx.settings) else "denied"
    return messages.add_task(doc, messages.new_task(to, body, msg_uuid, ctx.now, state=state))


def add_event_messages(doc: dict[str, Any], ctx: Context, configs: Any, event_type: str, prefix: str,
                       *, extra: Mapping[str, Any] | None = None, default_event: bool = False) -> bool:
    """Add every configured message of this ``event_type`` (``default_event``: also those without one)."""
    changed = False
    for index, config in enumerate(configs if isinstance(configs, list) else []):
        if not isinstance(config, dict):
            continue
        kind = config.get("event_type")
        if kind == event_type or (default_event and not kind):
            changed = add_message(doc, ctx, config, prefix, event_type, index, extra=extra) or changed
    return changed
