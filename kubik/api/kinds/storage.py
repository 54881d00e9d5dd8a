"""PersistentVolumes and PersistentVolumeClaims: defaults and validation; StorageClass defaults.

A claim asks for access modes and a storage size; once created, its spec
is fixed except the size of a bound claim (and its volumeName, set once by
the binder). A volume has a capacity, access modes and exactly one source.
"""

from __future__ import annotations

import copy
from typing import Any

from kubik.api import defaults
from kubik.api.kinds import podspec
from kubik.api.kinds.resources import quantity_value_problems
from kubik.api.quantity import Quantity, QuantityError
from kubik.api.validation import (
    Causes,
    GoValue,
    dns1123_subdomain_problems,
    each_invalid,
    forbidden,
    go_quote,
    immutable,
    invalid,
    not_supported,
    required,
    semantic_equal,
    spec_diff,
    validate_label_selector,
    validator,
)

Object = dict[str, Any]

_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_VOLUME_MODES = ("Block", "Filesystem")
_RECLAIM_POLICIES = ("Delete", "Recycle", "Retain")
_PV_SOURCES = (
    "gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd",
    "quobyte", "cinder", "cephfs", "iscsi", "fc", "flocker", "flexVolume", "azureFile",
    "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk", "scaleIO", "local",
    "storageos", "csi",
)  # fmt: skip


@defaults.defaulter("", "PersistentVolumeClaim")
def default_claim(claim: Object) -> None:
    podspec.default_claim_spec(claim.setdefault("spec", {}))


@defaults.defaulter("", "PersistentVolume")
def default_volume(volume: Object) -> None:
    spec = volume.setdefault("spec", {})
    if not spec.get("persistentVolumeReclaimPolicy"):
        spec["persistentVolumeReclaimPolicy"] = "Retain"
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    if isinstance(spec.get("hostPath"), dict) and spec["hostPath"].get("type") is None:
        spec["hostPath"]["type"] = ""
    podspec.default_resource_list(spec.get("capacity"))


@defaults.defaulter("storage.k8s.io", "StorageClass")
def default_storage_class(storage_class: Object) -> None:
    if not storage_class.get("reclaimPolicy"):
        storage_class["reclaimPolicy"] = "Delete"
    if not storage_class.get("volumeBindingMode"):
        storage_class["volumeBindingMode"] = "Immediate"


@validator("", "PersistentVolumeClaim")
def validate_claim(claim: Object, old: Object | None) -> Causes:
    spec = claim.get("spec") or {}
    causes = validate_claim_spec(spec, "spec")
    if old is not None:
        bound = (claim.get("status") or {}).get("phase") == "Bound"
        causes += _claim_update(spec, old, bound)
    return causes


def validate_claim_spec(spec: Object, path: str) -> Causes:
    causes = _access_modes(spec.get("accessModes") or [], f"{path}.accessModes", claim=True)
    causes += validate_label_selector(spec.get("selector"), f"{path}.selector")
    at = f"{path}.resources[storage]"
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if requested is None:
        causes.append(required(at))
    else:
        causes += _positive_quantity("storage", requested, at)
    class_name = spec.get("storageClassName")
    if class_name:
        causes += each_invalid(
            f"{path}.storageClassName", class_name, dns1123_subdomain_problems(class_name)
        )
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        causes.append(not_supported(f"{path}.volumeMode", mode, _VOLUME_MODES))
    for key in ("dataSource", "dataSourceRef"):
        if isinstance(spec.get(key), dict):
            causes += _data_source(spec[key], f"{path}.{key}")
    return causes


def _access_modes(modes: list[str], path: str, *, claim: bool) -> Causes:
    if not modes:
        return [required(path, "at least 1 access mode is required" if claim else "")]
    causes = [not_supported(path, m, _ACCESS_MODES) for m in modes if m not in _ACCESS_MODES]
    if "ReadWriteOncePod" in modes and any(
        m in _ACCESS_MODES and m != "ReadWriteOncePod" for m in modes
    ):
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def _positive_quantity(name: str, text: Any, path: str) -> Causes:
    try:
        value = Quantity.parse(text)
    except QuantityError as exc:
        return [invalid(path, text, str(exc))]
    if value.value <= 0:
        return [invalid(path, str(value), "must be greater than zero")]
    return quantity_value_problems(name, value, path)


def _data_source(source: Object, path: str) -> Causes:
    causes = [required(f"{path}.{key}") for key in ("name", "kind") if not source.get(key)]
    group = source.get("apiGroup") or ""
    if not group and source.get("kind") != "PersistentVolumeClaim":
        causes.append(
            invalid(
                path,
                source.get("kind", ""),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            )
        )
    if group:
        causes += each_invalid(f"{path}.apiGroup", group, dns1123_subdomain_problems(group))
    return causes


def _claim_update(spec: Object, old: Object, bound: bool) -> Causes:
    old_spec = old.get("spec") or {}
    old_size = ((old_spec.get("resources") or {}).get("requests") or {}).get("storage")
    new_size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    # What may change is put back as it was; anything else differing is forbidden.
    comparable = copy.deepcopy(spec)
    if not old_spec.get("volumeName"):  # the binder sets it, once
        comparable["volumeName"] = old_spec.get("volumeName")
    if bound:
        requests = comparable.setdefault("resources", {}).setdefault("requests", {})
        requests["storage"] = old_size
        comparable["volumeAttributesClassName"] = old_spec.get("volumeAttributesClassName")
    causes: Causes = []
    if not semantic_equal(comparable, old_spec):
        causes.append(
            forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and "
                "volumeAttributesClassName for bound claims\n" + spec_diff(old_spec, comparable),
            )
        )
    capacity = ((old.get("status") or {}).get("capacity") or {}).get("storage")
    if _smaller(new_size, old_size) and not _smaller(capacity, new_size):
        causes.append(
            forbidden(
                "spec.resources.requests.storage", "field can not be less than status.capacity"
            )
        )
    causes += immutable("volumeMode", spec.get("volumeMode"), old_spec.get("volumeMode"))
    return causes


def _smaller(a: Any, b: Any) -> bool:
    """Is quantity a below quantity b (an absent or bad one counts as zero)?"""
    return _quantity_or_zero(a) < _quantity_or_zero(b)


def _quantity_or_zero(text: Any) -> Quantity:
    try:
        return Quantity.parse(text)
    except QuantityError:
        return Quantity.parse(0)


@validator("", "PersistentVolume")
def validate_persistent_volume(volume: Object, old: Object | None) -> Causes:
    spec = volume.get("spec") or {}
    causes = _access_modes(spec.get("accessModes") or [], "spec.accessModes", claim=False)
    capacity = spec.get("capacity") or {}
    if not capacity:
        causes.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        causes.append(not_supported("spec.capacity", _go_resource_list(capacity), ("storage",)))
    for name, value in capacity.items():
        causes += _positive_quantity(name, value, f"spec.capacity[{name}]")
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in _RECLAIM_POLICIES:
        causes.append(
            not_supported("spec.persistentVolumeReclaimPolicy", policy, _RECLAIM_POLICIES)
        )
    causes += _volume_source(spec)
    class_name = spec.get("storageClassName")
    if class_name:
        causes += each_invalid(
            "spec.storageClassName", class_name, dns1123_subdomain_problems(class_name)
        )
    mode = spec.get("volumeMode")
    if mode is not None and mode not in _VOLUME_MODES:
        causes.append(not_supported("spec.volumeMode", mode, _VOLUME_MODES))
    if old is not None:
        old_spec = old.get("spec") or {}
        new_source = {k: spec.get(k) for k in _PV_SOURCES}
        old_source = {k: old_spec.get(k) for k in _PV_SOURCES}
        if not semantic_equal(new_source, old_source):
            causes.append(
                forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation\n"
                    + spec_diff(old_source, new_source),
                )
            )
        causes += immutable("volumeMode", spec.get("volumeMode"), old_spec.get("volumeMode"))
    return causes


def _go_resource_list(resources: Object) -> GoValue:
    """A core.ResourceList as Go prints it, each quantity shown by its text."""
    entries = ", ".join(f"{go_quote(k)}:{go_quote(str(v))}" for k, v in sorted(resources.items()))
    return GoValue(f"core.ResourceList{{{entries}}}")


def _volume_source(spec: Object) -> Causes:
    causes: Causes = []
    found = False
    for source in _PV_SOURCES:
        value = spec.get(source)
        if value is None:
            continue
        if found:
            causes.append(forbidden(f"spec.{source}", "may not specify more than 1 volume type"))
            continue
        found = True
        if source in ("hostPath", "local") and not value.get("path"):
            causes.append(required(f"spec.{source}.path"))
        if source == "local" and spec.get("nodeAffinity") is None:
            causes.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
        if source == "csi" and not value.get("driver"):
            causes.append(required("spec.csi.driver"))
        if source == "nfs":
            causes += [required(f"spec.nfs.{k}") for k in ("server", "path") if not value.get(k)]
    if not found:
        causes.append(required("spec", "must specify a volume type"))
    return causes
