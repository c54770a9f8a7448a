"""Fixtures: one throwaway embedded CouchDB per test run, clean databases per test module.

With COUCH_URL set, the tests use that server instead (databases get a unique
prefix, so an existing install is never touched).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest

from api.app import create_app
from api.config import Config
from api.couch import Couch
from scripts.couchdb import EmbeddedCouch, free_port
from scripts.setup_db import setup

JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
PASSWORD = "Secret-passw0rd!"


@dataclass
class Server:
    config: Config
    embedded: EmbeddedCouch | None


@pytest.fixture(scope="session")
def couch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = Config.from_env({k: v for k, v in os.environ.items() if k == "COUCH_URL"})
    if not base.embedded_couch:
        yield Server(base, None)
        return
    data_dir = tmp_path_factory.mktemp("couchdb")
    embedded = EmbeddedCouch(data_dir, free_port(), ("admin", "test-admin-pass"))
    embedded.start()
    try:
        yield Server(base.replace(couch_url=embedded.url, couch_port=embedded.port, data_dir=data_dir)
                     .with_admin(*embedded.admin), embedded)
    finally:
        embedded.stop()


def module_config(server: Server, prefix: str, **changes: Any) -> Config:
    return server.config.with_prefix(prefix).replace(jwt_secret=JWT_SECRET, auth_cache_seconds=0, **changes)


def user_prefix(config: Config) -> str:
    """Users made by a test module carry its database prefix, so modules never collide."""
    return config.db_medic[: -len("medic")]


async def _drop(config: Config) -> None:
    async with Couch.from_config(config) as couch:
        for name in config.own_databases:
            await couch.delete_db(name)
        users = couch.db(config.db_users)
        prefix = f"org.couchdb.user:{user_prefix(config)}"
        rows = (await users.all_docs(startkey=prefix, endkey=prefix + "\ufff0"))["rows"]
        for row in rows:
            await users.delete(row["id"], row["value"]["rev"])


@pytest.fixture(scope="module")
def config(couch_server: Server) -> Iterator[Config]:
    """A config whose databases are fresh for this test module, set up like ``make run`` does."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    cfg = module_config(couch_server, prefix)
    asyncio.run(setup(cfg, progress=lambda _: None))
    try:
        yield cfg
    finally:
        asyncio.run(_drop(cfg))


@pytest.fixture
async def couch(config: Config) -> AsyncIterator[Couch]:
    async with Couch.from_config(config) as c:
        yield c


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Any:
    return await aiohttp_client(create_app(config))


@pytest.fixture
def make_user(config: Config, couch: Couch) -> Any:
    """Create a CouchDB user (name made unique to the module) and return its name."""

    async def make(name: str, roles: list[str], *, password: str = PASSWORD, **fields: Any) -> str:
        full = user_prefix(config) + name
        await couch.db(config.db_users).put({
            "_id": f"org.couchdb.user:{full}", "name": full, "type": "user", "roles": roles,
            "password": password, **fields,
        })
        return full

    return make


def data_path(*parts: str) -> Path:
    return Path(__file__).parent / "data" / Path(*parts)


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    """Headers for HTTP Basic auth."""
    from api.couch import basic_auth

    return {"Authorization": basic_auth(name, password)}


def admin_headers(config: Config) -> dict[str, str]:
    return basic(config.couch_user or "", config.couch_password or "")
