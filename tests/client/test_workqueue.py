"""The work queue's promises: dedup, one worker per key, requeue after done, backoff."""

from __future__ import annotations

import asyncio

import pytest

from kubik.client.workqueue import ShutDown, WorkQueue


async def test_a_key_waiting_is_queued_once():
    queue = WorkQueue("t")
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_a_key_added_while_processing_comes_back_after_done():
    queue = WorkQueue("t")
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # while a worker holds it
    assert len(queue) == 0  # not handed to a second worker
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "a"


async def test_two_workers_never_hold_the_same_key():
    queue = WorkQueue("t")
    holding: set[str] = set()
    overlaps = []

    async def worker():
        for _ in range(20):
            key = await queue.get()
            if key in holding:
                overlaps.append(key)
            holding.add(key)
            await asyncio.sleep(0)
            queue.add(key)  # a change arrives while it is processed
            holding.discard(key)
            queue.done(key)

    queue.add("x")
    queue.add("y")
    await asyncio.wait_for(asyncio.gather(worker(), worker()), 10)
    assert overlaps == []


async def test_rate_limited_backoff_grows_and_forget_resets():
    queue = WorkQueue("t", base_delay=0.01)
    loop = asyncio.get_running_loop()
    queue.add_rate_limited("k")
    queue.add_rate_limited("k")
    queue.add_rate_limited("k")
    assert queue.requeues("k") == 3
    start = loop.time()
    assert await asyncio.wait_for(queue.get(), 5) == "k"
    assert loop.time() - start >= 0.009  # the first delay already applied
    queue.done("k")
    queue.forget("k")
    assert queue.requeues("k") == 0


async def test_add_after_keeps_the_earlier_request():
    queue = WorkQueue("t")
    queue.add_after("k", 0.05)
    queue.add_after("k", 10)
    assert await asyncio.wait_for(queue.get(), 2) == "k"


async def test_shutdown_wakes_workers():
    queue = WorkQueue("t")
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    await queue.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 2)
