"""Passwords checked by the API (``api.password_check``): CouchDB's formats, its choice between ``[admins]``
and ``_users``, agreement with the real server, the thread pool, the remembered successes and one
computation per burst."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid

import pytest

from api import password_check
from api.couch import Couch, basic_auth
from api.errors import Unauthorized
from api.password_check import PasswordChecker, StoredHash, account, from_admin_hash, from_user_doc, matches
from tests.helpers import PASSWORD, basic, user_prefix

# RFC 6070 (PBKDF2-HMAC-SHA1) and RFC 7914 section 11 (PBKDF2-HMAC-SHA256, first 32 bytes): known answers
# that do not come from the code under test.
RFC6070 = StoredHash("pbkdf2", "4b007901b765489abead49d926f721d065a429c1", "salt", "sha", 4096)
RFC7914 = StoredHash("pbkdf2", "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc", "salt",
                     "sha256", 1)


def test_known_answers():
    assert matches("password", RFC6070) and not matches("passwore", RFC6070)
    assert matches("passwd", RFC7914) and not matches("passwd ", RFC7914)
    upper = StoredHash("pbkdf2", RFC6070.hash.upper(), "salt", "sha", 4096)
    assert not matches("password", upper)  # CouchDB compares the (lower-case) hex it computes exactly
    simple = StoredHash("simple", hashlib.sha1(b"pw" + b"s4lt").hexdigest(), "s4lt")
    assert matches("pw", simple) and not matches("pw2", simple)


def test_user_doc_formats_with_couchdb_defaults():
    assert from_user_doc({"password_scheme": "pbkdf2", "derived_key": "AB", "salt": "s", "iterations": 10}) == \
        StoredHash("pbkdf2", "AB", "s", "sha", 10)  # no pbkdf2_prf: SHA-1 (pouchdb-server, CouchDB < 3.4)
    assert from_user_doc({"password_scheme": "pbkdf2", "pbkdf2_prf": "sha256", "derived_key": "k", "salt": "s",
                          "iterations": 600000}) == StoredHash("pbkdf2", "k", "s", "sha256", 600000)
    assert from_user_doc({"password_scheme": "pbkdf2", "derived_key": "k", "salt": "s"}).iterations == 10000
    assert from_user_doc({"password_sha": "abc", "salt": "s"}) == StoredHash("simple", "abc", "s")  # no scheme
    for refused in ({"password_scheme": "pbkdf2", "pbkdf2_prf": "md5", "derived_key": "k", "salt": "s"},
                    {"password_scheme": "pbkdf2", "derived_key": "k", "salt": "s", "iterations": 0},
                    {"password_scheme": "pbkdf2", "derived_key": "k", "salt": "s", "iterations": "10"},
                    {"password_scheme": "pbkdf2", "salt": "s", "iterations": 10},
                    {"password_scheme": "bcrypt", "derived_key": "k", "salt": "s"},
                    {"password_scheme": "pbkdf2", "derived_key": "k", "salt": 5, "iterations": 10},
                    {"name": "no-password"}):
        assert from_user_doc(refused) is None, refused


def test_admin_formats():
    assert from_admin_hash("-pbkdf2-abc,s4lt,10") == StoredHash("pbkdf2", "abc", "s4lt", "sha", 10)
    assert from_admin_hash("-pbkdf2:sha256-abc,s4lt,600000") == StoredHash("pbkdf2", "abc", "s4lt", "sha256",
                                                                            600000)
    assert from_admin_hash("-pbkdf2:sha512-abc,s,1000").prf == "sha512"
    assert from_admin_hash("-hashed-abc,s4lt") == StoredHash("simple", "abc", "s4lt")
    for refused in ("plain-password", "-pbkdf2:md5-abc,s,10", "-pbkdf2-abc,s,0", "-pbkdf2-abc,s,x", "-hashed-a,b,c",
                    ""):
        assert from_admin_hash(refused) is None, refused


def test_an_admin_entry_wins_over_a_users_doc():
    doc = {"name": "n", "roles": ["chw"], "password_scheme": "simple", "password_sha": "x", "salt": "s"}
    both = account("n", {"n": "-hashed-abc,s"}, doc)
    assert both.stored == StoredHash("simple", "abc", "s") and both.roles == ("_admin", "chw")
    assert account("n", {}, doc).roles == ("chw",)
    unhashed = account("n", {"n": "not-hashed-yet"}, doc)  # CouchDB: matches nobody, so the doc is used
    assert unhashed.stored == StoredHash("simple", "x", "s")
    conflicted = account("n", {}, {**doc, "_conflicts": ["2-abc"]})
    assert conflicted.stored is None and "conflicts" in conflicted.refusal
    assert account("n", {}, None).stored is None


async def _server_accepts(couch: Couch, name: str, password: str) -> bool:
    """The server's own check (a right password only is ever sent: CouchDB counts wrong ones)."""
    ctx, _ = await couch.session_info({"Authorization": basic_auth(name, password)})
    return ctx.get("name") == name


@pytest.mark.parametrize("scheme", ["simple", "no-scheme", "pbkdf2-sha1", "pbkdf2-sha256", "pbkdf2-sha512"])
async def test_the_api_and_the_server_agree_on_each_users_format(config, couch, scheme):
    """Docs written with each hash CouchDB accepts: the API accepts the right password and refuses a wrong
    one. CouchDB agrees on every format; pouchdb-server's auth (pouchdb-auth) only knows PBKDF2-SHA1, so
    there the server's own check is asked for that format only."""
    salt, password = uuid.uuid4().hex, "Right-h0rse-" + uuid.uuid4().hex[:6]
    fields: dict = {"salt": salt}
    if scheme in ("simple", "no-scheme"):
        fields["password_sha"] = hashlib.sha1((password + salt).encode()).hexdigest()
        if scheme == "simple":
            fields["password_scheme"] = "simple"
    else:
        prf = scheme.split("-")[1]
        algorithm = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}[prf]
        fields.update(password_scheme="pbkdf2", iterations=1000, derived_key=hashlib.pbkdf2_hmac(
            algorithm, password.encode(), salt.encode(), 1000, hashlib.new(algorithm).digest_size).hex())
        if prf != "sha1":
            fields["pbkdf2_prf"] = {"sha256": "sha256", "sha512": "sha512"}[prf]
    name = f"{user_prefix(config)}fmt-{scheme}"
    await couch.db(config.db_users).put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                                         "roles": ["chw"], **fields})
    checker = PasswordChecker(couch, config.db_users)
    try:
        assert (await checker.check(name, password)).roles == ("chw",)
        with pytest.raises(Unauthorized):
            await checker.check(name, password + "x")
    finally:
        checker.close()
    if await couch.is_apache_couchdb() or scheme == "pbkdf2-sha1":
        assert await _server_accepts(couch, name, password)


async def test_passwords_the_server_hashed_itself(client, config, couch, make_user):
    """A user doc written with a plain password, hashed by the server as it does (CouchDB 3.4:
    PBKDF2-SHA256 x 600,000; pouchdb-server: PBKDF2-SHA1 x 10), and the server's admin."""
    name = await make_user("self-hashed", ["chw"])
    stored = await couch.db(config.db_users).get(f"org.couchdb.user:{name}")
    assert "password" not in stored and stored["password_scheme"] == "pbkdf2"
    assert (await client.get("/api/v1/settings", headers=basic(name))).status == 200
    assert (await client.get("/api/v1/settings", headers=basic(name, PASSWORD + "!"))).status == 401
    admin = basic(config.couch_user, config.couch_password)
    session = await (await client.get("/_session", headers=admin)).json()
    assert session["userCtx"] == {"name": config.couch_user, "roles": ["_admin"]}


async def test_a_conflicted_users_doc_cannot_log_in(client, config, couch, make_user):
    name = await make_user("conflicted", ["chw"])
    users = couch.db(config.db_users)
    doc = await users.get(f"org.couchdb.user:{name}")
    await users.bulk_docs([{**doc, "_rev": "9-" + uuid.uuid4().hex, "roles": ["supervisor"]}], new_edits=False)
    if not (await users.get(doc["_id"], conflicts=True)).get("_conflicts"):
        assert not await couch.is_apache_couchdb()
        pytest.skip("pouchdb-server drops replicated writes to _users (its validate_doc_update quirk), so no "
                    "conflict can be made there; the rule itself: test_an_admin_entry_wins_over_a_users_doc")
    response = await client.get("/api/v1/settings", headers=basic(name))
    assert response.status == 401  # CHT's 401 body names no reason; the checker does
    checker = PasswordChecker(couch, config.db_users)
    try:
        with pytest.raises(Unauthorized, match="conflicts must be resolved"):
            await checker.check(name, PASSWORD)
    finally:
        checker.close()


async def test_a_new_admin_is_seen_on_the_first_failed_check(couch, config):
    """[admins] is read with the API's credentials and kept a few seconds; an admin added since is found by
    reading it again when a check fails."""
    checker = PasswordChecker(couch, config.db_users)
    name, password = f"{user_prefix(config)}adm{uuid.uuid4().hex[:6]}", "Admin-pa55-" + uuid.uuid4().hex[:6]
    path = f"/_node/_local/_config/admins/{name}" if await couch.is_apache_couchdb() else f"/_config/admins/{name}"
    try:
        with pytest.raises(Unauthorized):
            await checker.check(name, password)
        await couch.request("PUT", path, json_body=password)
        await asyncio.sleep(password_check.ADMINS_REREAD_SECONDS + 0.1)
        assert (await checker.check(name, password)).roles == ("_admin",)
    finally:
        checker.close()
        await couch.request("DELETE", path, raise_errors=False)


async def test_off_the_event_loop_once_per_burst_and_remembered(couch, config, monkeypatch):
    """CouchDB 3.4's cost (600,000 x SHA-256): the loop keeps running while checks are computed; eight
    concurrent checks of one password compute it once; a success is remembered under a keyed hash, so the
    same password and a wrong one are then answered without PBKDF2."""
    salt, password = "5a1t" * 8, "Burst-pa55word"
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 600000, 32).hex()
    doc = {"name": "burst", "roles": ["r"], "password_scheme": "pbkdf2", "pbkdf2_prf": "sha256",
           "salt": salt, "iterations": 600000, "derived_key": key}
    checker = PasswordChecker(couch, config.db_users, workers=2)

    async def user_doc(name):
        return doc

    monkeypatch.setattr(checker, "_user_doc", user_doc)
    computed = []
    real = password_check.matches

    def counting(pw, stored):
        computed.append(time.monotonic())
        return real(pw, stored)

    monkeypatch.setattr(password_check, "matches", counting)
    ticks = []
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    tick = asyncio.create_task(ticker())
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(checker.check("burst", password) for _ in range(8)),
                                       checker.check("burst", "wrong-one-1"), checker.check("burst", "wrong-one-2"),
                                       return_exceptions=True)
        elapsed = time.monotonic() - started
        done.set()
        await tick
        assert [type(r).__name__ for r in results] == ["Account"] * 8 + ["Unauthorized"] * 2
        assert len(computed) == 3  # the right password once, each wrong one once
        # inline, the loop would stop for each check (~0.25 s or more); here it ticked all along
        assert len([t for t in ticks if started < t]) >= elapsed / 0.01 / 4, (len(ticks), elapsed)
        before = len(computed)
        assert (await checker.check("burst", password)).name == "burst"
        with pytest.raises(Unauthorized):
            await checker.check("burst", "wrong-one-3")
        assert len(computed) == before  # both answered from the remembered success
        assert not any(password.encode() in value for _, value in checker._remembered.values())
    finally:
        checker.close()
