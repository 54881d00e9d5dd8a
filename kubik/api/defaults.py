"""Upstream's defaults for each kind (pkg/apis/*/v1/defaults.go), applied on create and update.

`apply(resource, obj)` fills in what a client left out, in place; each
kind's defaulter is registered by (group, kind) with `@defaulter`, in the
modules of `kubik.api.kinds`.

A few things upstream does only when an object is created (its strategies'
PrepareForCreate) must not be redone on every update: a Namespace's
`kubernetes` finalizer, which the namespace controller removes on purpose.
Those are registered with `@on_create` and run by `apply(..., creating=True)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubik.api.registry import Resource

Object = dict[str, Any]
Defaulter = Callable[[Object], None]

_DEFAULTERS: dict[tuple[str, str], Defaulter] = {}
_CREATION_HOOKS: dict[tuple[str, str], Defaulter] = {}


def defaulter(group: str, kind: str) -> Callable[[Defaulter], Defaulter]:
    def register(fn: Defaulter) -> Defaulter:
        _DEFAULTERS[(group, kind)] = fn
        return fn

    return register


def on_create(group: str, kind: str) -> Callable[[Defaulter], Defaulter]:
    """Register what the server fills in only when the object is created."""

    def register(fn: Defaulter) -> Defaulter:
        _CREATION_HOOKS[(group, kind)] = fn
        return fn

    return register


def apply(resource: Resource, obj: Object, *, creating: bool = False) -> None:
    key = (resource.group, resource.kind)
    fn = _DEFAULTERS.get(key)
    if fn is not None:
        fn(obj)
    hook = _CREATION_HOOKS.get(key) if creating else None
    if hook is not None:
        hook(obj)


# The kinds' defaulters register themselves when their modules load.
from kubik.api import kinds  # noqa: E402, F401
