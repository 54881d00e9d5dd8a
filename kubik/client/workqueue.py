"""A rate-limited work queue of keys, as client-go's `util/workqueue` behaves.

- A key is queued at most once, however often it is added while waiting.
- A key is never handed to two workers at once: added while being processed,
  it is queued again when that worker calls `done`.
- `add_rate_limited` delays a failing key exponentially (5 ms doubling up to
  `max_delay`) until `forget` resets it; `add_after` queues after a delay.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue:
    def __init__(self, name: str, *, base_delay: float = 0.005, max_delay: float = 300.0) -> None:
        self.name = name
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._ready = asyncio.Condition()
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._shut = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shut or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._ready:
            self._ready.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue `key` in `delay` seconds (an earlier pending request wins)."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        pending = self._waiting.get(key)
        if pending is not None and pending.when() <= loop.time() + delay:
            return
        if pending is not None:
            pending.cancel()
        self._waiting[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self._base_delay * (2**failures), self._max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        async with self._ready:
            await self._ready.wait_for(lambda: self._queue or self._shut)
            if self._shut and not self._queue:
                raise ShutDown(self.name)
            key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            asyncio.get_running_loop().create_task(self._notify())

    async def shutdown(self) -> None:
        self._shut = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        async with self._ready:
            self._ready.notify_all()
