"""A small bounded memo of recent results, for work every watcher would repeat.

One change is fanned out to every watcher of a resource: decoding it and
encoding its watch line once, not once per watcher, is what keeps delivery
fast with a thousand watchers.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")


class Recent(Generic[Value]):
    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Value] = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], Value]) -> Value:
        """The remembered value for `key`, made (and remembered) if missing."""
        try:
            return self._items[key]
        except KeyError:
            value = make()
            self._items[key] = value
            if len(self._items) > self._size:
                self._items.popitem(last=False)
            return value
