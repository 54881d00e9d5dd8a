"""Node and pod dicts for the scheduler's tests, shaped as the API returns them."""

from __future__ import annotations

import itertools
from typing import Any

Object = dict[str, Any]
_uids = itertools.count()

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "32Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[Object] | None = None,
    unschedulable: bool = False,
    images: list[Object] | None = None,
    extra: dict[str, str] | None = None,
) -> Object:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, **(extra or {})}
    spec: Object = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "images": images or [],
        },
    }


def container(
    name: str = "c",
    *,
    image: str = "registry.k8s.io/pause:3.10",
    requests: dict[str, str] | None = None,
    ports: list[Object] | None = None,
    **extra: Any,
) -> Object:
    out: Object = {"name": name, "image": image, **extra}
    if requests is not None:
        out["resources"] = {"requests": requests}
    if ports:
        out["ports"] = ports
    return out


def pod(
    name: str,
    *,
    namespace: str = "default",
    requests: dict[str, str] | None = None,
    containers: list[Object] | None = None,
    priority: int | None = None,
    **spec: Any,
) -> Object:
    body: Object = {
        "schedulerName": "default-scheduler",
        "containers": containers or [container(requests=requests)],
        **spec,
    }
    if priority is not None:
        body["priority"] = priority
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{next(_uids)}"},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def labelled(name: str, labels: dict, namespace: str = "default", **spec: Any) -> Object:
    obj = pod(name, namespace=namespace, **spec)
    obj["metadata"]["labels"] = labels
    return obj


def on(obj: Object, node_name: str) -> Object:
    """The pod as bound to `node_name`."""
    return {**obj, "spec": {**obj["spec"], "nodeName": node_name}}


def priority_class(name: str, value: int, **fields: Any) -> Object:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        **fields,
    }


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> Object:
    return {"key": key, "value": value, "effect": effect}
