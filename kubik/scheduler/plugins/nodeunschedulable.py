"""NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate
the `node.kubernetes.io/unschedulable:NoSchedule` taint.

While no node is cordoned the per-node filter is skipped: it would pass them all.
"""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    Code,
    CycleState,
    Framework,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import UNSCHEDULABLE_TAINT_KEY, NodeInfo
from kubik.scheduler.plugins.tainttoleration import tolerates

REASON = "node(s) were unschedulable"
_TAINT = {"key": UNSCHEDULABLE_TAINT_KEY, "effect": "NoSchedule"}
_SKIP = Status(Code.SKIP)


@register
class NodeUnschedulable:
    name = "NodeUnschedulable"
    events = frozenset({NODE_ADD, NODE_UPDATE})

    def __init__(self, handle: Framework) -> None:
        self._cache = handle.cache

    def pre_filter(self, state: CycleState, pod: dict[str, Any]) -> Status | None:
        return None if self._cache.any_cordoned() else _SKIP

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status | None:
        if not node.unschedulable:
            return None
        if any(tolerates(t, _TAINT) for t in pod["spec"].get("tolerations") or []):
            return None
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON)
