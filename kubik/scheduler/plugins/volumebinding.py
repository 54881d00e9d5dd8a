"""VolumeBinding: a pod with PersistentVolumeClaims goes only where its volumes can be.

As upstream's plugin and its volume binder, for statically made volumes:

- pre_filter sorts the pod's claims (`persistentVolumeClaim` volumes and
  generic ephemeral ones): a claim that does not exist, or is being
  deleted, makes the pod unschedulable; so does a claim that is neither
  bound nor of a `WaitForFirstConsumer` storage class ("pod has unbound
  immediate PersistentVolumeClaims": the PV controller binds those first);
- filter: a claim bound to a volume limits the pod to the nodes the
  volume's `nodeAffinity` selects (a local or hostPath volume); a
  claim waiting for its first consumer needs, on the node, an available
  volume of its class, access modes, volume mode, selector and at least its
  size (the smallest such one is chosen; two claims of a pod never get the
  same one), or a class with a provisioner whose `allowedTopologies` allow
  the node;
- reserve assumes the chosen volumes, so the next pods do not pick them
  while the API catches up; unreserve gives them back;
- pre_bind binds them: the volume's `spec.claimRef` (the binder's part),
  then the claim's `spec.volumeName` and binding annotations (the part the
  PV controller would otherwise complete). A claim left to a provisioner
  gets the `volume.kubernetes.io/selected-node` annotation; kubik waits for
  no provisioner.

Changes to claims, volumes, storage classes and nodes retry the pods it rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    Code,
    CycleState,
    Framework,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo
from kubik.scheduler.plugins.nodeaffinity import NodeSelector
from kubik.volumes import (
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    NO_PROVISIONER,
    available_for,
    bound_to_claim,
    claim_binding_patch,
    claim_key,
    claim_ref,
    claim_request,
    delays_binding,
    volume_capacity,
)

Object = dict[str, Any]

PVCS = builtin.lookup("", "v1", "persistentvolumeclaims")
PVS = builtin.lookup("", "v1", "persistentvolumes")
STORAGE_CLASSES = builtin.lookup("storage.k8s.io", "v1", "storageclasses")

PVC_ADD = "PersistentVolumeClaim/Add"
PVC_UPDATE = "PersistentVolumeClaim/Update"
PV_ADD = "PersistentVolume/Add"
PV_UPDATE = "PersistentVolume/Update"
STORAGE_CLASS_ADD = "StorageClass/Add"
STORAGE_CLASS_UPDATE = "StorageClass/Update"

NODE_CONFLICT = "node(s) had volume node affinity conflict"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"

_KEY = "PreFilterVolumeBinding"
_SKIP = Status(Code.SKIP)


def volume_fits_node(volume: Object, node: NodeInfo) -> bool:
    required = (((volume.get("spec") or {}).get("nodeAffinity")) or {}).get("required")
    return required is None or NodeSelector(required).matches(node)


def topology_allows(storage_class: Object, node: NodeInfo) -> bool:
    """A class's `allowedTopologies` (terms ORed, label values ANDed) admit the node."""
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return True
    for term in terms:
        expressions = term.get("matchLabelExpressions") or []
        if all(node.labels.get(e.get("key")) in (e.get("values") or ()) for e in expressions):
            return True
    return False


def claim_names(pod: Object) -> list[str]:
    """The claims the pod's volumes use (a generic ephemeral volume's is `<pod>-<volume>`)."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if volume.get("persistentVolumeClaim"):
            names.append(volume["persistentVolumeClaim"].get("claimName", ""))
        elif volume.get("ephemeral"):
            names.append(f"{pod['metadata']['name']}-{volume.get('name', '')}")
    return names


@dataclass(slots=True)
class _PodVolumes:
    """One pod's claims, sorted; and, per node filtered, what its claims to bind would get."""

    bound: list[tuple[Object, Object | None]]  # (claim, its volume; None if missing)
    to_bind: list[Object]  # claims waiting for their first consumer, smallest request first
    classes: dict[str, Object]  # storage class by name, for the claims to bind
    by_node: dict[str, list[tuple[Object, Object | None]]] = field(default_factory=dict)


@register
class VolumeBinding:
    name = "VolumeBinding"
    events = frozenset(
        {
            NODE_ADD,
            NODE_UPDATE,
            PVC_ADD,
            PVC_UPDATE,
            PV_ADD,
            PV_UPDATE,
            STORAGE_CLASS_ADD,
            STORAGE_CLASS_UPDATE,
        }
    )

    def __init__(self, handle: Framework) -> None:
        self._handle = handle
        self._assumed: dict[str, str] = {}  # volume name → claim key it is reserved for
        informers = handle.informers
        self._claims = self._volumes = self._classes = None
        if informers is None:
            return
        self._claims = informers.informer(PVCS)
        self._volumes = informers.informer(PVS)
        self._classes = informers.informer(STORAGE_CLASSES)
        self._claims.add_handlers(
            on_add=lambda claim: self._move(PVC_ADD),
            on_update=lambda old, new: self._move(PVC_UPDATE),
        )
        self._volumes.add_handlers(
            on_add=lambda volume: self._move(PV_ADD), on_update=self._volume_updated
        )
        self._classes.add_handlers(
            on_add=lambda storage_class: self._move(STORAGE_CLASS_ADD),
            on_update=lambda old, new: self._move(STORAGE_CLASS_UPDATE),
        )

    def _move(self, event: str) -> None:
        """Give the pods waiting on volumes another chance."""
        if self._handle.queue is not None:
            self._handle.queue.move_all_to_active_or_backoff(event)

    def _volume_updated(self, old: Object, new: Object) -> None:
        if (new.get("spec") or {}).get("claimRef"):
            self._assumed.pop(new["metadata"]["name"], None)  # the API shows the binding now
        self._move(PV_UPDATE)

    # ------------------------------------------------------------ filtering

    def pre_filter(self, state: CycleState, pod: Object) -> Status | None:
        names = claim_names(pod)
        if not names:
            return _SKIP
        if self._claims is None:
            return Status(Code.ERROR, "the volume binder has no informers")
        namespace = pod["metadata"].get("namespace", "")
        bound: list[tuple[Object, Object | None]] = []
        to_bind: list[Object] = []
        classes: dict[str, Object] = {}
        immediate = False
        for name in names:
            claim = self._claims.get(f"{namespace}/{name}")
            if claim is None:
                return Status(
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                    f'persistentvolumeclaim "{name}" not found',
                )
            if claim["metadata"].get("deletionTimestamp"):
                return Status(
                    Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                    f'persistentvolumeclaim "{name}" is being deleted',
                )
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name:
                bound.append((claim, self._volumes.get(volume_name)))
                continue
            class_name = (claim.get("spec") or {}).get("storageClassName") or ""
            storage_class = self._classes.get(class_name) if class_name else None
            if delays_binding(storage_class):
                to_bind.append(claim)
                classes[class_name] = storage_class
            else:
                immediate = True
        if immediate:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, UNBOUND_IMMEDIATE)
        to_bind.sort(key=claim_request)
        state[_KEY] = _PodVolumes(bound, to_bind, classes)
        return None

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        volumes: _PodVolumes = state[_KEY]
        reasons = []
        for _, volume in volumes.bound:
            if volume is None:
                reasons.append(PV_NOT_EXIST)
                break
            if not volume_fits_node(volume, node):
                reasons.append(NODE_CONFLICT)
                break
        if volumes.to_bind:
            chosen = self._find_volumes(volumes, node)
            if chosen is None:
                reasons.append(BIND_CONFLICT)
            else:
                volumes.by_node[node.name] = chosen
        if reasons:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons)
        return None

    def _find_volumes(
        self, volumes: _PodVolumes, node: NodeInfo
    ) -> list[tuple[Object, Object | None]] | None:
        """For each claim to bind, the smallest free volume that fits it on the node
        (None: a provisioner will make one); None when some claim gets nothing."""
        taken: set[str] = set()
        chosen: list[tuple[Object, Object | None]] = []
        for claim in volumes.to_bind:
            key = claim_key(claim)
            best: Object | None = None
            for volume in self._volumes.list():
                name = volume["metadata"]["name"]
                if name in taken or volume["metadata"].get("deletionTimestamp"):
                    continue
                if not volume_fits_node(volume, node):
                    continue
                if bound_to_claim(volume, claim):
                    best = volume
                    break
                if self._assumed.get(name, key) != key or not available_for(volume, claim):
                    continue
                if best is None or volume_capacity(volume) < volume_capacity(best):
                    best = volume
            if best is not None:
                taken.add(best["metadata"]["name"])
                chosen.append((claim, best))
                continue
            class_name = (claim.get("spec") or {}).get("storageClassName") or ""
            storage_class = volumes.classes.get(class_name) or {}
            provisioner = storage_class.get("provisioner") or NO_PROVISIONER
            if provisioner == NO_PROVISIONER or not topology_allows(storage_class, node):
                return None
            chosen.append((claim, None))
        return chosen

    # -------------------------------------------------------- reserve, bind

    def reserve(self, state: CycleState, pod: Object, node: str) -> Status | None:
        volumes: _PodVolumes | None = state.get(_KEY)
        if volumes is None or not volumes.to_bind:
            return None
        chosen = volumes.by_node.get(node)
        if chosen is None:
            return Status(Code.ERROR, f"no volume decisions were made for node {node}")
        for claim, volume in chosen:
            if volume is not None:
                self._assumed[volume["metadata"]["name"]] = claim_key(claim)
        return None

    def unreserve(self, state: CycleState, pod: Object, node: str) -> None:
        volumes: _PodVolumes | None = state.get(_KEY)
        if volumes is None:
            return
        for claim, volume in volumes.by_node.get(node) or []:
            if volume is None:
                continue
            name = volume["metadata"]["name"]
            if self._assumed.get(name) == claim_key(claim):
                del self._assumed[name]

    async def pre_bind(self, state: CycleState, pod: Object, node: str) -> Status | None:
        volumes: _PodVolumes | None = state.get(_KEY)
        if volumes is None or not volumes.to_bind:
            return _SKIP
        client = self._handle.client
        try:
            for claim, volume in volumes.by_node.get(node) or []:
                metadata = claim["metadata"]
                namespace, name = metadata.get("namespace", ""), metadata["name"]
                if volume is None:
                    patch = {"metadata": {"annotations": {ANN_SELECTED_NODE: node}}}
                    await client.patch(PVCS, namespace, name, patch)
                    continue
                await self._claim_volume(volume, claim)
                await client.patch(
                    PVCS, namespace, name, claim_binding_patch(volume["metadata"]["name"])
                )
        except ApiError as exc:
            return Status(Code.ERROR, f"binding volumes: {exc}")
        return None

    async def _claim_volume(self, volume: Object, claim: Object) -> None:
        """Set the volume's claimRef, unless it already names the claim."""
        current = self._volumes.get(volume["metadata"]["name"]) or volume
        if bound_to_claim(current, claim) and current["spec"]["claimRef"].get("uid"):
            return
        updated = {
            **current,
            "metadata": {
                **current["metadata"],
                "annotations": {
                    **(current["metadata"].get("annotations") or {}),
                    ANN_BOUND_BY_CONTROLLER: "yes",
                },
            },
            "spec": {**current["spec"], "claimRef": claim_ref(claim)},
        }
        await self._handle.client.update(PVS, updated)
