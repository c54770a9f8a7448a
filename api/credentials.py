"""Secrets for integrations (SMS aggregators, HMIS...), encrypted at rest in the vault database.

Each secret is a doc ``credential:<name>`` in ``medic-vault`` (admin-only, never
replicated) whose ``password`` is a Fernet token (AES-CBC with an HMAC), so a
copy of the database or a backup alone reveals nothing. The key comes from
``CREDENTIALS_KEY`` (one or more comma-separated Fernet keys: the first
encrypts, every one decrypts, which is how a key is rotated). When it is unset,
a key is generated once and saved, readable by the owner only, in the data
folder: fine for one host running the API and the sentinel; set
``CREDENTIALS_KEY`` when several hosts share a CouchDB.

Secrets are never logged and never returned by the API.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .config import Config, ConfigError
from .couch import Couch, Database
from .errors import BadRequest, Conflict, ServiceUnavailable

log = logging.getLogger("jamii.credentials")

PREFIX = "credential:"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
MAX_SECRET_CHARS = 16 * 1024


def key_file(data_dir: Path) -> Path:
    """Where the generated key is kept when ``CREDENTIALS_KEY`` is unset (mode 0600)."""
    return data_dir / "credentials-key"


def _saved_or_new_key(data_dir: Path) -> str:
    """The saved key, or a new one saved now; two processes starting together agree on one."""
    path = key_file(data_dir)
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(Fernet.generate_key().decode("ascii"))
    try:
        os.link(tmp, path)  # atomic: the first process to get here wins, the others read its key
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def load_keys(config: Config) -> MultiFernet:
    raw = config.credentials_key or _saved_or_new_key(config.data_dir)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError):
        raise ConfigError("CREDENTIALS_KEY must be one or more comma-separated Fernet keys "
                          "(32 bytes, url-safe base64)") from None


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BadRequest("A credential key is 1-200 letters, digits and . _ : @ -, starting with a letter or digit",
                         field="key")
    return name


class CredentialStore:
    """The vault's secrets; the key is read (or generated) on first use, so a bad key fails that use only."""

    def __init__(self, db: Database, config: Config):
        self.db = db
        self._config = config
        self._key: MultiFernet | None = None

    @classmethod
    def from_config(cls, couch: Couch, config: Config) -> "CredentialStore":
        return cls(couch.db(config.db_vault), config)

    @property
    def _fernet(self) -> MultiFernet:
        if self._key is None:
            try:
                self._key = load_keys(self._config)
            except (ConfigError, OSError) as exc:
                raise ServiceUnavailable(f"The credential store is not usable: {exc}") from None
        return self._key

    async def set(self, name: str, secret: str) -> None:
        """Store (or replace) a secret."""
        check_name(name)
        if not isinstance(secret, str) or not secret:
            raise BadRequest("The credential is empty", field="body")
        if len(secret) > MAX_SECRET_CHARS:
            raise BadRequest(f"A credential is at most {MAX_SECRET_CHARS} characters", field="body")
        token = self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")
        for _ in range(5):
            doc = await self.db.get_or_none(PREFIX + name) or {"_id": PREFIX + name, "type": "credential"}
            doc["password"] = token
            try:
                await self.db.put(doc)
                return
            except Conflict:
                continue
        raise Conflict("The credential was changed by someone else at the same time; try again")

    async def get(self, name: str) -> str | None:
        """The secret, or None when it is not set (or cannot be decrypted with the configured key)."""
        doc = await self.db.get_or_none(PREFIX + name)
        if not doc or not isinstance(doc.get("password"), str):
            return None
        try:
            return self._fernet.decrypt(doc["password"].encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            log.warning("credential %s cannot be decrypted with the configured CREDENTIALS_KEY", name)
            return None
