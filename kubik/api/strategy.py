"""What the server does to an object of each kind on create, update and delete.

Upstream gives each kind a "strategy" (pkg/registry/*/strategy.go):
PrepareForCreate / PrepareForUpdate (which fields a client may set through
the main resource and which through `status`), defaulting, validation,
graceful deletion. kubik keeps the same split: the generic rules live here;
the per-kind defaults and validation live in `defaults` and `validation`.
"""

from __future__ import annotations

import copy
from typing import Any

from kubik.api import defaults, meta, validation
from kubik.api.kinds import qos
from kubik.api.objcopy import deep_copy
from kubik.api.registry import Resource

Object = dict[str, Any]

# Kinds whose status a client may set on create (upstream: nodes, and kinds
# without a status subresource, whose status is ordinary data).
_KEEP_STATUS_ON_CREATE = {"Node"}

# The status every new object of these kinds starts with.
_INITIAL_STATUS: dict[str, Object] = {
    "Pod": {"phase": "Pending"},
    "Namespace": {"phase": "Active"},
    "PersistentVolume": {"phase": "Pending"},
    "PersistentVolumeClaim": {"phase": "Pending"},
}

# Metadata only the server writes; copied from the stored object on update.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


def prepare_create(resource: Resource, obj: Object) -> None:
    """Server-owned fields of a new object, then the kind's defaults."""
    metadata = meta.metadata(obj)
    metadata["uid"] = meta.new_uid()
    metadata["creationTimestamp"] = meta.now()
    if tracks_generation(resource):
        metadata["generation"] = 1
    else:
        metadata.pop("generation", None)
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        metadata.pop(field, None)
    if resource.has_status and resource.kind not in _KEEP_STATUS_ON_CREATE:
        initial = _INITIAL_STATUS.get(resource.kind)
        if initial is not None:
            obj["status"] = copy.deepcopy(initial)
        else:
            obj.pop("status", None)
    defaults.apply(resource, obj, creating=True)
    if resource.kind == "Pod" and not resource.group:
        obj["status"]["qosClass"] = qos.qos_class(obj.get("spec") or {})


def prepare_update(resource: Resource, new: Object, old: Object) -> None:
    """An update through the main resource: status and server metadata stay as stored."""
    new_meta, old_meta = meta.metadata(new), old["metadata"]
    for field in _SERVER_METADATA:
        if field in old_meta:
            new_meta[field] = old_meta[field]
        else:
            new_meta.pop(field, None)
    if resource.has_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    defaults.apply(resource, new)
    if tracks_generation(resource) and spec_changed(new, old):
        new_meta["generation"] = old_meta.get("generation", 1) + 1


def prepare_status_update(new: Object, old: Object) -> Object:
    """An update through `status`: only the status changes (upstream resets the rest)."""
    result = deep_copy(old)
    if "status" in new:
        result["status"] = new["status"]
    else:
        result.pop("status", None)
    return result


def tracks_generation(resource: Resource) -> bool:
    """Kinds whose metadata.generation counts spec changes (controllers compare it with
    status.observedGeneration): the workload and policy kinds, CRDs and custom resources.
    Core kinds such as ConfigMaps, Services and Namespaces carry no generation."""
    return bool(resource.group) and (
        resource.has_status or not resource.schema_name or resource.kind == "NetworkPolicy"
    )


def spec_changed(new: Object, old: Object) -> bool:
    """Did anything but metadata and status change? (bumps metadata.generation)"""
    ignored = ("metadata", "status")
    return {k: v for k, v in new.items() if k not in ignored} != {
        k: v for k, v in old.items() if k not in ignored
    }


def validate_create(resource: Resource, obj: Object) -> list[dict[str, str]]:
    return validation.validate(resource, obj, old=None)


def validate_update(resource: Resource, new: Object, old: Object) -> list[dict[str, str]]:
    return validation.validate(resource, new, old=old)


def grace_period(resource: Resource, obj: Object, requested: int | None) -> int:
    """Seconds a deletion waits for the owner of the object (the kubelet) to finish.

    Only pods are deleted gracefully; a pod no node runs, or one that already
    ended, is deleted at once (upstream's pod strategy).
    """
    if resource.kind != "Pod" or resource.group:
        return 0
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(spec.get("terminationGracePeriodSeconds", 30))
