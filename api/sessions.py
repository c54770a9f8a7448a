"""A CouchDB session for a user who proved who they are without a password (OIDC login).

CHT mints the ``AuthSession`` cookie itself with CouchDB's server secret.
Jamii does not hold that secret (whoever has it can forge a session for any
user, admins included), so it obtains the session from CouchDB as an admin
would: it gives the user a new random password and logs in with it
(``POST /_session``). The new password is hashed here with the user's own salt
and PBKDF2 settings, so the salt, and with it every cookie the user already
holds (other devices), stays valid; nobody ever learns the password.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Mapping

from . import passwords
from .auth import USER_PREFIX, Authenticator, Principal
from .errors import Conflict, NotFound, Unauthorized

log = logging.getLogger("jamii.sessions")

ATTEMPTS = 4  # CouchDB locks a name after 5 refused logins
_PRF = {"sha": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def same_salt_hash(user_doc: Mapping[str, Any], password: str) -> dict[str, Any] | None:
    """The ``_users`` fields that make ``password`` the user's password, with the doc's own salt, PRF and
    iterations (CouchDB's PBKDF2 scheme); None for a doc without one (CouchDB then hashes a ``password``)."""
    salt, prf = user_doc.get("salt"), _PRF.get(str(user_doc.get("pbkdf2_prf", "sha")))
    iterations = user_doc.get("iterations")
    if user_doc.get("password_scheme") != "pbkdf2" or not isinstance(salt, str) or prf is None or \
            not isinstance(iterations, int) or iterations < 1:
        return None
    key = hashlib.pbkdf2_hmac(prf, password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return {"derived_key": key.hex()}


async def login_after_change(authenticator: Authenticator, name: str, password: str) -> tuple[Principal, str]:
    """``Authenticator.login`` right after the API set the user's password: CouchDB's credentials cache (or a
    cluster's other nodes) may not have seen the write yet, so a refusal is tried again a few times, fewer
    than CouchDB's lockout counts (as CHT retries its own logins after setting a password)."""
    authenticator.forget(name)
    for attempt in range(ATTEMPTS):
        try:
            return await authenticator.login(name, password)
        except Unauthorized:
            if attempt == ATTEMPTS - 1:
                raise
            log.info("session for %s refused right after its password was set (attempt %d)", name, attempt + 1)
            await asyncio.sleep(0.05 * 2 ** attempt)
    raise AssertionError("unreachable")


async def session_for(authenticator: Authenticator, name: str) -> tuple[Principal, str]:
    """The caller and the ``AuthSession`` cookie value of a new CouchDB session for ``name``."""
    users = authenticator.users
    for _ in range(ATTEMPTS):
        doc = await users.get_or_none(USER_PREFIX + name)
        if doc is None:
            raise NotFound(f"No user {name}")
        password = passwords.generate()
        fields = await asyncio.to_thread(same_salt_hash, doc, password)
        try:
            await users.put({**doc, **(fields or {"password": password})})
        except Conflict:
            continue  # the doc changed meanwhile: read it again
        return await login_after_change(authenticator, name, password)
    raise Unauthorized(f"The _users doc of {name} kept changing; no session opened")
