"""``update_sent_by``: a report from a known phone number gets ``sent_by``, the sender's name."""

from __future__ import annotations

from typing import Any

from sentinel import reports

from . import Context


class UpdateSentBy:
    name = "update_sent_by"
    once = True

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return doc.get("type") == "data_record" and bool(doc.get("from"))

    async def prepare(self, docs: list[dict[str, Any]], ctx: Context) -> None:
        await reports.load_contacts_by_phone(ctx, [d.get("from") for d in docs if not d.get("sent_by")])

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        if doc.get("sent_by"):
            return False
        contact = reports.contact_by_phone(ctx, doc.get("from"))
        name = contact.get("name") if contact else None
        if not isinstance(name, str) or not name or doc.get("sent_by") == name:
            return False
        doc["sent_by"] = name
        return True


transition = UpdateSentBy()
