"""``accept_patient_reports``: reports about a registered patient (settings ``patient_reports``).

Each entry is CHT's ``{"form", "validations", "silence_type", "silence_for",
"messages": [{"event_type": "report_accepted" | "registration_not_found",
...}]}``. A report failing its validations gets the errors and a reply. A
report whose patient (or place) is unknown gets ``registration_not_found``.
Otherwise it gets the ``report_accepted`` messages and ``registration_id``
(the subject's latest registration), and the subject's registrations have
their tasks of the ``silence_type`` schedules cleared (``cleared_by`` the
report): all of them, or with ``silence_for`` (e.g. ``"8 days"``) the groups
due before the report's date plus that long. The registrations of the whole
batch's subjects are read with one query.
"""

from __future__ import annotations

from typing import Any, Mapping

from sentinel import messaging, reports, validation

from . import Context


class AcceptPatientReports:
    name = "accept_patient_reports"
    once = True
    hydrate = True

    def config(self, doc: Mapping[str, Any], ctx: Context) -> Mapping[str, Any] | None:
        return reports.config_for(ctx.settings.get("patient_reports"), doc.get("form"))

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return reports.is_report(doc) and bool(doc.get("reported_date")) and \
            self.config(doc, ctx) is not None and reports.is_valid_submission(doc, ctx.settings)

    async def prepare(self, docs: list[dict[str, Any]], ctx: Context) -> None:
        ids: list[str] = []
        for doc in docs:
            for name in ("patient", "place"):
                ids.extend(reports.subject_ids(doc.get(name)))
        await reports.load_registrations(ctx, ids)

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        config = self.config(doc, ctx) or {}
        failed = validation.failures(config, doc)
        if failed:
            reports.add_validation_errors(doc, ctx, config, failed, self.name)
            return True
        subject = reports.subject(doc, ctx)
        if subject is None:
            fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
            reports.reject(doc, ctx, config, "registration_not_found", self.name,
                           extra={"patient_id": fields.get("patient_id") or doc.get("patient_id")})
            return True
        changed = False
        for index, message in enumerate(config.get("messages") or []):
            if isinstance(message, dict) and message.get("event_type") == "report_accepted" and \
                    validation.bool_expr(message.get("bool_expr"), doc):
                changed = messaging.add_message(doc, ctx, message, self.name, "accepted", index) or changed
        found = await reports.registrations(ctx, doc.get("patient"), exclude=doc["_id"]) + \
            await reports.registrations(ctx, doc.get("place"), exclude=doc["_id"])
        if found:
            latest = max(found, key=lambda d: (d.get("reported_date") or 0, d["_id"]))
            if doc.get("registration_id") != latest["_id"]:
                doc["registration_id"] = latest["_id"]
                changed = True
        if config.get("silence_type"):
            for registration in {r["_id"]: r for r in found}.values():
                if reports.silence(registration, doc, ctx, config["silence_type"], config.get("silence_for")):
                    ctx.ws.write(registration)
        return changed


transition = AcceptPatientReports()
