"""The node lifecycle controller and the taint eviction controller.

(upstream: pkg/controller/nodelifecycle/node_lifecycle_controller.go and
pkg/controller/tainteviction/taint_eviction.go)

Node lifecycle: a kubelet shows it is alive by renewing its Lease (in
kube-node-lease, named after the node) and by posting the node's status
(the Ready condition's lastHeartbeatTime). A node with no sign of life for
the monitor grace period gets its Ready, MemoryPressure, DiskPressure and
PIDPressure conditions set to Unknown ("Kubelet stopped posting node
status."), and the pods on it are marked not Ready. A node whose kubelet
never posted a status has the longer startup grace period, counted from its
creation. Conditions become taints: Ready False gives
`node.kubernetes.io/not-ready`, Unknown gives `node.kubernetes.io/unreachable`
(each as NoSchedule and, stamped with the time added, NoExecute); pressure
conditions and `spec.unschedulable` give their NoSchedule taints. A node
that is Ready again loses them. (Upstream rate-limits NoExecute tainting per
zone and stops it when a whole zone is down; kubik taints at once.)

Taint eviction: a pod on a node with NoExecute taints is deleted when a
taint is not tolerated, or when the shortest tolerationSeconds of the
tolerations used runs out, counted from when the controller saw it had to
go; a toleration without tolerationSeconds keeps the pod for ever. Pods
that do not tolerate `not-ready` or `unreachable` themselves are treated as
tolerating them for the default toleration seconds, as upstream's
DefaultTolerationSeconds admission would have written into them.

Settings, read from the environment when the controllers start (seconds, or
a number with a unit: 500ms, 40s, 5m, 1h):
- KUBIK_NODE_MONITOR_GRACE_PERIOD: silence before a node is Unknown (40s, upstream's
  --node-monitor-grace-period);
- KUBIK_NODE_STARTUP_GRACE_PERIOD: the same for a node that never posted its status (60s,
  --node-startup-grace-period);
- KUBIK_DEFAULT_TOLERATION_SECONDS: how long pods without their own toleration stay on a
  not-ready or unreachable node (300, --default-not-ready/unreachable-toleration-seconds).
"""

from __future__ import annotations

import copy
import datetime
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError
from kubik.client.informer import key_of, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.endpoints import RECHECK, condition, parse_time
from kubik.scheduler.plugins.tainttoleration import tolerates

log = logging.getLogger(__name__)

Object = dict[str, Any]

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")

NODE_LEASE_NAMESPACE = "kube-node-lease"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

# condition type → condition status → the NoSchedule taint it gives
CONDITION_TAINTS = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
}
_CONDITION_TAINT_KEYS = {key for taints in CONDITION_TAINTS.values() for key in taints.values()}
# the conditions the kubelet owns, set to Unknown when it falls silent
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

_BY_NODE = "spec.nodeName"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}


def duration_from_env(name: str, default: float) -> float:
    """Seconds from environment variable `name` ("40", "40s", "500ms", "5m"), else `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|)", text)
    if match is None:
        log.error("%s=%r is no duration; using %ss", name, text, default)
        return default
    return float(match.group(1)) * _UNITS[match.group(2)]


def _pods_by_node(pod: Object) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _status(node: Object | None, kind: str) -> str | None:
    found = condition(node, kind)
    return found.get("status") if found else None


# ------------------------------------------------------------------ taints


def wanted_taints(node: Object, now: str) -> list[Object]:
    """The node's taints as its conditions say they should be (other taints kept as they are).

    NoSchedule: one per condition in CONDITION_TAINTS, and `unschedulable`
    for a cordoned node. NoExecute `not-ready`/`unreachable`: by the Ready
    condition (left alone while the node has none); a kept taint keeps its
    `timeAdded`, a new one is stamped `now`.
    """
    spec = node.get("spec") or {}
    no_schedule = {
        taints[status]
        for kind, taints in CONDITION_TAINTS.items()
        if (status := _status(node, kind)) in taints
    }
    if spec.get("unschedulable"):
        no_schedule.add(UNSCHEDULABLE)
    ready = _status(node, "Ready")
    no_execute = {"False": {NOT_READY}, "Unknown": {UNREACHABLE}}.get(ready or "", set())

    result = []
    for taint in spec.get("taints") or []:
        key, effect = taint.get("key"), taint.get("effect")
        if effect == NO_SCHEDULE and (key in _CONDITION_TAINT_KEYS or key == UNSCHEDULABLE):
            if key not in no_schedule:
                continue
            no_schedule.discard(key)
        elif effect == NO_EXECUTE and key in (NOT_READY, UNREACHABLE) and ready is not None:
            if key not in no_execute:
                continue
            no_execute.discard(key)
        result.append(taint)
    result += [{"key": key, "effect": NO_SCHEDULE} for key in sorted(no_schedule)]
    result += [{"key": key, "effect": NO_EXECUTE, "timeAdded": now} for key in sorted(no_execute)]
    return result


def effective_tolerations(pod: Object, default_seconds: float) -> list[Object]:
    """The pod's tolerations, with the ones upstream's DefaultTolerationSeconds admission
    adds for not-ready and unreachable when the pod has none of its own for them."""
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    for key in (NOT_READY, UNREACHABLE):
        own = any(
            t.get("key") in (key, None, "") and t.get("effect") in (NO_EXECUTE, None, "")
            for t in tolerations
        )
        if not own:
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": NO_EXECUTE,
                    "tolerationSeconds": default_seconds,
                }
            )
    return tolerations


def eviction_delay(pod: Object, taints: list[Object], default_seconds: float) -> float | None:
    """Seconds the pod may stay with these NoExecute taints: 0 for a taint it does not
    tolerate, else the shortest tolerationSeconds of the tolerations used; None for ever."""
    if not taints:
        return None
    tolerations = effective_tolerations(pod, default_seconds)
    limits = []
    for taint in taints:
        used = next((t for t in tolerations if tolerates(t, taint)), None)
        if used is None:
            return 0
        if used.get("tolerationSeconds") is not None:
            limits.append(used["tolerationSeconds"])
    return max(0, min(limits)) if limits else None


def no_execute_taints(node: Object | None) -> list[Object]:
    taints = ((node or {}).get("spec") or {}).get("taints") or []
    return [t for t in taints if t.get("effect") == NO_EXECUTE]


# ------------------------------------------------------------------ node lifecycle


@dataclass
class _Health:
    """What the controller last saw of a node's signs of life."""

    probe: float  # wall time of the last sign of life
    heartbeat: str | None  # the Ready condition's lastHeartbeatTime
    renewed: datetime.datetime | None = None  # the lease's renewTime


@register
class NodeLifecycleController(Controller):
    """Keys are node names, and "namespace/name" of pods newly placed on a node."""

    name = "nodelifecycle"

    def setup(self) -> None:
        self.grace = duration_from_env("KUBIK_NODE_MONITOR_GRACE_PERIOD", 40.0)
        self.startup_grace = duration_from_env("KUBIK_NODE_STARTUP_GRACE_PERIOD", 60.0)
        self.nodes = self.informers.informer(NODES)
        self.leases = self.informers.informer(LEASES)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(_BY_NODE, _pods_by_node)
        self._health: dict[str, _Health] = {}
        self._mark_again: set[str] = set()  # nodes whose pods could not all be marked
        self.nodes.add_handlers(**self.enqueue_handlers())
        self.leases.add_handlers(**self.enqueue_handlers(self._node_of_lease))
        self.pods.add_handlers(
            on_add=self._pod_placed, on_update=lambda old, new: self._pod_placed(new, old)
        )

    @staticmethod
    def _node_of_lease(lease: Object) -> str | None:
        metadata = lease["metadata"]
        return metadata["name"] if metadata.get("namespace") == NODE_LEASE_NAMESPACE else None

    def _pod_placed(self, pod: Object, old: Object | None = None) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node != ((old or {}).get("spec") or {}).get("nodeName"):
            self.queue.add(key_of(pod))

    async def sync(self, key: str) -> None:
        if "/" in key:
            await self._sync_pod(key)
        else:
            await self._sync_node(key)

    async def _sync_node(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            self._health.pop(name, None)
            self._mark_again.discard(name)
            return
        health = self._observe(node)
        grace = self.grace if condition(node, "Ready") else self.startup_grace
        left = health.probe + grace - time.time()
        if left >= 0:
            self.queue.add_after(name, left + 0.001)
        elif await self._mark_unknown(node):
            return  # the status written comes back as an update, and is synced then
        if name in self._mark_again and _status(node, "Ready") != "True":
            await self._mark_pods_not_ready(name, self.pods.by_index(_BY_NODE, name))
        self._mark_again.discard(name)
        taints = wanted_taints(node, meta.now())
        if taints != ((node.get("spec") or {}).get("taints") or []):
            patch = {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"taints": taints or None},
            }
            try:
                await self.client.patch(NODES, "", name, patch)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                self.queue.add_after(name, RECHECK)  # the node changed meanwhile: look again

    def _observe(self, node: Object) -> _Health:
        """Note any new sign of life: a new heartbeat in the status, or a renewed lease."""
        name = node["metadata"]["name"]
        now = time.time()
        ready = condition(node, "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready else None
        health = self._health.get(name)
        if health is None:
            # a node that never posted a status is counted from its creation
            created = parse_time(node["metadata"].get("creationTimestamp"))
            probe = now if ready or created is None else created.timestamp()
            health = self._health[name] = _Health(probe=probe, heartbeat=heartbeat)
            self.recorder.record(
                node, "Normal", "RegisteredNode", f"Registered Node {name} in Controller"
            )
        elif heartbeat != health.heartbeat:
            health.probe, health.heartbeat = now, heartbeat
        lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        renewed = parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
        if renewed is not None and (health.renewed is None or renewed > health.renewed):
            health.probe, health.renewed = now, renewed
        return health

    async def _mark_unknown(self, node: Object) -> bool:
        """Set the kubelet's conditions to Unknown. False when Ready was Unknown already
        (nothing written), True when written or to be looked at again."""
        name = node["metadata"]["name"]
        was = _status(node, "Ready")
        if was == "Unknown":
            return False
        node = copy.deepcopy(node)
        conditions = node.setdefault("status", {}).setdefault("conditions", [])
        now = meta.now()
        for kind in KUBELET_CONDITIONS:
            found = condition(node, kind)
            if found is None:
                conditions.append(
                    {
                        "type": kind,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                        "lastTransitionTime": now,
                    }
                )
            elif found.get("status") != "Unknown":
                found.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=now,
                )
        try:
            await self.client.update_status(NODES, node)
        except ApiError as exc:
            if not exc.conflict:
                raise
            self.queue.add_after(name, RECHECK)  # it changed meanwhile (a late heartbeat?)
            return True
        log.info("node %s stopped posting its status: marked Unknown", name)
        if was == "True":
            self.recorder.record(
                node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
            )
            await self._mark_pods_not_ready(name, self.pods.by_index(_BY_NODE, name))
        return True

    async def _sync_pod(self, key: str) -> None:
        """A pod newly placed on a node that is not Ready is not Ready either."""
        pod = self.pods.get(key)
        node_name = ((pod or {}).get("spec") or {}).get("nodeName")
        if not node_name or node_name not in self._health:
            return
        ready = _status(self.nodes.get(node_name), "Ready")
        if ready is not None and ready != "True":
            await self._mark_pods_not_ready(node_name, [pod])

    async def _mark_pods_not_ready(self, node_name: str, pods: list[Object]) -> None:
        """Set the Ready condition of these pods to False (upstream's MarkPodsNotReady)."""
        failed = []
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            ready = condition(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            patch = {
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "False", "lastTransitionTime": meta.now()}
                    ]
                }
            }
            namespace, name = split_key(key_of(pod))
            try:
                await self.client.patch(
                    PODS, namespace, name, patch, patch_type="strategic", subresource="status"
                )
            except ApiError as exc:
                if not exc.not_found:
                    failed.append(f"{namespace}/{name}: {exc}")
                continue
            self.recorder.record(pod, "Warning", "NodeNotReady", "Node is not ready")
        if failed:
            self._mark_again.add(node_name)
            raise RuntimeError(f"pods on {node_name} not marked not ready: {'; '.join(failed)}")


# ------------------------------------------------------------------ taint eviction


@register
class TaintEvictionController(Controller):
    """Keys are pods; a pod whose toleration runs out later is queued again for then."""

    name = "taint-eviction-controller"

    def setup(self) -> None:
        self.default_toleration = duration_from_env("KUBIK_DEFAULT_TOLERATION_SECONDS", 300.0)
        self.nodes = self.informers.informer(NODES)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(_BY_NODE, _pods_by_node)
        # when each pod was first seen to have to leave its node
        self._since: dict[str, float] = {}
        self.pods.add_handlers(**self.enqueue_handlers())
        self.nodes.add_handlers(
            on_add=lambda node: self._taints_changed(None, node),
            on_update=self._taints_changed,
            on_delete=lambda node: self._taints_changed(node, None),
        )

    def _taints_changed(self, old: Object | None, new: Object | None) -> None:
        if no_execute_taints(old) == no_execute_taints(new):
            return
        name = (new or old or {}).get("metadata", {}).get("name", "")
        for pod in self.pods.by_index(_BY_NODE, name):
            self.enqueue(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        node_name = ((pod or {}).get("spec") or {}).get("nodeName")
        if pod is None or not node_name or pod["metadata"].get("deletionTimestamp"):
            self._since.pop(key, None)
            return
        taints = no_execute_taints(self.nodes.get(node_name))
        delay = eviction_delay(pod, taints, self.default_toleration)
        if delay is None:
            if self._since.pop(key, None) is not None:
                self.recorder.record(
                    pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}"
                )
            return
        since = self._since.setdefault(key, time.time())
        left = since + delay - time.time()
        if left > 0:
            self.queue.add_after(key, left + 0.001)
            return
        await self._evict(key, pod)

    async def _evict(self, key: str, pod: Object) -> None:
        """Mark the pod as disrupted by the taint manager, then delete it."""
        namespace, name = split_key(key)
        self.recorder.record(
            pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}"
        )
        try:
            if _status(pod, "DisruptionTarget") != "True":
                disruption = {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                    "lastTransitionTime": meta.now(),
                }
                await self.client.patch(
                    PODS,
                    namespace,
                    name,
                    {"status": {"conditions": [disruption]}},
                    patch_type="strategic",
                    subresource="status",
                )
            await self.client.delete(PODS, namespace, name, uid=pod["metadata"].get("uid", ""))
        except ApiError as exc:
            if not exc.not_found:
                raise
        self._since.pop(key, None)
