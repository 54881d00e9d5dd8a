"""A pod's API status, generated from what the runtime holds, as upstream's kubelet reports it.

Container statuses come from the newest two runtime containers of each name
(the newest is `state`, the one before `lastState`); a container the worker
could not start shows the reason it recorded (ErrImagePull, CrashLoopBackOff,
CreateContainerConfigError...) as waiting. The phase follows upstream's
getPhase, conditions its generators (PodReadyToStartContainers, Initialized,
Ready, ContainersReady, PodScheduled), readiness comes from probe results.
`StatusWriter` writes a status only when it differs from what the API has,
with the pod's resourceVersion, and tries again on a conflict.
"""

from __future__ import annotations

import copy
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubik.api import builtin
from kubik.api.kinds import qos
from kubik.client.api import ApiError, Client
from kubik.kubelet.actions import should_restart
from kubik.kubelet.runtimestate import (
    EXITED,
    RUNNING,
    UNKNOWN,
    ContainerRecord,
    PodRuntime,
)

log = logging.getLogger(__name__)

PODS = builtin.lookup("", "v1", "pods")
Object = dict[str, Any]

KUBELET_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)
TERMINAL = ("Succeeded", "Failed")
DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
_EPOCH = "1970-01-01T00:00:00Z"


def rfc3339(nanoseconds: int) -> str:
    if nanoseconds <= 0:
        return _EPOCH
    moment = datetime.datetime.fromtimestamp(nanoseconds / 1e9, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Inputs:
    """What the status is made of, besides the pod and its runtime state."""

    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → why it waits
    readiness: dict[str, bool] = field(default_factory=dict)  # container id → probe verdict
    started: dict[str, bool] = field(default_factory=dict)  # container id → startup verdict
    host_ip: str = ""
    terminal: bool = False  # the pod is being stopped for good
    deadline_exceeded: bool = False
    runtime_name: str = "containerd"


# ------------------------------------------------------------ containers


def _container_id(runtime_name: str, record: ContainerRecord) -> str:
    return f"{runtime_name}://{record.id}"


def _convert(
    record: ContainerRecord, spec: Object, old: Object | None, runtime_name: str
) -> Object:
    status: Object = {
        "name": spec["name"],
        "state": {},
        "lastState": {},
        "ready": False,
        "restartCount": record.restart_count,
        "image": record.image or spec.get("image", ""),
        "imageID": record.image_ref,
        "containerID": _container_id(runtime_name, record),
        "started": False,
    }
    if record.state == RUNNING:
        status["state"] = {"running": {"startedAt": rfc3339(record.started_at)}}
    elif record.state == EXITED:
        terminated: Object = {
            "exitCode": record.exit_code,
            "reason": record.reason,
            "startedAt": rfc3339(record.started_at),
            "finishedAt": rfc3339(record.finished_at),
            "containerID": status["containerID"],
        }
        if record.message:
            terminated["message"] = record.message
        if not record.reason:
            del terminated["reason"]
        status["state"] = {"terminated": terminated}
    elif record.state == UNKNOWN and old and (old.get("state") or {}).get("running"):
        status["state"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
        }
        status["restartCount"] = int(old.get("restartCount", 0)) + 1
    else:  # created, or unknown: waiting to run
        status["state"] = {"waiting": {}}
    return status


def _volume_mounts(spec: Object) -> list[Object]:
    mounts = []
    for mount in spec.get("volumeMounts") or []:
        entry: Object = {"name": mount.get("name", ""), "mountPath": mount.get("mountPath", "")}
        if mount.get("readOnly"):
            entry["readOnly"] = True
            entry["recursiveReadOnly"] = "Disabled"
        mounts.append(entry)
    return mounts


def container_statuses(
    pod: Object,
    state: PodRuntime,
    specs: list[Object],
    previous: list[Object],
    *,
    is_init: bool,
    inputs: Inputs,
) -> list[Object]:
    has_inits = bool((pod.get("spec") or {}).get("initContainers"))
    default_reason = "PodInitializing" if has_inits else "ContainerCreating"
    old_by_name = {s.get("name"): s for s in previous or []}
    statuses: dict[str, Object] = {}
    for spec in specs:
        status: Object = {
            "name": spec["name"],
            "state": {"waiting": {"reason": default_reason}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": spec.get("image", ""),
            "imageID": "",
            "started": False,
        }
        old = old_by_name.get(spec["name"])
        if old is not None:
            if (old.get("state") or {}).get("terminated"):
                status = copy.deepcopy(old)
            else:
                status["restartCount"] = old.get("restartCount", 0)
                status["lastState"] = copy.deepcopy(old.get("lastState") or {})
            if not state.of(spec["name"]) and (old.get("state") or {}).get("running"):
                waiting = (status["state"].get("waiting") or {}).get("reason") == default_reason
                if waiting and not (status.get("lastState") or {}).get("terminated"):
                    status["lastState"] = {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "ContainerStatusUnknown",
                            "message": "The container could not be located when the pod was "
                            "deleted.  The container used to be Running",
                        }
                    }
                    if not pod["metadata"].get("deletionTimestamp"):
                        status["restartCount"] = int(status.get("restartCount", 0)) + 1
        statuses[spec["name"]] = status

    for spec in specs:
        records = state.of(spec["name"])[:2]
        if not records:
            continue
        current = _convert(records[0], spec, old_by_name.get(spec["name"]), inputs.runtime_name)
        if len(records) > 1:
            before = _convert(records[1], spec, None, inputs.runtime_name)
            current["lastState"] = before["state"]
        statuses[spec["name"]] = current

    for spec in specs:
        latest = state.latest(spec["name"])
        if is_init and latest is not None and latest.exited and latest.exit_code == 0:
            continue
        if not should_restart(spec, pod, state):
            continue
        reason = inputs.reasons.get(spec["name"])
        if reason is None:
            continue
        status = statuses[spec["name"]]
        if status["state"].get("terminated"):
            status["lastState"] = status["state"]
        status["state"] = {"waiting": {"reason": reason[0], "message": reason[1]}}

    for spec in specs:
        status = statuses[spec["name"]]
        _readiness(status, spec, state, inputs, is_init)
        mounts = _volume_mounts(spec)
        if mounts:
            status["volumeMounts"] = mounts
        for key in ("state", "lastState"):
            waiting = status[key].get("waiting")
            if waiting is not None:
                status[key]["waiting"] = {k: v for k, v in waiting.items() if v}
    return [statuses[spec["name"]] for spec in specs]


def _readiness(
    status: Object, spec: Object, state: PodRuntime, inputs: Inputs, is_init: bool
) -> None:
    running = bool(status["state"].get("running"))
    record = state.latest(spec["name"])
    if is_init:
        terminated = status["state"].get("terminated") or {}
        status["ready"] = bool(terminated) and terminated.get("exitCode") == 0
        status["started"] = running
        return
    if not running or record is None:
        status["ready"] = status["started"] = False
        return
    started = inputs.started.get(record.id, False) if spec.get("startupProbe") else True
    status["started"] = started
    if not started:
        status["ready"] = False
    elif spec.get("readinessProbe"):
        status["ready"] = inputs.readiness.get(record.id, False)
    else:
        status["ready"] = True


# ------------------------------------------------------------ phase


def get_phase(
    pod: Object, init_statuses: list[Object], statuses: list[Object], terminal: bool
) -> str:
    """Upstream's getPhase: Pending until every container ran, Running while one runs, then
    Succeeded or Failed by exit codes and restart policy."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = 0
    for status in init_statuses:
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if state.get("running"):
            pending_init += 1
        elif state.get("terminated"):
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state:
            if last.get("terminated"):
                if last["terminated"].get("exitCode", 0) != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    by_name = {s["name"]: s for s in statuses}
    for container in spec.get("containers") or []:
        status = by_name.get(container["name"])
        if status is None:
            unknown += 1
            continue
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if state.get("running"):
            running += 1
        elif state.get("terminated"):
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if last.get("terminated"):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init > 0 and policy == "Never":
        return "Failed"
    if pending_init > 0 or waiting > 0:
        return "Pending"
    if running > 0 and unknown == 0:
        return "Running"
    if running == 0 and stopped > 0 and unknown == 0:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


# ------------------------------------------------------------ conditions


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def _not_met(
    kind: str, reason: str, unknown: list[str], bad: list[str], word: str
) -> Object | None:
    """A False condition naming the containers of unknown status and those of `word` status
    (unready, incomplete), as upstream words it; None when there are none."""
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_names(unknown)}")
    if bad:
        messages.append(f"containers with {word} status: {_names(bad)}")
    if not messages:
        return None
    return {"type": kind, "status": "False", "reason": reason, "message": ", ".join(messages)}


def containers_ready(pod: Object, statuses: list[Object], phase: str) -> Object:
    by_name = {s["name"]: s for s in statuses}
    unknown, unready = [], []
    for container in (pod.get("spec") or {}).get("containers") or []:
        status = by_name.get(container["name"])
        if status is None:
            unknown.append(container["name"])
        elif not status.get("ready"):
            unready.append(container["name"])
    if phase == "Succeeded" and not unknown:
        return {"type": "ContainersReady", "status": "False", "reason": "PodCompleted"}
    not_met = _not_met("ContainersReady", "ContainersNotReady", unknown, unready, "unready")
    return not_met or {"type": "ContainersReady", "status": "True"}


def pod_ready(pod: Object, conditions: list[Object], ready: Object) -> Object:
    if ready["status"] != "True":
        return {**ready, "type": "Ready"}
    by_type = {c.get("type"): c for c in conditions}
    unready = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = gate.get("conditionType", "")
        condition = by_type.get(kind)
        if condition is None:
            unready.append(
                f'corresponding condition of pod readiness gate "{kind}" does not exist.'
            )
        elif condition.get("status") != "True":
            unready.append(
                f'the status of pod readiness gate "{kind}" is not "True", '
                f"but {condition.get('status')}"
            )
    if unready:
        return {
            "type": "Ready",
            "status": "False",
            "reason": "ReadinessGatesNotReady",
            "message": ", ".join(unready),
        }
    return {"type": "Ready", "status": "True"}


def initialized(pod: Object, init_statuses: list[Object], phase: str) -> Object:
    inits = (pod.get("spec") or {}).get("initContainers") or []
    if not inits:
        return {"type": "Initialized", "status": "True"}
    by_name = {s["name"]: s for s in init_statuses}
    unknown, incomplete = [], []
    for container in inits:
        status = by_name.get(container["name"])
        if status is None:
            unknown.append(container["name"])
            continue
        terminated = (status.get("state") or {}).get("terminated")
        if not (terminated and terminated.get("exitCode", 0) == 0):
            incomplete.append(container["name"])
    if phase == "Succeeded" and not unknown:
        return {"type": "Initialized", "status": "True", "reason": "PodCompleted"}
    not_met = _not_met("Initialized", "ContainersNotInitialized", unknown, incomplete, "incomplete")
    return not_met or {"type": "Initialized", "status": "True"}


def ready_to_start(pod: Object, state: PodRuntime) -> Object:
    sandbox = state.sandbox
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    ok = sandbox is not None and sandbox.ready and (host_network or bool(sandbox.ip))
    return {"type": "PodReadyToStartContainers", "status": "True" if ok else "False"}


def _with_times(conditions: list[Object], old: list[Object], at: str) -> list[Object]:
    """Each condition keeps its lastTransitionTime while its status does not change."""
    previous = {c.get("type"): c for c in old or []}
    result = []
    for condition in conditions:
        before = previous.get(condition["type"])
        moment = (
            before.get("lastTransitionTime")
            if before is not None and before.get("status") == condition["status"]
            else None
        ) or at
        result.append({**condition, "lastProbeTime": None, "lastTransitionTime": moment})
    return result


# ------------------------------------------------------------ the pod


def generate(pod: Object, state: PodRuntime, inputs: Inputs) -> Object:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    at = now()
    inits = container_statuses(
        pod,
        state,
        spec.get("initContainers") or [],
        old.get("initContainerStatuses") or [],
        is_init=True,
        inputs=inputs,
    )
    regular = container_statuses(
        pod,
        state,
        spec.get("containers") or [],
        old.get("containerStatuses") or [],
        is_init=False,
        inputs=inputs,
    )
    phase = get_phase(pod, inits, regular, inputs.terminal or inputs.deadline_exceeded)
    reason, message = "", ""
    if phase not in TERMINAL and old.get("phase") in TERMINAL:
        phase = old["phase"]  # a pod never leaves a terminal phase
    if phase == old.get("phase"):
        reason, message = old.get("reason", ""), old.get("message", "")
    if inputs.deadline_exceeded and old.get("phase") not in TERMINAL:
        phase, reason, message = "Failed", DEADLINE_REASON, DEADLINE_MESSAGE

    conditions = [c for c in old.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    ready = containers_ready(pod, regular, phase)
    conditions += [
        ready_to_start(pod, state),
        initialized(pod, inits, phase),
        pod_ready(pod, conditions, ready),
        ready,
        {"type": "PodScheduled", "status": "True"},
    ]
    status: Object = {
        "phase": phase,
        "conditions": _with_times(conditions, old.get("conditions") or [], at),
    }
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if inputs.host_ip:
        status["hostIP"] = inputs.host_ip
        status["hostIPs"] = [{"ip": inputs.host_ip}]
    ips = pod_ips(pod, state, old, inputs.host_ip)
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    status["startTime"] = old.get("startTime") or at
    if inits:
        status["initContainerStatuses"] = inits
    status["containerStatuses"] = regular
    status["qosClass"] = old.get("qosClass") or qos.qos_class(spec)
    for key in ("nominatedNodeName", "resourceClaimStatuses", "resize"):
        if key in old:
            status[key] = old[key]
    return status


def pod_ips(pod: Object, state: PodRuntime, old: Object, host_ip: str) -> list[str]:
    if (pod.get("spec") or {}).get("hostNetwork"):
        return [host_ip] if host_ip else []
    sandbox = state.sandbox
    if sandbox is not None and sandbox.ready and sandbox.ips:
        return list(sandbox.ips)
    return [entry["ip"] for entry in old.get("podIPs") or [] if entry.get("ip")]


# ------------------------------------------------------------ writing


def normalized(value: Any) -> Any:
    """A status without nulls and empty maps, for comparing what we mean to write with what
    the API returned."""
    if isinstance(value, dict):
        cleaned = {k: normalized(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in cleaned.items() if v != {} or k in ("state", "lastState")}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def same(status: Object, current: Object | None) -> bool:
    return normalized(status) == normalized(current or {})


class StatusWriter:
    """Writes a pod's status when it changed; returns the pod as written."""

    def __init__(self, client: Client, *, retries: int = 5) -> None:
        self._client = client
        self._retries = retries

    async def write(
        self,
        pod: Object,
        status: Object,
        *,
        merge: Callable[[Object, Object], Object] | None = None,
    ) -> Object | None:
        """PUT the status with the pod's resourceVersion. On a conflict the pod is read again and
        its conditions owned by others kept (`merge` may redo more). None: the pod is gone."""
        current = pod
        for _ in range(self._retries):
            if same(status, current.get("status")):
                return current
            try:
                return await self._client.update_status(PODS, {**current, "status": status})
            except ApiError as exc:
                if exc.not_found:
                    return None
                if not exc.conflict:
                    raise
            meta = current["metadata"]
            try:
                fresh = await self._client.get(PODS, meta["namespace"], meta["name"])
            except ApiError as exc:
                if exc.not_found:
                    return None
                raise
            if fresh["metadata"].get("uid") != meta.get("uid"):
                return None  # another pod of that name now
            status = merge(fresh, status) if merge else keep_foreign_conditions(fresh, status)
            current = fresh
        raise ApiError(409, {"reason": "Conflict", "message": "pod status kept changing"})


def keep_foreign_conditions(fresh: Object, status: Object) -> Object:
    """The status with the conditions others own taken from the freshly read pod."""
    theirs = [
        c
        for c in (fresh.get("status") or {}).get("conditions") or []
        if c.get("type") not in KUBELET_CONDITIONS
    ]
    ours = [c for c in status.get("conditions") or [] if c.get("type") in KUBELET_CONDITIONS]
    return {**status, "conditions": theirs + ours}
