"""Concurrent reads of docs by id on one database, merged into shared ``get_many`` requests.

Each CouchDB request costs CouchDB about a millisecond of CPU before it reads anything (``GET`` of one
small doc: 1.3 ms of ``beam.smp`` on CouchDB 3.4.3), and each doc it reads about a tenth of that. A
``with_lineage`` read fetches seven small docs in one or two requests, so under many concurrent readers
CouchDB spends most of its time on request overhead. Here at most ``in_flight`` reads are sent at once;
reads asked for while they are all under way wait and go together, in one request, as soon as one comes
back. An idle server adds no wait; a busy one sends fewer, larger requests.

Every read is served by a request sent after it was asked for (``get_many``: ``_bulk_get``, a quorum
read on a cluster, as a GET is). Each caller gets its own copies of the docs it asked for (callers may
fill them in). Plain reads by id stay one GET each.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Protocol

from .jsonparse import copy_json

Docs = dict[str, dict[str, Any]]


class Reader(Protocol):
    """What is batched: ``api.couch.Database`` (the client makes one ``BatchedReads`` per database,
    ``Couch.batched``)."""

    async def get_many(self, ids: Iterable[str]) -> Docs: ...


class BatchedReads:
    def __init__(self, db: Reader, in_flight: int = 4):
        self.db = db
        self.in_flight = in_flight
        self.requests = 0  # CouchDB requests sent (for tests and benchmarks)
        self._running = 0
        self._waiting: list[tuple[list[str], asyncio.Future[Docs]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def get_many(self, ids: Iterable[str]) -> Docs:
        """``Database.get_many``: docs by id, missing and deleted ones left out."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        if self._running < self.in_flight:
            return (await self._read([wanted]))[0]
        asked: asyncio.Future[Docs] = asyncio.get_running_loop().create_future()
        asked.add_done_callback(_retrieved)
        self._waiting.append((wanted, asked))
        return await asyncio.shield(asked)  # a caller that goes away leaves the others' request alone

    async def _read(self, asks: list[list[str]]) -> list[Docs]:
        self._running += 1
        self.requests += 1
        try:
            found = await self.db.get_many(i for ids in asks for i in ids)
        finally:
            self._running -= 1
            self._send_waiting()
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

    def _send_waiting(self) -> None:
        if not self._waiting or self._running >= self.in_flight:
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.create_task(self._answer(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, batch: list[tuple[list[str], asyncio.Future[Docs]]]) -> None:
        try:
            answers = await self._read([ids for ids, _ in batch])
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


def _retrieved(asked: asyncio.Future[Docs]) -> None:
    """Mark a failure as seen: its caller may have gone away, and nobody else will look."""
    if not asked.cancelled():
        asked.exception()
