"""The API's connection pool serves callers in the order they asked (serving/db.py).

An asyncio.Queue let a caller that arrived just as a connection was released take it before the
waiter that release woke; that waiter queued again at the back, and with 32 callers on 4
connections p99 latency was ~4x p50. Slots are plain objects here: the order is pure logic."""

from __future__ import annotations

import asyncio
from typing import Any

from serving.db import Pool


def _pool(size: int) -> Pool:
    pool = Pool("postgresql://unused", size, 1000)
    asyncio.get_running_loop()
    pool._idle = [object() for _ in range(size)]  # type: ignore[misc]  # stand-ins for connections
    return pool


def test_a_released_slot_goes_to_the_oldest_waiter_not_to_a_newcomer() -> None:
    async def run() -> list[str]:
        pool = _pool(1)
        held = await pool.acquire()
        order: list[str] = []

        async def caller(name: str) -> None:
            slot = await pool.acquire()
            order.append(name)
            await asyncio.sleep(0)
            pool.release(slot)

        first = asyncio.create_task(caller("first"))
        second = asyncio.create_task(caller("second"))
        await asyncio.sleep(0)  # both are waiting now
        pool.release(held)
        # a newcomer asks in the same loop turn as the release, before the woken waiter runs:
        # it must queue behind both
        slot = await pool.acquire()
        order.append("newcomer")
        pool.release(slot)
        await asyncio.gather(first, second)
        return order

    assert asyncio.run(run()) == ["first", "second", "newcomer"]


def test_a_waiter_cancelled_after_its_slot_was_handed_over_passes_it_on() -> None:
    async def run() -> tuple[Any, Any, int]:
        pool = _pool(1)
        held = await pool.acquire()
        gone = asyncio.create_task(pool.acquire())
        next_in_line = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        pool.release(held)  # handed to `gone`, which is cancelled before it runs
        gone.cancel()
        got = await next_in_line
        return held, got, len(pool._waiters)

    held, got, waiting = asyncio.run(run())
    assert got is held and waiting == 0


def test_a_cancelled_waiter_leaves_the_line_and_slots_stay_counted() -> None:
    async def run() -> int:
        pool = _pool(2)
        a, b = await pool.acquire(), await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        pool.release(a)
        pool.release(b)
        return len(pool._idle) + len(pool._waiters) * 100

    assert asyncio.run(run()) == 2


def test_a_release_between_a_cancel_and_the_cancelled_caller_running_skips_it() -> None:
    """Task.cancel() cancels the waiter's future at once but the caller runs later: a release in
    that gap passes over the cancelled waiter, which must then not fail to leave the line."""

    async def run() -> tuple[Any, Any, Any]:
        pool = _pool(1)
        held = await pool.acquire()
        gone = asyncio.create_task(pool.acquire())
        next_in_line = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0)
        gone.cancel()
        pool.release(held)  # before `gone` has run its cancellation
        outcome = await asyncio.gather(gone, return_exceptions=True)
        return outcome[0], held, await next_in_line

    outcome, held, got = asyncio.run(run())
    assert isinstance(outcome, asyncio.CancelledError)
    assert got is held
