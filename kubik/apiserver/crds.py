"""CustomResourceDefinitions: custom resources served like the built-ins.

The manager follows the CRD watch cache. For each CRD it registers one
`Resource` per served version in the shared registry (so discovery, routing
and the generic REST machinery serve it at once), opens its watch cache, and
marks the CRD `NamesAccepted` and `Established`, as upstream's
apiextensions-apiserver does. Deleting a CRD first deletes every object of
it (the `customresourcecleanup` finalizer), then unregisters it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubik import component
from kubik.api import errors, meta, tables
from kubik.api.registry import Registry, Resource
from kubik.apiserver.storage import ResourceStore, decode
from kubik.store.interface import EventType, Store
from kubik.store.watchcache import WatchCache

log = logging.getLogger(__name__)

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"

Object = dict[str, Any]


def resources_of(crd: Object) -> list[Resource]:
    """The resources (one per served version) a CRD defines."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group", ""), names.get("plural", ""), names.get("kind", "")
    if not (group and plural and kind):
        return []
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        result.append(
            Resource(
                group=group,
                version=version.get("name", ""),
                kind=kind,
                plural=plural,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=tuple(s for s in ("status", "scale") if s in subresources),
                storage=f"/registry/{group}/{plural}",
            )
        )
    return result


def version_entry(crd: Object, version: str) -> Object:
    """One entry of a CRD's `spec.versions` ({} when absent)."""
    for entry in (crd.get("spec") or {}).get("versions") or []:
        if entry.get("name") == version:
            return entry
    return {}


def version_schema(crd: Object, version: str) -> Object | None:
    """The `openAPIV3Schema` of one version of a CRD (None when it has none)."""
    return (version_entry(crd, version).get("schema") or {}).get("openAPIV3Schema")


class CustomResourceManager:
    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        stores: dict[Resource, ResourceStore],
        crds: ResourceStore,
        open_cache: Callable[[Resource], Awaitable[WatchCache]],
        on_register: Callable[[Resource, Object | None], None],
    ) -> None:
        self._store = store
        self._registry = registry
        self._stores = stores
        self._crds = crds
        self._open_cache = open_cache
        self._on_register = on_register
        self._served: dict[str, list[Resource]] = {}  # CRD name → its resources
        self._schemas: dict[str, list[Object | None]] = {}  # … and their schemas
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        listing = await self._crds.cache.list()
        for kv in listing.kvs:
            await self._sync(decode(kv))
        self._task = asyncio.create_task(self._follow(listing.revision), name="crd-manager")

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)

    async def _follow(self, revision: int) -> None:
        while True:
            try:
                async for event in self._crds.cache.watch(revision):
                    revision = max(revision, event.revision)
                    if event.type is EventType.DELETE:
                        self._unregister(meta.name_of(decode(event.prev)))
                    elif event.kv is not None:
                        await self._sync(decode(event.kv))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following CRDs failed; resyncing in 1s")
                await asyncio.sleep(1)
                listing = await self._crds.cache.list()
                for kv in listing.kvs:
                    await self._sync(decode(kv))
                revision = listing.revision

    async def _sync(self, crd: Object) -> None:
        name = meta.name_of(crd)
        if crd["metadata"].get("deletionTimestamp"):
            await self._cleanup(crd)
            return
        wanted = resources_of(crd)
        schemas = [version_entry(crd, r.version) for r in wanted]
        if wanted != self._served.get(name) or schemas != self._schemas.get(name):
            self._unregister(name)
            for resource in wanted:
                self._stores[resource] = ResourceStore(
                    self._store, resource, await self._open_cache(resource)
                )
                self._registry.add(resource)
                tables.register_custom_resource(resource, version_entry(crd, resource.version))
                self._on_register(resource, version_schema(crd, resource.version))
            self._served[name] = wanted
            self._schemas[name] = schemas
            log.info("serving custom resource %s (%s)", name, ", ".join(r.version for r in wanted))
        await self._mark_established(crd)

    def _unregister(self, name: str) -> None:
        self._schemas.pop(name, None)
        for resource in self._served.pop(name, []):
            self._registry.remove(resource.group, resource.version, resource.plural)
            tables.unregister_custom_resource(resource)
            self._stores.pop(resource, None)

    async def _mark_established(self, crd: Object) -> None:
        status = crd.get("status") or {}
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        finalizers = crd["metadata"].get("finalizers") or []
        if (
            conditions.get("Established") == "True"
            and conditions.get("NamesAccepted") == "True"
            and CLEANUP_FINALIZER in finalizers
        ):
            return

        def change(current: Object) -> Object:
            spec = current.get("spec") or {}
            metadata = current["metadata"]
            if CLEANUP_FINALIZER not in (metadata.get("finalizers") or []):
                metadata.setdefault("finalizers", []).append(CLEANUP_FINALIZER)
            now = meta.now()
            current["status"] = {
                "acceptedNames": spec.get("names") or {},
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "lastTransitionTime": now,
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "lastTransitionTime": now,
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                ],
                "storedVersions": [
                    v.get("name") for v in spec.get("versions") or [] if v.get("storage")
                ],
            }
            return current

        with contextlib.suppress(errors.APIError):
            await self._crds.update("", meta.name_of(crd), change)

    async def _cleanup(self, crd: Object) -> None:
        """Delete every object of a CRD being deleted, then let the CRD go."""
        name = meta.name_of(crd)
        for resource in resources_of(crd)[:1]:
            prefix = resource.store_prefix()
            while True:
                page = await self._store.list(prefix, limit=500)
                for kv in page.kvs:
                    with contextlib.suppress(Exception):
                        await self._store.delete(kv.key)
                if not page.more:
                    break
        self._unregister(name)

        def release(current: Object) -> Object:
            finalizers = current["metadata"].get("finalizers") or []
            current["metadata"]["finalizers"] = [f for f in finalizers if f != CLEANUP_FINALIZER]
            return current

        with contextlib.suppress(errors.APIError):
            _, new = await self._crds.update("", name, release)
            if not new["metadata"].get("finalizers"):
                await self._crds.delete(
                    "", name, expected_revision=int(new["metadata"]["resourceVersion"])
                )
