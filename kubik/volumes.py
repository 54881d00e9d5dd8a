"""When a PersistentVolume can serve a PersistentVolumeClaim: the rules, and the binding marks.

Shared by the scheduler's VolumeBinding plugin (which binds claims that wait
for their first consumer, on the node chosen) and the PV controller (which
binds the others and keeps both objects' phases), so they agree, as
upstream's binder and controller share their matching code.
"""

from __future__ import annotations

from typing import Any

from kubik.api import quantity
from kubik.api.selectors import label_selector_matches

Object = dict[str, Any]

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"


def storage_bytes(text: Any) -> int:
    """A storage quantity in bytes (an absent or bad one is 0)."""
    try:
        return int(quantity.parse(text).value)
    except (quantity.QuantityError, TypeError, ValueError):
        return 0


def claim_request(claim: Object) -> int:
    spec = claim.get("spec") or {}
    return storage_bytes(((spec.get("resources") or {}).get("requests") or {}).get("storage"))


def volume_capacity(volume: Object) -> int:
    return storage_bytes(((volume.get("spec") or {}).get("capacity") or {}).get("storage"))


def phase(obj: Object) -> str:
    return (obj.get("status") or {}).get("phase") or ""


def claim_key(claim: Object) -> str:
    return f"{claim['metadata'].get('namespace', '')}/{claim['metadata']['name']}"


def delays_binding(storage_class: Object | None) -> bool:
    """Whether claims of this class wait for a pod to be scheduled before binding."""
    return (storage_class or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def bound_to_claim(volume: Object, claim: Object) -> bool:
    """Whether the volume's claimRef names this claim (and its uid, when it has one)."""
    ref = (volume.get("spec") or {}).get("claimRef")
    if not ref:
        return False
    metadata = claim["metadata"]
    if (ref.get("namespace"), ref.get("name")) != (metadata.get("namespace"), metadata["name"]):
        return False
    return not ref.get("uid") or ref.get("uid") == metadata.get("uid")


def volume_matches_claim(volume: Object, claim: Object) -> bool:
    """Class, access modes, volume mode, selector and size; not where, not whether it is free."""
    spec, claim_spec = volume.get("spec") or {}, claim.get("spec") or {}
    if (spec.get("storageClassName") or "") != (claim_spec.get("storageClassName") or ""):
        return False
    if not set(claim_spec.get("accessModes") or ()) <= set(spec.get("accessModes") or ()):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (claim_spec.get("volumeMode") or "Filesystem"):
        return False
    selector = claim_spec.get("selector")
    if selector and not label_selector_matches(selector, volume["metadata"].get("labels") or {}):
        return False
    return volume_capacity(volume) >= claim_request(claim)


def available_for(volume: Object, claim: Object) -> bool:
    """A free volume (Available, no claimRef, not being deleted) that matches the claim."""
    if volume["metadata"].get("deletionTimestamp") or phase(volume) != "Available":
        return False
    return not (volume.get("spec") or {}).get("claimRef") and volume_matches_claim(volume, claim)


def claim_ref(claim: Object) -> Object:
    """The `spec.claimRef` binding a volume to the claim."""
    metadata = claim["metadata"]
    return {
        "kind": "PersistentVolumeClaim",
        "apiVersion": "v1",
        "namespace": metadata.get("namespace", ""),
        "name": metadata["name"],
        "uid": metadata.get("uid", ""),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }


def claim_binding_patch(volume_name: str) -> Object:
    """The merge patch that completes a claim's side of a binding."""
    return {
        "metadata": {"annotations": {ANN_BIND_COMPLETED: "yes", ANN_BOUND_BY_CONTROLLER: "yes"}},
        "spec": {"volumeName": volume_name},
    }
