"""``death_reporting``: reports of the forms in settings ``death_reporting`` mark a patient deceased or not.

``{"mark_deceased_forms": [...], "undo_deceased_forms": [...], "date_field":
"fields.time_of_death"}``: a mark form sets the patient's ``date_of_death``
(the date field's value, else the report's date); an undo form removes it.
"""

from __future__ import annotations

from typing import Any, Mapping

from sentinel import reports

from . import Context


def _config(ctx: Context) -> Mapping[str, Any]:
    config = ctx.settings.get("death_reporting")
    return config if isinstance(config, dict) else {}


def _path(doc: Mapping[str, Any], path: Any) -> Any:
    """The value at a dotted path (``fields.time_of_death``); None when there is none."""
    if not isinstance(path, str) or not path:
        return None
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class DeathReporting:
    name = "death_reporting"
    once = True
    hydrate = True

    def _kind(self, doc: Mapping[str, Any], ctx: Context) -> str | None:
        config = _config(ctx)
        if any(reports.same_form(doc.get("form"), f) for f in reports.forms_in(config.get("mark_deceased_forms"))):
            return "mark"
        if any(reports.same_form(doc.get("form"), f) for f in reports.forms_in(config.get("undo_deceased_forms"))):
            return "undo"
        return None

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return reports.is_report(doc) and self._kind(doc, ctx) is not None and \
            reports.is_valid_submission(doc, ctx.settings)

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        subject = doc.get("patient") if isinstance(doc.get("patient"), dict) else None
        patient = await ctx.ws.get(subject.get("_id")) if subject else None
        if patient is None:
            return False
        if self._kind(doc, ctx) == "mark":
            when = _path(doc, _config(ctx).get("date_field")) or doc.get("reported_date")
            if patient.get("date_of_death") != when:
                patient["date_of_death"] = when
                ctx.ws.write(patient)
        elif "date_of_death" in patient:
            del patient["date_of_death"]
            ctx.ws.write(patient)
        return False


transition = DeathReporting()
