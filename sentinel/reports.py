"""What several transitions need about reports: forms, submitters, subjects, registrations, lookups.

Every lookup here is made for a whole batch at once (one view query) and
kept in the batch's workspace cache, so a transition's ``prepare`` calls it
with all its docs and ``run`` finds the answers there.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from api.cht import contact_types, messages, phones
from api.cht.lineage import report_subject_keys

from . import messaging, schedules
from .transitions import Context, add_error
from .translations import translate

DURATION_RE = re.compile(r"^\s*(\d+)\s+(minute|hour|day|week|month|year)s?\s*$", re.I)
CLEARABLE = ("pending", "scheduled", "muted")


def same_form(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().upper() == b.strip().upper()


def config_for(configs: Any, form: Any) -> Mapping[str, Any] | None:
    """The entry of a settings list (``registrations``, ``patient_reports``) for this form."""
    for config in configs if isinstance(configs, list) else []:
        if isinstance(config, dict) and same_form(config.get("form"), form):
            return config
    return None


def forms_in(value: Any) -> list[str]:
    return [f for f in value if isinstance(f, str)] if isinstance(value, list) else []


def is_report(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == "data_record" and isinstance(doc.get("form"), str) and bool(doc["form"])


def is_valid_submission(doc: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """CHT's rule: an app (XForm) report, a public SMS form, or a known sender.

    Reports that did not come by SMS (no ``sms_message``) count as app reports.
    """
    if doc.get("content_type") == "xml" or not doc.get("sms_message"):
        return True
    form = (settings.get("forms") or {}).get(doc.get("form")) if isinstance(doc.get("form"), str) else None
    if isinstance(form, dict) and form.get("public_form"):
        return True
    contact = doc.get("contact")
    return isinstance(contact, dict) and bool(contact.get("_id"))


def subject(doc: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
    """The report's patient, else its place (hydrated); a contact made in this batch counts too."""
    for name in ("patient", "place"):
        if isinstance(doc.get(name), dict):
            return doc[name]
    keys = report_subject_keys(doc)
    for name in ("patient", "place"):
        made = ctx.ws.shortcodes.get(keys[name]) if name in keys else None
        if made is not None:
            doc[name] = made
            return made
    return None


def subject_ids(contact: Mapping[str, Any] | None) -> list[str]:
    if not isinstance(contact, dict):
        return []
    ids = [contact.get("_id"), contact.get("patient_id"), contact.get("place_id")]
    return [str(i) for i in ids if isinstance(i, (str, int)) and not isinstance(i, bool) and str(i)]


def is_registration(doc: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    return is_report(doc) and config_for(settings.get("registrations"), doc.get("form")) is not None


async def load_registrations(ctx: Context, ids: Iterable[str]) -> None:
    """Registrations (reports of a ``registrations`` form) by subject id, for many subjects in one query.

    Subjects asked about before are answered from the engine's memory (kept
    up to date by the feed); their docs are then fetched by id.
    """
    cache: dict[str, list[str]] = ctx.ws.cache.setdefault("registrations", {})
    memory = ctx.ws.memory.registrations
    wanted = [i for i in dict.fromkeys(ids) if i and i not in cache]
    asked = [i for i in wanted if i not in memory]
    if asked:
        ctx.ws.requests += 1
        body = await ctx.medic.view("medic-client", "reports_by_subject", keys=asked, include_docs=True)
        for key in asked:
            memory[key] = []
        for row in body["rows"]:
            doc = row.get("doc")
            if doc and is_registration(doc, ctx.settings):
                ctx.ws.known(doc)
                if doc["_id"] not in memory[row["key"]]:
                    memory[row["key"]].append(doc["_id"])
    await ctx.ws.fetch(i for key in wanted for i in memory.get(key, []))
    for key in wanted:
        cache[key] = [i for i in memory.get(key, []) if i in ctx.ws.docs]


def _feed_registrations(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """The batch's registrations by the subject keys they name, indexed once (see ``set_patient_id``)."""
    if "feed_registrations" not in ctx.ws.cache:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for doc_id in ctx.ws.feed_ids:
            doc = ctx.ws.docs[doc_id]
            if is_registration(doc, ctx.settings):
                for key in set(report_subject_keys(doc).values()):
                    by_key.setdefault(key, []).append(doc)
        ctx.ws.cache["feed_registrations"] = by_key
    return ctx.ws.cache["feed_registrations"]


def set_patient_id(doc: dict[str, Any], ctx: Context, code: str) -> None:
    """Give a report its patient's short id; the batch's index of registrations by subject is made again."""
    doc["patient_id"] = code
    ctx.ws.cache.pop("feed_registrations", None)


async def registrations(ctx: Context, contact: Mapping[str, Any] | None, exclude: str | None = None
                        ) -> list[dict[str, Any]]:
    """The subject's registrations, from the view and from this batch, oldest first."""
    ids = subject_ids(contact)
    if not ids:
        return []
    await load_registrations(ctx, ids)
    cache = ctx.ws.cache["registrations"]
    found: dict[str, dict[str, Any]] = {}
    for key in ids:
        for doc_id in cache.get(key, []):
            found[doc_id] = ctx.ws.docs[doc_id]
    index = _feed_registrations(ctx)
    for key in ids:
        for doc in index.get(key, ()):
            found.setdefault(doc["_id"], doc)
    found.pop(exclude or "", None)
    return sorted(found.values(), key=lambda d: (d.get("reported_date") or 0, d["_id"]))


def duration(text: Any) -> tuple[int, str] | None:
    match = DURATION_RE.match(text) if isinstance(text, str) else None
    return (int(match.group(1)), match.group(2).lower()) if match else None


def silence(registration: dict[str, Any], report: Mapping[str, Any], ctx: Context, types: Any,
            silence_for: Any) -> bool:
    """Clear a registration's clearable tasks of these types (CHT's ``silence_type``/``silence_for``).

    Without ``silence_for`` every clearable task of the types is cleared;
    with it, the groups that have a task due before the report's date plus
    ``silence_for``. Returns whether the registration changed.
    """
    names = [t.strip() for t in (types.split(",") if isinstance(types, str) else types or []) if t and t.strip()]
    tasks = [t for t in registration.get("scheduled_tasks") or [] if t.get("type") in names]
    if not tasks:
        return False
    reported = schedules.to_datetime(report.get("reported_date")) or ctx.now
    span = duration(silence_for)
    if span is None:
        chosen = [t for t in tasks if t.get("state") in CLEARABLE]
    else:
        until = schedules.add_offset(reported, *span)
        groups = {(t.get("group"), t.get("type")) for t in tasks
                  if (schedules.to_datetime(t.get("due")) or until) <= until}
        chosen = [t for t in tasks if (t.get("group"), t.get("type")) in groups and t.get("state") in CLEARABLE]
    for task in chosen:
        messages.set_state(task, "cleared", ctx.now)
        task["cleared_by"] = report["_id"]
    return bool(chosen)


def reject(doc: dict[str, Any], ctx: Context, config: Mapping[str, Any] | None, key: str, prefix: str,
           extra: Mapping[str, Any] | None = None) -> None:
    """CHT's rejection: an error ``{code: key}`` on the doc and the same text back to the sender.

    The text is the configured message of ``event_type: key``, else the
    translation of ``messages.generic.<key>``.
    """
    locale = messaging.locale_of(doc, ctx.settings)
    configured = next((m for m in (config or {}).get("messages") or []
                       if isinstance(m, dict) and m.get("event_type") == key), None)
    text = messaging.text_of(configured, ctx, locale) if configured else None
    if not text:
        text = translate(ctx.translations, f"messages.generic.{key}", locale)
    body = messaging.render(text, messaging.template_context(doc, extra))
    add_error(doc, key, body)
    messaging.add_message(doc, ctx, configured or {}, prefix, "error", key, extra=extra, text=text)


def add_validation_errors(doc: dict[str, Any], ctx: Context, config: Mapping[str, Any],
                          failed: list[Mapping[str, Any]], prefix: str) -> None:
    """Each failed validation as an error ``invalid_<property>``, and one reply (joined when configured)."""
    locale = messaging.locale_of(doc, ctx.settings)
    context = messaging.template_context(doc)
    texts = []
    for item in failed:
        text = messaging.text_of({"message": item.get("message"), "translation_key": item.get("translation_key")},
                                 ctx, locale) or f"Invalid {item['property']}."
        text = messaging.render(text, context)
        add_error(doc, f"invalid_{item['property']}", text)
        texts.append(text)
    join = bool(((config.get("validations") or {}) if isinstance(config.get("validations"), dict) else {})
                .get("join_responses"))
    reply = "  ".join(texts) if join else texts[0]
    messaging.add_message(doc, ctx, {}, prefix, "invalid", text=reply)


# -- contacts by phone, for many numbers in one query ------------------------------

async def load_contacts_by_phone(ctx: Context, numbers: Iterable[Any]) -> None:
    """The contact of each phone number (a person first, then by id), from the engine's phone index."""
    cache: dict[str, dict[str, Any] | None] = ctx.ws.cache.setdefault("by_phone", {})
    raws = [n for n in dict.fromkeys(numbers) if isinstance(n, str) and n and n not in cache]
    parsed = {raw: phones.parse(ctx.settings, raw) for raw in raws}
    index = ctx.ws.memory.phones
    if index.ids_by_key is None:
        ctx.ws.requests += 1
        await index.ensure(ctx.medic)
    candidates = {raw: index.ids(phones.view_keys(number)) for raw, number in parsed.items() if number is not None}
    found = await ctx.ws.fetch(i for ids in candidates.values() for i in sorted(ids))
    for raw in raws:
        number = parsed[raw]
        if number is None:
            cache[raw] = None
            continue
        wanted = phones.e164(number)
        matches = sorted((found[i] for i in candidates[raw] if i in found
                          and contact_types.is_contact(ctx.settings, found[i])
                          and any(phones.same_number(ctx.settings, found[i].get(f), wanted) for f in phones.FIELDS)),
                         key=lambda d: (not contact_types.is_person(ctx.settings, d), d["_id"]))
        cache[raw] = matches[0] if matches else None


def contact_by_phone(ctx: Context, raw: Any) -> dict[str, Any] | None:
    return ctx.ws.cache.get("by_phone", {}).get(raw) if isinstance(raw, str) else None
