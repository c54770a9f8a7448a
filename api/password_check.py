"""Passwords checked by the API itself, exactly as CouchDB 3.4 checks them, so a wrong password never
reaches CouchDB (whose lockout would then lock the name for everyone behind the API's address).

What is compared (``couch_httpd_auth:authenticate_int/3``, ``couch_auth_cache:get_admin/1``):

* a server admin's ``[admins]`` entry, read with the API's own credentials, wins over a ``_users`` doc of
  the same name: ``-pbkdf2-DK,SALT,ITERATIONS`` (SHA-1: pouchdb-server, older CouchDB),
  ``-pbkdf2:PRF-DK,SALT,ITERATIONS`` (CouchDB 3.4 writes ``sha256`` and 600,000) and ``-hashed-SHA1,SALT``;
* a ``_users`` doc: ``password_scheme`` ``pbkdf2`` (``pbkdf2_prf`` ``sha`` unless named, ``iterations``
  10,000 unless given) or ``simple`` (``password_sha``, also when no scheme is named). A conflicted doc is
  refused, as CouchDB refuses it.

The salt is used as the text it is stored as, the key is as long as the PRF's digest, and hex strings are
compared in constant time, as stored (CouchDB writes lower-case hex and compares exactly).

PBKDF2 at CouchDB 3.4's cost (~0.25-0.4 s of a core here) runs in a thread pool (``hashlib`` releases the
GIL; measured with ``bench/password_checks.py``: the event loop keeps answering, where a process pool only
adds start-up and copying). A success is remembered, as CouchDB's ``couch_passwords_cache`` does, under
the user's name and stored hash: the remembered value is an HMAC of the password under a key made when the
process starts (never the password). It answers later checks at once, a wrong password for that user
included, and a password change (a new salt and key) makes it useless by itself. Concurrent checks of one
name and password share one computation.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

from .couch import Couch
from .errors import NotFound, Unauthorized

log = logging.getLogger("jamii.auth")

USER_PREFIX = "org.couchdb.user:"
# hashlib names of the PRFs CouchDB accepts (``verify_prf``); anything else matches nobody
PRFS = {"sha": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}
MIN_ITERATIONS, MAX_ITERATIONS = 1, 1_000_000_000  # CouchDB's [chttpd_auth] min_iterations, max_iterations
DEFAULT_ITERATIONS = 10000  # a pbkdf2 _users doc without ``iterations``
REMEMBERED = 10000  # successes remembered (CouchDB: [couch_passwords_cache] max_objects)
REMEMBER_SECONDS = 600  # since last use (CouchDB: [couch_passwords_cache] max_idle)
ADMINS_SECONDS = 5.0  # how long a read of [admins] is used before it is read again
ADMINS_REREAD_SECONDS = 1.0  # a failed check reads [admins] again if its copy is older than this
WRONG = "Name or password is incorrect."
CONFLICTED = ("User document conflicts must be resolved before the document is used for authentication "
              "purposes.")

_ADMIN = re.compile(r"-pbkdf2(?::(sha|sha224|sha256|sha384|sha512))?-([^,]+),([^,]+),([0-9]+)\Z")
_HASHED = re.compile(r"-hashed-([^,]+),([^,]+)\Z")


@dataclass(frozen=True)
class StoredHash:
    """A password as CouchDB keeps it: ``scheme`` is ``pbkdf2`` or ``simple`` (salted SHA-1)."""

    scheme: str
    hash: str
    salt: str
    prf: str = "sha"
    iterations: int = DEFAULT_ITERATIONS

    @property
    def identity(self) -> str:
        """Changes whenever the password does (new salt, new key)."""
        return hashlib.sha256(f"{self.scheme}\0{self.prf}\0{self.iterations}\0{self.salt}\0{self.hash}"
                              .encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Account:
    """Who a name is: the stored password, CouchDB's roles for it and its ``_users`` doc (if any)."""

    name: str
    stored: StoredHash | None
    roles: tuple[str, ...]
    user_doc: Mapping[str, Any] | None
    refusal: str = WRONG  # why it cannot log in, when ``stored`` is None


def from_user_doc(doc: Mapping[str, Any]) -> StoredHash | None:
    """The password of a ``_users`` doc with CouchDB's defaults; None when it holds none CouchDB would take."""
    scheme = doc.get("password_scheme", "simple")
    salt = doc.get("salt", "")
    if not isinstance(salt, str):
        return None
    if scheme == "pbkdf2":
        prf, iterations, key = doc.get("pbkdf2_prf", "sha"), doc.get("iterations", DEFAULT_ITERATIONS), \
            doc.get("derived_key")
        if prf not in PRFS or not isinstance(key, str) or not _iterations_ok(iterations):
            return None
        return StoredHash("pbkdf2", key, salt, prf, iterations)
    if scheme == "simple" and isinstance(doc.get("password_sha"), str):
        return StoredHash("simple", doc["password_sha"], salt)
    return None


def from_admin_hash(value: str) -> StoredHash | None:
    """An ``[admins]`` value; None for one CouchDB would not take as a hash (it matches nobody)."""
    found = _ADMIN.match(value)
    if found:
        iterations = int(found.group(4))
        if not _iterations_ok(iterations):
            return None
        return StoredHash("pbkdf2", found.group(2), found.group(3), found.group(1) or "sha", iterations)
    found = _HASHED.match(value)
    if found:
        return StoredHash("simple", found.group(1), found.group(2))
    return None


def _iterations_ok(iterations: Any) -> bool:
    return isinstance(iterations, int) and not isinstance(iterations, bool) and \
        MIN_ITERATIONS <= iterations <= MAX_ITERATIONS


def matches(password: str, stored: StoredHash) -> bool:
    """Does ``password`` give ``stored``? The slow part (PBKDF2); call it off the event loop."""
    secret, salt = password.encode("utf-8", "surrogatepass"), stored.salt.encode("utf-8", "surrogatepass")
    if stored.scheme == "pbkdf2":
        algorithm = PRFS[stored.prf]
        actual = hashlib.pbkdf2_hmac(algorithm, secret, salt, stored.iterations,
                                     hashlib.new(algorithm).digest_size).hex()
    else:
        actual = hashlib.sha1(secret + salt).hexdigest()
    return hmac.compare_digest(actual.encode(), stored.hash.encode("utf-8", "surrogatepass"))


def account(name: str, admins: Mapping[str, str], user_doc: Mapping[str, Any] | None) -> Account:
    """What CouchDB checks for ``name`` (``couch_auth_cache:get_user_creds/2``)."""
    doc_roles = tuple(r for r in (user_doc or {}).get("roles") or () if isinstance(r, str))
    if name in admins:
        stored = from_admin_hash(admins[name])
        if stored is not None:
            return Account(name, stored, ("_admin", *doc_roles), user_doc)
    if user_doc is None:
        return Account(name, None, (), None)
    if user_doc.get("_conflicts"):
        return Account(name, None, doc_roles, user_doc, CONFLICTED)
    return Account(name, from_user_doc(user_doc), doc_roles, user_doc)


class PasswordChecker:
    """Checks names and passwords against ``_users`` and ``[admins]``; ``check`` raises ``Unauthorized``."""

    def __init__(self, couch: Couch, users_db: str = "_users", *, workers: int | None = None):
        self.couch = couch
        self.users = couch.db(users_db)
        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2,
                                        thread_name_prefix="password-check")
        self._key = secrets.token_bytes(32)
        self._remembered: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._flights: dict[tuple[str, str, bytes], asyncio.Future[bool]] = {}
        self._admins: tuple[float, dict[str, str]] | None = None
        self._admins_flight: asyncio.Future[dict[str, str]] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def forget(self, name: str) -> None:
        """Drop what is remembered of ``name`` (its password changed, or it was deleted)."""
        for key in [k for k in self._remembered if k[0] == name]:
            del self._remembered[key]

    async def account_of(self, name: str) -> Account:
        """What a password of ``name`` is checked against: ``[admins]`` and its ``_users`` doc, read once."""
        admins, user_doc = await asyncio.gather(self._read_admins(), self._user_doc(name))
        return account(name, admins, user_doc)

    def remembered(self, found: Account, password: str) -> bool:
        """Whether ``password`` is the one last verified against ``found``'s stored hash (within
        ``REMEMBER_SECONDS``): known right without hashing, so no guess is being made."""
        return found.stored is not None and self._remembered_match(found.name, password, found.stored) is True

    async def check(self, name: str, password: str, found: Account | None = None) -> Account:
        """The account, if ``password`` is its password (``found``: ``account_of(name)``, if just read)."""
        found = found if found is not None else await self.account_of(name)
        if found.stored is not None and await self._matches(name, password, found.stored):
            return found
        if self._admins is not None and time.monotonic() - self._admins[0] > ADMINS_REREAD_SECONDS:
            again = account(name, await self._read_admins(fresh=True), found.user_doc)  # an admin added or changed
            if again.stored not in (None, found.stored) and await self._matches(name, password, again.stored):
                return again
        raise Unauthorized(found.refusal)

    async def _user_doc(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.users.get(USER_PREFIX + name, conflicts=True)
        except NotFound:
            return None

    async def _read_admins(self, fresh: bool = False) -> dict[str, str]:
        """``[admins]`` (name -> hash), read at most every ``ADMINS_SECONDS``; one read serves every waiter."""
        if not fresh and self._admins is not None and time.monotonic() - self._admins[0] < ADMINS_SECONDS:
            return self._admins[1]
        if self._admins_flight is None or self._admins_flight.done():
            self._admins_flight = asyncio.ensure_future(self.couch.config_section("admins"))
            self._admins_flight.add_done_callback(self._admins_read)
        return dict(await asyncio.shield(self._admins_flight))

    def _admins_read(self, flight: asyncio.Future[dict[str, str]]) -> None:
        if not flight.cancelled() and flight.exception() is None:
            self._admins = (time.monotonic(), flight.result())

    def _keyed(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode("utf-8", "surrogatepass"), "sha256").digest()

    def _remembered_match(self, name: str, password: str, stored: StoredHash) -> bool | None:
        """Whether ``password`` is the one remembered for this stored hash; None when none is remembered."""
        slot = (name, stored.identity)
        remembered = self._remembered.get(slot)
        if remembered is None or time.monotonic() - remembered[0] >= REMEMBER_SECONDS:
            return None
        self._remembered[slot] = (time.monotonic(), remembered[1])
        self._remembered.move_to_end(slot)
        return hmac.compare_digest(remembered[1], self._keyed(name, password))

    async def _matches(self, name: str, password: str, stored: StoredHash) -> bool:
        known = self._remembered_match(name, password, stored)
        if known is not None:
            return known
        keyed = self._keyed(name, password)
        slot = (name, stored.identity)
        flight_key = (name, stored.identity, keyed)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.get_running_loop().run_in_executor(self._pool, matches, password, stored)
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda done: self._computed(flight_key, slot, keyed, done))
        return await asyncio.shield(flight)

    def _computed(self, flight_key: tuple[str, str, bytes], slot: tuple[str, str], keyed: bytes,
                  flight: asyncio.Future[bool]) -> None:
        self._flights.pop(flight_key, None)
        if flight.cancelled() or flight.exception() is not None:
            return
        if flight.result():
            self._remembered[slot] = (time.monotonic(), keyed)
            self._remembered.move_to_end(slot)
            while len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)
