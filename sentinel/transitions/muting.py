"""``muting``: mute and unmute contacts (settings ``muting``), and mute contacts added under a muted place.

``{"mute_forms": [...], "unmute_forms": [...], "validations": {...},
"messages": [{"event_type": "mute" | "unmute" | "already_muted" |
"already_unmuted" | "contact_not_found", ...}]}``. A mute report sets
``muted`` (the date) on its subject (patient, else place) and every contact
below it, and moves their registrations' ``scheduled`` messages to
``muted``; an unmute report removes ``muted`` from them and moves their
``muted`` messages that are still due in the future back to ``scheduled``.
A report about a contact already in the asked state gets the
``already_muted`` / ``already_unmuted`` message; one without a known subject
gets the ``contact_not_found`` error and message.

A contact seen for the first time under a muted place is muted too (with its
ancestor's date), as CHT does for contacts created offline after a mute.
"""

from __future__ import annotations

from typing import Any, Mapping

from api.cht import contact_types, messages
from sentinel import messaging, reports, schedules, validation

from . import Context, add_error


def _config(ctx: Context) -> Mapping[str, Any]:
    config = ctx.settings.get("muting")
    return config if isinstance(config, dict) else {}


def _muted_ancestor(doc: Mapping[str, Any]) -> Any:
    node = doc.get("parent")
    while isinstance(node, dict):
        if node.get("muted"):
            return node["muted"]
        node = node.get("parent")
    return None


class Muting:
    name = "muting"
    once = True
    hydrate = True

    def _mute(self, doc: Mapping[str, Any], ctx: Context) -> bool | None:
        """True for a mute form, False for an unmute form, None for neither."""
        config = _config(ctx)
        if any(reports.same_form(doc.get("form"), f) for f in reports.forms_in(config.get("mute_forms"))):
            return True
        if any(reports.same_form(doc.get("form"), f) for f in reports.forms_in(config.get("unmute_forms"))):
            return False
        return None

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        if reports.is_report(doc):
            return self._mute(doc, ctx) is not None and reports.is_valid_submission(doc, ctx.settings)
        return contact_types.is_contact(ctx.settings, doc) and isinstance(doc.get("parent"), dict)

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        if not reports.is_report(doc):
            muted = _muted_ancestor(doc)
            if not muted or doc.get("muted"):
                return False
            doc["muted"] = muted
            await self._update_registrations(ctx, [doc], True)
            return True
        config = _config(ctx)
        subject = reports.subject(doc, ctx)
        if subject is None:
            text = messaging.text_of(self._message(config, "contact_not_found") or {}, ctx,
                                     messaging.locale_of(doc, ctx.settings)) or \
                'Failed to complete muting request, event type "contact_not_found" misconfigured.'
            add_error(doc, "contact_not_found", messaging.render(text, messaging.template_context(doc)))
            self._reply(doc, ctx, "contact_not_found", subject)
            return True
        failed = validation.failures(config, doc)
        if failed:
            reports.add_validation_errors(doc, ctx, config, failed, self.name)
            return True
        mute = bool(self._mute(doc, ctx))
        contact = await ctx.ws.get(subject.get("_id"))
        if contact is None:
            return False
        if bool(contact.get("muted")) == mute:
            self._reply(doc, ctx, "already_muted" if mute else "already_unmuted", contact)
            return True
        await self.update(ctx, contact, mute, doc)
        self._reply(doc, ctx, "mute" if mute else "unmute", contact)
        return True

    @staticmethod
    def _message(config: Mapping[str, Any], event: str) -> Mapping[str, Any] | None:
        return next((m for m in config.get("messages") or [] if isinstance(m, dict)
                     and m.get("event_type") == event), None)

    def _reply(self, doc: dict[str, Any], ctx: Context, event: str, contact: Mapping[str, Any] | None) -> None:
        message = self._message(_config(ctx), event)
        if message is not None:
            messaging.add_message(doc, ctx, message, self.name, event,
                                  extra={"patient": contact} if contact else None)

    async def update(self, ctx: Context, contact: dict[str, Any], mute: bool, report: Mapping[str, Any]) -> None:
        """Mute or unmute a contact, everything below it, and their scheduled messages."""
        ctx.ws.requests += 1
        rows = (await ctx.medic.view("medic", "contacts_by_depth", key=[contact["_id"]]))["rows"]
        found = await ctx.ws.fetch([contact["_id"]] + [row["id"] for row in rows])
        for doc in found.values():
            if mute and not doc.get("muted"):
                doc["muted"] = messages.iso(ctx.now)
                doc["muted_by"] = report["_id"]
            elif not mute and "muted" in doc:
                del doc["muted"]
                doc.pop("muted_by", None)
            else:
                continue
            ctx.ws.write(doc)
        await self._update_registrations(ctx, list(found.values()), mute)

    async def _update_registrations(self, ctx: Context, contacts: list[dict[str, Any]], mute: bool) -> None:
        ids = [i for c in contacts for i in reports.subject_ids(c)]
        await reports.load_registrations(ctx, ids)
        seen: set[str] = set()
        for contact in contacts:
            for registration in await reports.registrations(ctx, contact):
                if registration["_id"] in seen:
                    continue
                seen.add(registration["_id"])
                touched = False
                for task in registration.get("scheduled_tasks") or []:
                    if mute and task.get("state") == "scheduled":
                        touched = messages.set_state(task, "muted", ctx.now) or touched
                    elif not mute and task.get("state") == "muted" and \
                            (schedules.to_datetime(task.get("due")) or ctx.now) > ctx.now:
                        touched = messages.set_state(task, "scheduled", ctx.now) or touched
                if touched:
                    ctx.ws.write(registration)


transition = Muting()
