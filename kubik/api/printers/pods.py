"""Pods: READY, STATUS, RESTARTS as `kubectl get pods` shows them.

STATUS is the one summary a user reads first, so it follows upstream's
precedence exactly: the pod's phase or reason, then the first init container
that has not finished (Init:N/M, Init:<reason>, Init:ExitCode:N), then the
last app container with a reason (CrashLoopBackOff, Completed, ...), and
finally Terminating (or Unknown when the node was lost) for a pod being
deleted. Sidecars (init containers that restart Always) count as containers.
"""

from __future__ import annotations

import datetime
from typing import Any

from kubik.api.printers.cells import condition_true, get, name, number
from kubik.api.tables import (
    AGE,
    NAME,
    Object,
    age,
    column,
    doc,
    human_duration_since,
    parse_timestamp,
    printer,
)

_STATUS = "io.k8s.api.core.v1.PodStatus"
_SPEC = "io.k8s.api.core.v1.PodSpec"
_NODE_LOST = "NodeLost"  # the reason the node lifecycle controller gives unreachable pods

COLUMNS = [
    NAME,
    column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    column("Status", description="The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE,
    column("IP", description=doc(_STATUS, "podIP"), priority=1),
    column("Node", description=doc(_SPEC, "nodeName"), priority=1),
    column("Nominated Node", description=doc(_STATUS, "nominatedNodeName"), priority=1),
    column("Readiness Gates", description=doc(_SPEC, "readinessGates"), priority=1),
]


def row_conditions(pod: Object) -> list[Object]:
    """Finished pods mark their row Completed, as upstream's table rows do."""
    phase = get(pod, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return []
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


@printer("", "Pod", COLUMNS, conditions=row_conditions)
def pod_cells(pod: Object) -> list[Any]:
    summary = _Summary(pod)
    return [
        name(pod),
        f"{summary.ready}/{summary.total}",
        summary.reason,
        summary.restarts_text(),
        age(pod),
        *_wide(pod),
    ]


class _Summary:
    """Walks a pod's container statuses once, as upstream's printPod does."""

    def __init__(self, pod: Object) -> None:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        self.init_specs = spec.get("initContainers") or []
        self.sidecars = {
            c.get("name") for c in self.init_specs if c.get("restartPolicy") == "Always"
        }
        self.total = len(spec.get("containers") or []) + len(self.sidecars)
        self.ready = 0
        self.restarts = 0
        self.last_restart: datetime.datetime | None = None
        self.sidecar_restarts = 0
        self.sidecar_last_restart: datetime.datetime | None = None

        phase = status.get("phase") or ""
        self.reason = status.get("reason") or phase
        if any(_gated(c) for c in status.get("conditions") or []):
            self.reason = "SchedulingGated"

        initializing = self._walk_init(status.get("initContainerStatuses") or [])
        if not initializing or condition_true(pod, "Initialized"):
            self._walk_containers(pod, status.get("containerStatuses") or [])

        if get(pod, "metadata", "deletionTimestamp"):
            if status.get("reason") == _NODE_LOST:
                self.reason = "Unknown"
            elif phase not in ("Succeeded", "Failed"):
                self.reason = "Terminating"

    def _walk_init(self, statuses: list[Object]) -> bool:
        """Tally init containers in order; at the first one not yet done, set the reason: True."""
        for index, container in enumerate(statuses):
            count = number(container.get("restartCount"))
            finished = _last_finished(container)
            self.restarts += count
            self.last_restart = _later(self.last_restart, finished)
            sidecar = container.get("name") in self.sidecars
            if sidecar:
                self.sidecar_restarts += count
                self.sidecar_last_restart = _later(self.sidecar_last_restart, finished)
            terminated = get(container, "state", "terminated")
            waiting = get(container, "state", "waiting")
            if terminated is not None and number(terminated.get("exitCode")) == 0:
                continue
            if sidecar and container.get("started"):
                self.ready += 1 if container.get("ready") else 0
                continue
            if terminated is not None:
                self.reason = "Init:" + (terminated.get("reason") or _exit(terminated))
            elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
                self.reason = "Init:" + waiting["reason"]
            else:
                self.reason = f"Init:{index}/{len(self.init_specs)}"
            return True
        return False

    def _walk_containers(self, pod: Object, statuses: list[Object]) -> None:
        """App containers, last to first: the first listed container's reason wins.

        Once initialized, only sidecars' restarts count besides the app containers'.
        """
        self.restarts = self.sidecar_restarts
        self.last_restart = self.sidecar_last_restart
        running = False
        for container in reversed(statuses):
            self.restarts += number(container.get("restartCount"))
            self.last_restart = _later(self.last_restart, _last_finished(container))
            waiting = get(container, "state", "waiting")
            terminated = get(container, "state", "terminated")
            if waiting is not None and waiting.get("reason"):
                self.reason = waiting["reason"]
            elif terminated is not None:
                self.reason = terminated.get("reason") or _exit(terminated)
            elif container.get("ready") and get(container, "state", "running") is not None:
                running = True
                self.ready += 1
        if self.reason == "Completed" and running:
            self.reason = "Running" if condition_true(pod, "Ready") else "NotReady"

    def restarts_text(self) -> str:
        if self.restarts and self.last_restart is not None:
            return f"{self.restarts} ({human_duration_since(self.last_restart)} ago)"
        return str(self.restarts)


def _gated(cond: Object) -> bool:
    return cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated"


def _exit(terminated: Object) -> str:
    """How a container without a termination reason ended: its signal, else its exit code."""
    signal = number(terminated.get("signal"))
    return f"Signal:{signal}" if signal else f"ExitCode:{number(terminated.get('exitCode'))}"


def _last_finished(container: Object) -> datetime.datetime | None:
    return parse_timestamp(get(container, "lastState", "terminated", "finishedAt"))


def _later(
    current: datetime.datetime | None, other: datetime.datetime | None
) -> datetime.datetime | None:
    if other is None or (current is not None and current >= other):
        return current
    return other


def _wide(pod: Object) -> list[str]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ips = status.get("podIPs") or []
    gates = spec.get("readinessGates") or []
    gate_text = "<none>"
    if gates:
        conditions = status.get("conditions") or []
        passed = 0
        for gate in gates:
            found = next(
                (c for c in conditions if c.get("type") == gate.get("conditionType")), None
            )
            passed += 1 if found is not None and found.get("status") == "True" else 0
        gate_text = f"{passed}/{len(gates)}"
    return [
        (ips[0].get("ip") if ips else "") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gate_text,
    ]
