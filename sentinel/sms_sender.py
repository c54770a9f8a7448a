"""The ``send-sms`` job: outgoing messages to the configured SMS aggregator (RapidPro, Africa's Talking).

When settings ``sms.outgoing_service`` is ``rapidpro`` or ``africas-talking``,
pending messages are claimed exactly as the gateway claims them (written
``forwarded-to-gateway`` at the revision read, so nobody else sends them),
then sent one by one. Each aggregator answer moves the message's state
(``api.cht.messages.set_state`` through ``api.cht.messaging.gateway.apply_changes``) and records its
reference (``gateway_ref``) for delivery reports. When the service is in
trouble (unreachable, 5xx, refused credentials, no credit) the message goes
back to ``pending`` and the run stops, to try again on the next run rather than
hammer a failing service. RapidPro does not push statuses by itself, so the
job also asks it about messages it has not finished with, as CHT does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import aiohttp

from api.cht.messaging import aggregators as aggregators
from api.cht.messaging import gateway as sms
from api.config import Config
from api.couch import Couch, Database
from api.credentials import CredentialStore
from api.settings import SettingsStore

log = logging.getLogger("jamii.sentinel.sms")

BATCH = 25
MAX_BATCHES = 40  # at most 1,000 messages a run; the next run goes on
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
POLL_STATES = ("received-by-gateway", "forwarded-by-gateway", "sent")


async def _call(http: aiohttp.ClientSession, request: dict[str, Any]) -> tuple[int, Any]:
    """One HTTP call; (0, None) when the service could not be reached."""
    kwargs = {k: request[k] for k in ("headers", "json", "data", "params") if k in request}
    try:
        async with http.request(request["method"], request["url"], **kwargs) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        log.warning("SMS aggregator unreachable: %s", type(exc).__name__)
        return 0, None


async def _send_one(http: aiohttp.ClientSession, aggregator: str, settings: Mapping[str, Any], key: str,
                    message: dict[str, str]) -> aggregators.Outcome:
    if aggregator == aggregators.RAPIDPRO:
        status, body = await _call(http, aggregators.rapidpro_send(settings, key, message))
        return aggregators.rapidpro_sent(status, body)
    status, body = await _call(http, aggregators.africastalking_send(settings, key, message))
    return aggregators.africastalking_sent(status, body)


async def send_batch(db: Database, http: aiohttp.ClientSession, aggregator: str, settings: Mapping[str, Any],
                     key: str) -> tuple[int, bool]:
    """Claim and send one batch; returns (messages handed to the aggregator, whether to go on)."""
    claimed = await sms.claim_outgoing(db, settings, limit=BATCH)
    changes: list[sms.StateChange] = []
    sent = 0
    trouble = None
    for message in claimed:
        outcome = aggregators.Outcome(None, None, trouble) if trouble else \
            await _send_one(http, aggregator, settings, key, message)
        if outcome.state is None:
            trouble = trouble or outcome.details
            changes.append(sms.StateChange("pending", message_id=message["id"], details=outcome.details,
                                           force=True))
        else:
            sent += 1
            changes.append(sms.StateChange(outcome.state, message_id=message["id"], gateway_ref=outcome.gateway_ref,
                                           details=outcome.details))
    await sms.apply_changes(db, changes)
    if trouble:
        log.warning("sending SMS through %s stopped: %s; trying again next run", aggregator, trouble)
    return sent, bool(claimed) and not trouble and len(claimed) >= BATCH


async def poll_rapidpro(db: Database, http: aiohttp.ClientSession, settings: Mapping[str, Any], key: str) -> int:
    """Ask RapidPro about messages it has not finished with; returns how many changed."""
    refs: dict[str, str] = {}
    for state in POLL_STATES:
        rows = (await db.view("medic", "messages_by_state", reduce=False, startkey=[state], endkey=[state, {}],
                              limit=BATCH))["rows"]
        docs = await db.get_many(row["id"] for row in rows)
        wanted = {row["value"]["id"] for row in rows if isinstance(row.get("value"), dict)}
        for doc in docs.values():
            for key_name in ("tasks", "scheduled_tasks"):
                for task in doc.get(key_name) or []:
                    for message in task.get("messages") or []:
                        if message.get("uuid") in wanted and task.get("gateway_ref"):
                            refs[message["uuid"]] = str(task["gateway_ref"])
    changes = []
    for uuid, ref in refs.items():
        status, body = await _call(http, aggregators.rapidpro_status(settings, key, ref))
        if status == 429 or status == 0 or status >= 500:
            break  # throttled or in trouble: the next run goes on
        found = aggregators.rapidpro_polled(body) if status == 200 else None
        if found:
            changes.append(sms.StateChange(found[0], message_id=uuid, details=found[1]))
    return await sms.apply_changes(db, changes) if changes else 0


async def send_pending(couch: Couch, config: Config, settings_store: SettingsStore,
                       credentials: CredentialStore) -> int:
    """The job: send what is pending through the configured aggregator; returns how many were sent."""
    settings = await settings_store.get()
    aggregator = aggregators.outgoing_aggregator(settings)
    if aggregator is None:
        return 0
    key = await credentials.get(aggregators.OUTGOING_KEY[aggregator])
    if not key:
        log.warning("no %s credential: outgoing messages wait (PUT /api/v1/credentials/%s)",
                    aggregators.OUTGOING_KEY[aggregator], aggregators.OUTGOING_KEY[aggregator])
        return 0
    try:
        aggregators.check_settings(aggregator, settings)
    except aggregators.NotConfigured as exc:
        log.warning("outgoing messages wait: %s", exc)
        return 0
    db = couch.db(config.db_medic)
    total = 0
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        for _ in range(MAX_BATCHES):
            sent, more = await send_batch(db, http, aggregator, settings, key)
            total += sent
            if not more:
                break
        if aggregator == aggregators.RAPIDPRO:
            await poll_rapidpro(db, http, settings, key)
    return total
