"""The messages export (CSV), with cht-core's ``message-mapper`` columns: one row per message of every task
(outgoing, scheduled, automatic reply) and incoming SMS of every doc that has some."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, AsyncGenerator, Mapping

from api.cht.reports.search import view_pages
from api.cht.translations import translations
from api.couch import Database

from .formats import (
    PAGE_SIZE,
    csv_header,
    csv_lines,
    export_date,
)
from .params import DateRange, Options

MESSAGE_COLUMNS = ["id", "patient_id", "reported_date", "from", "type", "state", "received", "scheduled", "pending",
                   "sent", "cleared", "muted", "message_id", "sent_by", "to_phone", "content"]
STATE_COLUMNS = ("received", "scheduled", "pending", "sent", "cleared", "muted")


def message_tasks(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every group of messages on a doc, normalised as CHT's export does (auto replies, tasks, incoming)."""
    tasks: list[dict[str, Any]] = []
    reported = doc.get("reported_date")
    if isinstance(doc.get("responses"), list) and doc["responses"]:
        tasks.append({"type": "Automated Reply", "state": "sent", "timestamp": reported, "state_history": [
            {"state": "sent", "timestamp": reported}], "messages": doc["responses"]})
    for key in ("tasks", "scheduled_tasks"):
        if isinstance(doc.get(key), list):
            tasks.extend(t for t in doc[key] if isinstance(t, Mapping))
    sms = doc.get("sms_message")
    if isinstance(sms, Mapping) and sms.get("message"):
        tasks.append({"type": "Message", "state": "received", "timestamp": reported, "state_history": [
            {"state": "received", "timestamp": reported}],
            "messages": [{"sent_by": doc.get("from"), "message": sms["message"]}]})
    return tasks


def _state_date(state: str, task: Mapping[str, Any], history: Mapping[str, Any], human: bool) -> Any:
    if state == "scheduled" and task.get("due"):
        return export_date(task["due"], human)
    if history.get(state):
        return export_date(history[state], human)
    if task.get("state") == state:
        return export_date(task.get("timestamp"), human)
    return ""


def _translated(translate: Mapping[str, str], key: str, group: Any) -> str:
    """A translation key's text with its ``{{group}}`` filled in (the key itself when there is no text)."""
    text = translate.get(key, key)
    return text.replace("{{group}}", "" if group is None else str(group))


def message_rows(doc: Mapping[str, Any], translate: Mapping[str, str], human: bool) -> list[list[Any]]:
    fields = doc.get("fields") if isinstance(doc.get("fields"), Mapping) else {}
    patient_id = doc.get("patient_id") or fields.get("patient_id")
    rows = []
    for task in message_tasks(doc):
        history = {h.get("state"): h.get("timestamp") for h in task.get("state_history") or []
                   if isinstance(h, Mapping)}
        key = task.get("translation_key")
        kind = (_translated(translate, key, task.get("group")) if isinstance(key, str) and key else None) \
            or task.get("type") or "Task Message"
        for message in task.get("messages") or []:
            if not isinstance(message, Mapping):
                continue
            rows.append([doc.get("_id"), patient_id, export_date(doc.get("reported_date"), human), doc.get("from"),
                         kind, task.get("state")]
                        + [_state_date(s, task, history, human) for s in STATE_COLUMNS]
                        + [message.get("uuid"), message.get("sent_by"), message.get("to"), message.get("message")])
    return rows


async def messages_csv(db: Database, settings: Mapping[str, Any], dates: DateRange,
                       options: Options) -> AsyncGenerator[str, None]:
    """The messages export: one row per message (outgoing, scheduled, automatic reply or incoming)."""
    translate = await translations(db, str(settings.get("locale") or "en"))
    yield csv_header(MESSAGE_COLUMNS)
    startkey, endkey = ([dates.start], [dates.end]) if dates.given else (None, None)
    pages = view_pages(db, "medic", "messages_by_reported_date", startkey=startkey, endkey=endkey,
                       limit=PAGE_SIZE, include_docs=True)
    async with aclosing(pages):
        async for rows in pages:
            docs = [row["doc"] for row in rows if row.get("doc")]
            lines = [line for doc in docs for line in message_rows(doc, translate, options.human_readable)]
            if lines:
                yield csv_lines(lines)
