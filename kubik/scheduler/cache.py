"""The scheduler's cache: nodes and the pods on them, including pods it has only assumed.

Once a node is chosen the pod is *assumed* on it at once, so the next pod is
scheduled against the new usage without waiting for the binding to reach
the API and come back through the watch. When the informer later shows the
pod bound, the assumption is confirmed; when binding fails it is forgotten.
An assumed pod whose binding finished but is never observed expires after
`ttl` seconds, so a lost event cannot hold a node's resources forever.

The cycle runs without awaiting, so plugins read this cache directly: no
snapshot is copied per pod. Nodes are listed zone by zone in turn (upstream's
node tree), so that a cycle that stops after enough feasible nodes still
looks across zones.

Plugins that look at other pods (inter-pod affinity, topology spread) read
indexes kept as pods come and go, instead of walking every node: the pods
of a namespace, the same pods grouped by their labels (the replicas of a
workload share theirs, so a selector is matched once per group and not once
per pod), the pods with pod (anti-)affinity terms, and how many nodes carry
each value of a label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kubik.scheduler.nodeinfo import NodeInfo, PodInfo

log = logging.getLogger(__name__)

Object = dict[str, Any]

DEFAULT_ASSUMED_TTL = 900.0

Placed = tuple[PodInfo, NodeInfo]  # a pod and the node it is on (whose Node may be unknown)
GroupKey = tuple[frozenset[tuple[str, str]], bool]  # a pod's labels, and whether it terminates


class LabelGroup:
    """The pods of a namespace with the same labels and the same terminating state: how
    many of them each node holds."""

    __slots__ = ("key", "labels", "terminating", "nodes")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.labels = dict(key[0])
        self.terminating = key[1]
        self.nodes: dict[NodeInfo, int] = {}


def _group_key(pod: Object) -> GroupKey:
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return frozenset(labels.items()), bool(metadata.get("deletionTimestamp"))


@dataclass(slots=True)
class _PodState:
    info: PodInfo
    node: str
    assumed: bool = False
    deadline: float | None = None  # set when the binding finished, for an assumed pod


class Cache:
    def __init__(
        self, *, ttl: float = DEFAULT_ASSUMED_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}
        self._images: dict[str, set[str]] = {}  # image name → nodes reporting it
        self._tainted: set[str] = set()  # nodes with NoSchedule or NoExecute taints
        self._soft_tainted: set[str] = set()  # nodes with PreferNoSchedule taints
        self._cordoned: set[str] = set()  # unschedulable nodes
        self._ordered: list[NodeInfo] | None = None
        # pods placed on nodes, with their NodeInfo: by namespace, and those with pod affinity
        self._by_namespace: dict[str, dict[str, Placed]] = {}
        self._groups: dict[str, dict[GroupKey, LabelGroup]] = {}  # by namespace
        self._group_of: dict[str, LabelGroup] = {}  # pod key → its group
        self._with_affinity: dict[str, Placed] = {}
        self._with_required_anti_affinity: dict[str, Placed] = {}
        self._label_values: dict[str, dict[str, int]] = {}  # label → value → nodes with it

    # -------------------------------------------------------------- reads

    def node_infos(self) -> list[NodeInfo]:
        """Every node (with a Node object), zone by zone in turn."""
        if self._ordered is None:
            self._ordered = _interleave_zones([n for n in self._nodes.values() if n.node])
        return self._ordered

    def get(self, name: str) -> NodeInfo | None:
        info = self._nodes.get(name)
        return info if info is not None and info.node is not None else None

    def num_nodes(self) -> int:
        return len(self.node_infos())

    def any_tainted(self) -> bool:
        """Whether some node has a NoSchedule or NoExecute taint."""
        return bool(self._tainted)

    def any_soft_tainted(self) -> bool:
        """Whether some node has a PreferNoSchedule taint."""
        return bool(self._soft_tainted)

    def any_cordoned(self) -> bool:
        """Whether some node is unschedulable."""
        return bool(self._cordoned)

    def image_spread(self, image: str) -> int:
        """On how many nodes an image is present."""
        return len(self._images.get(image, ()))

    def pods_in(self, namespace: str) -> Iterable[Placed]:
        """The pods (bound or assumed) of a namespace, each with the NodeInfo it is on."""
        return self._by_namespace.get(namespace, {}).values()

    def label_groups(self, namespace: str) -> Iterable[LabelGroup]:
        """The pods of a namespace (bound or assumed), by labels: count per node."""
        return self._groups.get(namespace, {}).values()

    def all_pods(self) -> Iterator[Placed]:
        for pods in self._by_namespace.values():
            yield from pods.values()

    def pods_with_affinity(self) -> Iterable[Placed]:
        """Pods with pod affinity or anti-affinity terms (required or preferred)."""
        return self._with_affinity.values()

    def pods_with_required_anti_affinity(self) -> Iterable[Placed]:
        return self._with_required_anti_affinity.values()

    def label_values(self, label: str) -> dict[str, int]:
        """Each value of a node label, with how many nodes have it (do not modify)."""
        return self._label_values.get(label, {})

    def is_assumed(self, key: str) -> bool:
        state = self._pods.get(key)
        return state is not None and state.assumed

    # -------------------------------------------------------------- nodes

    def add_node(self, node: Object) -> None:
        name = node["metadata"]["name"]
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name)
        self._set_node(info, node)
        self._ordered = None

    def update_node(self, node: Object) -> None:
        info = self._nodes.get(node["metadata"]["name"])
        if info is None or info.node is None:
            self.add_node(node)
            return
        zone = info.zone
        self._set_node(info, node)
        if info.zone != zone:
            self._ordered = None

    def remove_node(self, node: Object) -> None:
        """Forget the node; its pods stay accounted until they are deleted themselves."""
        name = node["metadata"]["name"]
        info = self._nodes.get(name)
        if info is None:
            return
        self._forget_images(info)
        if info.node is not None:
            self._count_labels(info.labels, -1)
        info.set_node(None)
        for names in (self._tainted, self._soft_tainted, self._cordoned):
            names.discard(name)
        if not info.pods:
            del self._nodes[name]
        self._ordered = None

    def _set_node(self, info: NodeInfo, node: Object) -> None:
        self._forget_images(info)
        old_labels = info.labels if info.node is not None else None
        info.set_node(node)
        if old_labels != info.labels:
            if old_labels is not None:
                self._count_labels(old_labels, -1)
            self._count_labels(info.labels, 1)
        for image in info.images:
            self._images.setdefault(image, set()).add(info.name)
        for names, member in (
            (self._tainted, info.no_schedule_taints),
            (self._soft_tainted, info.prefer_no_schedule_taints),
            (self._cordoned, info.unschedulable),
        ):
            if member:
                names.add(info.name)
            else:
                names.discard(info.name)

    def _count_labels(self, labels: dict[str, str], sign: int) -> None:
        for label, value in labels.items():
            values = self._label_values.setdefault(label, {})
            count = values.get(value, 0) + sign
            if count > 0:
                values[value] = count
            else:
                values.pop(value, None)
                if not values:
                    del self._label_values[label]

    def _forget_images(self, info: NodeInfo) -> None:
        for image in info.images:
            nodes = self._images.get(image)
            if nodes is not None:
                nodes.discard(info.name)
                if not nodes:
                    del self._images[image]

    # --------------------------------------------------------------- pods

    def assume_pod(self, info: PodInfo, node: str) -> None:
        """Account the pod on `node` before its binding is observed."""
        if info.key in self._pods:
            raise ValueError(f"pod {info.key} is already in the cache")
        self._place(info, node)
        self._pods[info.key] = _PodState(info, node, assumed=True)

    def finish_binding(self, key: str) -> None:
        """The binding call returned: start the assumed pod's expiry clock."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            state.deadline = self._clock() + self._ttl

    def forget_pod(self, key: str) -> None:
        """Undo an assumption (the binding failed)."""
        state = self._pods.get(key)
        if state is not None and state.assumed:
            self._unplace(key, state.node)
            del self._pods[key]

    def add_pod(self, pod: Object) -> None:
        """A bound pod seen by the informer; confirms an assumption of the same pod."""
        metadata = pod["metadata"]
        key = f"{metadata.get('namespace', '')}/{metadata['name']}"
        node = pod["spec"]["nodeName"]
        state = self._pods.get(key)
        if state is not None and state.assumed and state.info.uid == metadata.get("uid"):
            info = state.info.with_pod(pod)  # requests cannot have changed since it was assumed
        else:
            info = PodInfo(pod)
        if state is not None:
            # an assumed pod bound elsewhere (or seen again on a relist) moves with its new version
            self._unplace(key, state.node)
        self._place(info, node)
        self._pods[key] = _PodState(info, node)

    def update_pod(self, pod: Object) -> None:
        self.add_pod(pod)

    def remove_pod(self, pod: Object) -> None:
        key = f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        state = self._pods.pop(key, None)
        if state is not None:
            self._unplace(key, state.node)

    def expire_assumed(self) -> list[str]:
        """Drop assumed pods whose binding finished longer than `ttl` ago; their keys."""
        now = self._clock()
        expired = [
            key
            for key, state in self._pods.items()
            if state.assumed and state.deadline is not None and state.deadline < now
        ]
        for key in expired:
            log.warning("assumed pod %s expired: its binding was never observed", key)
            self._unplace(key, self._pods.pop(key).node)
        return expired

    def _place(self, info: PodInfo, node: str) -> None:
        node_info = self._nodes.get(node)
        if node_info is None:
            node_info = self._nodes[node] = NodeInfo(node)  # the Node object may come later
        node_info.add_pod(info)
        placed = (info, node_info)
        namespace = info.pod["metadata"].get("namespace", "")
        self._by_namespace.setdefault(namespace, {})[info.key] = placed
        groups = self._groups.setdefault(namespace, {})
        group_key = _group_key(info.pod)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = LabelGroup(group_key)
        group.nodes[node_info] = group.nodes.get(node_info, 0) + 1
        self._group_of[info.key] = group
        affinity = (info.pod.get("spec") or {}).get("affinity") or {}
        if affinity.get("podAffinity") or affinity.get("podAntiAffinity"):
            self._with_affinity[info.key] = placed
            if (affinity.get("podAntiAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            ):
                self._with_required_anti_affinity[info.key] = placed

    def _unplace(self, key: str, node: str) -> None:
        namespace = key.partition("/")[0]
        pods = self._by_namespace.get(namespace)
        placed = pods.pop(key, None) if pods is not None else None
        if placed is not None:
            if not pods:
                del self._by_namespace[namespace]
            self._ungroup(namespace, key, placed[1])
        self._with_affinity.pop(key, None)
        self._with_required_anti_affinity.pop(key, None)
        node_info = self._nodes.get(node)
        if node_info is None:
            return
        node_info.remove_pod(key)
        if node_info.node is None and not node_info.pods:
            del self._nodes[node]

    def _ungroup(self, namespace: str, key: str, node_info: NodeInfo) -> None:
        group = self._group_of.pop(key)
        count = group.nodes[node_info] - 1
        if count:
            group.nodes[node_info] = count
            return
        del group.nodes[node_info]
        if not group.nodes:
            groups = self._groups[namespace]
            del groups[group.key]
            if not groups:
                del self._groups[namespace]


def _interleave_zones(nodes: list[NodeInfo]) -> list[NodeInfo]:
    """Nodes taken from each zone in turn: zone order and order within a zone are kept."""
    zones: dict[str, list[NodeInfo]] = {}
    for node in nodes:
        zones.setdefault(node.zone, []).append(node)
    if len(zones) <= 1:
        return nodes
    ordered: list[NodeInfo] = []
    columns = list(zones.values())
    for i in range(max(len(c) for c in columns)):
        ordered.extend(column[i] for column in columns if i < len(column))
    return ordered
