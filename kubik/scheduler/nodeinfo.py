"""What the scheduler knows of a node and of a pod, precomputed once for cheap per-node checks.

Filters and scores run for every candidate node of every pod, so everything
they compare is computed when an object changes, not when it is read:
quantities become integers (CPU in millicores, the rest in units; exact sums
are done in integer nano-units, the precision quantities are parsed to),
taints are split by effect, host ports become tuples. Pod requests follow upstream's
`PodRequests`: containers add up; an init container needs its own request
plus the restartable (sidecar) init containers started before it; the pod
needs the larger of the two; pod-level requests replace the aggregate;
the pod overhead is added. Scoring uses "non-zero" requests, in which a
container that asks for no CPU or memory counts as 100m / 200Mi.
"""

from __future__ import annotations

import functools
from typing import Any

from kubik.api import quantity

Object = dict[str, Any]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# what a container asking for no CPU or memory counts as when scoring (upstream's values)
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
NANO = 10**9
_NON_ZERO_DEFAULTS = {
    CPU: DEFAULT_MILLI_CPU_REQUEST * NANO // 1000,
    MEMORY: DEFAULT_MEMORY_REQUEST * NANO,
}
_POD_LEVEL = (CPU, MEMORY)

ANY_IP = "0.0.0.0"
UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"
ZONE_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone")

HostPort = tuple[str, str, int]  # (host IP, protocol, port)


def is_scalar(name: str) -> bool:
    """Extended, hugepages and prefixed resources: counted by name, as upstream's scalar ones."""
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


class Resource:
    """Amounts of resources: CPU in millicores, the others in units, extended ones by name."""

    __slots__ = ("milli_cpu", "memory", "ephemeral_storage", "allowed_pods", "scalar")

    def __init__(
        self,
        milli_cpu: int = 0,
        memory: int = 0,
        ephemeral_storage: int = 0,
        allowed_pods: int = 0,
        scalar: dict[str, int] | None = None,
    ) -> None:
        self.milli_cpu = milli_cpu
        self.memory = memory
        self.ephemeral_storage = ephemeral_storage
        self.allowed_pods = allowed_pods
        self.scalar = scalar if scalar is not None else {}

    @classmethod
    def from_nano(cls, amounts: dict[str, int]) -> Resource:
        """From nano-units by resource name (CPU rounded up to millicores, the rest to units)."""
        resource = cls()
        for name, value in amounts.items():
            if name == CPU:
                resource.milli_cpu = -(-value // (NANO // 1000))
            elif name == MEMORY:
                resource.memory = -(-value // NANO)
            elif name == EPHEMERAL_STORAGE:
                resource.ephemeral_storage = -(-value // NANO)
            elif name == PODS:
                resource.allowed_pods = -(-value // NANO)
            elif is_scalar(name):
                resource.scalar[name] = -(-value // NANO)
        return resource

    @classmethod
    def from_list(cls, resources: Object | None) -> Resource:
        """From a ResourceList (`status.allocatable`); unparsable quantities count as zero."""
        return cls.from_nano(nano_list(resources))

    def get(self, name: str) -> int:
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        if name == PODS:
            return self.allowed_pods
        return self.scalar.get(name, 0)

    def add(self, other: Resource, sign: int = 1) -> None:
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for name, value in other.scalar.items():
            self.scalar[name] = self.scalar.get(name, 0) + sign * value

    def is_zero(self) -> bool:
        return not (
            self.milli_cpu or self.memory or self.ephemeral_storage or any(self.scalar.values())
        )

    def copy(self) -> Resource:
        return Resource(
            self.milli_cpu,
            self.memory,
            self.ephemeral_storage,
            self.allowed_pods,
            dict(self.scalar),
        )

    def __repr__(self) -> str:
        return (
            f"Resource(cpu={self.milli_cpu}m, memory={self.memory}, "
            f"ephemeral={self.ephemeral_storage}, pods={self.allowed_pods}, {self.scalar})"
        )


@functools.lru_cache(maxsize=4096)
def _nano(text: str | int | float) -> int | None:
    try:
        return int(quantity.parse(text).value * NANO)  # exact: parsing rounds to nano-units
    except (quantity.QuantityError, TypeError, ValueError):
        return None


def nano_list(resources: Object | None) -> dict[str, int]:
    """A ResourceList in nano-units; unparsable quantities are left out."""
    amounts: dict[str, int] = {}
    for name, text in (resources or {}).items():
        value = _nano(text) if not isinstance(text, bool) else None
        if value is not None:
            amounts[name] = value
    return amounts


def _add_into(total: dict[str, int], amounts: dict[str, int]) -> None:
    for name, value in amounts.items():
        total[name] = total.get(name, 0) + value


def _max_into(total: dict[str, int], amounts: dict[str, int]) -> None:
    for name, value in amounts.items():
        if name not in total or value > total[name]:
            total[name] = value


def _container_requests(container: Object, defaults: dict[str, int] | None) -> dict[str, int]:
    requests = nano_list((container.get("resources") or {}).get("requests"))
    for name, value in (defaults or {}).items():
        requests.setdefault(name, value)
    return requests


def pod_requests(spec: Object, *, non_zero: bool = False) -> dict[str, int]:
    """The pod's requests by resource name, in nano-units (upstream's `PodRequests`)."""
    pod_level = nano_list((spec.get("resources") or {}).get("requests"))
    defaults = None
    if non_zero:
        defaults = {k: v for k, v in _NON_ZERO_DEFAULTS.items() if k not in pod_level}
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        _add_into(total, _container_requests(container, defaults))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container, defaults)
        if container.get("restartPolicy") == "Always":
            _add_into(total, requests)
            _add_into(sidecars, requests)
            requests = dict(sidecars)
        else:
            _add_into(requests, sidecars)
        _max_into(init_peak, requests)
    _max_into(total, init_peak)
    for name in _POD_LEVEL:
        if name in pod_level:
            total[name] = pod_level[name]
    _add_into(total, nano_list(spec.get("overhead")))
    return total


def host_ports(spec: Object) -> list[HostPort]:
    """The (IP, protocol, port) host ports the pod's containers claim."""
    ports = []
    for container in spec.get("containers") or []:
        for port in container.get("ports") or []:
            host_port = port.get("hostPort") or 0
            if host_port > 0:
                ports.append(
                    (port.get("hostIP") or ANY_IP, port.get("protocol") or "TCP", host_port)
                )
    return ports


def pod_key(pod: Object) -> str:
    metadata = pod["metadata"]
    return f"{metadata.get('namespace', '')}/{metadata['name']}"


class PodInfo:
    """A pod with what nodes account for it: requests, non-zero requests, host ports.

    `affinity` is left for the InterPodAffinity plugin to fill: the pod's
    affinity terms, parsed the first time another pod is checked against them.
    """

    __slots__ = (
        "pod",
        "key",
        "uid",
        "priority",
        "requests",
        "non_zero",
        "host_ports",
        "affinity",
    )

    def __init__(self, pod: Object) -> None:
        spec = pod.get("spec") or {}
        self.pod = pod
        self.key = pod_key(pod)
        self.uid = pod["metadata"].get("uid", "")
        self.priority = spec.get("priority") or 0
        self.requests = Resource.from_nano(pod_requests(spec))
        self.non_zero = Resource.from_nano(pod_requests(spec, non_zero=True))
        self.host_ports = host_ports(spec)
        self.affinity: Any = None

    def with_pod(self, pod: Object) -> PodInfo:
        """The same accounting for another version of the pod (e.g. once bound)."""
        info = object.__new__(PodInfo)
        info.pod = pod
        info.key, info.uid, info.priority = self.key, self.uid, self.priority
        info.requests, info.non_zero, info.host_ports = (
            self.requests,
            self.non_zero,
            self.host_ports,
        )
        info.affinity = None  # parsed again: the labels may have changed
        return info

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


def normalized_image(name: str) -> str:
    """An image name as nodes report it: with ":latest" when it has neither tag nor digest."""
    if name.rfind(":") <= name.rfind("/"):
        return name + ":latest"
    return name


class NodeInfo:
    """A node, the pods on it (bound or assumed) and what they use."""

    __slots__ = (
        "name",
        "node",
        "labels",
        "taints",
        "no_schedule_taints",
        "prefer_no_schedule_taints",
        "unschedulable",
        "zone",
        "allocatable",
        "requested",
        "non_zero_requested",
        "pods",
        "used_ports",
        "images",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: Object | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[Object] = []
        self.no_schedule_taints: list[Object] = []
        self.prefer_no_schedule_taints: list[Object] = []
        self.unschedulable = False
        self.zone = ""
        self.allocatable = Resource()
        self.requested = Resource()
        self.non_zero_requested = Resource()
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: dict[HostPort, int] = {}
        self.images: dict[str, int] = {}

    def set_node(self, node: Object | None) -> None:
        self.node = node
        if node is None:
            return
        metadata, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
        self.labels = metadata.get("labels") or {}
        self.taints = spec.get("taints") or []
        self.no_schedule_taints = [
            t for t in self.taints if t.get("effect") in ("NoSchedule", "NoExecute")
        ]
        self.prefer_no_schedule_taints = [
            t for t in self.taints if t.get("effect") == "PreferNoSchedule"
        ]
        self.unschedulable = bool(spec.get("unschedulable"))
        self.zone = ":\x00:".join(self.labels.get(label, "") for label in ZONE_LABELS)
        self.allocatable = Resource.from_list(status.get("allocatable"))
        self.images = {}
        for image in status.get("images") or []:
            for image_name in image.get("names") or []:
                self.images[image_name] = image.get("sizeBytes") or 0

    def add_pod(self, info: PodInfo) -> None:
        self.pods[info.key] = info
        self._account(info, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is not None:
            self._account(info, -1)
        return info

    def _account(self, info: PodInfo, sign: int) -> None:
        self.requested.add(info.requests, sign)
        self.non_zero_requested.milli_cpu += sign * info.non_zero.milli_cpu
        self.non_zero_requested.memory += sign * info.non_zero.memory
        for port in info.host_ports:
            count = self.used_ports.get(port, 0) + sign
            if count > 0:
                self.used_ports[port] = count
            else:
                self.used_ports.pop(port, None)

    def port_conflict(self, port: HostPort) -> bool:
        """Whether a host port is taken: the same one, or the same protocol/port on any IP."""
        ip, protocol, number = port
        if port in self.used_ports or (ANY_IP, protocol, number) in self.used_ports:
            return True
        if ip == ANY_IP:
            return any(p == protocol and n == number for _, p, n in self.used_ports)
        return False

    def clone(self) -> NodeInfo:
        """A copy whose pods and usage can change without touching this one (for simulations)."""
        copy = NodeInfo(self.name)
        for slot in NodeInfo.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.requested = self.requested.copy()
        copy.non_zero_requested = self.non_zero_requested.copy()
        copy.pods = dict(self.pods)
        copy.used_ports = dict(self.used_ports)
        return copy

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, {len(self.pods)} pods)"
