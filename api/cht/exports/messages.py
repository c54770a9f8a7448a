"""The messages export (CSV): one row per outgoing message task of every doc that has some."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping

from api.cht.messages import STATES
from api.cht.reports.search import view_pages
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    NameCache,
    contact_chain,
    csv_lines,
    export_date,
    translations,
)
from .params import DateRange, Options

MESSAGE_COLUMNS = (["Record UUID", "Patient ID", "Reported Date", "From", "Contact Name", "Message Type",
                    "Message State", "Received Timestamp"]
                   + [s.replace("-", " ").title() + " Timestamp" for s in STATES]
                   + ["Sent By", "To Phone", "Message Body"])


def message_tasks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every group of messages on a doc, normalised as CHT's export does (auto replies, tasks, incoming)."""
    tasks: list[dict[str, Any]] = []
    reported = doc.get("reported_date")
    if isinstance(doc.get("responses"), list) and doc["responses"]:
        tasks.append({"type": "Automated Reply", "state": "sent", "state_history": [
            {"state": "sent", "timestamp": reported}], "messages": doc["responses"]})
    for key in ("tasks", "scheduled_tasks"):
        if isinstance(doc.get(key), list):
            tasks.extend(t for t in doc[key] if isinstance(t, Mapping))
    sms = doc.get("sms_message")
    if isinstance(sms, Mapping) and sms.get("message"):
        tasks.append({"type": "Message", "state": "received", "state_history": [
            {"state": "received", "timestamp": reported}],
            "messages": [{"sent_by": doc.get("from") or sms.get("from"), "message": sms["message"]}]})
    return tasks


def _state_date(state: str, task: Mapping[str, Any], history: Mapping[str, Any], human: bool) -> Any:
    if state == "scheduled" and task.get("due"):
        return export_date(task["due"], human)
    if state in history:
        return export_date(history[state], human)
    if task.get("state") == state:
        return export_date(task.get("timestamp"), human)
    return ""


def _message_contact_id(message: Mapping[str, Any], doc: Mapping[str, Any]) -> str | None:
    contact = message.get("contact")
    if isinstance(contact, Mapping) and isinstance(contact.get("_id"), str):
        return contact["_id"]
    chain = contact_chain(doc, 1)
    return chain[0] if chain else None


def message_rows(doc: Mapping[str, Any], names: NameCache, translate: Mapping[str, str],
                 human: bool) -> list[list[Any]]:
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    patient_id = doc.get("patient_id") or fields.get("patient_id")
    rows = []
    for task in message_tasks(doc):
        history = {h.get("state"): h.get("timestamp") for h in task.get("state_history") or []
                   if isinstance(h, Mapping)}
        key = task.get("translation_key")
        kind = (translate.get(key, key) if isinstance(key, str) and key else None) or task.get("type") \
            or "Task Message"
        for message in task.get("messages") or []:
            if not isinstance(message, Mapping):
                continue
            contact = message.get("contact")
            name = contact.get("name") if isinstance(contact, Mapping) and contact.get("name") else \
                names.name(_message_contact_id(message, doc))
            rows.append([doc.get("_id"), patient_id, export_date(doc.get("reported_date"), human), doc.get("from"),
                         name, kind, task.get("state"), _state_date("received", task, history, human)]
                        + [_state_date(s, task, history, human) for s in STATES]
                        + [message.get("sent_by"), message.get("to"), message.get("message")])
    return rows


async def messages_csv(db: Database, settings: Mapping[str, Any], dates: DateRange,
                       options: Options) -> AsyncGenerator[str, None]:
    """The messages export: one row per message (outgoing, scheduled, automatic reply or incoming)."""
    translate = await translations(db, str(settings.get("locale") or "en"))
    yield csv_lines([MESSAGE_COLUMNS])
    names = NameCache(db)
    startkey, endkey = ([dates.start], [dates.end]) if dates.given else (None, None)
    pages = view_pages(db, "medic", "messages_by_reported_date", startkey=startkey, endkey=endkey,
                       limit=PAGE_SIZE, include_docs=True)
    async with aclosing(pages):
        async for rows in pages:
            docs = [row["doc"] for row in rows if row.get("doc")]
            await names.load(i for doc in docs for task in message_tasks(doc) for m in task.get("messages") or []
                             if isinstance(m, Mapping) for i in [_message_contact_id(m, doc)] if i)
            lines = [line for doc in docs for line in message_rows(doc, names, translate, options.human_readable)]
            if lines:
                yield csv_lines(lines)
