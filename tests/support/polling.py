"""Waiting in tests for what another process (a server, a controller, a node) will do."""

from __future__ import annotations

import asyncio
import time


async def eventually(check, what: str, seconds: float = 30.0, every: float = 0.1):
    """Poll `check` (async, returning a truthy value when done) until it passes; its value."""
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last saw {value!r}")
        await asyncio.sleep(every)


def wait_for(check, what: str, seconds: float = 120.0, every: float = 0.5):
    """`eventually` for a plain `check` (kubectl through a subprocess, say)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last saw {value!r}")
        time.sleep(every)
