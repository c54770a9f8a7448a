"""Failed logins throttled per (name, client address) by the API, never by CouchDB's lockout: 500 wrong
passwords for a name from one address never stop that user logging in from another address, and never
lock the API's own CouchDB account. On CouchDB this runs with its lockout in the default ``enforce`` mode
(5 failures from one address lock a name), which is what makes it a test of the API."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from api.app import create_app
from api.couch import Couch
from api.errors import TooManyRequests
from api.login_throttle import LoginThrottle, MemoryFailureStore, client_address, parse_networks
from tests.helpers import PASSWORD, basic

BAD_TRIES = 500


def test_client_address_is_the_socket_unless_a_trusted_proxy_forwarded_it():
    trusted = parse_networks(["10.0.0.0/8", "192.0.2.7"])
    assert client_address("203.0.113.5", None, trusted) == "203.0.113.5"
    # a client that is not a trusted proxy cannot choose its address
    assert client_address("203.0.113.5", "198.51.100.1", trusted) == "203.0.113.5"
    assert client_address("10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    # the right-most entry that is not one of our proxies: what the client wrote further left is ignored
    assert client_address("10.1.2.3", "1.1.1.1, 198.51.100.1, 192.0.2.7", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "10.9.9.9", trusted) == "10.9.9.9"  # only proxies: the first of them
    assert client_address("10.1.2.3", " , ", trusted) == "10.1.2.3"
    assert client_address("::ffff:10.1.2.3", "198.51.100.1", trusted) == "198.51.100.1"
    assert client_address("10.1.2.3", "198.51.100.1", ()) == "10.1.2.3"  # no proxy configured: never trusted
    assert client_address(None, None, ()) == "unknown"
    with pytest.raises(ValueError):
        parse_networks(["not-an-address"])


async def test_the_count_runs_from_the_first_failure_and_a_success_clears_it():
    throttle = LoginThrottle(limit=3, window=1.5, store=MemoryFailureStore())
    for _ in range(3):
        await throttle.check("u", "a")
        await throttle.begin("u", "a")  # and then failed
    with pytest.raises(TooManyRequests) as refused:
        await throttle.check("u", "a")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 2
    with pytest.raises(TooManyRequests):
        await throttle.begin("u", "a")
    await throttle.begin("u", "b")  # another address
    await throttle.begin("v", "a")  # another name
    await asyncio.sleep(1.6)
    await throttle.check("u", "a")  # the window has ended
    for _ in range(2):
        await throttle.begin("u", "a")
    await throttle.begin("u", "a")
    await throttle.succeeded("u", "a")  # the third one was right: the count starts again
    for _ in range(2):
        await throttle.begin("u", "a")
    await throttle.begin("u", "a")
    await throttle.abandoned("u", "a")  # the third one could not be checked: not counted
    await throttle.check("u", "a")
    await throttle.begin("u", "a")
    with pytest.raises(TooManyRequests):
        await throttle.check("u", "a")


async def _lockout_mode(couch: Couch) -> str | None:
    """CouchDB's ``[chttpd_auth_lockout] mode`` (None: pouchdb-server, which has no lockout)."""
    if "couchdb" not in await couch.info():
        return None
    status, body, _ = await couch.request("GET", "/_node/_local/_config/chttpd_auth_lockout/mode",
                                          raise_errors=False)
    return body if status == 200 else "enforce"  # not set: the built-in default


def _from(address: str) -> aiohttp.ClientSession:
    """A client whose socket comes from ``address`` (any 127.x.y.z reaches the test server on loopback)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def _hammer(session: aiohttp.ClientSession, url: str, how: str, name: str) -> list[int]:
    """``BAD_TRIES`` wrong passwords for ``name``, 25 at a time; the statuses."""
    async def once(n: int) -> int:
        if how == "basic":
            request = session.get(url + "/api/v1/settings", headers=basic(name, f"wrong-{n}"))
        else:
            request = session.post(url + "/_session", json={"name": name, "password": f"wrong-{n}"})
        async with request as response:
            await response.read()
            return response.status
    statuses: list[int] = []
    for start in range(0, BAD_TRIES, 25):
        statuses += await asyncio.gather(*(once(n) for n in range(start, start + 25)))
    return statuses


@pytest.mark.parametrize("how", ["basic", "session"])
@pytest.mark.parametrize("who", ["admin", "offline"])
async def test_many_wrong_passwords_lock_only_that_address(aiohttp_client, config, couch, make_user, how, who):
    mode = await _lockout_mode(couch)
    assert mode in (None, "enforce"), "run this with CouchDB's lockout in its default enforce mode"
    client = await aiohttp_client(create_app(config))
    url = str(client.make_url("")).rstrip("/")
    if who == "admin":
        name, password = config.couch_user, config.couch_password
    else:
        name, password = await make_user(f"throttled-{how}", ["chw"]), PASSWORD
    started = time.monotonic()
    # the counts are kept in CouchDB (shared by every API process, and by this module's tests): an address
    # of its own for each case
    attacker_address = f"127.0.{['admin', 'offline'].index(who) * 2 + ['basic', 'session'].index(how) + 10}.2"
    async with _from(attacker_address) as attacker:
        statuses = await _hammer(attacker, url, how, name)
        assert statuses.count(401) == 5 and statuses.count(429) == BAD_TRIES - 5, sorted(set(statuses))
        async with attacker.get(url + "/api/v1/settings", headers=basic(name, password)) as locked:
            assert locked.status == 429  # the right password too: the guesser learns nothing
            retry_after = int(locked.headers["Retry-After"])
            assert 0 < retry_after <= config.login_failure_window_seconds
            assert (await locked.json())["code"] == 429
        async with attacker.post(url + "/_session", json={"name": name, "password": password}) as locked:
            assert locked.status == 429 and "Retry-After" in locked.headers
            assert (await locked.json())["error"] == "too_many_requests"
    async with _from("127.0.0.3") as user:
        async with user.get(url + "/api/v1/settings", headers=basic(name, password)) as ok:
            assert ok.status == 200
        async with user.post(url + "/_session", json={"name": name, "password": password}) as session:
            assert session.status == 200 and "AuthSession" in session.cookies  # CouchDB opened it
            cookie = session.cookies["AuthSession"].value
        async with user.get(url + "/_session", headers={"Cookie": f"AuthSession={cookie}"}) as info:
            assert (await info.json())["userCtx"]["name"] == name
    # the API's own account works, straight to CouchDB and through the API
    assert (await couch.request("GET", f"/{config.db_medic}"))[0] == 200
    assert (await client.get("/api/v1/settings", headers=basic(config.couch_user, config.couch_password))).status \
        == 200
    assert time.monotonic() - started < 120


async def test_a_forwarded_address_counts_only_from_a_trusted_proxy(aiohttp_client, config, make_user):
    name = await make_user("forwarded", ["chw"])
    proxied = await aiohttp_client(create_app(config.replace(trusted_proxies=("127.0.0.1",), login_failure_limit=3)))
    for _ in range(3):
        wrong = await proxied.get("/api/v1/settings", headers={**basic(name, "nope"), "X-Forwarded-For": "198.51.100.9"})
        assert wrong.status == 401
    locked = await proxied.get("/api/v1/settings", headers={**basic(name), "X-Forwarded-For": "198.51.100.9"})
    assert locked.status == 429
    other = await proxied.get("/api/v1/settings", headers={**basic(name), "X-Forwarded-For": "198.51.100.10"})
    assert other.status == 200

    direct = await aiohttp_client(create_app(config.replace(login_failure_limit=3)))  # no trusted proxy
    for n in range(3):  # a client choosing a new X-Forwarded-For each time is still one address
        await direct.get("/api/v1/settings", headers={**basic(name, "nope"), "X-Forwarded-For": f"198.51.100.{n}"})
    spoofed = await direct.get("/api/v1/settings", headers={**basic(name), "X-Forwarded-For": "203.0.113.1"})
    assert spoofed.status == 429


async def test_retry_after_is_honest(aiohttp_client, config, make_user):
    name = await make_user("retry-after", ["chw"])
    client = await aiohttp_client(create_app(config.replace(login_failure_limit=2, login_failure_window_seconds=2)))
    for _ in range(2):
        assert (await client.post("/_session", json={"name": name, "password": "nope"})).status == 401
    locked = await client.post("/_session", json={"name": name, "password": PASSWORD})
    assert locked.status == 429
    await asyncio.sleep(int(locked.headers["Retry-After"]) + 0.1)
    assert (await client.post("/_session", json={"name": name, "password": PASSWORD})).status == 200


async def test_a_clients_parallel_requests_are_one_attempt(aiohttp_client, config, make_user):
    """A client sends many requests at once with the same (right) password, while the check is slow (a cold
    PBKDF2 on CouchDB): they share one check and count once, so none is refused as "too many"."""
    name = await make_user("parallel", ["chw"])
    client = await aiohttp_client(create_app(config.replace(login_failure_limit=2)))
    answers = await asyncio.gather(*(client.get("/api/v1/settings", headers=basic(name)) for _ in range(20)))
    assert [a.status for a in answers] == [200] * 20
    wrong = await asyncio.gather(*(client.get("/api/v1/settings", headers=basic(name, "same-wrong"))
                                   for _ in range(20)))
    assert [a.status for a in wrong] == [401] * 20  # the same wrong password, at once: one check, one failure
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200


async def test_a_password_verified_before_is_no_guess(aiohttp_client, config, couch, make_user):
    """With the auth cache off every request checks the password again. One verified before is known right
    without hashing: nothing is reserved or counted for it in the logs database, and it still clears a count."""
    name = await make_user("remembered", ["chw"])
    client = await aiohttp_client(create_app(config.replace(auth_cache_seconds=0, login_failure_limit=2)))
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    logs = couch.db(config.db_logs)
    before = (await logs.read_info())["update_seq"]
    for _ in range(3):
        assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    changed = (await logs.changes(since=before))["results"]
    assert not [c["id"] for c in changed if c["id"].startswith("login-failure")]
    for _ in range(3):  # one wrong password, then the right one clears it: two never count in a row
        assert (await client.get("/api/v1/settings", headers=basic(name, "nope"))).status == 401
        assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    for _ in range(2):
        assert (await client.get("/api/v1/settings", headers=basic(name, "nope"))).status == 401
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 429, "a locked name stays locked"
