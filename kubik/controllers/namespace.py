"""The namespace controller: a namespace being deleted is emptied, then finalized.

(upstream: pkg/controller/namespace)

Deleting a namespace only marks it Terminating; it keeps the `kubernetes`
entry of spec.finalizers until this controller has deleted every object in
it, of every namespaced resource discovery lists (custom resources too), in
the background. While content remains (pods finishing their grace period,
objects held by finalizers) the namespace's status conditions say what is
left and why, as upstream's do, and it is looked at again later. Once empty,
`kubernetes` is removed through the `finalize` subresource and the API
server deletes the namespace.

Upstream waits 5 s after a namespace event so that every API server of an HA
control plane has seen the deletion (and refuses new content) before the
namespace is emptied; kubik's API servers see it within milliseconds through
their watch caches, so the wait here is 1 s.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubik.api import builtin, meta
from kubik.api.registry import Resource
from kubik.client.api import ApiError, path_of
from kubik.client.discovery import served_resources
from kubik.client.informer import key_of
from kubik.controllers.base import Controller, register

log = logging.getLogger(__name__)

Object = dict[str, Any]

NAMESPACES = builtin.lookup("", "v1", "namespaces")
PODS = builtin.lookup("", "v1", "pods")
TOKEN = "kubernetes"
FINALIZER_ESTIMATE = 15  # seconds granted to content that finalizers hold
BACKGROUND = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}

# the conditions this controller keeps: type → (reason, message) when all is well
HEALTHY = {
    "NamespaceDeletionDiscoveryFailure": (
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    "NamespaceDeletionGVParsingFailure": (
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    "NamespaceDeletionContentFailure": (
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": (
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
}


class ContentRemains(Exception):
    """Some content could not be deleted (or discovered); the namespace is tried again later."""


@dataclass
class Leftover:
    """What deleting the objects of one resource in a namespace left behind."""

    estimate: int = 0  # seconds until it should be gone; 0: nothing to wait for
    remaining: int = 0
    finalizers: Counter = field(default_factory=Counter)
    error: str = ""


@register
class NamespaceController(Controller):
    name = "namespace"
    workers = 10  # upstream's --concurrent-namespace-syncs
    delay = 1.0  # seconds between a namespace event and acting on it

    def setup(self) -> None:
        namespaces = self.informers.informer(NAMESPACES)
        namespaces.add_handlers(
            on_add=self._changed, on_update=lambda _old, new: self._changed(new)
        )

    def _changed(self, namespace: Object) -> None:
        if namespace["metadata"].get("deletionTimestamp"):
            self.queue.add_after(key_of(namespace), self.delay)

    async def sync(self, key: str) -> None:
        try:
            namespace = await self.client.get(NAMESPACES, "", key)
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        if not namespace["metadata"].get("deletionTimestamp"):
            return
        if (namespace.get("status") or {}).get("phase") != "Terminating":
            namespace.setdefault("status", {})["phase"] = "Terminating"
            namespace = await self.client.update_status(NAMESPACES, namespace)
        if not (namespace.get("spec") or {}).get("finalizers"):
            return
        estimate = await self._delete_content(namespace)
        if estimate > 0:
            self.queue.add_after(key, estimate // 2 + 1)
            return
        await self._finalize(namespace)

    async def _finalize(self, namespace: Object) -> None:
        """Drop our token from spec.finalizers: with none left, the API server deletes it."""
        finalizers = namespace["spec"]["finalizers"]
        namespace["spec"]["finalizers"] = sorted({f for f in finalizers if f != TOKEN})
        try:
            await self.client.update(NAMESPACES, namespace, subresource="finalize")
        except ApiError as exc:
            if not exc.not_found:
                raise

    # ------------------------------------------------------------- content

    async def _delete_content(self, namespace: Object) -> int:
        """Delete everything in the namespace; seconds to wait for what remains.

        Records what is left in the status conditions; raises ContentRemains
        when some resource could not be discovered or emptied.
        """
        name = namespace["metadata"]["name"]
        deleted_at = datetime.datetime.fromisoformat(namespace["metadata"]["deletionTimestamp"])
        resources, failed = await served_resources(self.client)
        deletable = [r for r in resources if r.namespaced and "delete" in r.verbs]
        leftovers = await asyncio.gather(*(self._empty(r, name, deleted_at) for r in deletable))

        failing: dict[str, tuple[str, str]] = {}
        if failed:
            detail = ", ".join(f"{gv}: {why}" for gv, why in sorted(failed.items()))
            failing["NamespaceDeletionDiscoveryFailure"] = (
                "DiscoveryFailed",
                f"Discovery failed for some groups, {len(failed)} failing: unable to retrieve "
                f"the complete list of server APIs: {detail}",
            )
        errors = sorted(leftover.error for leftover in leftovers if leftover.error)
        if errors:
            failing["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(errors)} remaining: "
                + ", ".join(errors),
            )
        remaining = sorted(
            f"{r.plural}.{r.group} has {leftover.remaining} resource instances"
            for r, leftover in zip(deletable, leftovers, strict=True)
            if leftover.remaining
        )
        if remaining:
            failing["NamespaceContentRemaining"] = (
                "SomeResourcesRemain",
                "Some resources are remaining: " + ", ".join(remaining),
            )
        finalizers = sum((leftover.finalizers for leftover in leftovers), Counter())
        if finalizers:
            failing["NamespaceFinalizersRemaining"] = (
                "SomeFinalizersRemain",
                "Some content in the namespace has finalizers remaining: "
                + ", ".join(
                    sorted(f"{f} in {n} resource instances" for f, n in finalizers.items())
                ),
            )
        await self._record_conditions(namespace, failing)
        if failed or errors:
            raise ContentRemains(f"namespace {name}: " + "; ".join([*failed, *errors]))
        return max((leftover.estimate for leftover in leftovers), default=0)

    async def _empty(
        self, resource: Resource, namespace: str, deleted_at: datetime.datetime
    ) -> Leftover:
        """Delete every object of one resource in the namespace, and say what is left."""
        try:
            estimate = await self._grace_estimate(resource, namespace, deleted_at)
            if not await self._delete_collection(resource, namespace):
                await self._delete_each(resource, namespace)
            items = await self._list(resource, namespace)
        except ApiError as exc:
            return Leftover(error=exc.status.get("message") or str(exc))
        if items is None:
            return Leftover(estimate)
        if not items:
            return Leftover()
        finalizers = Counter(f for item in items for f in item["metadata"].get("finalizers") or [])
        if estimate:
            return Leftover(estimate, len(items), finalizers)
        if finalizers:
            return Leftover(FINALIZER_ESTIMATE, len(items), finalizers)
        return Leftover(
            0,
            len(items),
            error=f"unexpected items still remain in namespace: {namespace} for gvr: "
            f"{{{resource.group} {resource.version} {resource.plural}}}",
        )

    async def _grace_estimate(
        self, resource: Resource, namespace: str, deleted_at: datetime.datetime
    ) -> int:
        """Pods get the longest grace period of those still running, counted from the deletion."""
        if resource != PODS:
            return 0
        pods = (await self.client.list_all(PODS, namespace))["items"]
        estimate = max(
            (
                int(pod["spec"].get("terminationGracePeriodSeconds") or 0)
                for pod in pods
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ),
            default=0,
        )
        elapsed = datetime.datetime.now(datetime.UTC) - deleted_at
        return 0 if elapsed.total_seconds() >= estimate else estimate

    async def _delete_collection(self, resource: Resource, namespace: str) -> bool:
        """One DELETE for all; False when the resource has no such verb."""
        if "deletecollection" not in resource.verbs:
            return False
        try:
            await self.client.request("DELETE", path_of(resource, namespace), body=BACKGROUND)
        except ApiError as exc:
            if exc.not_found or exc.code == 405:
                return False
            raise
        return True

    async def _delete_each(self, resource: Resource, namespace: str) -> None:
        for item in await self._list(resource, namespace) or []:
            try:
                await self.client.delete(
                    resource, namespace, item["metadata"]["name"], propagation_policy="Background"
                )
            except ApiError as exc:
                if not (exc.not_found or exc.code == 405):
                    raise

    async def _list(self, resource: Resource, namespace: str) -> list[Object] | None:
        """The objects in the namespace; None when the resource cannot be listed."""
        if "list" not in resource.verbs:
            return None
        try:
            return (await self.client.list_all(resource, namespace))["items"]
        except ApiError as exc:
            if exc.not_found or exc.code == 405:
                return None
            raise

    # ---------------------------------------------------------- conditions

    async def _record_conditions(
        self, namespace: Object, failing: dict[str, tuple[str, str]]
    ) -> None:
        """Set each deletion condition: True with `failing`'s reason, else False and healthy."""
        status = namespace.setdefault("status", {})
        conditions = status.setdefault("conditions", [])
        changed = False
        for kind, healthy in HEALTHY.items():
            state = "True" if kind in failing else "False"
            reason, message = failing.get(kind, healthy)
            current = next((c for c in conditions if c.get("type") == kind), None)
            if current is None:
                conditions.append(
                    {
                        "type": kind,
                        "status": state,
                        "lastTransitionTime": meta.now(),
                        "reason": reason,
                        "message": message,
                    }
                )
                changed = True
            elif (current.get("status"), current.get("reason"), current.get("message")) != (
                state,
                reason,
                message,
            ):
                if current.get("status") != state:
                    current["lastTransitionTime"] = meta.now()
                current.update(status=state, reason=reason, message=message)
                changed = True
        if not changed:
            return
        try:
            await self.client.update_status(NAMESPACES, namespace)
        except ApiError as exc:
            log.info("namespace %s: recording conditions: %s", namespace["metadata"]["name"], exc)
