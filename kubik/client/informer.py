"""Shared informers: a list+watch cache of one resource, with indexes and handlers.

As client-go's `tools/cache`: list (in pages, at one revision), then watch
from that revision with bookmarks; resume from the last revision seen when a
stream ends; relist when the server says the revision is gone (410). Every
change updates the cache first, then calls the handlers, which should only
enqueue keys — controllers read current state back from the cache.
Optionally every object is handed to the update handlers again every
`resync` seconds, so controllers revisit what nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubik import component
from kubik.api.registry import Resource
from kubik.client.api import ApiError, Client

log = logging.getLogger(__name__)

Object = dict[str, Any]
IndexFunc = Callable[[Object], list[str]]

_MAX_BACKOFF = 10.0


def key_of(obj: Object) -> str:
    """ "namespace/name", or "name" for cluster-scoped objects (client-go's MetaNamespaceKey)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name', '')}" if namespace else meta.get("name", "")


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.rpartition("/")
    return namespace, name


class Informer:
    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
        resync: float = 0.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self._namespace = namespace
        self._labels = label_selector
        self._fields = field_selector
        self._resync = resync
        self._items: dict[str, Object] = {}
        self._indexers: dict[str, IndexFunc] = {"namespace": _namespace_index}
        self._indexes: dict[str, dict[str, set[str]]] = {"namespace": {}}
        self._handlers: list[tuple[Callable, Callable, Callable]] = []
        self.synced = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.revision = ""

    # ------------------------------------------------------------- setup

    def add_handlers(
        self,
        *,
        on_add: Callable[[Object], None] | None = None,
        on_update: Callable[[Object, Object], None] | None = None,
        on_delete: Callable[[Object], None] | None = None,
    ) -> None:
        """Callbacks (synchronous: they should enqueue, not work) for each change."""
        self._handlers.append((on_add or _ignore, on_update or _ignore, on_delete or _ignore))
        for obj in self._items.values():
            (on_add or _ignore)(obj)

    def add_index(self, name: str, index: IndexFunc) -> None:
        self._indexers[name] = index
        self._indexes[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    # ------------------------------------------------------------- reads

    def get(self, key: str) -> Object | None:
        return self._items.get(key)

    def list(self, namespace: str = "") -> list[Object]:
        if not namespace:
            return list(self._items.values())
        return self.by_index("namespace", namespace)

    def by_index(self, name: str, value: str) -> list[Object]:
        keys = self._indexes[name].get(value, ())
        return [self._items[key] for key in keys if key in self._items]

    def keys(self) -> list[str]:
        return list(self._items)

    # --------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.resource.plural}")

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        delay = 0.1
        relist = True
        resync = asyncio.create_task(self._resync_loop()) if self._resync else None
        try:
            while True:
                try:
                    if relist:
                        await self._list()
                        relist = False
                    await self._watch()
                    delay = 0.1
                except ApiError as exc:
                    if exc.gone:
                        log.info(
                            "%s: revision %s is gone, listing again",
                            self.resource.plural,
                            self.revision,
                        )
                        relist = True
                        continue
                    log.warning("%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF)
                except (ConnectionError, OSError) as exc:
                    log.warning("%s: %s; retrying in %.1fs", self.resource.plural, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF)
        finally:
            if resync is not None:
                resync.cancel()

    async def _list(self) -> None:
        listing = await self.client.list_all(
            self.resource,
            self._namespace,
            label_selector=self._labels,
            field_selector=self._fields,
        )
        fresh = {key_of(obj): obj for obj in listing.get("items") or []}
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key)
        for key, obj in fresh.items():
            self._apply(key, obj)
        self.revision = listing["metadata"]["resourceVersion"]
        self.synced.set()

    async def _watch(self) -> None:
        async for kind, obj in self.client.watch(
            self.resource,
            self._namespace,
            resource_version=self.revision,
            label_selector=self._labels,
            field_selector=self._fields,
        ):
            self.revision = obj.get("metadata", {}).get("resourceVersion") or self.revision
            if kind == "BOOKMARK":
                continue
            key = key_of(obj)
            if kind == "DELETED":
                self._remove(key, last=obj)
            else:
                self._apply(key, obj)

    # ------------------------------------------------------------ changes

    def _apply(self, key: str, obj: Object) -> None:
        old = self._items.get(key)
        if old is not None and old["metadata"].get("resourceVersion") == obj["metadata"].get(
            "resourceVersion"
        ):
            return
        self._items[key] = obj
        for name in self._indexers:
            if old is not None:
                self._unindex(name, key, old)
            self._index(name, key, obj)
        for on_add, on_update, _ in self._handlers:
            if old is None:
                _call(on_add, obj)
            else:
                _call(on_update, old, obj)

    def _remove(self, key: str, last: Object | None = None) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        for name in self._indexers:
            self._unindex(name, key, old)
        for _, _, on_delete in self._handlers:
            _call(on_delete, last or old)

    def _index(self, name: str, key: str, obj: Object) -> None:
        for value in self._indexers[name](obj):
            self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, name: str, key: str, obj: Object) -> None:
        for value in self._indexers[name](obj):
            keys = self._indexes[name].get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._indexes[name][value]

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self._resync)
            for obj in list(self._items.values()):
                for _, on_update, _ in self._handlers:
                    _call(on_update, obj, obj)


class InformerFactory:
    """One informer per resource, shared by every controller that needs it."""

    def __init__(self, client: Client, *, resync: float = 0.0) -> None:
        self.client = client
        self._resync = resync
        self._informers: dict[Resource, Informer] = {}

    def informer(self, resource: Resource) -> Informer:
        informer = self._informers.get(resource)
        if informer is None:
            informer = Informer(self.client, resource, resync=self._resync)
            self._informers[resource] = informer
        return informer

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self) -> None:
        await asyncio.gather(*(i.synced.wait() for i in self._informers.values()))

    async def stop(self) -> None:
        for informer in self._informers.values():
            await informer.stop()


def _namespace_index(obj: Object) -> list[str]:
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def _ignore(*_: Any) -> None:
    return None


def _call(handler: Callable, *args: Object) -> None:
    try:
        handler(*args)
    except Exception:
        log.exception("informer handler %r failed", handler)
