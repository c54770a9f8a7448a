"""Several API processes behind one port agree: a cookie issued by one works on all, a user changed or
deleted anywhere is refused or re-scoped by every process within 2 s (each follows ``_users``, no waiting
for a cache to expire: the caches here remember for 5 minutes), settings reach every process, and failed
logins are counted once for all of them (in CouchDB)."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.app import create_app
from api.couch import Couch
from api.login_failures import CouchFailureStore, fold
from api.login_throttle import Failures, failure_key
from api.settings import SettingsStore
from tests.helpers import PASSWORD, basic

AGREE_SECONDS = 2.0


@pytest.fixture
async def two(aiohttp_client, config):
    """Two API apps on one CouchDB, as two worker processes would be (nothing shared but CouchDB)."""
    slow_cache = config.replace(auth_cache_seconds=300)
    first = await aiohttp_client(create_app(slow_cache))
    second = await aiohttp_client(create_app(slow_cache))
    await asyncio.sleep(0.3)  # their followers have read the current seq
    return first, second


async def _status(client, headers) -> int:
    async with client.get("/api/v1/settings", headers=headers) as response:
        await response.read()
        return response.status


async def _until(check, seconds: float = AGREE_SECONDS) -> float:
    """How long until ``check()`` holds; fails past ``seconds``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not seen within 2 s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def _user_doc(couch, config, name):
    return await couch.db(config.db_users).get(f"org.couchdb.user:{name}")


async def test_a_cookie_from_one_process_works_on_the_other(two, make_user):
    first, second = two
    name = await make_user("agree-cookie", ["chw"])
    async with first.post("/_session", json={"name": name, "password": PASSWORD}) as response:
        assert response.status == 200
        cookie = response.cookies["AuthSession"].value
    async with second.get("/_session", headers={"Cookie": f"AuthSession={cookie}"}) as response:
        assert (await response.json())["userCtx"]["name"] == name


async def test_a_password_changed_anywhere_is_refused_everywhere_within_2_s(two, couch, config, make_user):
    name = await make_user("agree-password", ["chw"])
    for client in two:
        assert await _status(client, basic(name)) == 200  # remembered by both
    doc = await _user_doc(couch, config, name)
    await couch.db(config.db_users).put({**doc, "password": "An0ther-passw0rd!"})  # a tool, another process
    for client in two:
        await _until(lambda c=client: _refused(c, basic(name)))
        assert await _status(client, basic(name, "An0ther-passw0rd!")) == 200


async def _refused(client, headers) -> bool:
    return await _status(client, headers) == 401


async def test_a_deleted_user_and_their_cookie_are_refused_everywhere_within_2_s(two, couch, config, make_user):
    first, second = two
    name = await make_user("agree-deleted", ["chw"])
    async with first.post("/_session", json={"name": name, "password": PASSWORD}) as response:
        cookie = {"Cookie": f"AuthSession={response.cookies['AuthSession'].value}"}
    for client in two:
        assert await _status(client, basic(name)) == 200
        assert await _status(client, cookie) == 200
    doc = await _user_doc(couch, config, name)
    await couch.db(config.db_users).delete(doc["_id"], doc["_rev"])
    for client in two:
        await _until(lambda c=client: _refused(c, basic(name)))
        await _until(lambda c=client: _refused(c, cookie))


async def test_roles_changed_anywhere_rescope_everywhere_within_2_s(two, couch, config, make_user):
    name = await make_user("agree-roles", ["chw"])

    async def roles(client) -> list[str]:
        async with client.get("/_session", headers=basic(name)) as response:
            return (await response.json())["userCtx"]["roles"]

    for client in two:
        assert "chw" in await roles(client)
    doc = await _user_doc(couch, config, name)
    await couch.db(config.db_users).put({**doc, "roles": ["supervisor"]})
    for client in two:
        await _until(lambda c=client: _has_role(roles, c, "supervisor"))


async def _has_role(roles, client, role) -> bool:
    found = await roles(client)
    return role in found and "chw" not in found


async def test_settings_reach_every_process_within_2_s(two, couch, config):
    store = SettingsStore(couch.db(config.db_medic))
    marker = f"agree-{time.time()}"
    await store.update({"agree_marker": marker}, replace=False)

    async def seen(client) -> bool:
        async with client.get("/api/v1/settings", headers=basic(config.couch_user, config.couch_password)) as r:
            return (await r.json()).get("agree_marker") == marker

    for client in two:
        await _until(lambda c=client: seen(c))


async def test_failed_logins_are_counted_once_for_every_process(two, make_user):
    first, second = two
    name = await make_user("agree-throttle", ["chw"])
    statuses = []
    for n in range(5):  # the limit, spread over both processes
        statuses.append(await _status(two[n % 2], basic(name, f"wrong-{n}")))
    assert statuses == [401] * 5
    for client in two:
        assert await _status(client, basic(name, "wrong-again")) == 429
        assert await _status(client, basic(name)) == 429  # the right password too, from this address


def test_the_count_folds_events_in_order_with_the_window():
    ids = [f"login-failure:k:{ms:013d}:{kind}:{r}" for ms, kind, r in
           [(1000, "+", "a"), (2000, "+", "b"), (2500, "-", "c"), (3000, "+", "d")]]
    assert fold(ids, window=10) == Failures(1.0, 2)  # +1 +1 -1 +1 from the first failure
    assert fold(ids, window=1.5) == Failures(2.5, 1)  # the window from 1 s ended at 2.5 s: counted anew
    assert fold(list(reversed(ids)), window=10) == Failures(1.0, 2), "the order is the ids', not the list's"
    assert fold([], window=10) is None


async def test_a_check_reads_the_copy_kept_from_the_feed_not_couchdb(config):
    """Every authenticated request checks its name's count: against the copy in memory, with no request."""
    requests = []
    async with Couch.from_config(config, observer=lambda method, seconds: requests.append(method)) as couch:
        elsewhere = CouchFailureStore(couch.db(config.db_logs), 300)  # another process's store
        key = failure_key(f"copy-{time.time_ns()}", "10.9.9.9")
        await elsewhere.add(key, time.time(), 300)
        store = CouchFailureStore(couch.db(config.db_logs), 300)
        assert (await store.get(key)).count == 1, "no copy yet: read from CouchDB"
        await store.load()
        before = len(requests)
        assert (await store.get(key)).count == 1
        assert len(requests) == before, "the copy answers"
        event = next(iter(store._events[key]))
        store.seen(event, deleted=True)  # the feed says another process cleared it
        assert await store.get(key) is None
        store.lost()
        assert (await store.get(key)).count == 1, "a lost feed: CouchDB again"
