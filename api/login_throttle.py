"""Failed logins counted per (user name, client address), and refused with 429 past a limit.

CouchDB 3.4 locks a name after 5 failed checks from one address, and behind the API every client has the
API's address: counting there would let anyone lock anyone out, the API's own account included. The API
checks passwords itself (``api.password_check``) and counts failures here instead, per name *and* the
client's own address, so guessing from one address never stops the user logging in from another.

The rule is CouchDB's: after ``limit`` failures within ``window`` seconds of the first one, every password
check of that name from that address is refused (429 with ``Retry-After``, the right password included,
so a guesser learns nothing) until the window ends. A success clears the count. Each check is counted as a
failure before it starts (``begin``) and taken back when it succeeds or cannot be made (CouchDB away):
a burst of concurrent guesses gets no more checks than one guess after another. A password that is the one
last verified against the name's stored hash (``PasswordChecker.remembered``) is no guess: it is answered
without a reservation (``known_right``), which saves the shared store two writes per cached login.

The counts live in a ``FailureStore``. ``MemoryFailureStore`` keeps them in this process, which is right
for one API process; several processes behind one address need a shared store (CouchDB or a cache server)
with the same three calls, keyed by ``failure_key`` (a hash: the store never holds names or addresses).
Times are wall-clock seconds, so a shared store's entries mean the same in every process.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable, Protocol

from .errors import TooManyRequests

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Failures:
    """Failed checks of one name from one address since ``first`` (Unix seconds)."""

    first: float
    count: int


class FailureStore(Protocol):
    async def get(self, key: str) -> Failures | None: ...

    async def add(self, key: str, now: float, window: float, by: int = 1) -> Failures:
        """Count ``by`` more failures (a new count when there is none, or its window has ended)."""

    async def clear(self, key: str) -> None: ...


class MemoryFailureStore:
    """Counts in this process's memory; the oldest are dropped past ``size`` keys."""

    def __init__(self, size: int = 100_000):
        self.size = size
        self._items: OrderedDict[str, Failures] = OrderedDict()

    async def get(self, key: str) -> Failures | None:
        return self._items.get(key)

    async def add(self, key: str, now: float, window: float, by: int = 1) -> Failures:
        current = self._items.get(key)
        if current is None or now >= current.first + window:
            current = Failures(now, max(0, by))
        else:
            current = Failures(current.first, max(0, current.count + by))
        self._items[key] = current
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return current

    async def clear(self, key: str) -> None:
        self._items.pop(key, None)


def failure_key(name: str, client: str) -> str:
    return hashlib.sha256(f"{name}\0{client}".encode("utf-8", "surrogatepass")).hexdigest()


class LoginThrottle:
    def __init__(self, limit: int = 5, window: float = 300.0, store: FailureStore | None = None):
        self.limit = limit
        self.window = window
        self.store: FailureStore = store if store is not None else MemoryFailureStore()

    async def check(self, name: str, client: str) -> None:
        """Raise ``TooManyRequests`` while this name is locked for this address."""
        if self.limit > 0:
            self._refuse_over(await self.store.get(failure_key(name, client)), self.limit)

    async def begin(self, name: str, client: str) -> None:
        """A password check is about to be made: counted as failed until ``succeeded`` or ``abandoned``;
        ``TooManyRequests`` (and nothing checked) when it is one too many."""
        if self.limit > 0:
            failures = await self.store.add(failure_key(name, client), time.time(), self.window)
            self._refuse_over(failures, self.limit + 1)

    async def succeeded(self, name: str, client: str) -> None:
        if self.limit > 0:
            await self.store.clear(failure_key(name, client))

    async def known_right(self, name: str, client: str) -> None:
        """A password known to be right without a check (``PasswordChecker.remembered``): no guess to count;
        a count there is cleared, as a success clears it."""
        if self.limit > 0 and await self.store.get(failure_key(name, client)) is not None:
            await self.store.clear(failure_key(name, client))

    async def abandoned(self, name: str, client: str) -> None:
        """The check could not be made (the database was away): it does not count."""
        if self.limit > 0:
            await self.store.add(failure_key(name, client), time.time(), self.window, by=-1)

    def _refuse_over(self, failures: Failures | None, limit: int) -> None:
        if failures is None or failures.count < limit:
            return
        left = failures.first + self.window - time.time()
        if left > 0:
            raise TooManyRequests(f"Too many failed logins for this name from this address; try again in "
                                  f"{math.ceil(left)} s", math.ceil(left))


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and networks (``10.0.0.0/8``); ``ValueError`` names one that is neither."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip())


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The client's address: the socket's peer, unless that is a trusted proxy; then the right-most
    ``X-Forwarded-For`` entry that is not a trusted proxy (entries further left are the client's to write)."""
    address = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address
    for entry in reversed(forwarded_for.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        if not _trusted(entry, trusted):
            return entry
        address = entry
    return address


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in trusted)
