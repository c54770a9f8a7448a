"""Fixtures: one throwaway embedded CouchDB per test run, clean databases per test module.

With COUCH_URL set, the tests use that server instead (databases get a unique
prefix, so an existing install is never touched).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any, AsyncIterator, Iterator

import pytest

from api.app import create_app
from api.config import Config
from api.couch import Couch
from scripts.couchdb import EmbeddedCouch, free_port
from scripts.setup_db import setup
from tests.couchdb_node import CouchDBNode
from tests.helpers import PASSWORD, Server, drop_databases, module_config, user_prefix


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


@pytest.fixture
def own_server(tmp_path: Any, couch_server: Server) -> Iterator[EmbeddedCouch | CouchDBNode]:
    """A database server of the test's own, to kill, hang and restart: another embedded server, or (on
    Apache CouchDB) one node started with ``COUCHDB_LOCAL``, as ``make test-couchdb`` sets it."""
    admin = ("admin", "own-server-" + uuid.uuid4().hex[:8])
    server: EmbeddedCouch | CouchDBNode
    if couch_server.embedded is not None:
        server = EmbeddedCouch(tmp_path, free_port(), admin)
    elif os.environ.get("COUCHDB_LOCAL"):
        server = CouchDBNode(os.environ["COUCHDB_LOCAL"], tmp_path, free_port(), admin)
    else:
        pytest.skip("needs a server it may stop: with COUCH_URL, set COUCHDB_LOCAL to a couchdb-local "
                    "(make test-couchdb does)")
    server.start()
    try:
        yield server
    finally:
        server.resume()
        server.stop()


@pytest.fixture(scope="module")
def config(couch_server: Server) -> Iterator[Config]:
    """A config whose databases are fresh for this test module, set up like ``make run`` does."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    cfg = module_config(couch_server, prefix)
    asyncio.run(setup(cfg, progress=lambda _: None))
    try:
        yield cfg
    finally:
        asyncio.run(drop_databases(cfg))


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
