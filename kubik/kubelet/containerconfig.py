"""A container's CRI configuration, from its spec and what the pod worker resolved for it.

The worker resolves the environment (envvars) and mounts (volumes) first; this
module only translates: command and args with $(VAR) references expanded,
resources as cgroup settings (CPU shares from requests, a CFS quota from
limits, the memory limit, an OOM score by QoS class), the security context
(the container's over the pod's), the termination-message file, the log
path `<container>/<restart count>.log`, and the labels and annotations the
kubelet finds the container by later.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubik.api import quantity
from kubik.api.kinds import qos
from kubik.kubelet import runtimestate
from kubik.kubelet.actions import container_hash
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.errors import ContainerConfigError
from kubik.kubelet.sandbox import namespace_options, seccomp_profile, supplemental_groups

Object = dict[str, Any]

MIN_SHARES = 2
SHARES_PER_CPU = 1024
CFS_PERIOD = 100_000  # microseconds
MIN_QUOTA = 1_000
GUARANTEED_OOM_SCORE = -997
BEST_EFFORT_OOM_SCORE = 1000
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# What upstream hides from an unprivileged container's /proc and /sys.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@dataclass
class ImageUser:
    """Who the image runs as, when it says (for runAsNonRoot)."""

    uid: int | None = None
    name: str = ""


def _quantity(values: Object | None, name: str) -> quantity.Quantity | None:
    if not values or name not in values:
        return None
    try:
        return quantity.parse(values[name])
    except (quantity.QuantityError, TypeError):
        return None


def memory_capacity() -> int:
    """The node's memory in bytes (for the OOM score of burstable containers)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def resources(pod: Object, container: Object, capacity: int) -> api_pb2.LinuxContainerResources:
    limits = (container.get("resources") or {}).get("limits")
    requests = (container.get("resources") or {}).get("requests")
    cpu_request = _quantity(requests, "cpu")
    cpu_limit = _quantity(limits, "cpu")
    memory_limit = _quantity(limits, "memory")
    memory_request = _quantity(requests, "memory")
    result = api_pb2.LinuxContainerResources()
    share_base = cpu_request if cpu_request is not None and cpu_request.value else cpu_limit
    milli = share_base.milli_value() if share_base is not None else 0
    result.cpu_shares = max(MIN_SHARES, milli * SHARES_PER_CPU // 1000)
    if cpu_limit is not None and cpu_limit.value > 0:
        result.cpu_quota = max(MIN_QUOTA, cpu_limit.milli_value() * CFS_PERIOD // 1000)
        result.cpu_period = CFS_PERIOD
    if memory_limit is not None and memory_limit.value > 0:
        result.memory_limit_in_bytes = memory_limit.int_value()
        # cgroup v1 without swap: the limit covers memory and swap together
        result.memory_swap_limit_in_bytes = memory_limit.int_value()
    result.oom_score_adj = oom_score_adj(pod, memory_request, capacity)
    return result


def oom_score_adj(pod: Object, memory_request: quantity.Quantity | None, capacity: int) -> int:
    """Upstream's policy: guaranteed pods are killed last, best-effort ones first, burstable
    ones by how much of the node's memory they asked for."""
    qos_class = (pod.get("status") or {}).get("qosClass") or qos.qos_class(pod.get("spec") or {})
    if qos_class == "Guaranteed":
        return GUARANTEED_OOM_SCORE
    if qos_class == "BestEffort":
        return BEST_EFFORT_OOM_SCORE
    request = memory_request.int_value() if memory_request is not None else 0
    score = 1000 - (1000 * request) // capacity if capacity else 1000
    if score < 1000 + GUARANTEED_OOM_SCORE:
        return 1000 + GUARANTEED_OOM_SCORE
    return min(score, BEST_EFFORT_OOM_SCORE - 1)


def effective_security(pod: Object, container: Object) -> Object:
    """The container's security context over the pod's (for the fields both have)."""
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    merged = {
        key: pod_context[key]
        for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile", "seLinuxOptions")
        if pod_context.get(key) is not None
    }
    merged.update(
        {k: v for k, v in (container.get("securityContext") or {}).items() if v is not None}
    )
    return merged


def verify_non_root(security: Object, image_user: ImageUser) -> None:
    if not security.get("runAsNonRoot"):
        return
    if security.get("runAsUser") is not None:
        if int(security["runAsUser"]) == 0:
            raise ContainerConfigError("container's runAsUser breaks non-root policy")
        return
    if image_user.uid is not None:
        if image_user.uid == 0:
            raise ContainerConfigError("container has runAsNonRoot and image will run as root")
        return
    if image_user.name and not image_user.name.isdigit():
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({image_user.name}), "
            "cannot verify user is non-root"
        )
    if not image_user.name:
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")


def security_context(
    pod: Object, container: Object, image_user: ImageUser
) -> api_pb2.LinuxContainerSecurityContext:
    security = effective_security(pod, container)
    verify_non_root(security, image_user)
    result = api_pb2.LinuxContainerSecurityContext(
        privileged=bool(security.get("privileged")),
        readonly_rootfs=bool(security.get("readOnlyRootFilesystem")),
        namespace_options=namespace_options(pod),
        supplemental_groups=supplemental_groups(pod),
    )
    capabilities = security.get("capabilities") or {}
    if capabilities:
        result.capabilities.add_capabilities.extend(capabilities.get("add") or [])
        result.capabilities.drop_capabilities.extend(capabilities.get("drop") or [])
    if security.get("runAsUser") is not None:
        result.run_as_user.value = int(security["runAsUser"])
    if security.get("runAsGroup") is not None:
        result.run_as_group.value = int(security["runAsGroup"])
    if security.get("allowPrivilegeEscalation") is not None:
        result.no_new_privs = not security["allowPrivilegeEscalation"]
    if not result.privileged and security.get("procMount") != "Unmasked":
        result.masked_paths.extend(MASKED_PATHS)
        result.readonly_paths.extend(READONLY_PATHS)
    selinux = security.get("seLinuxOptions")
    if selinux:
        result.selinux_options.CopyFrom(
            api_pb2.SELinuxOption(
                user=selinux.get("user", ""),
                role=selinux.get("role", ""),
                type=selinux.get("type", ""),
                level=selinux.get("level", ""),
            )
        )
    profile = seccomp_profile(security.get("seccompProfile"))
    if profile is not None:
        result.seccomp.CopyFrom(profile)
    return result


def termination_message_mount(pod_dir: Path, container: Object) -> api_pb2.Mount | None:
    """A fresh, empty, world-writable file for this instance's termination message."""
    path = container.get("terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH)
    if not path:
        return None
    directory = pod_dir / "containers" / container["name"]
    directory.mkdir(parents=True, exist_ok=True)
    host = directory / secrets.token_hex(4)
    host.touch()
    os.chmod(host, 0o666)
    return api_pb2.Mount(container_path=path, host_path=str(host))


def container_labels(pod: Object, container: Object) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        runtimestate.POD_NAME: meta["name"],
        runtimestate.POD_NAMESPACE: meta["namespace"],
        runtimestate.POD_UID: meta["uid"],
        runtimestate.CONTAINER_NAME: container["name"],
    }


def container_annotations(pod: Object, container: Object, restart_count: int) -> dict[str, str]:
    spec = pod.get("spec") or {}
    annotations = {
        runtimestate.CONTAINER_HASH: container_hash(container),
        runtimestate.RESTART_COUNT: str(restart_count),
        runtimestate.TERMINATION_MESSAGE_PATH: container.get(
            "terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH
        ),
        runtimestate.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy", "File"),
        runtimestate.TERMINATION_GRACE: str(spec.get("terminationGracePeriodSeconds", 30)),
    }
    prestop = (container.get("lifecycle") or {}).get("preStop")
    if prestop:
        annotations[runtimestate.PRESTOP_HANDLER] = json.dumps(prestop)
    if container.get("ports"):
        annotations[runtimestate.CONTAINER_PORTS] = json.dumps(container["ports"])
    return annotations


def container_config(
    pod: Object,
    container: Object,
    *,
    restart_count: int,
    image_ref: str,
    env: list[tuple[str, str]],
    command: list[str],
    args: list[str],
    mounts: list[api_pb2.Mount],
    image_user: ImageUser,
    memory: int,
) -> api_pb2.ContainerConfig:
    """The CreateContainer config; `command` and `args` come already expanded."""
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=container["name"], attempt=restart_count),
        image=api_pb2.ImageSpec(image=image_ref),
        command=command,
        args=args,
        working_dir=container.get("workingDir", ""),
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in env],
        mounts=mounts,
        labels=container_labels(pod, container),
        annotations=container_annotations(pod, container, restart_count),
        log_path=f"{container['name']}/{restart_count}.log",
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
    )
    config.linux.resources.CopyFrom(resources(pod, container, memory))
    config.linux.security_context.CopyFrom(security_context(pod, container, image_user))
    return config
