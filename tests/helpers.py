"""Plain helpers the tests share: credentials, headers, per-module configs and test data paths.

Fixtures live in ``conftest.py``; everything a test imports by name lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.config import Config
from api.couch import Couch, basic_auth
from scripts.couchdb import EmbeddedCouch

JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
PASSWORD = "Secret-passw0rd!"


@dataclass
class Server:
    config: Config
    embedded: EmbeddedCouch | None


def module_config(server: Server, prefix: str, **changes: Any) -> Config:
    return server.config.with_prefix(prefix).replace(jwt_secret=JWT_SECRET, auth_cache_seconds=0, view_warm_seconds=0,
                                                     **changes)


def user_prefix(config: Config) -> str:
    """Users made by a test module carry its database prefix, so modules never collide."""
    return config.db_medic[: -len("medic")]


async def drop_databases(config: Config) -> None:
    async with Couch.from_config(config) as couch:
        made = [n for n in await couch.all_dbs() if n.startswith(config.db_medic + "-")]  # purge, user meta dbs
        for name in dict.fromkeys([*config.own_databases, *made]):
            await couch.delete_db(name)
        users = couch.db(config.db_users)
        prefix = f"org.couchdb.user:{user_prefix(config)}"
        rows = (await users.all_docs(startkey=prefix, endkey=prefix + "\ufff0"))["rows"]
        for row in rows:
            await users.delete(row["id"], row["value"]["rev"])


def data_path(*parts: str) -> Path:
    return Path(__file__).parent / "data" / Path(*parts)


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    """Headers for HTTP Basic auth."""
    return {"Authorization": basic_auth(name, password)}


def admin_headers(config: Config) -> dict[str, str]:
    return basic(config.couch_user or "", config.couch_password or "")


async def forget_replication_count(couch: Couch, config: Config, user: str) -> None:
    """Delete a user's stored replication count: the next sync records its count afresh (a stored count is
    only replaced when the new one is more than 100 docs away, as in cht-core)."""
    logs = couch.db(config.db_logs)
    stored = await logs.get_or_none(f"replication-count-{user}")
    if stored:
        await logs.delete(stored["_id"], stored["_rev"])
