"""Who is calling: CouchDB users (Basic or session cookie) and JWT bearer tokens.

Passwords are checked by the API itself against ``_users`` and CouchDB's ``[admins]``
(``api.password_check``), and failures are counted per name and client address
(``api.login_throttle``): a wrong password never reaches CouchDB, whose own lockout
would otherwise lock the name for every client of the API. Only after a local
success is a password passed on, to open a CouchDB session (``login``). Session
cookies are CouchDB's own and are checked against its ``/_session`` (a cookie
check never counts towards CouchDB's lockout). Then the user's ``_users`` doc
gives ``facility_id`` and ``contact_id``, and its salt must still be the one the
cookie was signed with (``api.session_cookies``: a password change ends sessions
at once, even where a cluster node's cache has not seen it yet). A successful check is remembered for
``AUTH_CACHE_SECONDS`` (keyed by a hash, never by the secret itself) so a busy
client does not pay a CouchDB round trip per request; ``forget()`` drops a user
at once when their ``_users`` doc changes, in every API process
(``api.auth_follow`` follows the feed).

Other schemes (``Token`` for the spatial units API) are registered with
``Authenticator.register_scheme``.
"""

from __future__ import annotations

import base64
import binascii
import asyncio
import hashlib
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

import jwt

from .couch import Couch
from .errors import NotFound, ServiceUnavailable, Unauthorized
from .login_failures import CouchFailureStore
from .login_throttle import FailureStore, LoginThrottle
from .password_check import Account, PasswordChecker
from .session_cookies import CookieSigner

log = logging.getLogger("jamii.auth")

ADMIN_ROLES = frozenset({"_admin", "admin"})
USER_PREFIX = "org.couchdb.user:"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    roles: tuple[str, ...] = ()
    method: str = "basic"  # basic | cookie | jwt | token
    facility_id: Any = None  # a place id (or a list of them, as CHT 4 allows)
    contact_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return bool(ADMIN_ROLES.intersection(self.roles))

    @property
    def facility_ids(self) -> tuple[str, ...]:
        if not self.facility_id:
            return ()
        if isinstance(self.facility_id, (list, tuple)):
            return tuple(f for f in self.facility_id if f)
        return (self.facility_id,)


SchemeHandler = Callable[[str], Awaitable[Principal]]


class _Cache:
    """A small time-limited LRU of verified credentials."""

    def __init__(self, seconds: int, size: int = 10000):
        self.seconds = seconds
        self.size = size
        self._items: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, key: str) -> Principal | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        self._items[key] = (time.monotonic() + self.seconds, principal)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop_user(self, name: str) -> None:
        for key in [k for k, (_, p) in self._items.items() if p.name == name]:
            del self._items[key]

    def drop_method(self, method: str) -> None:
        for key in [k for k, (_, p) in self._items.items() if p.method == method]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()


class SessionRefused(ServiceUnavailable):
    """CouchDB refused to open a session with a password the API had just verified."""


class Authenticator:
    def __init__(self, couch: Couch, *, users_db: str = "_users", cache_seconds: int = 10,
                 jwt_secret: str | None = None, jwt_public_key: str | None = None,
                 jwt_audience: str | None = None, jwt_issuer: str | None = None,
                 throttle: LoginThrottle | None = None):
        self.couch = couch
        self.users = couch.db(users_db)
        self.cache = _Cache(cache_seconds)
        self.passwords = PasswordChecker(couch, users_db)
        self.cookies = CookieSigner(couch)
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self._attempts: dict[str, asyncio.Future[Account]] = {}
        self._salt = os.urandom(16)
        self._jwt_keys: list[tuple[str, str]] = []
        if jwt_secret:
            self._jwt_keys.append(("HS256", jwt_secret))
        if jwt_public_key:
            self._jwt_keys.append(("RS256", jwt_public_key))
        self._jwt_audience = jwt_audience
        self._jwt_issuer = jwt_issuer
        self._schemes: dict[str, SchemeHandler] = {}

    @classmethod
    def from_config(cls, couch: Couch, config: Any) -> "Authenticator":
        return cls(couch, users_db=config.db_users, cache_seconds=config.auth_cache_seconds,
                   jwt_secret=config.jwt_secret, jwt_public_key=config.jwt_public_key,
                   jwt_audience=config.jwt_audience, jwt_issuer=config.jwt_issuer,
                   throttle=LoginThrottle(config.login_failure_limit, config.login_failure_window_seconds,
                                          store=_failure_store(couch, config)))

    def close(self) -> None:
        self.passwords.close()

    def register_scheme(self, scheme: str, handler: SchemeHandler) -> None:
        """Accept ``Authorization: <scheme> <credentials>`` through ``handler``."""
        self._schemes[scheme.lower()] = handler

    def _key(self, *parts: str) -> str:
        digest = hashlib.sha256(self._salt)
        for part in parts:
            digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return digest.hexdigest()

    def forget(self, name: str) -> None:
        """Drop remembered credentials of a user (password changed, user deleted)."""
        self.cache.drop_user(name)
        self.passwords.forget(name)

    def forget_scheme(self, method: str) -> None:
        """Drop every caller remembered for a scheme (``token``: a token was revoked somewhere)."""
        self.cache.drop_method(method)

    def forget_all(self) -> None:
        """Drop every remembered caller (changes to ``_users`` may have been missed). Remembered password
        checks stay: they are keyed by the stored hash, which every check reads afresh."""
        self.cache.clear()

    async def authenticate(self, authorization: str | None, session_cookie: str | None,
                           client: str = "unknown") -> Principal | None:
        """The caller, None when no credentials were sent; wrong credentials raise Unauthorized, too many
        wrong passwords for a name from the ``client`` address ``TooManyRequests``."""
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            scheme = scheme.lower()
            credentials = credentials.strip()
            if scheme == "basic":
                name, password = parse_basic(credentials)
                return await self.basic(name, password, client)
            if scheme == "bearer":
                return self.bearer(credentials)
            if scheme in self._schemes:
                return await self._scheme(scheme, credentials)
            raise Unauthorized(f"Unsupported authorization scheme: {scheme}")
        if session_cookie:
            return await self.cookie(session_cookie)
        return None

    async def _scheme(self, scheme: str, credentials: str) -> Principal:
        """A registered scheme's caller, remembered like Basic credentials (``forget`` drops it)."""
        key = self._key(scheme, credentials)
        cached = self.cache.get(key)
        if cached:
            return cached
        principal = await self._schemes[scheme](credentials)
        self.cache.put(key, principal)
        return principal

    async def basic(self, name: str, password: str, client: str = "unknown") -> Principal:
        await self.throttle.check(name, client)  # first: a locked name learns nothing, not even from the cache
        key = self._key("basic", name, password)
        cached = self.cache.get(key)
        if cached:
            return cached
        principal = _principal_of(await self._verified(name, password, client), "basic")
        self.cache.put(key, principal)
        return principal

    async def check_password(self, name: str, password: str, client: str = "unknown") -> Account:
        """The account, if ``password`` is its password; every failure is counted for (name, client)."""
        await self.throttle.check(name, client)
        return await self._verified(name, password, client)

    async def _verified(self, name: str, password: str, client: str) -> Account:
        """One attempt per name, address and password at a time: concurrent requests with the same
        credentials (a client's parallel requests) share it, and count once."""
        key = self._key("attempt", name, client, password)
        attempt = self._attempts.get(key)
        if attempt is None:
            attempt = self._attempts[key] = asyncio.ensure_future(self._attempt(name, password, client))
            attempt.add_done_callback(lambda done: self._attempted(key, done))
        return await asyncio.shield(attempt)  # a client that goes away does not end it for the others

    def _attempted(self, key: str, attempt: asyncio.Future[Account]) -> None:
        self._attempts.pop(key, None)
        if not attempt.cancelled():
            attempt.exception()  # retrieved here too: every request waiting for it may have gone

    async def _attempt(self, name: str, password: str, client: str) -> Account:
        found = await self.passwords.account_of(name)
        if self.passwords.remembered(found, password):  # verified last time: no guess, nothing to reserve
            await self.throttle.known_right(name, client)
            return found
        await self.throttle.begin(name, client)
        try:
            found = await self.passwords.check(name, password, found)
        except Unauthorized:
            raise
        except BaseException:  # the check could not be made (CouchDB away): it does not count
            await self.throttle.abandoned(name, client)
            raise
        await self.throttle.succeeded(name, client)
        return found

    async def cookie(self, value: str) -> Principal:
        key = self._key("cookie", value)
        cached = self.cache.get(key)
        if cached:
            return cached
        ctx, _ = await self.couch.session_info({"Cookie": f"AuthSession={value}"})
        if not ctx.get("name"):
            raise Unauthorized("Session expired or invalid. Please log in again.")
        principal = await self._principal(ctx, "cookie", cookie=value)
        self.cache.put(key, principal)
        return principal

    async def login(self, name: str, password: str, client: str = "unknown") -> tuple[Principal, str]:
        """Open a CouchDB session; returns the caller and the AuthSession cookie value.

        The password is checked here first, and goes to CouchDB only when right. CouchDB may still refuse it
        for a moment after it was changed (its cache of ``_users`` follows the database): that is
        ``SessionRefused`` (503), which callers that have just set the password try again
        (``api.sessions``), fewer times than CouchDB's lockout counts.
        """
        account = await self.check_password(name, password, client)
        ctx, cookie = await self.couch.new_session(name, password)
        if not ctx or not cookie:
            log.warning("CouchDB refused a session for %s, whose password the API verified", name)
            raise SessionRefused("CouchDB did not accept the verified credentials yet; try again", retry_after=1)
        principal = _principal_of(account, "cookie")
        self.cache.put(self._key("cookie", cookie), principal)
        return principal, cookie

    def bearer(self, token: str) -> Principal:
        if not self._jwt_keys:
            raise Unauthorized("Bearer tokens are not enabled on this server")
        claims = None
        last_error: Exception | None = None
        for algorithm, key in self._jwt_keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[algorithm], audience=self._jwt_audience,
                    issuer=self._jwt_issuer,
                    options={"require": ["exp"], "verify_aud": self._jwt_audience is not None},
                )
                break
            except jwt.ExpiredSignatureError:
                raise Unauthorized("Token expired") from None
            except jwt.InvalidTokenError as exc:
                last_error = exc
        if claims is None:
            raise Unauthorized(f"Invalid token: {last_error}")
        name = claims.get("sub") or claims.get("name")
        if not isinstance(name, str) or not name:
            raise Unauthorized("Invalid token: no subject")
        return Principal(name=name, method="jwt", scopes=frozenset(token_scopes(claims)))

    async def _principal(self, ctx: Mapping[str, Any], method: str, cookie: str | None = None) -> Principal:
        name = ctx["name"]
        roles = tuple(ctx.get("roles") or ())
        facility_id = contact_id = None
        try:
            user_doc = await self.users.get(USER_PREFIX + name)
            if cookie is not None and not await self.cookies.current(cookie, user_doc):
                raise Unauthorized("Session expired or invalid. Please log in again.")  # its password changed
            facility_id = user_doc.get("facility_id")
            contact_id = user_doc.get("contact_id")
            admin = ("_admin",) if "_admin" in roles else ()  # a server admin with a _users doc too
            roles = admin + tuple(user_doc.get("roles") or roles)
        except NotFound:
            if "_admin" not in roles:  # deleted, and this CouchDB node's session cache has not seen it yet
                raise Unauthorized("Session expired or invalid. Please log in again.") from None
            # a CouchDB server admin has no _users doc
        return Principal(name=name, roles=tuple(dict.fromkeys(roles)), method=method, facility_id=facility_id,
                         contact_id=contact_id)


def _failure_store(couch: Couch, config: Any) -> FailureStore | None:
    """Failed logins counted in CouchDB (shared by every API process), or in this process's memory."""
    if config.login_throttle_store == "memory":
        return None
    return CouchFailureStore(couch.db(config.db_logs), config.login_failure_window_seconds)


def _principal_of(account: Account, method: str) -> Principal:
    """The caller a checked password names: CouchDB's roles for the account, its doc's place and contact."""
    doc = account.user_doc or {}
    return Principal(name=account.name, roles=account.roles, method=method, facility_id=doc.get("facility_id"),
                     contact_id=doc.get("contact_id"))


def parse_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("Malformed Basic credentials") from None
    name, sep, password = decoded.partition(":")
    if not sep or not name:
        raise Unauthorized("Malformed Basic credentials")
    return name, password


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """Scopes of a JWT: ``scope`` (space separated, OAuth 2), ``scp`` or ``permissions`` (lists)."""
    scopes: list[str] = []
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.extend(scope.split())
    for name in ("scp", "permissions"):
        value = claims.get(name)
        if isinstance(value, list):
            scopes.extend(str(v) for v in value)
        elif isinstance(value, str):
            scopes.extend(value.split())
    return scopes
