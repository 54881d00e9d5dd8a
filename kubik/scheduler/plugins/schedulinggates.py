"""SchedulingGates: a pod with `spec.schedulingGates` waits outside the active queue.

Only an update of the pod itself (removing its gates) lets it in, so no
cluster event is of interest.
"""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import Code, Status, register


@register
class SchedulingGates:
    name = "SchedulingGates"
    events: frozenset[str] = frozenset()

    def pre_enqueue(self, pod: dict[str, Any]) -> Status | None:
        gates = (pod.get("spec") or {}).get("schedulingGates") or []
        if not gates:
            return None
        names = " ".join(gate.get("name", "") for gate in gates)
        return Status(
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE, f"waiting for scheduling gates: [{names}]"
        )
