"""``api.deadline``: a request gives up on CouchDB when it has been silent for the request's patience, or at
``MAX_WAITS`` times that in all; while CouchDB keeps answering, a slow wait is waited for. Real clock, short
patience."""

from __future__ import annotations

import asyncio
import time

import pytest

from api import deadline
from api.errors import ServiceUnavailable

PATIENCE = 0.3
SLACK = 0.5  # what a loaded machine may add to a timer


class Answers:
    """When CouchDB last answered; ``every`` keeps it answering (as a busy but live server does)."""

    def __init__(self) -> None:
        self.last = float("-inf")

    def __call__(self) -> float:
        return self.last

    async def every(self, seconds: float) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(seconds)


async def _slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def test_silence_for_the_patience_is_a_503():
    started = time.monotonic()  # before the deadline starts, so the patience can only look longer, never shorter
    deadline.start(PATIENCE, Answers())
    with pytest.raises(ServiceUnavailable) as gave_up:
        await deadline.within(_slow(5), "CouchDB did not answer in time")
    assert PATIENCE <= time.monotonic() - started < PATIENCE + SLACK
    assert gave_up.value.headers["Retry-After"] == "1" and "did not answer in time" in gave_up.value.message


async def test_a_database_that_keeps_answering_is_waited_for():
    answers = Answers()
    keep_answering = asyncio.create_task(answers.every(0.05))
    try:
        deadline.start(PATIENCE, answers)
        started = time.monotonic()
        assert await deadline.within(_slow(2 * PATIENCE)) == "done"  # twice the patience: not a 503
        assert time.monotonic() - started >= 2 * PATIENCE
    finally:
        keep_answering.cancel()


async def test_answers_before_the_request_arrived_give_it_no_more_time():
    answers = Answers()
    answers.last = time.monotonic() + 60  # even a clock ahead only counts from the request's arrival on...
    deadline.start(PATIENCE, answers)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        await deadline.within(_slow(5))
    assert time.monotonic() - started < deadline.MAX_WAITS * PATIENCE + SLACK  # ...and never past the cap
    answers.last = float("-inf")
    deadline.start(PATIENCE, answers)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        await deadline.within(_slow(5))
    assert time.monotonic() - started < PATIENCE + SLACK


async def test_a_busy_database_is_waited_for_only_up_to_the_cap():
    answers = Answers()
    keep_answering = asyncio.create_task(answers.every(0.05))
    try:
        deadline.start(PATIENCE, answers)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            await deadline.within(_slow(5))
        assert deadline.MAX_WAITS * PATIENCE <= time.monotonic() - started < deadline.MAX_WAITS * PATIENCE + SLACK
    finally:
        keep_answering.cancel()


async def test_giving_up_cancels_what_was_awaited_but_not_shielded_work():
    shared = asyncio.ensure_future(_slow(2 * PATIENCE))
    own = asyncio.ensure_future(_slow(5))

    async def request() -> str:
        await own
        return await asyncio.shield(shared)

    deadline.start(PATIENCE / 3)
    with pytest.raises(ServiceUnavailable):
        await deadline.within(request())
    assert own.cancelled()
    deadline.start(PATIENCE / 3)
    with pytest.raises(ServiceUnavailable):
        await deadline.within(asyncio.shield(shared))
    assert await shared == "done", "shared work goes on for the next request"


async def test_work_outside_a_request_is_not_bounded():
    deadline.start(PATIENCE / 3)
    deadline.unbounded()
    assert await deadline.within(_slow(PATIENCE)) == "done"
