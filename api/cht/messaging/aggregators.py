"""SMS aggregators (RapidPro, Africa's Talking): what their webhooks send and what their APIs answer.

Pure shaping, no I/O: the API's webhook handlers and the sentinel's sender
(``sentinel/sms_sender.py``) do the talking. States and credential names are
CHT's, so a deployment moves over unchanged:

* RapidPro: incoming ``{id, from, content}`` JSON with ``Authorization: Token
  <rapidpro:incoming>``; outgoing ``POST <sms.rapidpro.url>/api/v2/broadcasts.json``
  with ``Authorization: Token <rapidpro:outgoing>``; statuses read back from
  ``/api/v2/messages.json?broadcast=<id>`` (or pushed to the delivery-reports
  webhook as ``{id, status}``).
* Africa's Talking: incoming and delivery reports form-encoded, with the
  ``africastalking.com:incoming`` key as ``?key=`` (how CHT configures the
  callback URLs); outgoing ``POST .../version1/messaging`` with header
  ``apiKey: <africastalking.com:outgoing>``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Mapping

from api.errors import BadRequest, NotFound

from .gateway import StateChange, outgoing_service, sms_settings

RAPIDPRO = "rapidpro"
AFRICAS_TALKING = "africastalking"
# Path names -> aggregator; "radpidpro" is the misspelt path CHT's v1 API serves, kept for old RapidPro flows.
AGGREGATORS = {"rapidpro": RAPIDPRO, "radpidpro": RAPIDPRO, "africastalking": AFRICAS_TALKING}
ENDPOINTS = ("incoming-messages", "delivery-reports")
SERVICES = {"rapidpro": RAPIDPRO, "africas-talking": AFRICAS_TALKING}
INCOMING_KEY = {RAPIDPRO: "rapidpro:incoming", AFRICAS_TALKING: "africastalking.com:incoming"}
OUTGOING_KEY = {RAPIDPRO: "rapidpro:outgoing", AFRICAS_TALKING: "africastalking.com:outgoing"}
AT_URL = "https://api.africastalking.com/version1/messaging"
AT_SANDBOX_URL = "https://api.sandbox.africastalking.com/version1/messaging"

# RapidPro message statuses -> (state, details); "errored" is retried by RapidPro itself.
RAPIDPRO_STATUS = {
    "queued": ("received-by-gateway", "Queued"),
    "wired": ("forwarded-by-gateway", "Wired"),
    "sent": ("sent", "Sent"),
    "delivered": ("delivered", "Delivered"),
    "handled": ("delivered", "Handled"),
    "resent": ("sent", "Resent"),
    "errored": ("received-by-gateway", "Errored"),
    "failed": ("failed", "Failed"),
}
RAPIDPRO_FINAL = frozenset({"delivered", "failed"})
# Africa's Talking delivery report statuses.
AT_REPORT_STATUS = {
    "Sent": "forwarded-by-gateway",
    "Submitted": "sent",
    "Buffered": "sent",
    "Rejected": "failed",
    "Success": "delivered",
    "Failed": "failed",
}
# Africa's Talking send status codes -> (state, details, retry later instead).
AT_SEND_STATUS = {
    100: ("forwarded-by-gateway", "Processed", False),
    101: ("sent", "Sent", False),
    102: ("received-by-gateway", "Queued", False),
    401: ("failed", "RiskHold", False),
    402: ("failed", "InvalidSenderId", True),
    403: ("failed", "InvalidPhoneNumber", False),
    404: ("failed", "UnsupportedNumberType", False),
    405: ("failed", "InsufficientBalance", True),
    406: ("denied", "UserInBlacklist", False),
    407: ("failed", "CouldNotRoute", False),
    500: ("failed", "InternalServerError", True),
    501: ("failed", "GatewayError", True),
    502: ("failed", "RejectedByGateway", True),
}


def aggregator_of(name: str, endpoint: str) -> str:
    aggregator = AGGREGATORS.get(name.lower())
    if aggregator is None or endpoint not in ENDPOINTS:
        raise NotFound(f"No SMS endpoint {name}/{endpoint}")
    return aggregator


def presented_key(authorization: str | None, query_key: str | None) -> str | None:
    """The shared secret a webhook call carries: ``Authorization: Token <key>`` or ``?key=<key>``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "token" and value.strip():
            return value.strip()
    return query_key or None


def key_matches(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        if required:
            raise BadRequest(f"Missing required field: {name}", field=name)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text", field=name)
    return value


def incoming_message(aggregator: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A webhook's incoming message as the gateway shape ``{id, from, content}``."""
    content_field = "text" if aggregator == AFRICAS_TALKING else "content"
    message = {"id": _text(body, "id"), "from": _text(body, "from"), "content": _text(body, content_field,
                                                                                     required=False) or ""}
    return message


def delivery_report(aggregator: str, body: Mapping[str, Any]) -> StateChange:
    """A webhook's delivery report as a state change of the message with that aggregator reference."""
    ref = _text(body, "id")
    status = _text(body, "status")
    if aggregator == AFRICAS_TALKING:
        state = AT_REPORT_STATUS.get(status or "")
        details = _text(body, "failureReason", required=False) or status
    else:
        state, details = RAPIDPRO_STATUS.get((status or "").lower(), (None, None))
    if state is None:
        raise BadRequest(f'Unknown status "{status}" for gateway reference "{ref}"', field="status")
    return StateChange(state, gateway_ref=ref, details=details)


# -- outgoing -------------------------------------------------------------------------


@dataclass
class Outcome:
    """What became of one message handed to an aggregator."""

    state: str | None  # None: try again later (the service is in trouble)
    gateway_ref: str | None = None
    details: Any = None


class NotConfigured(Exception):
    """The settings lack what the outgoing service needs; the message says what."""


def outgoing_aggregator(settings: Mapping[str, Any]) -> str | None:
    return SERVICES.get(outgoing_service(settings))


def check_settings(aggregator: str, settings: Mapping[str, Any]) -> None:
    """Raise NotConfigured unless the settings have what sending through the aggregator needs."""
    if aggregator == RAPIDPRO:
        rapidpro_base(settings)
    else:
        africastalking_send(settings, "", {"to": "", "content": ""})


def rapidpro_base(settings: Mapping[str, Any]) -> str:
    url = (sms_settings(settings).get("rapidpro") or {}).get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotConfigured("settings sms.rapidpro.url is not set")
    return url.rstrip("/")


def rapidpro_send(settings: Mapping[str, Any], token: str, message: Mapping[str, str]) -> dict[str, Any]:
    return {"method": "POST", "url": rapidpro_base(settings) + "/api/v2/broadcasts.json",
            "headers": {"Authorization": f"Token {token}", "Accept": "application/json"},
            "json": {"urns": [f"tel:{message['to']}"], "text": message["content"]}}


def rapidpro_sent(status: int, body: Any) -> Outcome:
    if 200 <= status < 300 and isinstance(body, Mapping) and body.get("id") is not None:
        state, details = RAPIDPRO_STATUS.get(str(body.get("status") or "queued").lower(), RAPIDPRO_STATUS["queued"])
        return Outcome(state, str(body["id"]), details)
    if status == 400:  # RapidPro: invalid parameters, do not retry with the same values
        return Outcome("failed", None, "Rejected by RapidPro")
    return Outcome(None, None, f"RapidPro answered {status}")


def rapidpro_status(settings: Mapping[str, Any], token: str, broadcast: str) -> dict[str, Any]:
    return {"method": "GET", "url": rapidpro_base(settings) + "/api/v2/messages.json",
            "headers": {"Authorization": f"Token {token}", "Accept": "application/json"},
            "params": {"broadcast": broadcast}}


def rapidpro_polled(body: Any) -> tuple[str, str] | None:
    """(state, details) from a messages.json answer, None when it says nothing."""
    results = body.get("results") if isinstance(body, Mapping) else None
    if not results or not isinstance(results[0], Mapping):
        return None
    return RAPIDPRO_STATUS.get(str(results[0].get("status") or "").lower())


def africastalking_send(settings: Mapping[str, Any], api_key: str, message: Mapping[str, str]) -> dict[str, Any]:
    options = sms_settings(settings).get("africas_talking") or {}
    username = options.get("username")
    if not isinstance(username, str) or not username:
        raise NotConfigured("settings sms.africas_talking.username is not set")
    url = options.get("url") or (AT_SANDBOX_URL if username == "sandbox" else AT_URL)
    form = {"username": username, "to": message["to"], "message": message["content"]}
    sender = sms_settings(settings).get("reply_to") or options.get("from")
    if sender:
        form["from"] = str(sender)
    return {"method": "POST", "url": url, "headers": {"apiKey": api_key, "Accept": "application/json"},
            "data": form}


def africastalking_sent(status: int, body: Any) -> Outcome:
    try:
        recipient = body["SMSMessageData"]["Recipients"][0]
        code = int(recipient["statusCode"])
    except (TypeError, KeyError, IndexError, ValueError):
        return Outcome(None, None, f"Africa's Talking answered {status}")
    state, details, retry = AT_SEND_STATUS.get(code, (None, f"status {code}", True))
    if retry or state is None:
        return Outcome(None, None, details)
    ref = recipient.get("messageId")
    return Outcome(state, str(ref) if ref and ref != "None" else None, details)
