"""NodeName: a pod naming a node in `spec.nodeName` fits only that node."""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    Code,
    CycleState,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo

REASON = "node(s) didn't match the requested node name"
_SKIP = Status(Code.SKIP)


@register
class NodeName:
    name = "NodeName"
    events = frozenset({NODE_ADD, NODE_UPDATE})

    def pre_filter(self, state: CycleState, pod: dict[str, Any]) -> Status | None:
        """Most pods name no node: skip the per-node check for them."""
        return None if pod["spec"].get("nodeName") else _SKIP

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status | None:
        wanted = pod["spec"].get("nodeName")
        if wanted and wanted != node.name:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON)
        return None
