"""Expectations: what a controller has asked for and not yet seen in its caches.

A controller that creates or deletes objects learns of the result through its
informer, some time later. Until then its cache is stale, and acting on it
again would create or delete too much. So before writing, the controller
records how many creations and which deletions it expects for a key; the
informer handlers count them off as they observe them; and the key is only
acted on again once everything expected was seen — or after a timeout, in
case an event was lost (upstream's ControllerExpectations and its UID-tracking
variant, pkg/controller/controller_utils.go).

Deletions are tracked by object key, so a pod first seen with a
deletionTimestamp and later seen deleted is counted once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

TIMEOUT = 300.0  # upstream's ExpectationsTimeout: five minutes


@dataclass
class _Expected:
    adds: int = 0
    deleting: set[str] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)


class Expectations:
    def __init__(self, timeout: float = TIMEOUT) -> None:
        self._timeout = timeout
        self._by_key: dict[str, _Expected] = {}

    def satisfied(self, key: str) -> bool:
        """May `key` be acted on: nothing pending, or the wait timed out?"""
        expected = self._by_key.get(key)
        if expected is None:
            return True
        if expected.adds <= 0 and not expected.deleting:
            return True
        return time.monotonic() - expected.since > self._timeout

    def expect_creations(self, key: str, count: int) -> None:
        self._by_key[key] = _Expected(adds=count)

    def expect_deletions(self, key: str, object_keys: list[str]) -> None:
        self._by_key[key] = _Expected(deleting=set(object_keys))

    def creation_observed(self, key: str) -> None:
        """One expected creation was seen (or will never happen: it failed)."""
        expected = self._by_key.get(key)
        if expected is not None:
            expected.adds -= 1

    def deletion_observed(self, key: str, object_key: str) -> None:
        """`object_key` was seen deleted (or its deletion failed); counted once."""
        expected = self._by_key.get(key)
        if expected is not None:
            expected.deleting.discard(object_key)

    def forget(self, key: str) -> None:
        """The controlling object is gone: a new one of the same name starts clean."""
        self._by_key.pop(key, None)
