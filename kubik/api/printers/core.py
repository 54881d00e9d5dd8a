"""Printers of the core/v1 kinds (pods and events have their own modules).

LimitRange has none: upstream serves it with the default table convertor.
"""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import (
    access_modes,
    capped,
    deleting,
    format_labels,
    get,
    name,
    quantity,
)
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_CORE = "io.k8s.api.core.v1."
_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
_ROLE_PREFIX = "node-role.kubernetes.io/"
_ROLE_LABEL = "kubernetes.io/role"


def _doc(definition: str, field: str) -> str:
    return doc(_CORE + definition, field)


@printer("", "Namespace", [NAME, column("Status", description="The status of the namespace"), AGE])
def namespace_cells(ns: Object) -> list[Any]:
    return [name(ns), get(ns, "status", "phase") or "", age(ns)]


@printer(
    "",
    "Service",
    [
        NAME,
        column("Type", description=_doc("ServiceSpec", "type")),
        column("Cluster-IP", description=_doc("ServiceSpec", "clusterIP")),
        column("External-IP", description=_doc("ServiceSpec", "externalIPs")),
        column("Port(s)", description=_doc("ServiceSpec", "ports")),
        AGE,
        column("Selector", description=_doc("ServiceSpec", "selector"), priority=1),
    ],
)
def service_cells(svc: Object) -> list[Any]:
    spec = svc.get("spec") or {}
    cluster_ips = spec.get("clusterIPs") or []
    ports = []
    for port in spec.get("ports") or []:
        node_port = port.get("nodePort") or 0
        prefix = f"{port.get('port', 0)}:{node_port}" if node_port > 0 else f"{port.get('port', 0)}"
        ports.append(f"{prefix}/{port.get('protocol', '')}")
    return [
        name(svc),
        spec.get("type", ""),
        cluster_ips[0] if cluster_ips else "<none>",
        _external_ip(svc),
        ",".join(ports) or "<none>",
        age(svc),
        format_labels(spec.get("selector")),
    ]


def _external_ip(svc: Object) -> str:
    """What a service is reached at from outside, by type (the server prints it unclipped)."""
    spec = svc.get("spec") or {}
    external = spec.get("externalIPs") or []
    kind = spec.get("type")
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = get(svc, "status", "loadBalancer", "ingress") or []
        balancers = sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})
        return ",".join(balancers + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


@printer(
    "", "Endpoints", [NAME, column("Endpoints", description=_doc("Endpoints", "subsets")), AGE]
)
def endpoints_cells(ep: Object) -> list[Any]:
    return [name(ep), _endpoints(ep.get("subsets") or []), age(ep)]


def _endpoints(subsets: list[Object]) -> str:
    """Up to three addresses (ip:port for each port), then how many more."""
    if not subsets:
        return "<none>"
    listed: list[str] = []
    for subset in subsets:
        ips = [address.get("ip", "") for address in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        if not ports:
            listed.extend(ips)
        for port in ports:
            listed.extend(_host_port(ip, port.get("port", 0)) for ip in ips)
    return capped(listed, empty="")


def _host_port(host: str, port: int) -> str:
    """net.JoinHostPort: IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@printer("", "ConfigMap", [NAME, column("Data", description=_doc("ConfigMap", "data")), AGE])
def configmap_cells(cm: Object) -> list[Any]:
    return [name(cm), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}), age(cm)]


@printer(
    "",
    "Secret",
    [
        NAME,
        column("Type", description=_doc("Secret", "type")),
        column("Data", description=_doc("Secret", "data")),
        AGE,
    ],
)
def secret_cells(secret: Object) -> list[Any]:
    return [name(secret), secret.get("type", ""), len(secret.get("data") or {}), age(secret)]


@printer(
    "",
    "ServiceAccount",
    [NAME, column("Secrets", description=_doc("ServiceAccount", "secrets")), AGE],
)
def serviceaccount_cells(sa: Object) -> list[Any]:
    return [name(sa), len(sa.get("secrets") or []), age(sa)]


@printer(
    "",
    "Node",
    [
        NAME,
        column("Status", description="The status of the node"),
        column("Roles", description="The roles of the node"),
        AGE,
        column("Version", description=_doc("NodeSystemInfo", "kubeletVersion")),
        column("Internal-IP", description=_doc("NodeStatus", "addresses"), priority=1),
        column("External-IP", description=_doc("NodeStatus", "addresses"), priority=1),
        column("OS-Image", description=_doc("NodeSystemInfo", "osImage"), priority=1),
        column("Kernel-Version", description=_doc("NodeSystemInfo", "kernelVersion"), priority=1),
        column(
            "Container-Runtime",
            description=_doc("NodeSystemInfo", "containerRuntimeVersion"),
            priority=1,
        ),
    ],
)
def node_cells(node: Object) -> list[Any]:
    info = get(node, "status", "nodeInfo") or {}
    return [
        name(node),
        _node_status(node),
        ",".join(_node_roles(node)) or "<none>",
        age(node),
        info.get("kubeletVersion", ""),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _node_status(node: Object) -> str:
    """Ready / NotReady (the last Ready condition decides), Unknown, plus SchedulingDisabled."""
    ready = None
    for cond in get(node, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond
    states = (
        ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    )
    if get(node, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: Object) -> list[str]:
    roles = set()
    for key, value in (get(node, "metadata", "labels") or {}).items():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == _ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Object, kind: str) -> str:
    for address in get(node, "status", "addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


@printer(
    "",
    "ResourceQuota",
    [
        NAME,
        column(
            "Request",
            description="Request represents a minimum amount of cpu/memory that a container "
            "may consume.",
        ),
        column(
            "Limit",
            description="Limits control the maximum amount of cpu/memory that a container may "
            "use independent of contention on the node.",
        ),
        AGE,
    ],
)
def resourcequota_cells(quota: Object) -> list[Any]:
    hard = get(quota, "status", "hard") or {}
    used = get(quota, "status", "used") or {}
    requests, limits = [], []
    for resource in sorted(hard):
        entry = f"{resource}: {quantity(used.get(resource))}/{quantity(hard[resource])}"
        pieces = resource.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(entry)
    return [name(quota), ", ".join(requests), ", ".join(limits), age(quota)]


@printer(
    "",
    "PersistentVolume",
    [
        NAME,
        column("Capacity", description=_doc("PersistentVolumeSpec", "capacity")),
        column("Access Modes", description=_doc("PersistentVolumeSpec", "accessModes")),
        column(
            "Reclaim Policy",
            description=_doc("PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
        ),
        column("Status", description=_doc("PersistentVolumeStatus", "phase")),
        column("Claim", description=_doc("PersistentVolumeSpec", "claimRef")),
        column("StorageClass", description="StorageClass of the pv"),
        column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
        column("Reason", description=_doc("PersistentVolumeStatus", "reason")),
        AGE,
        column("VolumeMode", description=_doc("PersistentVolumeSpec", "volumeMode"), priority=1),
    ],
)
def persistentvolume_cells(pv: Object) -> list[Any]:
    spec = pv.get("spec") or {}
    claim = spec.get("claimRef")
    return [
        name(pv),
        quantity((spec.get("capacity") or {}).get("storage")),
        access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        "Terminating" if deleting(pv) else get(pv, "status", "phase") or "",
        f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim is not None else "",
        _storage_class(pv),
        spec.get("volumeAttributesClassName") or "<unset>",
        get(pv, "status", "reason") or "",
        age(pv),
        spec.get("volumeMode") or "<unset>",
    ]


@printer(
    "",
    "PersistentVolumeClaim",
    [
        NAME,
        column("Status", description=_doc("PersistentVolumeClaimStatus", "phase")),
        column("Volume", description=_doc("PersistentVolumeClaimSpec", "volumeName")),
        column("Capacity", description=_doc("PersistentVolumeClaimStatus", "capacity")),
        column("Access Modes", description=_doc("PersistentVolumeClaimStatus", "accessModes")),
        column("StorageClass", description="StorageClass of the pvc"),
        column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
        AGE,
        column(
            "VolumeMode", description=_doc("PersistentVolumeClaimSpec", "volumeMode"), priority=1
        ),
    ],
)
def persistentvolumeclaim_cells(pvc: Object) -> list[Any]:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    bound = bool(spec.get("volumeName"))
    return [
        name(pvc),
        "Terminating" if deleting(pvc) else status.get("phase", ""),
        spec.get("volumeName", ""),
        quantity((status.get("capacity") or {}).get("storage")) if bound else "",
        access_modes(status.get("accessModes")) if bound else "",
        _storage_class(pvc),
        spec.get("volumeAttributesClassName") or "<unset>",
        age(pvc),
        spec.get("volumeMode") or "<unset>",
    ]


def _storage_class(volume: Object) -> str:
    """The beta storage-class annotation wins over spec.storageClassName."""
    annotations = get(volume, "metadata", "annotations") or {}
    if _STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[_STORAGE_CLASS_ANNOTATION]
    return get(volume, "spec", "storageClassName") or ""
