"""The pod garbage collector: pods nothing else will ever delete are force-deleted.

(upstream: pkg/controller/podgc)

Every 20 s it deletes, with no grace period:

- terminated pods (Succeeded or Failed) beyond the threshold, evicted ones
  first, then the oldest;
- pods bound to a node that does not exist: once the node has been missing
  from the cache for 40 s (a quarantine for a node informer that lags) and a
  GET confirms it is gone — running pods there are first marked Failed with a
  DisruptionTarget condition, as no kubelet will ever do it;
- terminating pods on a node that is not Ready and carries the
  `node.kubernetes.io/out-of-service` taint;
- terminating pods that were never scheduled.

The threshold is upstream's --terminated-pod-gc-threshold (default 12500;
0 turns that part off). `kubik server` and `kubik controller-manager` read it
from the environment variable KUBIK_TERMINATED_POD_GC_THRESHOLD at start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError
from kubik.controllers.base import Context, Controller, register

log = logging.getLogger(__name__)

Object = dict[str, Any]

PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")
THRESHOLD_VARIABLE = "KUBIK_TERMINATED_POD_GC_THRESHOLD"
DEFAULT_THRESHOLD = 12500
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
NODE_GONE = {
    "type": "DisruptionTarget",
    "status": "True",
    "reason": "DeletionByPodGC",
    "message": "PodGC: node no longer exists",
}
_PASS = "pods"  # the only key: one pass over every pod


def threshold_from_environment() -> int:
    text = os.environ.get(THRESHOLD_VARIABLE, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        return max(0, int(text))
    except ValueError:
        log.warning("%s=%r is not a number; using %d", THRESHOLD_VARIABLE, text, DEFAULT_THRESHOLD)
        return DEFAULT_THRESHOLD


@register
class PodGCController(Controller):
    name = "podgc"
    workers = 1
    period = 20.0  # seconds between passes
    quarantine = 40.0  # seconds a node must be missing before its pods go

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.threshold = threshold_from_environment()
        self._missing_since: dict[str, float] = {}  # node name → when first seen missing

    def setup(self) -> None:
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.queue.add(_PASS)

    async def sync(self, key: str) -> None:
        self.queue.add_after(key, self.period)
        await self.collect()

    async def collect(self) -> None:
        """One pass over every pod in the cache."""
        pods = self.pods.list()
        if self.threshold > 0:
            await self._force_delete(self._beyond_threshold(pods))
        await self._force_delete(self._terminating_out_of_service(pods))
        await self._force_delete(await self._orphaned(pods), NODE_GONE)
        await self._force_delete(
            [p for p in pods if _terminating(p) and not p["spec"].get("nodeName")]
        )

    def _beyond_threshold(self, pods: list[Object]) -> list[Object]:
        terminated = [p for p in pods if _phase(p) in ("Succeeded", "Failed")]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return []
        terminated.sort(
            key=lambda p: (
                not _evicted(p),
                p["metadata"].get("creationTimestamp", ""),
                p["metadata"]["name"],
            )
        )
        return terminated[:excess]

    def _terminating_out_of_service(self, pods: list[Object]) -> list[Object]:
        chosen = []
        for pod in pods:
            node = self.nodes.get(pod["spec"].get("nodeName") or "")
            if _terminating(pod) and node is not None and _out_of_service(node):
                chosen.append(pod)
        return chosen

    async def _orphaned(self, pods: list[Object]) -> list[Object]:
        """Pods on nodes missing for the whole quarantine, and confirmed gone by a GET."""
        existing = set(self.nodes.keys())
        now = time.monotonic()
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node and node not in existing:
                self._missing_since.setdefault(node, now)
        gone = set()
        for node, since in list(self._missing_since.items()):
            if node in existing:
                del self._missing_since[node]
            elif now - since >= self.quarantine:
                del self._missing_since[node]  # still missing: quarantined again next pass
                if not await self._node_exists(node):
                    gone.add(node)
        return [p for p in pods if p["spec"].get("nodeName") in gone]

    async def _node_exists(self, name: str) -> bool:
        try:
            await self.client.get(NODES, "", name)
        except ApiError as exc:
            if exc.not_found:
                return False
            log.warning("podgc: reading node %s: %s", name, exc)
            return True  # unknown: keep its pods, ask again later
        return True

    async def _force_delete(self, pods: list[Object], condition: Object | None = None) -> None:
        results = await asyncio.gather(
            *(self._fail_and_delete(pod, condition) for pod in pods), return_exceptions=True
        )
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, ApiError):
                log.warning("podgc: deleting pod %s: %s", _name(pod), result)
            elif isinstance(result, BaseException):
                raise result

    async def _fail_and_delete(self, pod: Object, condition: Object | None) -> None:
        """Mark the pod Failed (no kubelet will) unless it ended, then delete it at once."""
        metadata = pod["metadata"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata["uid"]
        log.info("podgc: force deleting pod %s", _name(pod))
        if _phase(pod) not in ("Succeeded", "Failed"):
            status: Object = {"phase": "Failed"}
            if condition is not None:
                status["conditions"] = [_with_transition_time(pod, condition)]
            try:
                await self.client.patch(
                    PODS,
                    namespace,
                    name,
                    {"metadata": {"uid": uid}, "status": status},
                    patch_type="strategic",
                    subresource="status",
                )
            except ApiError as exc:
                if exc.not_found:
                    return
                raise
        try:
            await self.client.delete(PODS, namespace, name, grace_period=0, uid=uid)
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):  # gone, or replaced by a namesake
                raise


def _phase(pod: Object) -> str:
    return (pod.get("status") or {}).get("phase", "")


def _terminating(pod: Object) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _evicted(pod: Object) -> bool:
    return _phase(pod) == "Failed" and (pod.get("status") or {}).get("reason") == "Evicted"


def _out_of_service(node: Object) -> bool:
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )
    taints = (node.get("spec") or {}).get("taints") or []
    return not ready and any(t.get("key") == OUT_OF_SERVICE for t in taints)


def _with_transition_time(pod: Object, condition: Object) -> Object:
    """The condition, keeping the pod's transition time when its status does not change."""
    current = next(
        (
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == condition["type"]
        ),
        None,
    )
    if current is not None and current.get("status") == condition["status"]:
        since = current.get("lastTransitionTime") or meta.now()
    else:
        since = meta.now()
    return {**condition, "lastTransitionTime": since}


def _name(pod: Object) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
