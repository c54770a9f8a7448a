"""Login by SMS: a 64-character token sent as a link, good for one login within 24 hours.

Enabling it for a user (``token_login: true`` on create or update) sets a
random password, stores ``token_login: {active, token_hash, expiration_date}``
in the ``_users`` doc (``{active, expiration_date}`` in user-settings) and writes
a ``token_login`` doc ``token:login:<sha256 of the token>`` in the medic
database whose two pending tasks are SMS to the user's phone: a help text and
the link ``<app_url or the request's host>/medic/login/token/<token>``. The SMS
gateway hands them out like any pending message.

Only the token's SHA-256 is kept outside the message text, so neither id nor
``_users`` doc reveals a live token. Logging in claims the token with one write
of the ``_users`` doc (token inactive, new random password) claimed at its
revision (``Database.claim``), so two requests with the same link cannot both
win, on a cluster too. A new token or disabling clears the old doc's pending
messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import string
from typing import Any, Mapping

from api import passwords
from api.cht import messages
from api.couch import Database
from api.errors import BadRequest, Conflict, Unauthorized

TOKEN_LENGTH = 64
EXPIRY_MS = 24 * 60 * 60 * 1000
DOC_PREFIX = "token:login:"
DOC_TYPE = "token_login"
DEFAULT_HELP = ("Open the next link to log in to the app. It works once, within 24 hours; "
                "do not share it.")
_ALPHABET = string.ascii_letters + string.digits


class TokenError(Unauthorized):
    """A token that cannot log anyone in: ``invalid`` (unknown, used, replaced) or ``expired``."""

    def __init__(self, kind: str):
        reason = ("The login link has expired; ask for a new one." if kind == "expired"
                  else "The login link is invalid or was already used.")
        super().__init__(reason, body={"error": kind})  # CHT's body


def enabled(settings: Mapping[str, Any]) -> bool:
    config = settings.get("token_login")
    return isinstance(config, Mapping) and bool(config.get("enabled"))


def will_enable(data: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """CHT's rule: ``token_login: true`` turns login by SMS on only where it is configured; elsewhere it is
    ignored."""
    return enabled(settings) and data.get("token_login") is True


def require_enabled(settings: Mapping[str, Any]) -> None:
    if not enabled(settings):
        raise BadRequest("Login by SMS is not enabled: set token_login.enabled in the app settings",
                         body={"code": 400, "error": "disabled", "reason": "Token login disabled"})


def new_token() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def doc_id_for_hash(token_hash: str) -> str:
    return DOC_PREFIX + token_hash


def base_url(settings: Mapping[str, Any], request_base: str) -> str:
    """``app_settings.app_url`` when set, else what the request's Host header says."""
    configured = settings.get("app_url")
    return (configured if isinstance(configured, str) and configured.strip() else request_base).rstrip("/")


def help_text(settings: Mapping[str, Any]) -> str:
    """``token_login.message``: a string, or ``[{locale, content}]`` picked by the outgoing locale."""
    config = settings.get("token_login") if isinstance(settings.get("token_login"), Mapping) else {}
    message = config.get("message")
    if isinstance(message, str) and message.strip():
        return message
    if isinstance(message, list):
        texts = {m.get("locale"): m.get("content") for m in message if isinstance(m, Mapping)}
        for locale in (settings.get("locale_outgoing"), settings.get("locale"), "en"):
            if isinstance(texts.get(locale), str) and texts[locale]:
                return texts[locale]
        first = next((t for t in texts.values() if isinstance(t, str) and t), None)
        if first:
            return first
    return DEFAULT_HELP


def activate(user_doc: dict[str, Any], settings_doc: dict[str, Any], token: str, now_ms: int) -> None:
    """Put a new token on both docs (the caller writes them)."""
    expires = now_ms + EXPIRY_MS
    user_doc["token_login"] = {"active": True, "token_hash": digest(token), "expiration_date": expires}
    settings_doc["token_login"] = {"active": True, "expiration_date": expires}


def public_state(user_doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """What user-settings and API replies show of a user's token login (never the hash)."""
    state = user_doc.get("token_login")
    if not isinstance(state, Mapping):
        return None
    return {k: v for k, v in state.items() if k in ("active", "expiration_date", "login_date")}


def sms_doc(token: str, user_id: str, phone: str, settings: Mapping[str, Any], request_base: str,
            now: dt.datetime) -> dict[str, Any]:
    """The ``token_login`` doc whose pending tasks send the help text and the link."""
    doc_id = doc_id_for_hash(digest(token))
    url = f"{base_url(settings, request_base)}/medic/login/token/{token}"
    tasks = [messages.new_task(phone, text, messages.message_uuid(doc_id, part), now)
             for part, text in (("help", help_text(settings)), ("link", url))]
    return {"_id": doc_id, "type": DOC_TYPE, "reported_date": int(now.timestamp() * 1000), "user": user_id,
            "tasks": tasks}


async def clear_messages(medic: Database, user_doc: Mapping[str, Any], now: dt.datetime) -> None:
    """Clear the pending SMS of the user's current token (it is being replaced or disabled)."""
    state = user_doc.get("token_login")
    token_hash = state.get("token_hash") if isinstance(state, Mapping) else None
    if not isinstance(token_hash, str):
        return
    for _ in range(3):
        doc = await medic.get_or_none(doc_id_for_hash(token_hash))
        if not doc:
            return
        changed = [messages.set_state(task, "cleared", now) for task in doc.get("tasks") or []
                   if task.get("state") == "pending"]
        if not any(changed):
            return
        try:
            await medic.put(doc)
            return
        except Conflict:
            continue


SSO_REFUSED = "Token login not allowed for SSO users"


async def claim(users: Database, medic: Database, token: str, now_ms: int, *,
                sso_enabled: bool = False) -> tuple[dict[str, Any], str]:
    """Use a token: returns the user's doc and a new random password to open a session with. As in CHT, a
    user with an ``oidc_username`` may not log in by token while OIDC login is configured."""
    if not token or len(token) > 200:
        raise TokenError("invalid")
    token_hash = digest(token)
    doc = await medic.get_or_none(doc_id_for_hash(token_hash))
    if not doc or doc.get("type") != DOC_TYPE or not isinstance(doc.get("user"), str):
        raise TokenError("invalid")
    user = await users.get_or_none(doc["user"])
    state = user.get("token_login") if user else None
    if not isinstance(state, Mapping) or not state.get("active") or \
            not hmac.compare_digest(str(state.get("token_hash", "")), token_hash):
        raise TokenError("invalid")
    expires = state.get("expiration_date")
    if not isinstance(expires, (int, float)) or expires <= now_ms:
        raise TokenError("expired")
    assert user is not None
    if sso_enabled and user.get("oidc_username"):
        raise Unauthorized(SSO_REFUSED, body={"error": SSO_REFUSED})
    password = passwords.generate()
    user["password"] = password
    user["token_login"] = {**state, "active": False, "login_date": now_ms}
    if not await users.claim(user):
        raise TokenError("invalid")  # another request used it first
    return user, password
