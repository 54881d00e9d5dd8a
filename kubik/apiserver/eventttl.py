"""Events expire: each is written with a store lease, so they never pile up.

Upstream keeps events for `--event-ttl` (1 hour) by attaching an etcd lease,
and shares one lease among the events created within a minute instead of
granting one per event. kubik does the same on either backend.
"""

from __future__ import annotations

import asyncio
import time

from kubik.store.interface import Store

EVENT_TTL_SECONDS = 3600
_REUSE_SECONDS = 60


class SharedLeases:
    def __init__(
        self, store: Store, *, ttl: int = EVENT_TTL_SECONDS, reuse: int = _REUSE_SECONDS
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._reuse = reuse
        self._lease = 0
        self._granted_at = 0.0
        self._lock = asyncio.Lock()

    async def lease(self) -> int:
        """A lease that lives at least `ttl` seconds from now."""
        async with self._lock:
            if not self._lease or time.monotonic() - self._granted_at > self._reuse:
                # the extra `reuse` seconds cover objects attached late in the window
                self._lease = await self._store.grant_lease(self._ttl + self._reuse)
                self._granted_at = time.monotonic()
            return self._lease
