"""Messaging with SMS gateways: incoming messages, delivery states, and handing out pending messages.

Outgoing messages are tasks on documents (``api.cht.messages``), found through
the ``medic/messages_by_state``, ``messages_by_uuid`` and
``messages_by_gateway_ref`` views. Handing a message out is a claim: its doc
is written with the revision it was read at, state ``forwarded-to-gateway``,
before the message is returned, so when two polls race for a doc only the
one whose write lands gets its messages (the other re-reads once, finds them
claimed and moves on). On a cluster that write must be taken by every live
copy (``claim_docs``). A message handed out whose gateway never reported on
it is handed out again after ``sms.gateway_redeliver_minutes`` (default 15):
the reply to a poll can be lost on a bad network, and cht-gateway ignores a
message id it already has.

Incoming messages become reports (``api.cht.messaging.records.from_sms``) whose id is made
from the gateway's message id, so a message delivered twice is stored once,
even when the two deliveries race.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from api import timestamps
from api.cht import messages, phones
from api.couch import Database
from api.errors import BadRequest

from . import records

log = logging.getLogger("jamii.sms")

# cht-gateway's statuses, as CHT maps them.
GATEWAY_STATUS = {
    "UNSENT": "received-by-gateway",
    "PENDING": "forwarded-by-gateway",
    "SENT": "sent",
    "DELIVERED": "delivered",
    "FAILED": "failed",
}
# How far along a message is; an update that would move it back is stale and ignored.
PROGRESS = {"pending": 0, "forwarded-to-gateway": 1, "received-by-gateway": 2, "forwarded-by-gateway": 3,
            "sent": 4, "delivered": 5}
GATEWAY_SERVICES = ("cht-gateway", "medic-gateway")
HAND_OUT_LIMIT = 25
REDELIVER_MINUTES = 15
CONFLICT_RETRIES = 3


@dataclass
class StateChange:
    """A delivery report: the message (by uuid, or by the aggregator's reference) and its new state."""

    state: str
    message_id: str | None = None
    gateway_ref: str | None = None
    details: Any = None
    force: bool = False  # the sender putting a message back to pending: not a stale report
    as_cht: bool = False  # cht-gateway's report: applied as cht-core applies it (in order, never stale)


def sms_settings(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    value = settings.get("sms")
    return value if isinstance(value, Mapping) else {}


def outgoing_service(settings: Mapping[str, Any]) -> str:
    """Who sends outgoing messages: ``cht-gateway`` (default), ``rapidpro`` or ``africas-talking``."""
    return str(sms_settings(settings).get("outgoing_service") or "cht-gateway")


def gateway_enabled(settings: Mapping[str, Any]) -> bool:
    return outgoing_service(settings) in GATEWAY_SERVICES


# -- incoming -----------------------------------------------------------------


def incoming_doc(message: Any, settings: Mapping[str, Any], now_ms: int) -> dict[str, Any] | None:
    """The report for a gateway's ``{id, from, content, sms_sent?, sms_received?}``, None if unusable."""
    if not isinstance(message, Mapping) or ("from" not in message and "content" not in message):
        return None
    sender = message.get("from")
    content = message.get("content")
    ref = message.get("id")
    reported = _timestamp(message.get("sms_received")) or now_ms
    return records.from_sms(content if isinstance(content, str) else "", sender if isinstance(sender, str) else "",
                            settings, reported_date=reported,
                            gateway_ref=str(ref) if isinstance(ref, (str, int)) and str(ref) else None)


def _timestamp(value: Any) -> int | None:
    """A gateway's timestamp (ms as a number or a string of digits, or ISO 8601); None when unusable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        ms = timestamps.to_ms(value, "sms_received")
    except BadRequest:
        return None
    return ms if ms > 0 else None


async def receive(db: Database, incoming: Iterable[Any], settings: Mapping[str, Any],
                  now_ms: int | None = None) -> dict[str, int]:
    """Store incoming messages; returns counts of saved, duplicate and unusable ones."""
    now_ms = now_ms or records.now_ms()
    docs: dict[str, dict[str, Any]] = {}
    skipped = duplicates = 0
    for message in incoming:
        doc = incoming_doc(message, settings, now_ms)
        if doc is None:
            skipped += 1
            log.warning("incoming message without from or content ignored")
        elif doc["_id"] in docs:
            duplicates += 1
        else:
            docs[doc["_id"]] = doc
    saved, seen = await records.save_incoming(db, list(docs.values()))
    return {"saved": len(saved), "duplicates": duplicates + len(seen), "skipped": skipped}


# -- state changes --------------------------------------------------------------


def advance(task: dict[str, Any], state: str, now: dt.datetime, details: Any = None,
            gateway_ref: str | None = None, force: bool = False, as_cht: bool = False) -> bool:
    """Apply a delivery report to a task; False when it changes nothing or is stale.

    cht-gateway's reports (``as_cht``) are applied as cht-core applies them: in the order they come, each one
    recorded (``api.cht.messages.record_state``). An aggregator's delivery reports arrive out of order, so for
    them ``delivered`` is final and a report that would move a message back (``sent`` after ``delivered``, a
    late ``received-by-gateway``) is ignored; ``failed`` may be followed by anything (the gateway retried and
    succeeded).
    """
    current = task.get("state")
    changed = False
    if as_cht:
        return messages.record_state(task, state, now, details)
    if gateway_ref is not None and task.get("gateway_ref") != gateway_ref:
        task["gateway_ref"] = gateway_ref
        changed = True
    if force:
        return messages.set_state(task, state, now, details) or changed
    if current == "delivered" and state != "delivered":
        return changed
    if current in PROGRESS and state in PROGRESS and PROGRESS[state] < PROGRESS[current]:
        return changed
    return messages.set_state(task, state, now, details) or changed


async def _doc_ids_for(db: Database, changes: list[StateChange]) -> None:
    """Fill in message ids from aggregator references."""
    refs = [c.gateway_ref for c in changes if not c.message_id and c.gateway_ref]
    if not refs:
        return
    rows = (await db.view("medic", "messages_by_gateway_ref", keys=list(dict.fromkeys(refs))))["rows"]
    by_ref = {row["key"]: row["value"] for row in rows}
    for change in changes:
        if not change.message_id and change.gateway_ref:
            change.message_id = by_ref.get(change.gateway_ref)


async def apply_changes(db: Database, changes: list[StateChange], now: dt.datetime | None = None) -> int:
    """Apply delivery reports in order; returns how many messages changed. Unknown messages are skipped."""
    now = now or dt.datetime.now(dt.timezone.utc)
    await _doc_ids_for(db, changes)
    pending = [c for c in changes if c.message_id]
    for change in changes:
        if not change.message_id:
            log.warning("status update for an unknown message (gateway ref %s) ignored", change.gateway_ref)
    changed_count = 0
    for _ in range(CONFLICT_RETRIES + 1):
        if not pending:
            break
        rows = (await db.view("medic", "messages_by_uuid", keys=list({c.message_id for c in pending})))["rows"]
        doc_of = {row["key"]: row["id"] for row in rows}
        docs = await db.get_many(doc_of.values(), latest=True)
        touched: dict[str, list[StateChange]] = {}
        changed: dict[str, int] = {}
        for change in pending:
            doc = docs.get(doc_of.get(change.message_id, ""))
            task = messages.find_task(doc, change.message_id) if doc else None
            if doc is None or task is None:
                log.warning("status update for unknown message %s ignored", change.message_id)
                continue
            touched.setdefault(doc["_id"], []).append(change)
            if advance(task, change.state, now, change.details, change.gateway_ref, change.force, change.as_cht):
                changed[doc["_id"]] = changed.get(doc["_id"], 0) + 1
        to_write = [docs[doc_id] for doc_id in changed]
        pending = []
        for doc, won in zip(to_write, await db.claim_many(to_write)):
            if won:
                changed_count += changed[doc["_id"]]
            else:  # read again: an update already stored (an unconfirmed claim) is not applied twice
                pending.extend(touched[doc["_id"]])
    if pending:
        log.warning("%d status update(s) not saved after repeated conflicts", len(pending))
    return changed_count


def gateway_changes(updates: Iterable[Any]) -> list[StateChange]:
    """cht-gateway's ``updates: [{id, status, reason?}]`` as cht-core reads them: a known status (as written:
    ``SENT``, not ``sent``) becomes its state, with ``{reason}`` when one is given; any other status, or none,
    is recorded as ``unrecognised`` with ``{gateway_status}`` (empty when there was none). Updates without a
    message id are skipped."""
    changes = []
    for update in updates:
        if not isinstance(update, Mapping) or not isinstance(update.get("id"), str):
            log.warning("status update without a message id ignored")
            continue
        status = update.get("status")
        state = GATEWAY_STATUS.get(status) if isinstance(status, str) else None
        if state is None:
            details: dict[str, Any] = {"gateway_status": status} if "status" in update else {}
            changes.append(StateChange("unrecognised", message_id=update["id"], details=details, as_cht=True))
            continue
        reason = update.get("reason")
        changes.append(StateChange(state, message_id=update["id"], details={"reason": reason} if reason else None,
                                   as_cht=True))
    return changes


# -- outgoing -------------------------------------------------------------------


def _last_change(task: dict[str, Any]) -> str:
    history = task.get("state_history") or []
    return str(history[-1].get("timestamp", "")) if history else ""


def claim(doc: dict[str, Any], wanted: set[str], now: dt.datetime, cutoff: str,
          settings: Mapping[str, Any]) -> tuple[list[dict[str, str]], bool]:
    """Mark the doc's wanted messages ``forwarded-to-gateway``.

    Returns them as ``{id, to, content}``, and whether the doc changed: a
    pending message with no recipient or no text can never be sent, so it is
    marked ``failed`` rather than left to take a place in every poll.
    """
    claimed: list[dict[str, str]] = []
    changed = False
    for key in ("tasks", "scheduled_tasks"):
        for task in doc.get(key) or []:
            mine = [m for m in task.get("messages") or [] if m.get("uuid") in wanted]
            if not mine:
                continue
            sendable = [m for m in mine if m.get("to") and m.get("message")]
            if not sendable:
                if task.get("state") == "pending":
                    changed = messages.set_state(task, "failed", now, "no recipient or no text") or changed
                continue
            if task.get("state") == "pending":
                messages.set_state(task, "forwarded-to-gateway", now)
            elif task.get("state") == "forwarded-to-gateway" and _last_change(task) <= cutoff:
                details = task.get("state_details") if isinstance(task.get("state_details"), dict) else {}
                messages.set_state(task, "forwarded-to-gateway", now,
                                   {"redelivered": int(details.get("redelivered", 0)) + 1})
            else:
                continue
            changed = True
            claimed.extend({"id": m["uuid"], "to": phones.normalize(m["to"], settings) or m["to"],
                            "content": m["message"]} for m in sendable)
    return claimed, changed


async def _candidates(db: Database, limit: int, cutoff: str) -> dict[str, set[str]]:
    """Doc id -> message uuids to hand out: pending ones, then handed-out ones gone quiet."""
    rows = (await db.view("medic", "messages_by_state", reduce=False, startkey=["pending"], endkey=["pending", {}],
                          limit=limit))["rows"]
    if len(rows) < limit:
        rows += (await db.view("medic", "messages_by_state", reduce=False, startkey=["forwarded-to-gateway"],
                               endkey=["forwarded-to-gateway", cutoff], limit=limit - len(rows)))["rows"]
    wanted: dict[str, set[str]] = {}
    for row in rows:
        if isinstance(row.get("value"), dict) and row["value"].get("id"):
            wanted.setdefault(row["id"], set()).add(row["value"]["id"])
    return wanted


async def hand_out(db: Database, settings: Mapping[str, Any], now: dt.datetime | None = None,
                   limit: int = HAND_OUT_LIMIT) -> list[dict[str, str]]:
    """Claim and return up to ``limit`` messages for the gateway; none when an aggregator sends them."""
    if not gateway_enabled(settings):
        return []
    return await claim_outgoing(db, settings, now, limit)


async def claim_outgoing(db: Database, settings: Mapping[str, Any], now: dt.datetime | None = None,
                         limit: int = HAND_OUT_LIMIT) -> list[dict[str, str]]:
    """Claim up to ``limit`` messages to send (``forwarded-to-gateway``), whoever sends them."""
    now = now or dt.datetime.now(dt.timezone.utc)
    minutes = sms_settings(settings).get("gateway_redeliver_minutes", REDELIVER_MINUTES)
    minutes = minutes if isinstance(minutes, (int, float)) and minutes > 0 else REDELIVER_MINUTES
    cutoff = messages.iso(now - dt.timedelta(minutes=minutes))
    wanted = await _candidates(db, limit, cutoff)
    return await claim_docs(db, wanted, lambda doc: claim(doc, wanted[doc["_id"]], now, cutoff, settings))


async def claim_docs(db: Database, wanted: Mapping[str, Any],
                     claim_one: Callable[[dict[str, Any]], tuple[list[dict[str, str]], bool]]) -> list[dict[str, str]]:
    """Claim messages doc by doc, writing each doc at the revision read; a doc lost to a
    concurrent writer is re-read and tried once more, then left for the next poll. On a cluster a claim
    told 202 hands out only once confirmed (``Database.confirm``): the cluster test once saw two such
    claims each settle as the winner and hand the same messages out. An unconfirmed claim keeps its
    messages ``forwarded-to-gateway``; they go out after ``gateway_redeliver_minutes``, never twice."""
    out: list[dict[str, str]] = []
    ids = list(wanted)
    for attempt in range(2):
        docs = await db.get_many(ids, latest=True)
        batch, claimed = [], {}
        for doc_id, doc in docs.items():
            found, changed = claim_one(doc)
            if changed:
                batch.append(doc)
                claimed[doc_id] = found
        ids = []
        for doc, won in zip(batch, await db.claim_many(batch)):
            if won:
                out.extend(claimed[doc["_id"]])
            elif attempt == 0:
                ids.append(doc["_id"])
        if not ids:
            break
    return out
