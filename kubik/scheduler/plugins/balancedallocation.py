"""NodeResourcesBalancedAllocation: favours nodes whose resources would be used in equal shares.

The score is 1 - the standard deviation of the shares requested / allocatable
(default CPU and memory) with the pod on the node, from actual requests.
Args are upstream's `NodeResourcesBalancedAllocationArgs`.
"""

from __future__ import annotations

import math
from typing import Any

from kubik.scheduler.framework import MAX_NODE_SCORE, Code, CycleState, Status, register
from kubik.scheduler.nodeinfo import NodeInfo, Resource
from kubik.scheduler.plugins.noderesources import (
    DEFAULT_RESOURCES,
    ResourceAllocation,
    Spec,
    Specs,
)

Object = dict[str, Any]

_SKIP = Status(Code.SKIP)
_KEY = "PreScoreNodeResourcesBalancedAllocation"


def balanced(nodes: list[NodeInfo], specs: Specs) -> list[int]:
    """(1 - the standard deviation of the used shares) scaled to 0..100."""
    if specs.cpu_memory is not None:
        cpu, memory, _, _ = specs.cpu_memory
        used = specs.used
        return [_balanced_cpu_memory(n.allocatable, used(n), cpu, memory) for n in nodes]
    return [_balanced(node, specs.items) for node in nodes]


def _balanced_cpu_memory(allocatable: Resource, used: Resource, cpu: int, memory: int) -> int:
    if not (allocatable.milli_cpu and allocatable.memory):
        return MAX_NODE_SCORE  # one share or none: no deviation
    cpu_share = (used.milli_cpu + cpu) / allocatable.milli_cpu
    memory_share = (used.memory + memory) / allocatable.memory
    cpu_share = cpu_share if cpu_share < 1.0 else 1.0
    memory_share = memory_share if memory_share < 1.0 else 1.0
    return int((1 - abs(cpu_share - memory_share) / 2) * MAX_NODE_SCORE)


def _balanced(node: NodeInfo, items: list[Spec]) -> int:
    fractions = [
        min((requested_of(node) + request) / allocatable, 1.0)
        for allocatable_of, requested_of, request, _ in items
        if (allocatable := allocatable_of(node))
    ]
    if len(fractions) == 2:
        deviation = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        deviation = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    else:
        deviation = 0.0
    return int((1 - deviation) * MAX_NODE_SCORE)


@register
class NodeResourcesBalancedAllocation:
    name = "NodeResourcesBalancedAllocation"
    events: frozenset[str] = frozenset()

    def __init__(self, args: Object | None = None) -> None:
        resources = (args or {}).get("resources") or DEFAULT_RESOURCES
        self._allocation = ResourceAllocation(resources, use_requested=True)

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        """Skipped for pods requesting nothing, which would otherwise pile onto one node."""
        specs = self._allocation.specs(state.pod_info)
        if not specs.any_request():
            return _SKIP
        state[_KEY] = specs
        return None

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> list[int]:
        return balanced(nodes, state[_KEY])
