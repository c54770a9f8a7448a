"""``generate_shortcode_on_contacts``: every contact gets a short id (``patient_id`` for people, ``place_id``
for places) that SMS reports can name.

Codes come from ``api.cht.shortcodes`` (digits, made unique among contacts by a
reservation in the sentinel database, growing in length as the space fills),
all the batch's codes reserved with one request. A contact that has its code is left alone,
which is what makes a replay a no-op.
"""

from __future__ import annotations

from typing import Any

from api.cht import contact_types

from . import Context


def field_for(doc: dict[str, Any], settings: dict[str, Any]) -> str | None:
    if contact_types.is_person(settings, doc):
        return "patient_id"
    if contact_types.is_place(settings, doc):
        return "place_id"
    return None


class GenerateShortcodeOnContacts:
    name = "generate_shortcode_on_contacts"

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return field_for(doc, ctx.settings) is not None

    async def prepare(self, docs: list[dict[str, Any]], ctx: Context) -> None:
        lacking = [d["_id"] for d in docs if d.get(field_for(d, ctx.settings) or "") in (None, "")]
        ctx.ws.cache[self.name] = await ctx.ws.fresh_codes(lacking)

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        name = field_for(doc, ctx.settings)
        if name is None or doc.get(name) not in (None, ""):
            return False
        codes = ctx.ws.cache.get(self.name) or {}
        doc[name] = codes.pop(doc["_id"], None) or (await ctx.ws.fresh_codes([doc["_id"]]))[doc["_id"]]
        ctx.ws.remember_shortcode(doc[name], doc)
        return True


transition = GenerateShortcodeOnContacts()
