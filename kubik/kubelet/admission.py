"""Whether this node takes a pod bound to it: upstream's kubelet admission (GeneralPredicates).

The scheduler already checked the pod against the node, but a pod can be
bound without it (spec.nodeName set by its creator), or the node may have
changed since. So before its first start a new pod is checked as upstream's
predicate admit handler does: the node's allocatable against the requests of
the pods it already runs (pods first, then CPU, memory, ephemeral storage and
the extended resources the node has), the pod's node selector and required
node affinity, its host ports, and the node's NoExecute taints. The first
failure rejects the pod for good: phase Failed, the reason (OutOfcpu,
OutOfmemory, OutOfpods, NodeAffinity, NodePorts, TaintToleration...) and
"Pod was rejected: " with upstream's message. The accounting reuses the
scheduler's NodeInfo, as upstream's kubelet reuses the scheduler's.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubik.scheduler.nodeinfo import CPU, EPHEMERAL_STORAGE, MEMORY, PODS, NodeInfo, PodInfo
from kubik.scheduler.plugins import nodeaffinity, nodeports, tainttoleration

Object = dict[str, Any]

REJECTED_PREFIX = "Pod was rejected: "
TAINTS_NOT_TOLERATED = "node(s) had taints that the pod didn't tolerate"


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str


def _insufficient(name: str, requested: int, used: int, capacity: int) -> Rejection:
    message = (
        f"Node didn't have enough resource: {name}, requested: {requested}, "
        f"used: {used}, capacity: {capacity}"
    )
    return Rejection(f"OutOf{name}", message)


def _predicate(name: str, description: str) -> Rejection:
    return Rejection(name, f"Predicate {name} failed: {description}")


def admit(pod: Object, node: Object, others: Iterable[Object]) -> Rejection | None:
    """None when `node`, already running `others`, can take `pod`; else the first reason why
    not. A node that has not reported its allocatable yet takes everything."""
    if not (node.get("status") or {}).get("allocatable"):
        return None
    info = NodeInfo(node["metadata"]["name"])
    info.set_node(node)
    for other in others:
        info.add_pod(PodInfo(other))
    candidate = PodInfo(pod)
    return _resources(candidate, info) or _placement(candidate, info)


def _resources(pod: PodInfo, node: NodeInfo) -> Rejection | None:
    allocatable, used = node.allocatable, node.requested
    if len(node.pods) + 1 > allocatable.allowed_pods:
        return _insufficient(PODS, 1, len(node.pods), allocatable.allowed_pods)
    requests = pod.requests
    for name in (CPU, MEMORY, EPHEMERAL_STORAGE):
        wanted = requests.get(name)
        if wanted > 0 and wanted > allocatable.get(name) - used.get(name):
            return _insufficient(name, wanted, used.get(name), allocatable.get(name))
    for name, wanted in sorted(requests.scalar.items()):
        if name not in allocatable.scalar:  # a cluster-level resource the node knows nothing of
            continue
        if wanted > allocatable.scalar[name] - used.scalar.get(name, 0):
            return _insufficient(name, wanted, used.scalar.get(name, 0), allocatable.scalar[name])
    return None


def _placement(pod: PodInfo, node: NodeInfo) -> Rejection | None:
    if not nodeaffinity.RequiredNodeAffinity(pod.pod).matches(node):
        return _predicate("NodeAffinity", nodeaffinity.REASON_POD)
    if any(node.port_conflict(port) for port in pod.host_ports):
        return _predicate("NodePorts", nodeports.REASON)
    no_execute = [t for t in node.taints if t.get("effect") == "NoExecute"]
    tolerations = (pod.pod.get("spec") or {}).get("tolerations") or []
    if tainttoleration.untolerated(no_execute, tolerations) is not None:
        return _predicate("TaintToleration", TAINTS_NOT_TOLERATED)
    return None


def was_rejected(pod: Object) -> bool:
    """Whether a node turned the pod away already (seen again after a kubelet restart)."""
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and str(status.get("message", "")).startswith(
        REJECTED_PREFIX
    )


def rejected_status(pod: Object, rejection: Rejection) -> Object:
    """The status of a rejected pod: Failed with the reason; its other fields kept."""
    old = pod.get("status") or {}
    started = old.get("startTime") or datetime.datetime.now(datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return {
        **old,
        "phase": "Failed",
        "reason": rejection.reason,
        "message": REJECTED_PREFIX + rejection.message,
        "startTime": started,
    }
