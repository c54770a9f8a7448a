"""Configuration, read once from environment variables, with safe defaults.

Every process (API, sentinel, scripts, tests) builds one ``Config`` with
``Config.from_env()`` and passes it down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is unusable; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of addresses or networks (``10.0.0.0/8``)."""
    values = tuple(v.strip() for v in (env.get(name) or "").split(",") if v.strip())
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not an IP address or network") from None
    return values


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return (url without credentials, user, password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("COUCH_URL must look like http://user:pass@host:5984")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), user, password


def admin_file(data_dir: Path) -> Path:
    """Where the embedded server's generated admin credentials are kept (mode 0600)."""
    return data_dir / "couchdb-admin.json"


def saved_admin(data_dir: Path) -> tuple[str | None, str | None]:
    try:
        saved = json.loads(admin_file(data_dir).read_text())
        return saved["name"], saved["password"]
    except (OSError, ValueError, KeyError):
        return None, None


@dataclass(frozen=True)
class Config:
    couch_url: str = "http://127.0.0.1:5984"
    couch_user: str | None = None
    couch_password: str | None = field(default=None, repr=False)
    embedded_couch: bool = True
    couch_port: int = 5984
    couch_timeout: float = 30.0

    db_medic: str = "medic"
    db_sentinel: str = "medic-sentinel"
    db_users_meta: str = "medic-users-meta"
    db_logs: str = "medic-logs"
    db_foci: str = "foci"
    db_datapoints: str = "datapoints"
    db_spatial: str = "spatial"
    db_vault: str = "medic-vault"
    db_users: str = "_users"

    api_host: str = "127.0.0.1"
    api_port: int = 5988
    data_dir: Path = ROOT / ".data"
    node_modules: Path = ROOT / "node_modules"
    ddocs_dir: Path = ROOT / "ddocs"
    upgrade_builds: str = str(ROOT / ".data" / "builds")

    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = field(default=None, repr=False)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    credentials_key: str | None = field(default=None, repr=False)

    auth_cache_seconds: int = 10
    session_timeout_seconds: int = 600
    login_failure_limit: int = 5
    login_failure_window_seconds: int = 300
    trusted_proxies: tuple[str, ...] = ()
    view_warm_seconds: float = 1.0
    max_body_bytes: int = 32 * 1024 * 1024
    export_concurrency: int = 2  # exports of one kind running at once per API process; more get 503 (0: no limit)
    export_wait_seconds: float = 10.0  # as many more may wait this long for a slot before a 503 (0: at once)
    log_level: str = "INFO"
    sentinel_batch_size: int = 500
    sentinel_checkpoint_seconds: float = 1.0
    sentinel_lease_seconds: float = 8.0
    # several API processes on one port (scripts/cluster.py): each has an index, its own metrics port
    api_worker: str = ""
    api_reuse_port: bool = False
    metrics_port: int = 0
    login_throttle_store: str = "couch"  # couch (shared by every API process) | memory (this process)
    purge_call_timeout_ms: int = 1000
    purge_memory_mb: int = 64

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        data_dir = Path(env.get("JAMII_DATA_DIR") or ROOT / ".data")
        couch_port = _int(env, "COUCH_PORT", 5984)
        if env.get("COUCH_URL"):
            url, user, password = split_credentials(env["COUCH_URL"])
            embedded = False
        else:
            url, user, password = f"http://127.0.0.1:{couch_port}", None, None
            embedded = True
        # COUCH_USER / COUCH_PASSWORD name the embedded server's admin; they
        # also fill in credentials missing from COUCH_URL. Without them, the
        # embedded server's generated admin (saved on its first start) is used.
        user = user or env.get("COUCH_USER") or None
        password = password or env.get("COUCH_PASSWORD") or None
        if embedded and not user:
            user, password = saved_admin(data_dir)
        prefix = env.get("JAMII_DB_PREFIX", "")
        public_key = env.get("JWT_PUBLIC_KEY") or None
        if env.get("JWT_PUBLIC_KEY_FILE"):
            public_key = Path(env["JWT_PUBLIC_KEY_FILE"]).read_text()
        return cls(
            couch_url=url,
            couch_user=user,
            couch_password=password,
            embedded_couch=embedded,
            couch_port=couch_port,
            couch_timeout=float(_int(env, "COUCH_TIMEOUT", 30)),
            db_medic=prefix + env.get("MEDIC_DB", "medic"),
            db_sentinel=prefix + env.get("SENTINEL_DB", "medic-sentinel"),
            db_users_meta=prefix + env.get("USERS_META_DB", "medic-users-meta"),
            db_logs=prefix + env.get("LOGS_DB", "medic-logs"),
            db_foci=prefix + env.get("FOCI_DB", "foci"),
            db_datapoints=prefix + env.get("DATAPOINTS_DB", "datapoints"),
            db_spatial=prefix + env.get("SPATIAL_DB", "spatial"),
            db_vault=prefix + env.get("VAULT_DB", "medic-vault"),
            db_users=env.get("USERS_DB", "_users"),
            api_host=env.get("API_HOST", "127.0.0.1"),
            api_port=_int(env, "API_PORT", 5988),
            data_dir=data_dir,
            node_modules=Path(env.get("JAMII_NODE_MODULES") or ROOT / "node_modules"),
            ddocs_dir=Path(env.get("JAMII_DDOCS_DIR") or ROOT / "ddocs"),
            upgrade_builds=env.get("UPGRADE_BUILDS") or str(data_dir / "builds"),
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_public_key=public_key,
            jwt_audience=env.get("JWT_AUDIENCE") or None,
            jwt_issuer=env.get("JWT_ISSUER") or None,
            credentials_key=env.get("CREDENTIALS_KEY") or None,
            auth_cache_seconds=_int(env, "AUTH_CACHE_SECONDS", 10),
            session_timeout_seconds=_int(env, "SESSION_TIMEOUT_SECONDS", 600),
            login_failure_limit=max(0, _int(env, "LOGIN_FAILURE_LIMIT", 5)),
            login_failure_window_seconds=max(1, _int(env, "LOGIN_FAILURE_WINDOW_SECONDS", 300)),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            view_warm_seconds=max(0.0, _float(env, "VIEW_WARM_SECONDS", 1.0)),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 32 * 1024 * 1024),
            export_concurrency=max(0, _int(env, "EXPORT_CONCURRENCY", 2)),
            export_wait_seconds=max(0.0, _float(env, "EXPORT_WAIT_SECONDS", 10.0)),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            sentinel_batch_size=max(1, _int(env, "SENTINEL_BATCH_SIZE", 500)),
            sentinel_checkpoint_seconds=max(0.0, _float(env, "SENTINEL_CHECKPOINT_SECONDS", 1.0)),
            sentinel_lease_seconds=max(4.0, _float(env, "SENTINEL_LEASE_SECONDS", 8.0)),
            api_worker=env.get("API_WORKER", ""),
            api_reuse_port=env.get("API_REUSE_PORT", "") in ("1", "true", "yes"),
            metrics_port=_int(env, "METRICS_PORT", 0),
            login_throttle_store="memory" if env.get("LOGIN_THROTTLE_STORE") == "memory" else "couch",
            purge_call_timeout_ms=max(1, _int(env, "PURGE_CALL_TIMEOUT_MS", 1000)),
            purge_memory_mb=max(1, _int(env, "PURGE_MEMORY_MB", 64)),
        )

    def with_admin(self, user: str, password: str) -> "Config":
        """The same configuration with the CouchDB admin filled in."""
        return replace(self, couch_user=user, couch_password=password)

    def replace(self, **changes: object) -> "Config":
        return replace(self, **changes)

    @property
    def databases(self) -> dict[str, str]:
        """Logical database name (as used in ``ddocs/``) -> actual name."""
        return {
            "medic": self.db_medic,
            "medic-sentinel": self.db_sentinel,
            "medic-users-meta": self.db_users_meta,
            "medic-logs": self.db_logs,
            "foci": self.db_foci,
            "datapoints": self.db_datapoints,
            "spatial": self.db_spatial,
            "medic-vault": self.db_vault,
            "_users": self.db_users,
        }

    def with_prefix(self, prefix: str) -> "Config":
        """The same configuration with every Jamii database (not ``_users``) renamed ``<prefix><logical>``."""
        return replace(self, db_medic=prefix + "medic", db_sentinel=prefix + "medic-sentinel",
                       db_users_meta=prefix + "medic-users-meta", db_logs=prefix + "medic-logs",
                       db_foci=prefix + "foci", db_datapoints=prefix + "datapoints",
                       db_spatial=prefix + "spatial", db_vault=prefix + "medic-vault")

    @property
    def own_databases(self) -> list[str]:
        """The databases Jamii owns (everything but ``_users``)."""
        return [name for logical, name in self.databases.items() if logical != "_users"]

    def couch_url_with_credentials(self) -> str:
        """The CouchDB URL with the admin in it, for tools that want one string."""
        parts = urlsplit(self.couch_url)
        if not self.couch_user:
            return self.couch_url
        cred = quote(self.couch_user, safe="") + ":" + quote(self.couch_password or "", safe="")
        return urlunsplit((parts.scheme, f"{cred}@{parts.netloc}", parts.path, "", ""))
