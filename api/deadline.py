"""How long a request waits for CouchDB over several calls, answered 503 with ``Retry-After`` when it
gives up.

A request that waits for work it shares with others (an offline user's visible set brought forward, the
counts of ``users-info``), or makes several CouchDB calls in a row, gives up when CouchDB has answered
nothing for ``COUCH_TIMEOUT`` seconds since the request arrived: the rule of a single call ("CouchDB did
not answer in time"), applied to the whole wait. A database that is away or hung is a 503 after that
long, however many calls the work would make; a busy database that keeps answering is waited for, up to
``MAX_WAITS`` times ``COUCH_TIMEOUT`` from the request's arrival, so a loaded machine makes requests slow,
not failed. (A wall-clock limit of ``COUCH_TIMEOUT`` over the whole request turned every offline read
that needed five calls of 0.7 s on a loaded machine into a 503, with CouchDB answering throughout.)

The shared work itself is not cut when a waiter gives up: it goes on, within its own limit, and its result
serves the next request. The middleware starts the clock for each request (``start``), with the time
CouchDB last answered the API's clients (``Couch.last_answer``); work that outlives a request runs
``unbounded``.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from .errors import ServiceUnavailable

T = TypeVar("T")

# The limit of each CouchDB call of shared work (a visible set, views catching up after a restart): work
# that serves many requests, which none of them waits for beyond its own deadline.
SHARED_WORK_SECONDS = 300.0
# A request waits at most this many times its patience in all, however busy CouchDB is (a write under way
# when CouchDB hangs may also wait once per undo step: up to three calls)
MAX_WAITS = 3


def _never() -> float:
    return float("-inf")


@dataclass(frozen=True)
class _Clock:
    arrived: float  # time.monotonic()
    patience: float  # seconds CouchDB may stay silent
    last_answer: Callable[[], float]  # when CouchDB last answered (time.monotonic())

    def give_up_at(self) -> float:
        silent_since = max(self.arrived, self.last_answer())
        return min(silent_since + self.patience, self.arrived + MAX_WAITS * self.patience)


_CLOCK: ContextVar[_Clock | None] = ContextVar("request_deadline", default=None)


def start(seconds: float, last_answer: Callable[[], float] = _never) -> None:
    """The current request (task) waits while CouchDB answers something at least every ``seconds``
    (``last_answer``: when it last did), and ``MAX_WAITS * seconds`` in all."""
    _CLOCK.set(_Clock(time.monotonic(), seconds, last_answer))


def unbounded() -> None:
    """Work shared beyond one request (a task of its own): no request's deadline applies to it."""
    _CLOCK.set(None)


async def within(awaitable: Awaitable[T], what: str = "CouchDB is catching up") -> T:
    """``awaitable``, or a 503 (``Retry-After: 1``) when the request gives up first (see the module's
    docstring). Wrap shared work in ``asyncio.shield`` so that giving up does not cancel it."""
    clock = _CLOCK.get()
    if clock is None:
        return await awaitable
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as timeout:
            def look() -> None:
                """At each moment the request would give up, see whether CouchDB answered meanwhile."""
                left = clock.give_up_at() - time.monotonic()
                if left <= 0:
                    timeout.reschedule(loop.time())
                else:
                    handles[0] = loop.call_later(left, look)

            handles = [loop.call_later(max(0.0, clock.give_up_at() - time.monotonic()), look)]
            try:
                return await awaitable
            finally:
                handles[0].cancel()
    except TimeoutError:
        raise ServiceUnavailable(f"{what}; try again in a moment", retry_after=1) from None
