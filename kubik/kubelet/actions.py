"""What one sync of a pod must do, decided from its spec and what the runtime holds.

A pure function of (pod, runtime state, probe verdicts), following upstream's
computePodActions: (re)create the sandbox when there is none ready (then
start over from the first init container), else run the init containers one
at a time, then start the containers that are not running and should be
(restart policy), and kill the running ones whose spec changed or that
failed their liveness or startup probe. A pod with nothing to keep and
nothing to start is killed as a whole (its sandbox stopped).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from kubik.kubelet.runtimestate import EXITED, RUNNING, UNKNOWN, ContainerRecord, PodRuntime

Object = dict[str, Any]

REASON_LIVENESS = "liveness"
REASON_STARTUP = "startup"
REASON_UNKNOWN = "unknown"


@dataclass
class Kill:
    name: str
    message: str
    reason: str = ""


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init: Object | None = None
    start: list[Object] = field(default_factory=list)
    kill: dict[str, Kill] = field(default_factory=dict)


def container_hash(container: Object) -> str:
    """What a running container is compared against: only the fields a pod update may change
    (as upstream hashes name and image, so a kubelet upgrade restarts nothing)."""
    text = json.dumps({"name": container.get("name"), "image": container.get("image")})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def restart_on_failure(pod: Object) -> bool:
    return (pod.get("spec") or {}).get("restartPolicy", "Always") != "Never"


def sandbox_changed(pod: Object, state: PodRuntime) -> tuple[bool, int, str]:
    """(needs a new sandbox, its attempt number, the current sandbox's id)."""
    sandbox = state.sandbox
    if sandbox is None:
        return True, 0, ""
    ready = sum(1 for s in state.sandboxes if s.ready)
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    changed = (
        ready > 1
        or not sandbox.ready
        or sandbox.host_network != host_network
        or (not host_network and not sandbox.ip)
    )
    return changed, (sandbox.attempt + 1 if changed else sandbox.attempt), sandbox.id


def should_restart(container: Object, pod: Object, state: PodRuntime) -> bool:
    """Whether a container that is not running should be (re)started."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    record = state.latest(container["name"])
    if record is None:
        return True
    if record.running:
        return False
    if record.state != EXITED:  # created but never started, or unknown
        return True
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    if policy == "Never":
        return False
    if policy == "OnFailure" and record.exit_code == 0:
        return False
    return True


def init_failed(record: ContainerRecord) -> bool:
    return (
        record.reason == "OOMKilled"
        or (record.exited and record.exit_code != 0)
        or record.state == UNKNOWN
    )


def next_init_container(
    pod: Object, state: PodRuntime
) -> tuple[ContainerRecord | None, Object | None, bool]:
    """(the failed init container's record, the init container to run next, all done)."""
    spec = pod.get("spec") or {}
    inits = spec.get("initContainers") or []
    if not inits:
        return None, None, True
    for container in spec.get("containers") or []:
        record = state.latest(container["name"])
        if record is not None and record.running:
            return None, None, True  # initialized before (its records may be gone)
    for container in reversed(inits):
        record = state.latest(container["name"])
        if record is not None and init_failed(record):
            return record, container, False
    for index in range(len(inits) - 1, -1, -1):
        record = state.latest(inits[index]["name"])
        if record is None:
            continue
        if record.running:
            return None, None, False
        if record.exited:
            if index == len(inits) - 1:
                return None, None, True
            return None, inits[index + 1], False
    return None, inits[0], False


def _succeeded(container: Object, state: PodRuntime) -> bool:
    record = state.latest(container["name"])
    return record is not None and record.exited and record.exit_code == 0


def compute(
    pod: Object,
    state: PodRuntime,
    *,
    liveness_failed: set[str] = frozenset(),  # type: ignore[assignment]
    startup_failed: set[str] = frozenset(),  # type: ignore[assignment]
) -> PodActions:
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    inits = spec.get("initContainers") or []
    create, attempt, sandbox_id = sandbox_changed(pod, state)
    actions = PodActions(
        kill_pod=create, create_sandbox=create, sandbox_id=sandbox_id, attempt=attempt
    )
    if create:
        if not restart_on_failure(pod) and attempt != 0 and state.containers:
            actions.create_sandbox = False  # ran once and must not run again
            return actions
        policy = spec.get("restartPolicy", "Always")
        to_start = [c for c in containers if not (policy == "OnFailure" and _succeeded(c, state))]
        if not to_start and next_init_container(pod, state)[2]:
            actions.create_sandbox = False
            return actions
        if inits:
            actions.next_init = inits[0]
        else:
            actions.start = to_start
        return actions

    failed, next_init, done = next_init_container(pod, state)
    if not done:
        if next_init is not None:
            if failed is not None and init_failed(failed) and not restart_on_failure(pod):
                actions.kill_pod = True
            else:
                if failed is not None and failed.state == UNKNOWN:
                    actions.kill[failed.id] = Kill(
                        next_init["name"],
                        'Init container is in "unknown" state, try killing it before restart',
                        REASON_UNKNOWN,
                    )
                actions.next_init = next_init
        return actions

    keep = 0
    for container in containers:
        record = state.latest(container["name"])
        if record is None or record.state != RUNNING:
            if should_restart(container, pod, state):
                actions.start.append(container)
                if record is not None and record.state == UNKNOWN:
                    actions.kill[record.id] = Kill(
                        container["name"],
                        'Container is in "unknown" state, try killing it before restart',
                        REASON_UNKNOWN,
                    )
            continue
        restart = restart_on_failure(pod)
        name = container["name"]
        if record.hash and record.hash != container_hash(container):
            message, reason, restart = f"Container {name} definition changed", "", True
        elif record.id in liveness_failed:
            message, reason = f"Container {name} failed liveness probe", REASON_LIVENESS
        elif record.id in startup_failed:
            message, reason = f"Container {name} failed startup probe", REASON_STARTUP
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            actions.start.append(container)
        actions.kill[record.id] = Kill(name, message, reason)
    if keep == 0 and not actions.start:
        actions.kill_pod = True
    return actions
