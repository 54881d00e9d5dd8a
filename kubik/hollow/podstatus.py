"""The pod statuses a kubelet writes, for containers that exist only on paper.

Each function takes the pod as the API has it and returns its next status:
`running` (containers started, not ready yet), `ready`, and `terminated`
(every container exited with one code). Fields the kubelet does not own
(qosClass, nominatedNodeName, conditions set by others such as readiness
gates or DisruptionTarget) are kept; a condition whose status does not
change keeps its lastTransitionTime, as upstream's status manager does.
"""

from __future__ import annotations

import hashlib
from typing import Any

Object = dict[str, Any]

# The pod conditions the kubelet owns, in the order upstream writes them.
_KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)
TERMINAL = ("Succeeded", "Failed")


def running(pod: Object, *, host_ip: str, pod_ip: str, now: str) -> Object:
    """Every container started, none ready yet (upstream: before readiness is known)."""
    status = dict(pod.get("status") or {})
    status.update(
        phase="Running",
        hostIP=host_ip,
        hostIPs=[{"ip": host_ip}],
        podIP=pod_ip,
        podIPs=[{"ip": pod_ip}],
        startTime=status.get("startTime") or now,
        containerStatuses=[
            _container(pod, c, {"running": {"startedAt": now}}, ready=False)
            for c in _spec(pod).get("containers") or []
        ],
    )
    inits = [_init_container(pod, c, now) for c in _spec(pod).get("initContainers") or []]
    if inits:
        status["initContainerStatuses"] = inits
    unready = _not_ready(pod)
    status["conditions"] = _conditions(
        pod,
        now,
        PodReadyToStartContainers=("True", "", ""),
        Initialized=("True", "", ""),
        Ready=("False", "ContainersNotReady", unready),
        ContainersReady=("False", "ContainersNotReady", unready),
        PodScheduled=("True", "", ""),
    )
    return status


def ready(pod: Object, *, now: str) -> Object:
    """Every container ready; the pod is Ready too unless a readiness gate holds it back."""
    status = dict(pod.get("status") or {})
    status["containerStatuses"] = [
        {**c, "ready": True} for c in status.get("containerStatuses") or []
    ]
    if status.get("initContainerStatuses"):
        status["initContainerStatuses"] = [
            {**c, "ready": True} for c in status["initContainerStatuses"]
        ]
    blocking = unmet_gates(pod)
    gate = ("True", "", "") if not blocking else ("False", "ReadinessGatesNotReady", blocking)
    status["conditions"] = _conditions(pod, now, Ready=gate, ContainersReady=("True", "", ""))
    return status


def terminated(pod: Object, exit_code: int, *, now: str) -> Object:
    """Every running container exited with `exit_code`: Succeeded for 0, else Failed."""
    status = dict(pod.get("status") or {})
    reason = "Completed" if exit_code == 0 else "Error"
    status["containerStatuses"] = [
        _exited(c, exit_code, reason, now) for c in status.get("containerStatuses") or []
    ]
    if status.get("initContainerStatuses"):
        status["initContainerStatuses"] = [
            _exited(c, exit_code, reason, now) if "running" in c.get("state", {}) else c
            for c in status["initContainerStatuses"]
        ]
    status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
    done = ("False", "PodCompleted", "") if exit_code == 0 else None
    unready = done or ("False", "ContainersNotReady", _not_ready(pod))
    status["conditions"] = _conditions(
        pod,
        now,
        PodReadyToStartContainers=("False", "", ""),
        Initialized=("True", "PodCompleted", "") if exit_code == 0 else ("True", "", ""),
        Ready=unready,
        ContainersReady=unready,
        PodScheduled=("True", "", ""),
    )
    return status


def unmet_gates(pod: Object) -> str:
    """The readiness gates whose condition is not True, as a message ("" when all pass)."""
    current = {c.get("type"): c.get("status") for c in _status(pod).get("conditions") or []}
    waiting = [
        gate["conditionType"]
        for gate in _spec(pod).get("readinessGates") or []
        if current.get(gate.get("conditionType")) != "True"
    ]
    return f"readiness gates not met: {', '.join(waiting)}" if waiting else ""


def condition(pod: Object, kind: str) -> str:
    """The status ("True", "False", …) of one pod condition; "" when absent."""
    for entry in _status(pod).get("conditions") or []:
        if entry.get("type") == kind:
            return entry.get("status", "")
    return ""


def _spec(pod: Object) -> Object:
    return pod.get("spec") or {}


def _status(pod: Object) -> Object:
    return pod.get("status") or {}


def _container_id(pod: Object, name: str) -> str:
    uid = (pod.get("metadata") or {}).get("uid", "")
    return "hollow://" + hashlib.sha256(f"{uid}/{name}".encode()).hexdigest()


def _container(pod: Object, container: Object, state: Object, *, ready: bool) -> Object:
    image = container.get("image", "")
    return {
        "name": container.get("name", ""),
        "image": image,
        "imageID": f"hollow://{image}",
        "containerID": _container_id(pod, container.get("name", "")),
        "ready": ready,
        "started": "running" in state,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }


def _init_container(pod: Object, container: Object, now: str) -> Object:
    """A sidecar (restartPolicy Always) keeps running; any other init container has run."""
    if container.get("restartPolicy") == "Always":
        return _container(pod, container, {"running": {"startedAt": now}}, ready=False)
    done = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": now,
        "finishedAt": now,
        "containerID": _container_id(pod, container.get("name", "")),
    }
    return _container(pod, container, {"terminated": done}, ready=True)


def _exited(container: Object, exit_code: int, reason: str, now: str) -> Object:
    started = (container.get("state") or {}).get("running", {}).get("startedAt", now)
    end = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": now,
        "containerID": container.get("containerID", ""),
    }
    return {**container, "ready": False, "started": False, "state": {"terminated": end}}


def _not_ready(pod: Object) -> str:
    names = " ".join(c.get("name", "") for c in _spec(pod).get("containers") or [])
    return f"containers with unready status: [{names}]"


def _conditions(pod: Object, now: str, **wanted: tuple[str, str, str]) -> list[Object]:
    """The pod's conditions with the kubelet's set to `wanted` (type → status, reason,
    message); the kubelet's conditions not named keep their current value."""
    current = {c.get("type"): c for c in _status(pod).get("conditions") or []}
    result = [c for c in current.values() if c.get("type") not in _KUBELET_CONDITIONS]
    for kind in _KUBELET_CONDITIONS:
        previous = current.get(kind)
        if kind not in wanted:
            if previous is not None:
                result.append(previous)
            continue
        value, reason, message = wanted[kind]
        changed = previous is None or previous.get("status") != value
        entry: Object = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
        }
        if reason:
            entry["reason"] = reason
        if message:
            entry["message"] = message
        result.append(entry)
    return result
