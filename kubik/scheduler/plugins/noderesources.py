"""NodeResourcesFit: requests against allocatable, and the resource scoring strategies.

It filters out nodes without room for the pod's requests (CPU, memory,
ephemeral storage, extended resources, and one more pod) and scores the rest
by a strategy over weighted resources (default CPU and memory, weight 1 each):

- `LeastAllocated` (default): the free share, (allocatable - requested) / allocatable;
- `MostAllocated`: the used share, requested / allocatable (bin packing);
- `RequestedToCapacityRatio`: a piecewise-linear `shape` of utilization
  (0..100) to score (0..10).

Scores count pods without CPU or memory requests as 100m / 200Mi ("non-zero"
requests). Args are upstream's `NodeResourcesFitArgs`. `ResourceAllocation`
is shared with NodeResourcesBalancedAllocation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from kubik.scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    POD_DELETE,
    Code,
    CycleState,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import (
    CPU,
    EPHEMERAL_STORAGE,
    MEMORY,
    NodeInfo,
    PodInfo,
    Resource,
    is_scalar,
)

Object = dict[str, Any]

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
REQUESTED_TO_CAPACITY_RATIO = "RequestedToCapacityRatio"
MAX_CUSTOM_PRIORITY_SCORE = 10
DEFAULT_RESOURCES = [{"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1}]

_FIT_KEY = "PreFilterNodeResourcesFit"
_FIT_SCORE_KEY = "PreScoreNodeResourcesFit"


# (allocatable of the node, requested on the node, the pod's request, weight) of one resource
Spec = tuple[Callable[[NodeInfo], int], Callable[[NodeInfo], int], int, int]
_ALLOCATABLE = {
    CPU: attrgetter("allocatable.milli_cpu"),
    MEMORY: attrgetter("allocatable.memory"),
    EPHEMERAL_STORAGE: attrgetter("allocatable.ephemeral_storage"),
}
_REQUESTED = {
    CPU: attrgetter("requested.milli_cpu"),
    MEMORY: attrgetter("requested.memory"),
    EPHEMERAL_STORAGE: attrgetter("requested.ephemeral_storage"),
}
_NON_ZERO_REQUESTED = {
    **_REQUESTED,
    CPU: attrgetter("non_zero_requested.milli_cpu"),
    MEMORY: attrgetter("non_zero_requested.memory"),
}


class Specs:
    """How to score one pod's resources on any node.

    `items` reads each resource generically; `cpu_memory` (CPU request,
    memory request, CPU weight, memory weight) is set when those two are the
    scored resources, the default, which the strategies compute directly:
    scoring runs for hundreds of nodes per pod.
    """

    __slots__ = ("items", "cpu_memory", "used")

    def __init__(
        self, items: list[Spec], cpu_memory: tuple[int, int, int, int] | None, non_zero: bool
    ) -> None:
        self.items = items
        self.cpu_memory = cpu_memory
        # the node's requests the pod's add to: non-zero ones (CPU and memory) or actual ones
        self.used = attrgetter("non_zero_requested" if non_zero else "requested")

    def any_request(self) -> bool:
        return any(request for _, _, request, _ in self.items)


class ResourceAllocation:
    """What each scored resource would have allocated on a node, with the pod there.

    Resources a node cannot have (not CPU, memory, ephemeral storage or
    extended) are left out, and so are extended resources the pod does not
    request: a node is not favoured for having one.
    """

    def __init__(self, resources: list[Object], *, use_requested: bool) -> None:
        self.resources = [(r["name"], r.get("weight") or 1) for r in resources]
        self._use_requested = use_requested
        weights = dict(self.resources)
        self._cpu_memory_only = len(self.resources) == 2 and set(weights) == {CPU, MEMORY}

    def specs(self, info: PodInfo) -> Specs:
        requests = info.requests if self._use_requested else info.non_zero
        requested = _REQUESTED if self._use_requested else _NON_ZERO_REQUESTED
        items: list[Spec] = []
        for name, weight in self.resources:
            request = requests.get(name)
            if name in _ALLOCATABLE:
                items.append((_ALLOCATABLE[name], requested[name], request, weight))
            elif is_scalar(name) and request:
                reader = _scalar_reader(name)
                items.append((reader("allocatable"), reader("requested"), request, weight))
        cpu_memory = None
        if self._cpu_memory_only:
            weights = dict(self.resources)
            cpu_memory = (requests.milli_cpu, requests.memory, weights[CPU], weights[MEMORY])
        return Specs(items, cpu_memory, not self._use_requested)


def _scalar_reader(name: str) -> Callable[[str], Callable[[NodeInfo], int]]:
    return lambda field: lambda node: getattr(node, field).scalar.get(name, 0)


def least_allocated(nodes: list[NodeInfo], specs: Specs) -> list[int]:
    """The free share of each resource, weighted: (allocatable - requested) / allocatable."""
    if specs.cpu_memory is not None:
        cpu, memory, cpu_weight, memory_weight = specs.cpu_memory
        used = specs.used
        return [
            _least_cpu_memory(n.allocatable, used(n), cpu, memory, cpu_weight, memory_weight)
            for n in nodes
        ]
    return [_least(node, specs.items) for node in nodes]


def _least_cpu_memory(
    allocatable: Resource,
    used: Resource,
    cpu: int,
    memory: int,
    cpu_weight: int,
    memory_weight: int,
) -> int:
    total = weights = 0
    capacity = allocatable.milli_cpu
    if capacity:
        free = capacity - used.milli_cpu - cpu
        if free >= 0:
            total += free * MAX_NODE_SCORE // capacity * cpu_weight
        weights += cpu_weight
    capacity = allocatable.memory
    if capacity:
        free = capacity - used.memory - memory
        if free >= 0:
            total += free * MAX_NODE_SCORE // capacity * memory_weight
        weights += memory_weight
    return total // weights if weights else 0


def _least(node: NodeInfo, items: list[Spec]) -> int:
    total = weights = 0
    for allocatable_of, requested_of, request, weight in items:
        allocatable = allocatable_of(node)
        if allocatable:
            free = allocatable - requested_of(node) - request
            if free >= 0:
                total += free * MAX_NODE_SCORE // allocatable * weight
            weights += weight
    return total // weights if weights else 0


def most_allocated(nodes: list[NodeInfo], specs: Specs) -> list[int]:
    """The used share of each resource, weighted: requested / allocatable (bin packing)."""
    return [_most(node, specs.items) for node in nodes]


def _most(node: NodeInfo, items: list[Spec]) -> int:
    total = weights = 0
    for allocatable_of, requested_of, request, weight in items:
        allocatable = allocatable_of(node)
        if allocatable:
            used = min(requested_of(node) + request, allocatable)
            total += used * MAX_NODE_SCORE // allocatable * weight
            weights += weight
    return total // weights if weights else 0


def broken_linear(shape: list[tuple[int, int]], utilization: int) -> int:
    """The score of a utilization on a piecewise-linear shape of (utilization, score) points."""
    for i, (point, score) in enumerate(shape):
        if utilization <= point:
            if i == 0:
                return score
            low, low_score = shape[i - 1]
            return low_score + (score - low_score) * (utilization - low) // (point - low)
    return shape[-1][1]


def requested_to_capacity_ratio(
    shape: list[tuple[int, int]],
) -> Callable[[list[NodeInfo], Specs], list[int]]:
    def score(node: NodeInfo, items: list[Spec]) -> int:
        total = weights = 0
        for allocatable_of, requested_of, request, weight in items:
            allocatable = allocatable_of(node)
            if allocatable:
                used = requested_of(node) + request
                utilization = 100 if used > allocatable else used * 100 // allocatable
                points = broken_linear(shape, utilization)
                if points > 0:
                    total += points * weight
                    weights += weight
        return math.floor(total / weights + 0.5) if weights else 0

    return lambda nodes, specs: [score(node, specs.items) for node in nodes]


def _strategy(strategy: Object):
    kind = strategy.get("type") or LEAST_ALLOCATED
    if kind == LEAST_ALLOCATED:
        return least_allocated
    if kind == MOST_ALLOCATED:
        return most_allocated
    if kind == REQUESTED_TO_CAPACITY_RATIO:
        points = (strategy.get("requestedToCapacityRatio") or {}).get("shape") or []
        if not points:
            raise ValueError("RequestedToCapacityRatio needs a shape")
        scale = MAX_NODE_SCORE // MAX_CUSTOM_PRIORITY_SCORE
        shape = [(p.get("utilization", 0), p.get("score", 0) * scale) for p in points]
        return requested_to_capacity_ratio(shape)
    raise ValueError(f"scoring strategy {kind} is not supported")


@register
class NodeResourcesFit:
    name = "NodeResourcesFit"
    events = frozenset({NODE_ADD, NODE_UPDATE, POD_DELETE})

    def __init__(self, args: Object | None = None) -> None:
        args = args or {}
        self._ignored = set(args.get("ignoredResources") or ())
        self._ignored_groups = set(args.get("ignoredResourceGroups") or ())
        strategy = args.get("scoringStrategy") or {}
        self._allocation = ResourceAllocation(
            strategy.get("resources") or DEFAULT_RESOURCES, use_requested=False
        )
        self._scorer = _strategy(strategy)

    def _checked(self, name: str) -> bool:
        if "/" in name and not name.startswith(("kubernetes.io/", "requests.")):
            return name not in self._ignored and name.split("/")[0] not in self._ignored_groups
        return True

    def pre_filter(self, state: CycleState, pod: Object) -> Status | None:
        requests = state.pod_info.requests
        scalar = {n: v for n, v in requests.scalar.items() if v and self._checked(n)}
        state[_FIT_KEY] = _Request(requests, scalar)
        return None

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        request = state[_FIT_KEY]
        allocatable, requested = node.allocatable, node.requested
        if len(node.pods) < allocatable.allowed_pods and (
            request.nothing
            or (
                request.milli_cpu <= allocatable.milli_cpu - requested.milli_cpu
                and request.memory <= allocatable.memory - requested.memory
                and request.ephemeral_storage
                <= allocatable.ephemeral_storage - requested.ephemeral_storage
                and not request.scalar
            )
        ):
            return None  # the common case, decided in one expression
        reasons = insufficient(request, node)
        return Status(Code.UNSCHEDULABLE, *reasons) if reasons else None

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        state[_FIT_SCORE_KEY] = self._allocation.specs(state.pod_info)
        return None

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> list[int]:
        return self._scorer(nodes, state[_FIT_SCORE_KEY])


class _Request:
    """A pod's requests as NodeResourcesFit checks them (extended ones it ignores left out)."""

    __slots__ = ("milli_cpu", "memory", "ephemeral_storage", "scalar", "nothing")

    def __init__(self, requests: Resource, scalar: dict[str, int]) -> None:
        self.milli_cpu = requests.milli_cpu
        self.memory = requests.memory
        self.ephemeral_storage = requests.ephemeral_storage
        self.scalar = scalar
        self.nothing = requests.is_zero()


def insufficient(request: _Request, node: NodeInfo) -> list[str]:
    """Why the pod does not fit the node (upstream's reasons, in its order)."""
    allocatable, requested = node.allocatable, node.requested
    reasons = ["Too many pods"] if len(node.pods) >= allocatable.allowed_pods else []
    if request.nothing:
        return reasons
    cpu, memory, storage = request.milli_cpu, request.memory, request.ephemeral_storage
    if cpu and cpu > allocatable.milli_cpu - requested.milli_cpu:
        reasons.append("Insufficient cpu")
    if memory and memory > allocatable.memory - requested.memory:
        reasons.append("Insufficient memory")
    if storage and storage > allocatable.ephemeral_storage - requested.ephemeral_storage:
        reasons.append("Insufficient ephemeral-storage")
    for name, amount in request.scalar.items():
        if amount > allocatable.scalar.get(name, 0) - requested.scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons
