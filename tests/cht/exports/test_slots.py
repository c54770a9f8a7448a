"""``ExportSlots`` on its own: slots handed on in arrival order, never lost when a waiter goes away."""

from __future__ import annotations

import asyncio

import pytest

from api.cht.exports.slots import ExportSlots
from api.errors import ServiceUnavailable


async def _hold_until(slots: ExportSlots, release: asyncio.Event, order: list[str], name: str) -> None:
    async with slots.hold("reports"):
        order.append(name)
        await release.wait()


async def test_waiters_are_served_in_arrival_order_and_the_queue_is_bounded():
    slots, order, release = ExportSlots(2, wait=30), [], asyncio.Event()
    tasks = [asyncio.create_task(_hold_until(slots, release, order, n)) for n in ("a", "b", "c", "d")]
    await asyncio.sleep(0.05)
    assert order == ["a", "b"]
    with pytest.raises(ServiceUnavailable):
        async with slots.hold("reports"):
            pass
    async with slots.hold("contacts"):  # the limit is per kind
        pass
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c", "d"] and slots.running["reports"] == 0


async def test_a_waiter_that_goes_away_passes_its_slot_on():
    slots, release = ExportSlots(1, wait=30), asyncio.Event()
    holder = asyncio.create_task(_hold_until(slots, release, [], "holder"))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(_hold_until(slots, asyncio.Event(), [], "gone"))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    release.set()
    await holder
    assert slots.running["reports"] == 0
    async with slots.hold("reports"):
        assert slots.running["reports"] == 1


async def test_a_waiter_whose_time_is_up_is_refused_and_takes_nothing():
    slots, release = ExportSlots(1, wait=0.1), asyncio.Event()
    holder = asyncio.create_task(_hold_until(slots, release, [], "holder"))
    await asyncio.sleep(0.01)
    with pytest.raises(ServiceUnavailable) as refused:
        async with slots.hold("reports"):
            pass
    assert refused.value.headers["Retry-After"] == "5"
    release.set()
    await holder
    assert slots.running["reports"] == 0
