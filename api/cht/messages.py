"""Outgoing messages, as CHT keeps them: tasks on the documents they belong to.

``doc.tasks`` holds messages to send now, ``doc.scheduled_tasks`` those due
later (with ``due`` and a ``group``). Each task has ``messages: [{uuid, to,
message}]``, a ``state`` and an appended ``state_history: [{state,
state_details, timestamp}]``. States move ``scheduled`` -> ``pending`` ->
``forwarded-to-gateway`` -> ``received-by-gateway`` -> ``forwarded-by-gateway``
-> ``sent`` -> ``delivered``, or end ``failed``, ``muted``, ``cleared``,
``denied`` or ``duplicate``; a gateway's report of a status CHT does not know is
recorded as ``unrecognised``.

Message uuids are deterministic (made from what the message is for), so a
transition replayed after a crash adds nothing twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Iterator

STATES = ("scheduled", "pending", "forwarded-to-gateway", "received-by-gateway", "forwarded-by-gateway",
          "sent", "delivered", "failed", "muted", "cleared", "denied", "duplicate", "unrecognised")
PENDING_GROUP = ("pending", "forwarded-to-gateway", "received-by-gateway", "forwarded-by-gateway")
FINAL_GROUP = ("sent", "delivered", "failed")
MUTED_GROUP = ("denied", "cleared", "muted", "duplicate")
NAMESPACE = uuid.UUID("6f1c2b4e-3c1d-4b8a-9a57-2f4e0d1c9b11")


def iso(now: dt.datetime) -> str:
    return now.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_uuid(*parts: Any) -> str:
    """A uuid made from what the message is for (doc id, transition, recipient, text...)."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(str(p) for p in parts)))


def set_state(task: dict[str, Any], state: str, now: dt.datetime, details: Any = None) -> bool:
    """Move a task to a state, appending to its history; False when it is already there."""
    if state not in STATES:
        raise ValueError(f"unknown message state {state!r}")
    if task.get("state") == state and task.get("state_details") == details:
        return False
    task["state"] = state
    entry: dict[str, Any] = {"state": state, "timestamp": iso(now)}
    if details is not None:
        task["state_details"] = details
        entry["state_details"] = details
    else:
        task.pop("state_details", None)
    task.setdefault("state_history", []).append(entry)
    return True


def record_state(task: dict[str, Any], state: str, now: dt.datetime, details: dict[str, Any] | None = None) -> bool:
    """Move a task to a state as cht-core's ``setTaskState`` does; False only when it is already in that state
    (its last history entry too) and the report carries no details: a report with details is always
    recorded."""
    if state not in STATES:
        raise ValueError(f"unknown message state {state!r}")
    history = task.setdefault("state_history", [])
    if task.get("state") == state and history and isinstance(history[-1], dict) and \
            history[-1].get("state") == state and details is None:
        return False
    task["state"] = state
    entry: dict[str, Any] = {"state": state}
    if details is None:
        task.pop("state_details", None)
    else:
        task["state_details"] = details
        entry["state_details"] = details
    entry["timestamp"] = iso(now)
    history.append(entry)
    return True


def new_task(to: str, text: str, msg_uuid: str, now: dt.datetime, *, state: str = "pending",
             **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {"messages": [{"uuid": msg_uuid, "to": to, "message": text}], **extra}
    set_state(task, state, now)
    return task


def add_task(doc: dict[str, Any], task: dict[str, Any], *, scheduled: bool = False) -> bool:
    """Add a task unless one of its message uuids is already on the doc (idempotent)."""
    wanted = {m["uuid"] for m in task.get("messages", [])}
    if any(m.get("uuid") in wanted for _, _, m in iter_messages(doc)):
        return False
    doc.setdefault("scheduled_tasks" if scheduled else "tasks", []).append(task)
    return True


def iter_messages(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(list name, task, message) for every message on a doc."""
    for key in ("tasks", "scheduled_tasks"):
        for task in doc.get(key) or []:
            for message in task.get("messages") or []:
                yield key, task, message


def find_task(doc: dict[str, Any], msg_uuid: str) -> dict[str, Any] | None:
    for _, task, message in iter_messages(doc):
        if message.get("uuid") == msg_uuid:
            return task
    return None
