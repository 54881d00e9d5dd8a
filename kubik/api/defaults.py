"""Upstream's defaults for each kind (pkg/apis/*/v1/defaults.go), applied on create and update.

`apply(resource, obj)` fills in what a client left out, in place; each kind's
defaulter is a function registered in `_DEFAULTERS` by kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubik.api.registry import Resource

Object = dict[str, Any]

_DEFAULTERS: dict[tuple[str, str], Callable[[Object], None]] = {}


def defaulter(group: str, kind: str) -> Callable[[Callable[[Object], None]], Callable]:
    def register(fn: Callable[[Object], None]) -> Callable[[Object], None]:
        _DEFAULTERS[(group, kind)] = fn
        return fn

    return register


def apply(resource: Resource, obj: Object) -> None:
    fn = _DEFAULTERS.get((resource.group, resource.kind))
    if fn is not None:
        fn(obj)
