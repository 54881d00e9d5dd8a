"""Periodic compaction, so the store's history never grows without bound.

Like kube-apiserver, each pass compacts to the revision the previous pass
saw, so every watcher keeps at least one interval of history to resume
from; and like kine, at least `keep` recent revisions always stay. A failed
pass is logged and retried at the next interval: compaction that stalls
silently is exactly how k3s's state file grows without limit.
"""

from __future__ import annotations

import asyncio
import logging

from kubik.store import errors
from kubik.store.interface import Store

log = logging.getLogger(__name__)


class Compactor:
    def __init__(self, store: Store, *, interval: float = 300.0, keep: int = 1000) -> None:
        self._store = store
        self._interval = interval
        self._keep = keep
        self._task: asyncio.Task | None = None
        self._previous_revision = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kubik-compactor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def compact_once(self) -> int:
        """One pass; returns the revision compacted to (0 when nothing was due)."""
        current = await self._store.current_revision()
        target = min(self._previous_revision, current - self._keep)
        self._previous_revision = current
        if target <= await self._store.compacted_revision():
            return 0
        await self._store.compact(target)
        log.info("compacted the store to revision %d (current %d)", target, current)
        return target

    async def _loop(self) -> None:
        while True:
            try:
                await self.compact_once()
            except errors.StoreError as exc:
                log.warning("compaction failed, retrying in %.0fs: %s", self._interval, exc)
            await asyncio.sleep(self._interval)
