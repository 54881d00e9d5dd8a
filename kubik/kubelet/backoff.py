"""Exponential back-off per key, as the kubelet spaces container restarts and image pulls.

A key (a pod's container, or a pod's image) that fails waits 10 s before the
next attempt, then 20 s, 40 s... up to 5 minutes. An entry that saw no
failure for twice the maximum (10 minutes: a container that ran that long
before dying again) starts over at 10 s. Times are wall-clock seconds, since
failures are dated by the runtime (a container's finishedAt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INITIAL = 10.0
MAXIMUM = 300.0


@dataclass
class _Entry:
    delay: float
    updated: float  # when the delay was last raised


class Backoff:
    def __init__(
        self,
        initial: float = INITIAL,
        maximum: float = MAXIMUM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.updated > 2 * self.maximum

    def delay(self, key: str) -> float:
        """The current delay of `key` (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def in_backoff_since(self, key: str, event_time: float) -> bool:
        """Whether, counting from `event_time` (the last failure), `key` must still wait."""
        return self.remaining(key, event_time) > 0

    def remaining(self, key: str, event_time: float) -> float:
        """Seconds `key` must still wait after its failure at `event_time` (0: go ahead)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or self._expired(entry, now):
            return 0.0
        return max(0.0, event_time + entry.delay - now)

    def remaining_since_update(self, key: str) -> float:
        """Seconds `key` must still wait counting from its last attempt (image pulls)."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or self._expired(entry, now):
            return 0.0
        return max(0.0, entry.updated + entry.delay - now)

    def next(self, key: str, event_time: float) -> None:
        """Record an attempt after the failure at `event_time`: the delay grows (or restarts)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            entry = _Entry(self.initial, 0.0)
            self._entries[key] = entry
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
        entry.updated = self._clock()

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget(self, prefix: str) -> None:
        """Drop every key starting with `prefix` (a pod that is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Drop entries idle long enough to have expired."""
        now = self._clock()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]
