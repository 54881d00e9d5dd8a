"""NodePorts: a pod's host ports must be free on the node (same protocol and port on the
same IP, or on any IP when either side binds 0.0.0.0)."""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import (
    NODE_ADD,
    POD_DELETE,
    Code,
    CycleState,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
_SKIP = Status(Code.SKIP)
_KEY = "PreFilterNodePorts"


@register
class NodePorts:
    name = "NodePorts"
    events = frozenset({NODE_ADD, POD_DELETE})

    def pre_filter(self, state: CycleState, pod: dict[str, Any]) -> Status | None:
        ports = state.pod_info.host_ports
        if not ports:
            return _SKIP
        state[_KEY] = ports
        return None

    def filter(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> Status | None:
        for port in state[_KEY]:
            if node.port_conflict(port):
                return Status(Code.UNSCHEDULABLE, REASON)
        return None
