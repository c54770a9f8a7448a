"""``update_clinics``: attach the sending contact to a report that has none.

By reference code first (``refid``: a place's ``rc_code``, through
``contacts_by_reference``), else by the sender's phone number (``from``,
through ``contacts_by_phone``, however the number was written). A place
found stands for its primary contact. The whole batch's numbers and codes are
looked up with one query each. A report of a non-public form whose sender is
unknown gets the error ``sys.facility_not_found`` (removed when a contact is
attached later).
"""

from __future__ import annotations

from typing import Any, Mapping

from api.cht import contact_types
from sentinel import reports

from . import Context, add_error, clear_error

NOT_FOUND = "sys.facility_not_found"


def refid(doc: Mapping[str, Any]) -> str | None:
    value = doc.get("refid")
    return str(value).strip().upper() if isinstance(value, (str, int)) and str(value).strip() else None


def has_contact(doc: Mapping[str, Any]) -> bool:
    contact = doc.get("contact")
    return isinstance(contact, dict) and bool(contact.get("_id"))


class UpdateClinics:
    name = "update_clinics"
    once = True

    def filter(self, doc: dict[str, Any], ctx: Context) -> bool:
        return doc.get("type") == "data_record" and bool(doc.get("from") or refid(doc))

    async def prepare(self, docs: list[dict[str, Any]], ctx: Context) -> None:
        docs = [d for d in docs if not has_contact(d)]
        codes = sorted({c for c in (refid(d) for d in docs) if c})
        found: dict[str, dict[str, Any]] = {}
        if codes:
            ctx.ws.requests += 1
            body = await ctx.medic.view("medic-client", "contacts_by_reference",
                                        keys=[["external", c] for c in codes], include_docs=True)
            for row in body["rows"]:
                if row.get("doc"):
                    found.setdefault(row["key"][1], ctx.ws.known(row["doc"]))
        ctx.ws.cache["by_refid"] = found
        await reports.load_contacts_by_phone(ctx, [d.get("from") for d in docs if not refid(d)])
        senders = [self._found(d, ctx) for d in docs]
        await ctx.ws.fetch(c["contact"].get("_id") for c in senders
                           if c is not None and isinstance(c.get("contact"), dict))  # the places' primary contacts
        await ctx.ws.prefetch_lineages([await self._person(c, ctx) for c in senders])

    @staticmethod
    def _found(doc: Mapping[str, Any], ctx: Context) -> dict[str, Any] | None:
        code = refid(doc)
        return ctx.ws.cache["by_refid"].get(code) if code else reports.contact_by_phone(ctx, doc.get("from"))

    async def _person(self, contact: dict[str, Any] | None, ctx: Context) -> dict[str, Any] | None:
        if contact is None or contact_types.is_person(ctx.settings, contact):
            return contact
        primary = contact.get("contact")
        person = await ctx.ws.get(primary.get("_id")) if isinstance(primary, dict) else None
        return person if person is not None else {"parent": contact}

    async def run(self, doc: dict[str, Any], ctx: Context) -> bool:
        if has_contact(doc):
            return False
        person = await self._person(self._found(doc, ctx), ctx)
        if person is None:
            form = (ctx.settings.get("forms") or {}).get(doc.get("form")) if doc.get("form") else None
            if isinstance(form, dict) and not form.get("public_form"):
                add_error(doc, NOT_FOUND, "Facility not found.")
                return True
            return False
        doc["contact"] = await ctx.ws.hydrated(person) if person.get("_id") else person
        clear_error(doc, NOT_FOUND)
        return True


transition = UpdateClinics()
