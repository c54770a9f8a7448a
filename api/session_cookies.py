"""Whether a CouchDB session cookie was signed with its user's current salt.

CouchDB signs ``AuthSession`` as ``name:time:HMAC(server secret + the user's salt, "name:time")``. A
password change gives the user a new salt, so the cookie stops verifying; but each CouchDB node checks it
against its own cache of ``_users``, which on a cluster can lag the change by seconds (the suite on three
nodes saw a session still accepted on the first request after the password was reset). The API reads the
user's doc from a quorum of copies anyway to know the caller, so it checks the signature against that
doc's salt as well: a session ends on the first request after its password changed, whichever node
answers.

The check only ever refuses more than CouchDB does: without a readable secret (not an admin, an unknown
server) or a cookie in another format it says nothing, and CouchDB's answer stands.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any

from .couch import Couch
from .errors import Forbidden, Unauthorized

# CouchDB 3's [chttpd_auth] hash_algorithms default; pouchdb-server signs with sha1
DEFAULT_ALGORITHMS = ("sha256", "sha1")
SECRET_SECONDS = 300.0  # how long a secret read is trusted before a mismatch makes it read again


def split(value: str) -> tuple[bytes, bytes] | None:
    """A cookie's signed part (``name:time``) and its signature; None for another format."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    parts = raw.split(b":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        return None
    return parts[0] + b":" + parts[1], parts[2]


def signed_with(value: str, secret: str, salt: str, algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> bool | None:
    """Whether cookie ``value`` was signed with ``secret`` and ``salt``; None when it cannot be told."""
    parts = split(value)
    if parts is None:
        return None
    message, signature = parts
    key = (secret + salt).encode("utf-8")
    for name in algorithms:
        if name not in hashlib.algorithms_available:
            continue
        if hmac.compare_digest(hmac.new(key, message, name).digest(), signature):
            return True
    return False


def _algorithms(setting: str | None) -> tuple[str, ...]:
    names = tuple(a.strip().lower().replace("-", "") for a in (setting or "").split(",") if a.strip())
    return tuple(dict.fromkeys(names + DEFAULT_ALGORITHMS))


class CookieSigner:
    """The server's cookie secret, read once (as admin) and again when a signature does not match it."""

    def __init__(self, couch: Couch):
        self.couch = couch
        self._secret: str | None = None
        self._algorithms = DEFAULT_ALGORITHMS
        self._read_at = float("-inf")

    async def _read(self) -> None:
        self._read_at = time.monotonic()
        for section in ("chttpd_auth", "couch_httpd_auth"):  # CouchDB 3; CouchDB 1 and pouchdb-server
            try:
                values = await self.couch.config_section(section)
            except (Forbidden, Unauthorized):  # not a server admin: CouchDB's own check stands alone
                values = {}
            if values.get("secret"):
                self._secret = values["secret"]
                self._algorithms = _algorithms(values.get("hash_algorithms"))
                return
        self._secret = None

    async def current(self, value: str, user_doc: dict[str, Any]) -> bool:
        """False only when cookie ``value`` is surely not signed with the salt ``user_doc`` holds now."""
        salt = user_doc.get("salt")
        if not isinstance(salt, str) or split(value) is None:
            return True
        if time.monotonic() - self._read_at > SECRET_SECONDS:
            await self._read()
        if self._secret is None:
            return True
        if signed_with(value, self._secret, salt, self._algorithms):
            return True
        if time.monotonic() - self._read_at > 1.0:  # the secret may have been changed: read it once more
            await self._read()
            if self._secret is None or signed_with(value, self._secret, salt, self._algorithms):
                return True
        return False
