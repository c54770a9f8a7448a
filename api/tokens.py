"""API tokens: ``Authorization: Token <key>`` for CouchDB users (the spatial units API's scheme).

A token belongs to one account of ``_users`` and acts as that user, with the roles their
``_users`` doc has at the time of the request. It records the account's id (``api.accounts``)
and is refused once the ``_users`` doc no longer holds it: a deleted user's tokens stop working,
and never come back for a new user of the same name. Deleting a user deletes their tokens too
(``revoke_all``). Tokens made before tokens recorded an account are refused: make new ones.
The key is shown once, when it is made; only its SHA-256 is stored, as the doc id
``api_token:<sha256 hex>`` in the spatial database (admin-only, never replicated to
devices). Its public id is the first 16 hex digits of that hash. Revoking deletes the doc.
Keys are 256 random bits, so a plain hash is as good as a slow one here and lets one GET
find the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from . import accounts
from .auth import USER_PREFIX, Principal
from .couch import Database
from .errors import BadRequest, NotFound, Unauthorized

PREFIX = "api_token:"
DDOC = "spatial"
ID_LENGTH = 16
MAX_KEY_LENGTH = 200
PUBLIC_ID = re.compile(r"^[0-9a-f]{16}$")
INVALID = "Invalid token."


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["id"], "name": doc.get("name", ""), "user": doc["user"], "created": doc["created"]}


async def create(db: Database, users: Database, user: str, name: str) -> dict[str, Any]:
    """Make a token for ``user``; the reply holds the key, which is never shown again."""
    try:
        account = await accounts.ensure(users, user)
    except NotFound:
        raise BadRequest(f"{user} is not a user of _users (server admins cannot have tokens)", field="user") from None
    key = secrets.token_urlsafe(32)
    hashed = digest(key)
    doc = {"_id": PREFIX + hashed, "doc_type": "api_token", "id": hashed[:ID_LENGTH], "user": user,
           "account": account, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
    await db.put(doc)
    return {**public(doc), "key": key}


async def list_for(db: Database, user: str) -> list[dict[str, Any]]:
    """A user's tokens, oldest first, without their keys (a user has a handful)."""
    rows = (await db.view(DDOC, "api_tokens_by_user", startkey=[user], endkey=[user, {}]))["rows"]
    return [{**row["value"], "user": user} for row in rows]


async def find(db: Database, token_id: str) -> dict[str, Any] | None:
    """The token doc with this public id, if any."""
    if not PUBLIC_ID.match(token_id):
        return None
    start = PREFIX + token_id
    rows = (await db.all_docs(startkey=start, endkey=start + "\ufff0", include_docs=True, limit=1))["rows"]
    return rows[0]["doc"] if rows and rows[0].get("doc") else None


async def revoke(db: Database, doc: dict[str, Any]) -> None:
    await db.delete(doc["_id"], doc["_rev"])


async def revoke_all(db: Database, user: str) -> int:
    """Delete every token of ``user`` (the user is being deleted); returns how many there were."""
    rows = (await db.view(DDOC, "api_tokens_by_user", startkey=[user], endkey=[user, {}]))["rows"]
    if not rows:
        return 0
    docs = (await db.all_docs([row["id"] for row in rows]))["rows"]
    await db.bulk_docs([{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True}
                        for r in docs if "value" in r and not r["value"].get("deleted")])
    return len(rows)


async def authenticate(db: Database, users: Database, key: str) -> Principal:
    """The user a key belongs to; Unauthorized for an unknown, revoked or orphaned key."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or " " in key:
        raise Unauthorized(INVALID)
    doc = await db.get_or_none(PREFIX + digest(key))
    if doc is None or doc.get("doc_type") != "api_token":
        raise Unauthorized(INVALID)
    user_doc = await users.get_or_none(USER_PREFIX + doc["user"])
    if user_doc is None or not doc.get("account") or accounts.of(user_doc) != doc["account"]:
        raise Unauthorized(INVALID)  # the account it was made for is gone (a new one may have its name)
    return Principal(name=doc["user"], roles=tuple(user_doc.get("roles") or ()), method="token",
                     facility_id=user_doc.get("facility_id"), contact_id=user_doc.get("contact_id"))
