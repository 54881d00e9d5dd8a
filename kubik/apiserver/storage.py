"""The objects of one resource in the store: dicts in, dicts out.

Objects are stored as JSON without `metadata.resourceVersion`; it is the
key's `mod_revision`, set on the way out (as upstream does on etcd). Reads
that may be served from memory go to the resource's watch cache; reads that
must be current, and all writes, go to the store. Store errors become API
errors here, once.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson

from kubik.api import errors
from kubik.api.registry import Resource
from kubik.apiserver.recent import Recent
from kubik.store import errors as store_errors
from kubik.store.interface import Event, EventType, KeyValue, ListResult, Store
from kubik.store.watchcache import WatchCache, WatcherTooSlowError

Object = dict[str, Any]


def decode(kv: KeyValue) -> Object:
    obj = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


# Stored objects always begin with their metadata, so the resourceVersion can be
# spliced into the bytes of a list answer without decoding them (see `with_version`).
_METADATA_OPEN = b'{"metadata":{'


def encode(obj: Object) -> bytes:
    meta = obj["metadata"]
    version = meta.pop("resourceVersion", None)
    try:
        if next(iter(obj)) != "metadata":
            obj = {"metadata": meta, **{k: v for k, v in obj.items() if k != "metadata"}}
        return orjson.dumps(obj)
    finally:
        if version is not None:
            meta["resourceVersion"] = version


def with_version(kv: KeyValue) -> bytes:
    """The stored JSON with metadata.resourceVersion set, without decoding it."""
    value = kv.value
    opening = len(_METADATA_OPEN)
    if value.startswith(_METADATA_OPEN) and value[opening : opening + 1] != b"}":
        return b'{"metadata":{"resourceVersion":"%d",' % kv.mod_revision + value[opening:]
    return orjson.dumps(decode(kv))


@contextlib.contextmanager
def translated(resource: Resource, name: str) -> Iterator[None]:
    """Turn store errors into the API errors a client expects."""
    try:
        yield
    except store_errors.KeyExistsError:
        raise errors.already_exists(resource.plural, resource.group, name) from None
    except store_errors.KeyNotFoundError:
        raise errors.not_found(resource.plural, resource.group, name) from None
    except store_errors.ConflictError:
        raise errors.stale(resource.plural, resource.group, name) from None
    except store_errors.CompactedError as exc:
        raise errors.gone(f"too old resource version: {exc.revision} ({exc.compacted})") from None
    except store_errors.FutureRevisionError as exc:
        raise errors.too_new_revision(
            f"Too large resource version: {exc.revision}, current: {exc.current}"
        ) from None
    except store_errors.ValueTooLargeError as exc:
        raise errors.too_large(str(exc)) from None
    except store_errors.StoreUnavailableError as exc:
        raise errors.unavailable(f"the store is unavailable: {exc}") from None


class ResourceStore:
    def __init__(self, store: Store, resource: Resource, cache: WatchCache) -> None:
        self.store = store
        self.resource = resource
        self.cache = cache
        self._decoded: Recent[tuple[str, Any]] = Recent()

    def key(self, namespace: str, name: str) -> str:
        return self.resource.store_key(namespace, name)

    def prefix(self, namespace: str) -> str:
        return self.resource.store_prefix(namespace if self.resource.namespaced else "")

    # --------------------------------------------------------------- reads

    async def get(self, namespace: str, name: str, *, from_cache: bool = False) -> Object:
        key = self.key(namespace, name)
        with translated(self.resource, name):
            kv = await (self.cache.get(key) if from_cache else self.store.get(key))
        if kv is None:
            raise errors.not_found(self.resource.plural, self.resource.group, name)
        return decode(kv)

    async def list_page(
        self, namespace: str, *, revision: int, exact: bool, limit: int, start: str
    ) -> ListResult:
        """One page of keys: from the cache (at least `revision`) or the store (exactly)."""
        prefix = self.prefix(namespace)
        with translated(self.resource, ""):
            if exact:
                return await self.store.list(prefix, revision=revision, limit=limit, start=start)
            return await self.cache.list(
                min_revision=revision, limit=limit, start=start, key_prefix=prefix
            )

    async def current_revision(self) -> int:
        with translated(self.resource, ""):
            return await self.store.current_revision()

    # -------------------------------------------------------------- writes

    async def create(self, obj: Object, *, lease: int = 0) -> Object:
        meta = obj["metadata"]
        name = meta["name"]
        with translated(self.resource, name):
            kv = await self.store.create(
                self.key(meta.get("namespace", ""), name), encode(obj), lease=lease
            )
        meta["resourceVersion"] = str(kv.mod_revision)
        return obj

    async def update(
        self,
        namespace: str,
        name: str,
        change: Callable[[Object], Object | None | Awaitable[Object | None]],
    ) -> tuple[Object, Object]:
        """Read-modify-write until it sticks; returns (old, new).

        `change` gets a fresh copy of the current object and returns the new
        one, or None to leave the object as it is (a no-op keeps its
        resourceVersion, as upstream). API errors it raises abort the update.
        It may be a coroutine function (admission looks things up).
        """
        key = self.key(namespace, name)
        with translated(self.resource, name):
            current = await self.store.get(key)
            while True:
                if current is None:
                    raise errors.not_found(self.resource.plural, self.resource.group, name)
                old = decode(current)
                new = change(decode(current))
                if inspect.isawaitable(new):
                    new = await new
                if new is None:
                    return old, old
                try:
                    kv = await self.store.update(
                        key,
                        encode(new),
                        expected_mod_revision=current.mod_revision,
                        lease=current.lease,  # an event keeps its time to live
                    )
                except store_errors.ConflictError as conflict:
                    current = conflict.current
                    continue
                except store_errors.KeyNotFoundError:
                    current = None
                    continue
                new["metadata"]["resourceVersion"] = str(kv.mod_revision)
                return old, new

    async def delete(self, namespace: str, name: str, *, expected_revision: int) -> Object:
        with translated(self.resource, name):
            kv = await self.store.delete(
                self.key(namespace, name), expected_mod_revision=expected_revision
            )
        obj = decode(kv)
        return obj

    # --------------------------------------------------------------- watch

    async def watch(
        self, namespace: str, *, from_revision: int, progress_interval: float
    ) -> AsyncIterator[tuple[str, Any]]:
        """("ADDED"|"MODIFIED"|"DELETED", object) and ("BOOKMARK", revision) pairs.

        From revision 0 the current objects come first as ADDED, then
        ("INITIAL_END", revision) marks where the live changes begin.
        """
        prefix = self.prefix(namespace)
        with translated(self.resource, ""):
            if from_revision == 0:
                listing = await self.cache.list(key_prefix=prefix)
                for kv in listing.kvs:
                    yield "ADDED", decode(kv)
                from_revision = listing.revision
                yield "INITIAL_END", from_revision
            events = self.cache.watch(
                from_revision, key_prefix=prefix, progress_interval=progress_interval
            )
            try:
                async for event in events:
                    if event.kv is None:
                        yield _watch_pair(event)
                    else:  # decoded once for every watcher of this resource
                        key = (event.revision, event.kv.key, event.type)
                        yield self._decoded.get(key, lambda e=event: _watch_pair(e))
            except WatcherTooSlowError:
                return
            finally:
                await events.aclose()


def _watch_pair(event: Event) -> tuple[str, Any]:
    if event.type is EventType.PROGRESS:
        return "BOOKMARK", event.revision
    if event.type is EventType.DELETE:
        obj = decode(event.prev)
        obj["metadata"]["resourceVersion"] = str(event.revision)
        return "DELETED", obj
    return ("ADDED" if event.type is EventType.CREATE else "MODIFIED"), decode(event.kv)
