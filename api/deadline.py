"""One deadline per request over what it waits for from CouchDB, answered 503 with ``Retry-After`` when it
passes.

A request that waits for work it shares with others (an offline user's visible set brought forward, the
counts of ``users-info``) waits at most ``COUCH_TIMEOUT`` from its arrival, however many CouchDB calls
that work makes. The shared work itself is not cut when a waiter gives up: it goes on, within its own
limit, and its result serves the next request. The middleware sets the deadline for each request
(``start``); work that outlives a request runs ``unbounded``.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Awaitable, TypeVar

from .errors import ServiceUnavailable

T = TypeVar("T")

# The limit of each CouchDB call of shared work (a visible set, views catching up after a restart): work
# that serves many requests, which none of them waits for beyond its own deadline.
SHARED_WORK_SECONDS = 300.0

_DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def start(seconds: float) -> None:
    """The current request (task) must be answered within ``seconds`` from now."""
    _DEADLINE.set(asyncio.get_running_loop().time() + seconds)


def unbounded() -> None:
    """Work shared beyond one request (a task of its own): no request's deadline applies to it."""
    _DEADLINE.set(None)


async def within(awaitable: Awaitable[T], what: str = "CouchDB is catching up") -> T:
    """``awaitable``, or a 503 (``Retry-After: 1``) when the request's deadline passes first. Wrap shared
    work in ``asyncio.shield`` so that giving up does not cancel it."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return await awaitable
    try:
        async with asyncio.timeout_at(deadline):
            return await awaitable
    except TimeoutError:
        raise ServiceUnavailable(f"{what}; try again in a moment", retry_after=1) from None
