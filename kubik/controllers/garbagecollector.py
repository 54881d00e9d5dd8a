"""The garbage collector: objects whose owners are gone are deleted, as owners' deletions ask.

(upstream: pkg/controller/garbagecollector)

It watches every resource the server serves that can be listed, watched and
deleted (custom resources too: discovery is read again whenever a CRD
changes, and every 30 s) and keeps a graph of who owns whom, keyed by uid.
Two kinds of work go through its queue:

- `delete/<uid>`: look at one object. If it is deleting its dependents in the
  foreground (the `foregroundDeletion` finalizer), remove the finalizer once no
  dependent with `blockOwnerDeletion` is left. Otherwise check each of its
  owners with a live GET (an owner whose uid differs, a recreated one, counts
  as absent): with no live owner left it is deleted — in the background, or in
  the foreground when an owner waits for it and it has dependents of its own;
  with some live owners, references to absent or foreground-deleting owners
  are removed from it.
- `orphan/<uid>`: an owner deleted with the `orphan` finalizer: its reference
  is removed from every dependent, then the finalizer.

Dependency cycles never block a foreground deletion: an object whose owner
and dependent both wait for their dependents stops blocking its owners first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubik.api import builtin
from kubik.api.registry import Resource
from kubik.client.api import ApiError
from kubik.client.discovery import served_resources
from kubik.client.informer import Informer
from kubik.controllers.base import Controller, register

log = logging.getLogger(__name__)

Object = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRDS = builtin.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
# events churn and are never owners worth collecting for (upstream ignores them too)
IGNORED = {("", "events"), ("events.k8s.io", "events")}
WATCHED_VERBS = {"list", "watch", "delete"}
RESYNC_SECONDS = 30.0  # how often discovery is read again without a CRD change
SYNC_TIMEOUT = 30.0
ABSENT_REMEMBERED = 500

_DELETE = "delete/"
_ORPHAN = "orphan/"


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


# ------------------------------------------------------------------- graph


@dataclass
class Node:
    """What the graph knows of one observed object."""

    resource: Resource
    namespace: str
    name: str
    owners: list[Object]
    being_deleted: bool
    finalizers: tuple[str, ...]

    @classmethod
    def of(cls, resource: Resource, obj: Object) -> Node:
        meta = obj["metadata"]
        return cls(
            resource,
            meta.get("namespace", ""),
            meta["name"],
            list(meta.get("ownerReferences") or []),
            bool(meta.get("deletionTimestamp")),
            tuple(meta.get("finalizers") or ()),
        )

    @property
    def deleting_dependents(self) -> bool:
        return self.being_deleted and FOREGROUND in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.being_deleted and ORPHAN in self.finalizers

    def blocks(self, owner_uid: str) -> bool:
        """Whether its reference to `owner_uid` holds up that owner's foreground deletion."""
        return any(
            ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion") for ref in self.owners
        )

    def referenced_by(self, ref: Object, dependent_namespace: str) -> bool:
        """Whether `ref` (in an object of `dependent_namespace`) names exactly this object."""
        return (
            ref.get("kind") == self.resource.kind
            and api_group(ref.get("apiVersion", "")) == self.resource.group
            and ref.get("name") == self.name
            and (not self.resource.namespaced or self.namespace == dependent_namespace)
        )


class InvalidReference(Exception):
    """A cluster-scoped object names a namespaced owner: no retry can resolve it."""


SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


@register
class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 20  # upstream's --concurrent-gc-syncs

    def setup(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}  # owner uid → uids of observed dependents
        # (group, kind, namespace, name, uid) of owners known to be gone: uids never come back
        self._absent: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self._monitors: dict[Resource, Informer] = {}
        self._handled: set[Resource] = set()
        self._kinds: dict[tuple[str, str], Resource] = {}
        self._ready = asyncio.Event()
        self._rediscover = asyncio.Event()
        crds = self.informers.informer(CRDS)
        crds.add_handlers(
            on_add=lambda _: self._rediscover.set(),
            on_update=lambda _old, _new: self._rediscover.set(),
            on_delete=lambda _: self._rediscover.set(),
        )

    async def run(self, workers: int) -> None:
        await asyncio.gather(super().run(workers), self._follow_discovery())

    # ------------------------------------------------------------ monitors

    async def _follow_discovery(self) -> None:
        """Watch what discovery lists, again on every CRD change and every RESYNC_SECONDS."""
        while True:
            try:
                await self._refresh_monitors()
            except Exception as exc:
                expected = isinstance(exc, (ApiError, TimeoutError))
                log.warning(
                    "garbage collector: following discovery: %s", exc, exc_info=not expected
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rediscover.wait(), RESYNC_SECONDS)
            self._rediscover.clear()

    async def _refresh_monitors(self) -> None:
        resources, failed = await served_resources(self.client)
        failed_groups = {api_group(gv) for gv in failed}
        kinds = {key: r for key, r in self._kinds.items() if r.group in failed_groups}
        kinds.update({(r.group, r.kind): r for r in resources})
        self._kinds = kinds
        wanted = {
            r
            for r in resources
            if WATCHED_VERBS <= set(r.verbs) and (r.group, r.plural) not in IGNORED
        }
        for resource in list(self._monitors):
            if resource not in wanted and resource.group not in failed_groups:
                await self._monitors.pop(resource).stop()
        for resource in wanted - self._monitors.keys():
            self._monitor(resource)
        self._ready.set()
        await self._monitors_synced()
        self._recheck_unobserved_owners()

    def _monitor(self, resource: Resource) -> None:
        informer = self.informers.informer(resource)
        if resource not in self._handled:
            informer.add_handlers(
                on_add=lambda obj: self._observe(resource, obj),
                on_update=lambda _old, new: self._observe(resource, new),
                on_delete=lambda obj: self._forget(resource, obj),
            )
            self._handled.add(resource)
        informer.start()
        self._monitors[resource] = informer

    def _recheck_unobserved_owners(self) -> None:
        """Owners never seen (their kind was not watched, or not yet) may be gone: check their
        dependents. Done after every discovery, so no dependent waits forever on a guess."""
        for owner_uid, dependents in self._dependents.items():
            if owner_uid not in self._nodes:
                self._enqueue_deletes(dependents)

    async def _monitors_synced(self) -> None:
        await self._ready.wait()
        pending = [i.synced.wait() for i in self._monitors.values() if not i.synced.is_set()]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), SYNC_TIMEOUT)

    # -------------------------------------------------------- graph changes

    def _observe(self, resource: Resource, obj: Object) -> None:
        uid = obj["metadata"].get("uid")
        if not uid:
            return
        old = self._nodes.get(uid)
        node = Node.of(resource, obj)
        self._nodes[uid] = node
        old_refs = {ref["uid"]: ref for ref in old.owners} if old else {}
        new_refs = {ref["uid"]: ref for ref in node.owners}
        for owner_uid, ref in old_refs.items():
            if owner_uid not in new_refs:
                self._unlink(owner_uid, uid)
            if ref.get("blockOwnerDeletion") and not new_refs.get(owner_uid, {}).get(
                "blockOwnerDeletion"
            ):
                self._owner_may_finish(owner_uid)
        for owner_uid in new_refs.keys() - old_refs.keys():
            self._dependents.setdefault(owner_uid, set()).add(uid)
        if any(old_refs.get(owner_uid) != ref for owner_uid, ref in new_refs.items()):
            self.queue.add(_DELETE + uid)
        if node.orphaning:
            if not (old and old.orphaning):
                self.queue.add(_ORPHAN + uid)
        elif node.deleting_dependents and not (
            old and old.deleting_dependents and not old.orphaning
        ):
            self._enqueue_deletes(self._dependents.get(uid, ()))
            self.queue.add(_DELETE + uid)

    def _forget(self, resource: Resource, obj: Object) -> None:
        meta = obj["metadata"]
        uid = meta.get("uid")
        node = self._nodes.pop(uid, None)
        if node is None:
            return
        self._remember_absent((resource.group, resource.kind, node.namespace, node.name, uid))
        for ref in node.owners:
            self._unlink(ref["uid"], uid)
            self._owner_may_finish(ref["uid"])
        self._enqueue_deletes(self._dependents.get(uid, ()))

    def _unlink(self, owner_uid: str, dependent_uid: str) -> None:
        dependents = self._dependents.get(owner_uid)
        if dependents is not None:
            dependents.discard(dependent_uid)
            if not dependents:
                del self._dependents[owner_uid]

    def _owner_may_finish(self, owner_uid: str) -> None:
        """A dependent stopped blocking `owner_uid`: it may be done waiting for its dependents."""
        owner = self._nodes.get(owner_uid)
        if owner is not None and owner.deleting_dependents:
            self.queue.add(_DELETE + owner_uid)

    def _enqueue_deletes(self, uids: Iterable[str]) -> None:
        for uid in uids:
            self.queue.add(_DELETE + uid)

    def _remember_absent(self, key: tuple[str, ...]) -> None:
        self._absent[key] = None
        self._absent.move_to_end(key)
        while len(self._absent) > ABSENT_REMEMBERED:
            self._absent.popitem(last=False)

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        await self._monitors_synced()
        if key.startswith(_ORPHAN):
            await self._orphan_dependents(key.removeprefix(_ORPHAN))
        else:
            await self._attempt_to_delete(key.removeprefix(_DELETE))

    async def _attempt_to_delete(self, uid: str) -> None:
        node = self._nodes.get(uid)
        if node is None or (node.being_deleted and not node.deleting_dependents):
            return
        if not node.deleting_dependents and all(self._solid_in_graph(node, r) for r in node.owners):
            return  # nothing to do without asking the server
        latest = await self._get_same(node.resource, node.namespace, node.name, uid)
        if latest is None:
            return  # gone already: its deletion event follows
        meta = latest["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            await self._finish_foreground(uid, node, latest)
            return
        refs = meta.get("ownerReferences") or []
        if not refs:
            return
        try:
            states = [await self._owner_state(node, ref) for ref in refs]
        except InvalidReference as exc:
            log.info("garbage collector: %s", exc)
            return
        gone = {ref["uid"] for ref, state in zip(refs, states, strict=True) if state != SOLID}
        if SOLID in states:
            if gone:
                await self._patch_metadata(
                    node.resource, latest, {"ownerReferences": _without(refs, gone)}
                )
            return
        dependents = [self._nodes[d] for d in self._dependents.get(uid, ()) if d in self._nodes]
        if WAITING in states and dependents:
            if any(d.deleting_dependents for d in dependents):
                # its owner and a dependent both wait: stop blocking owners, or the cycle locks
                latest = await self._patch_metadata(
                    node.resource, latest, {"ownerReferences": _unblocked(refs)}
                )
                if latest is None:
                    return
            await self._delete(node, uid, "Foreground")
            return
        finalizers = meta.get("finalizers") or []
        policy = (
            "Orphan"
            if ORPHAN in finalizers
            else "Foreground"
            if FOREGROUND in finalizers
            else "Background"
        )
        await self._delete(node, uid, policy)

    def _solid_in_graph(self, node: Node, ref: Object) -> bool:
        owner = self._nodes.get(ref.get("uid", ""))
        return (
            owner is not None
            and not owner.deleting_dependents
            and owner.referenced_by(ref, node.namespace)
        )

    async def _owner_state(self, node: Node, ref: Object) -> str:
        """SOLID (alive), DANGLING (absent, or another uid) or WAITING (deleting in foreground)."""
        group = api_group(ref.get("apiVersion", ""))
        resource = self._kinds.get((group, ref.get("kind", "")))
        if resource is None:
            raise LookupError(f"no served resource has kind {ref.get('kind')} in {group!r}")
        if resource.namespaced and not node.namespace:
            raise InvalidReference(
                f"cluster-scoped {node.resource.kind} {node.name} names namespaced owner "
                f"{resource.kind} {ref.get('name')}"
            )
        namespace = node.namespace if resource.namespaced else ""
        absent_key = (group, resource.kind, namespace, ref.get("name", ""), ref["uid"])
        if absent_key in self._absent:
            return DANGLING
        owner = await self._get_same(resource, namespace, ref.get("name", ""), ref["uid"])
        if owner is None:
            self._remember_absent(absent_key)
            return DANGLING
        meta = owner["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
            return WAITING
        return SOLID

    async def _finish_foreground(self, uid: str, node: Node, latest: Object) -> None:
        """Remove the owner's finalizer once no dependent blocks it; else push those that do."""
        blocking = [
            d
            for d in self._dependents.get(uid, ())
            if d in self._nodes and self._nodes[d].blocks(uid)
        ]
        if not blocking:
            await self._patch_metadata(
                node.resource, latest, _removing_finalizer(latest, FOREGROUND)
            )
            return
        self._enqueue_deletes(d for d in blocking if not self._nodes[d].deleting_dependents)

    async def _orphan_dependents(self, uid: str) -> None:
        node = self._nodes.get(uid)
        if node is None:
            return
        latest = await self._get_same(node.resource, node.namespace, node.name, uid)
        if latest is None or not Node.of(node.resource, latest).orphaning:
            return
        await asyncio.gather(*(self._release(d, uid) for d in list(self._dependents.get(uid, ()))))
        await self._patch_metadata(node.resource, latest, _removing_finalizer(latest, ORPHAN))

    async def _release(self, dependent_uid: str, owner_uid: str) -> None:
        """Remove the references to `owner_uid` from one dependent."""
        dependent = self._nodes.get(dependent_uid)
        if dependent is None:
            return
        obj = await self._get_same(
            dependent.resource, dependent.namespace, dependent.name, dependent_uid
        )
        if obj is None:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if any(ref.get("uid") == owner_uid for ref in refs):
            await self._patch_metadata(
                dependent.resource, obj, {"ownerReferences": _without(refs, {owner_uid}) or None}
            )

    # ------------------------------------------------------------- writes

    async def _get_same(
        self, resource: Resource, namespace: str, name: str, uid: str
    ) -> Object | None:
        """The object now, or None when it is gone or another object (uid) has its name."""
        try:
            obj = await self.client.get(resource, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return obj if obj["metadata"].get("uid") == uid else None

    async def _patch_metadata(
        self, resource: Resource, obj: Object, changes: Object | None
    ) -> Object | None:
        """Merge `changes` into obj's metadata, only if obj is unchanged since read.

        A conflict raises, so the whole sync is retried from fresh reads.
        Returns the patched object, or None when it is gone.
        """
        if changes is None:
            return obj
        meta = obj["metadata"]
        patch = {"metadata": {**changes, "resourceVersion": meta["resourceVersion"]}}
        try:
            return await self.client.patch(resource, meta.get("namespace", ""), meta["name"], patch)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def _delete(self, node: Node, uid: str, policy: str) -> None:
        log.info(
            "garbage collector: deleting %s %s/%s (%s)",
            node.resource.kind,
            node.namespace,
            node.name,
            policy,
        )
        try:
            await self.client.delete(
                node.resource, node.namespace, node.name, propagation_policy=policy, uid=uid
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):  # gone, or replaced by a namesake
                raise


def _without(refs: list[Object], uids: set[str]) -> list[Object]:
    return [ref for ref in refs if ref.get("uid") not in uids]


def _unblocked(refs: list[Object]) -> list[Object]:
    return [
        {**ref, "blockOwnerDeletion": False} if ref.get("blockOwnerDeletion") else ref
        for ref in refs
    ]


def _removing_finalizer(obj: Object, finalizer: str) -> Object | None:
    finalizers = obj["metadata"].get("finalizers") or []
    if finalizer not in finalizers:
        return None
    return {"finalizers": [f for f in finalizers if f != finalizer]}
