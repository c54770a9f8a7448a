"""Concurrent reads of one database merged into shared requests while CouchDB is busy: docs by id
(``get_many``) and the database's info (its ``update_seq``).

Each CouchDB request costs CouchDB about a millisecond of CPU before it reads anything (``GET`` of one
small doc: 1.3 ms of ``beam.smp`` on CouchDB 3.4.3), and each doc it reads about a tenth of that. A
``with_lineage`` read fetches seven small docs in one or two requests, and every offline user's read
starts from the database's ``update_seq`` (is their visible set still current?), so under many
concurrent readers CouchDB spends most of its time on request overhead. Here at most ``in_flight``
requests of a kind are sent at once; reads asked for while they are all under way wait and go together,
in one request, as soon as one comes back. An idle server adds no wait; a busy one sends fewer, larger
requests.

Every read is served by a request sent after it was asked for, so it sees every write acknowledged
before it (``get_many``: ``_bulk_get``, a quorum read on a cluster, as a GET is). Each caller gets its
own copies of what it asked for (callers may fill them in). Plain reads by id stay one GET each.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, Iterable, Protocol, TypeVar

from .jsonparse import copy_json

Docs = dict[str, dict[str, Any]]
A = TypeVar("A")
R = TypeVar("R")


class Reader(Protocol):
    """What is batched: ``api.couch.Database`` (the client keeps one ``BatchedReads`` per database,
    ``Couch.batched``)."""

    async def get_many(self, ids: Iterable[str]) -> Docs: ...

    async def read_info(self) -> dict[str, Any]: ...


class Batched(Generic[A, R]):
    """Calls answered by ``send(asks)`` (one request for many asks, one answer per ask, in order), at most
    ``in_flight`` at once; asks made while all are under way go together when one comes back."""

    def __init__(self, send: Callable[[list[A]], Awaitable[list[R]]], in_flight: int):
        self.send = send
        self.in_flight = in_flight
        self.requests = 0  # CouchDB requests sent (for tests and benchmarks)
        self._running = 0
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, ask: A) -> R:
        if self._running < self.in_flight:
            return (await self._send([ask]))[0]
        asked: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        asked.add_done_callback(_retrieved)
        self._waiting.append((ask, asked))
        return await asyncio.shield(asked)  # a caller that goes away leaves the others' request alone

    async def _send(self, asks: list[A]) -> list[R]:
        self._running += 1
        self.requests += 1
        try:
            return await self.send(asks)
        finally:
            self._running -= 1
            self._send_waiting()

    def _send_waiting(self) -> None:
        if not self._waiting or self._running >= self.in_flight:
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._answer(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: list[tuple[A, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._send([ask for ask, _ in batch])
        except BaseException as exc:  # every caller of the batch gets the request's failure
            for _, asked in batch:
                if not asked.done():
                    asked.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, asked), answer in zip(batch, answers):
            if not asked.done():
                asked.set_result(answer)


class BatchedReads:
    """Docs by id and the info of one database, each kind merged as above (``Couch.batched``)."""

    def __init__(self, db: Reader, in_flight: int = 4, info_in_flight: int = 2):
        self.db = db
        self._docs: Batched[list[str], Docs] = Batched(self._read_docs, in_flight)
        self._info: Batched[None, dict[str, Any]] = Batched(self._read_info, info_in_flight)

    @property
    def requests(self) -> int:
        """CouchDB requests sent for docs (for tests and benchmarks)."""
        return self._docs.requests

    @property
    def info_requests(self) -> int:
        return self._info.requests

    async def get_many(self, ids: Iterable[str]) -> Docs:
        """``Database.get_many``: docs by id, missing and deleted ones left out."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        return await self._docs.call(wanted)

    async def info(self) -> dict[str, Any]:
        """``Database.info``: the database's info (``update_seq``, counts) as of a request sent after the call."""
        return await self._info.call(None)

    async def _read_docs(self, asks: list[list[str]]) -> list[Docs]:
        found = await self.db.get_many(i for ids in asks for i in ids)
        given: set[str] = set()
        answers = []
        for ids in asks:
            answer = {}
            for doc_id in ids:
                if doc_id in found:
                    answer[doc_id] = copy_json(found[doc_id]) if doc_id in given else found[doc_id]
                    given.add(doc_id)
            answers.append(answer)
        return answers

    async def _read_info(self, asks: list[None]) -> list[dict[str, Any]]:
        info = await self.db.read_info()
        return [info] + [copy_json(info) for _ in asks[1:]]


def _retrieved(asked: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: its caller may have gone away, and nobody else will look."""
    if not asked.cancelled():
        asked.exception()
