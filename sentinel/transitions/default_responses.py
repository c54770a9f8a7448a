"""``default_responses``: an answer to SMS that no other transition answers for.

As CHT: an empty message gets ``empty``; an unknown form gets
``form_not_found`` in ``forms_only_mode``, else ``sms_received``, as does
free text (no form). Texts are the translations of those keys. Only reports
with a sender (``from``) that is not the gateway itself (``gateway_number``),
and, when settings ``default_responses.start_date`` (``YYYY-MM-DD``) is set,
reported after that day. (CHT answers nothing without a ``start_date``;
Jamii answers every report then.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Mapping

from sentinel import messaging

from . import Context


def _codes(doc: Mapping[str, Any]) -> set[str]:
    return {e.get("code") for e in doc.get("errors") or [] if isinstance(e, dict)}


def after_start(doc: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    config = settings.get("default_responses")
    start = config.get("start_date") if isinstance(config, dict) else None
    if not isinstance(start, str) or not start.strip():
        return True
    try:
        day = dt.datetime.strptime(start.strip(), "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return False
    reported = doc.get("reported_date")
    return isinstance(reported, (int, float)) and reported > day.timestamp() * 1000


class DefaultResponses:
    name = "default_responses"
    once = True

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        sender = (doc.get("sms_message") or {}).get("from")
        from_gateway = isinstance(sender, str) and not messaging.outgoing_allowed(sender, {
            "gateway_number": ctx.settings.get("gateway_number"), "default_country_code":
            ctx.settings.get("default_country_code")})
        return doc.get("type") == "data_record" and bool(doc.get("from")) and not doc.get("kujua_message") \
            and not from_gateway and after_start(doc, ctx.settings)

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        codes = _codes(doc)
        if "sys.empty" in codes:
            key = "empty"
        elif ctx.settings.get("forms_only_mode") and "sys.form_not_found" in codes:
            key = "form_not_found"
        elif "sys.form_not_found" in codes or not isinstance(doc.get("form"), str):
            key = "sms_received"
        else:
            return False
        form = (doc.get("sms_message") or {}).get("form")
        return messaging.add_message(doc, ctx, {"translation_key": key}, self.name, key,
                                     extra={"form": form} if form else None)


transition = DefaultResponses()
