"""Admission: what the API server checks and changes between decoding a write and storing it.

Upstream runs a chain of admission plugins on every create and update of a
resource: first the mutating ones, which may change the object (LimitRanger
fills in default resources), then — after the kind's own validation — the
validating ones, which may only refuse (LimitRanger's minimums and maximums,
ResourceQuota's hard limits). A refusal is a 403 Forbidden Status naming the
object, `pods "web" is forbidden: <why>`, as upstream's `admission.NewForbidden`.

A plugin is a `Plugin` subclass listed in `PLUGINS`; the API server makes one
of each, in list order, with a `Stores` through which it reads (and, for
quota, writes) other resources. On create, mutating plugins run before the
kind's defaults are applied (`strategy.prepare_create`); one that needs them,
as upstream's plugins get them from decoding, applies them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubik.api import errors
from kubik.api.registry import Resource
from kubik.apiserver.storage import Object, ResourceStore, decode

CREATE = "CREATE"
UPDATE = "UPDATE"


@dataclass(frozen=True, slots=True)
class Attributes:
    """One write as the plugins see it (upstream's admission.Attributes)."""

    operation: str  # CREATE or UPDATE
    resource: Resource
    namespace: str
    subresource: str
    obj: Object  # the object to be stored; mutating plugins change it in place
    old: Object | None  # the stored object, on update
    user: Any  # the authenticated `auth.User` (None for the server's own writes)
    dry_run: bool  # nothing may be persisted: quota checks but does not charge

    @property
    def name(self) -> str:
        metadata = self.obj.get("metadata") or {}
        return metadata.get("name") or metadata.get("generateName") or "Unknown"

    def is_core(self, plural: str) -> bool:
        return self.resource.group == "" and self.resource.plural == plural


def forbidden(attrs: Attributes, why: str) -> errors.APIError:
    """The Status a plugin refuses a write with."""
    resource = attrs.resource
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    details = {"name": attrs.name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return errors.APIError(
        403, "Forbidden", f'{qualified} "{attrs.name}" is forbidden: {why}', details=details
    )


def aggregate(reasons: list[str]) -> str:
    """Several reasons as upstream's error aggregate prints them: one alone, more in [a, b]."""
    return reasons[0] if len(reasons) == 1 else "[" + ", ".join(reasons) + "]"


class Stores:
    """The objects plugins may look at (from the watch caches) and change (in the store).

    Built on the API server's own map of stores, which gains custom resources as
    CRDs are registered.
    """

    def __init__(self, stores: dict[Resource, ResourceStore]) -> None:
        self._stores = stores
        self._found: dict[tuple[str, str], ResourceStore] = {}

    def store(self, group: str, plural: str) -> ResourceStore:
        found = self._found.get((group, plural))
        if found is not None and found.resource in self._stores:
            return found
        for resource, store in self._stores.items():
            if resource.group == group and resource.plural == plural:
                self._found[(group, plural)] = store
                return store
        raise errors.not_found(plural, group, "")

    async def list(self, group: str, plural: str, namespace: str = "") -> list[Object]:
        store = self.store(group, plural)
        page = await store.list_page(namespace, revision=0, exact=False, limit=0, start="")
        return [decode(kv) for kv in page.kvs]


class Plugin:
    """One admission plugin. `handles` says, without looking at the object, whether the
    plugin has anything to do with a write; `admit` may change the object (mutating),
    `validate` may refuse it. Either raises `forbidden(...)` to refuse."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    def handles(self, operation: str, resource: Resource, subresource: str) -> bool:
        return False

    async def admit(self, attrs: Attributes) -> None:
        """Mutating phase; plugins that only validate leave it alone."""

    async def validate(self, attrs: Attributes) -> None:
        """Validating phase; plugins that only mutate leave it alone."""


class Chain:
    """The plugins in order: every mutating phase, then every validating phase."""

    def __init__(
        self, stores: Stores, plugins: Iterable[Callable[[Stores], Plugin]] | None = None
    ) -> None:
        self._plugins = [make(stores) for make in (PLUGINS if plugins is None else plugins)]
        # Those with a mutating phase of their own (most only validate, as ResourceQuota).
        self._mutating = [p for p in self._plugins if type(p).admit is not Plugin.admit]

    def wants(self, operation: str, resource: Resource, subresource: str) -> bool:
        return any(p.handles(operation, resource, subresource) for p in self._plugins)

    def mutates(self, operation: str, resource: Resource, subresource: str) -> bool:
        """May the mutating phase change this write (so the request must be kept apart)?"""
        return any(p.handles(operation, resource, subresource) for p in self._mutating)

    @staticmethod
    def _interested(plugins: list[Plugin], attrs: Attributes) -> list[Plugin]:
        return [p for p in plugins if p.handles(attrs.operation, attrs.resource, attrs.subresource)]

    async def mutate(self, attrs: Attributes) -> None:
        for plugin in self._interested(self._mutating, attrs):
            await plugin.admit(attrs)

    async def validate(self, attrs: Attributes) -> None:
        for plugin in self._interested(self._plugins, attrs):
            await plugin.validate(attrs)


# The plugins, in the order they run (upstream's: LimitRanger early, ResourceQuota last).
# Priority comes before LimitRanger, which applies the pod defaults (priority 0 among them).
# A new plugin is a module of this package with a Plugin subclass, imported and listed here.
from kubik.apiserver.admission import (  # noqa: E402
    limitranger,
    priority,
    resourcequota,
    serviceaccount,
)

PLUGINS: list[Callable[[Stores], Plugin]] = [
    priority.Priority,
    limitranger.LimitRanger,
    serviceaccount.ServiceAccount,
    resourcequota.ResourceQuota,
]
