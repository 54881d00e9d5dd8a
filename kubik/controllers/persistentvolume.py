"""The PersistentVolume controller: binds claims to volumes and keeps their phases.

(upstream: pkg/controller/volume/persistentvolume, "persistentvolume-binder")

Claims:

- an unbound claim gets the volume pre-bound to it (`spec.claimRef` naming
  it), or else — unless its storage class waits for the first consumer, in
  which case the scheduler picks the volume where the pod goes — the
  smallest Available volume of its class, access modes, volume mode,
  selector and at least its size. Binding writes the volume's claimRef and
  phase Bound, then the claim's `spec.volumeName`, binding annotations and
  phase Bound (with the volume's capacity and access modes). With nothing
  to bind it stays Pending and an event says why (upstream's reasons);
- a claim bound to a volume that is gone, or taken by another claim,
  becomes Lost.

Volumes: without a claimRef, or pre-bound to a claim not yet bound, they
are Available; bound ones are Bound; when their claim is deleted they are
Released (Retain), or Failed under `Delete`, as upstream does for volumes
no plugin can delete (kubik deletes no storage). A volume the controller
bound to a claim that went to another volume is made Available again.
"""

from __future__ import annotations

import logging
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers.base import Controller, register
from kubik.volumes import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    NO_PROVISIONER,
    available_for,
    bound_to_claim,
    claim_binding_patch,
    claim_ref,
    delays_binding,
    phase,
    volume_capacity,
)

log = logging.getLogger(__name__)

Object = dict[str, Any]

PVS = builtin.lookup("", "v1", "persistentvolumes")
PVCS = builtin.lookup("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = builtin.lookup("storage.k8s.io", "v1", "storageclasses")

_CLAIM = "claim:"
_VOLUME = "volume:"


@register
class PersistentVolumeController(Controller):
    name = "persistentvolume-binder"
    component = "persistentvolume-controller"

    def setup(self) -> None:
        self.volumes = self.informers.informer(PVS)
        self.claims = self.informers.informer(PVCS)
        self.classes = self.informers.informer(STORAGE_CLASSES)
        self.claims.add_handlers(
            on_add=self._claim_changed,
            on_update=lambda old, new: self._claim_changed(new),
            on_delete=self._claim_changed,
        )
        self.volumes.add_handlers(
            on_add=self._volume_changed,
            on_update=lambda old, new: self._volume_changed(new),
            on_delete=self._volume_changed,
        )
        self.classes.add_handlers(
            on_add=lambda _: self._pending_claims(),
            on_update=lambda old, new: self._pending_claims(),
        )

    def _claim_changed(self, claim: Object) -> None:
        self.queue.add(_CLAIM + key_of(claim))
        volume = (claim.get("spec") or {}).get("volumeName")
        if volume:
            self.queue.add(_VOLUME + volume)

    def _volume_changed(self, volume: Object) -> None:
        self.queue.add(_VOLUME + key_of(volume))
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref:
            self.queue.add(f"{_CLAIM}{ref.get('namespace', '')}/{ref.get('name', '')}")
        if phase(volume) == "Available" or not ref:
            self._pending_claims()  # a volume may be free for a waiting claim

    def _pending_claims(self) -> None:
        for claim in self.claims.list():
            if not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add(_CLAIM + key_of(claim))

    async def sync(self, key: str) -> None:
        if key.startswith(_CLAIM):
            claim = self.claims.get(key[len(_CLAIM) :])
            if claim is not None and not claim["metadata"].get("deletionTimestamp"):
                await self._sync_claim(claim)
        else:
            volume = self.volumes.get(key[len(_VOLUME) :])
            if volume is not None:
                await self._sync_volume(volume)

    # --------------------------------------------------------------- claims

    async def _sync_claim(self, claim: Object) -> None:
        name = (claim.get("spec") or {}).get("volumeName")
        if not name:
            await self._sync_unbound_claim(claim)
            return
        volume = self.volumes.get(name)
        completed = ANN_BIND_COMPLETED in (claim["metadata"].get("annotations") or {})
        if volume is None:
            if completed:
                await self._claim_phase(
                    claim,
                    "Lost",
                    (
                        "Warning",
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                    ),
                )
            else:
                await self._claim_phase(claim, "Pending")
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and not bound_to_claim(volume, claim):
            if completed:
                await self._claim_phase(
                    claim,
                    "Lost",
                    (
                        "Warning",
                        "ClaimMisbound",
                        "Two claims are bound to the same volume, this one is bound incorrectly",
                    ),
                )
            return
        await self._bind(volume, claim)

    async def _sync_unbound_claim(self, claim: Object) -> None:
        class_name = (claim.get("spec") or {}).get("storageClassName") or ""
        storage_class = self.classes.get(class_name) if class_name else None
        volumes = self.volumes.list()
        volume = next((v for v in volumes if bound_to_claim(v, claim)), None)
        delayed = delays_binding(storage_class)
        if volume is None and not delayed:
            free = [v for v in volumes if available_for(v, claim)]
            volume = min(free, key=volume_capacity, default=None)
        if volume is not None:
            await self._bind(volume, claim)
            return
        annotations = claim["metadata"].get("annotations") or {}
        if delayed and ANN_SELECTED_NODE not in annotations:
            await self._claim_phase(
                claim,
                "Pending",
                (
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                ),
            )
        elif not class_name:
            await self._claim_phase(
                claim,
                "Pending",
                (
                    "Normal",
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                ),
            )
        elif storage_class is None:
            await self._claim_phase(
                claim,
                "Pending",
                (
                    "Warning",
                    "ProvisioningFailed",
                    f'storageclass.storage.k8s.io "{class_name}" not found',
                ),
            )
        elif (storage_class.get("provisioner") or NO_PROVISIONER) == NO_PROVISIONER:
            await self._claim_phase(
                claim,
                "Pending",
                (
                    "Warning",
                    "ProvisioningFailed",
                    f"no volume plugin matched name: {NO_PROVISIONER}",
                ),
            )
        else:
            await self._claim_phase(
                claim,
                "Pending",
                (
                    "Normal",
                    "ExternalProvisioning",
                    "Waiting for a volume to be created either by the external provisioner "
                    f"'{storage_class['provisioner']}' or manually by the system administrator. "
                    "If volume creation is delayed, please verify that the provisioner is running "
                    "and correctly registered.",
                ),
            )

    async def _bind(self, volume: Object, claim: Object) -> None:
        """Complete the binding on whichever side lacks it; phases Bound on both."""
        metadata = claim["metadata"]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not ref or not ref.get("uid"):
            annotations = dict(volume["metadata"].get("annotations") or {})
            if not ref:
                annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
            volume = await self.client.update(
                PVS,
                {
                    **volume,
                    "metadata": {**volume["metadata"], "annotations": annotations},
                    "spec": {**volume["spec"], "claimRef": claim_ref(claim)},
                },
            )
        if phase(volume) != "Bound":
            await self.client.update_status(
                PVS, {**volume, "status": {**(volume.get("status") or {}), "phase": "Bound"}}
            )
        annotations = metadata.get("annotations") or {}
        name = volume["metadata"]["name"]
        if (claim.get("spec") or {}).get("volumeName") != name or (
            ANN_BIND_COMPLETED not in annotations
        ):
            patch = claim_binding_patch(name)
            if (claim.get("spec") or {}).get("volumeName") == name:
                del patch["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER]
            claim = await self.client.patch(
                PVCS, metadata.get("namespace", ""), metadata["name"], patch
            )
        spec = volume.get("spec") or {}
        status = {
            **(claim.get("status") or {}),
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or [],
            "capacity": spec.get("capacity") or {},
        }
        if claim.get("status") != status:
            await self.client.update_status(PVCS, {**claim, "status": status})

    async def _claim_phase(
        self, claim: Object, new_phase: str, event: tuple[str, str, str] | None = None
    ) -> None:
        """Set the claim's phase, with an event (type, reason, message) saying why."""
        if event is not None:
            self.recorder.record(claim, *event)
        if phase(claim) == new_phase:
            return
        status = {**(claim.get("status") or {}), "phase": new_phase}
        try:
            await self.client.update_status(PVCS, {**claim, "status": status})
        except ApiError as exc:
            if not exc.not_found:
                raise

    # -------------------------------------------------------------- volumes

    async def _sync_volume(self, volume: Object) -> None:
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref or not ref.get("uid"):
            await self._volume_phase(volume, "Available")
            return
        claim = self.claims.get(f"{ref.get('namespace', '')}/{ref.get('name', '')}")
        if claim is None or claim["metadata"].get("uid") != ref["uid"]:
            await self._released(volume)
            return
        bound_name = (claim.get("spec") or {}).get("volumeName")
        name = volume["metadata"]["name"]
        if bound_name == name:
            await self._volume_phase(volume, "Bound")
        elif bound_name and ANN_BOUND_BY_CONTROLLER in (
            volume["metadata"].get("annotations") or {}
        ):
            spec = {k: v for k, v in volume["spec"].items() if k != "claimRef"}
            annotations = {
                k: v
                for k, v in (volume["metadata"].get("annotations") or {}).items()
                if k != ANN_BOUND_BY_CONTROLLER
            }
            await self.client.update(
                PVS,
                {
                    **volume,
                    "metadata": {**volume["metadata"], "annotations": annotations},
                    "spec": spec,
                },
            )

    async def _released(self, volume: Object) -> None:
        if phase(volume) in ("Released", "Failed"):
            return
        if (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            message = (
                f'error getting deleter volume plugin for volume "{volume["metadata"]["name"]}": '
                "no deletable volume plugin matched"
            )
            self.recorder.record(volume, "Warning", "VolumeFailedDelete", message)
            await self._volume_phase(volume, "Failed", message)
            return
        await self._volume_phase(volume, "Released")

    async def _volume_phase(self, volume: Object, new_phase: str, message: str = "") -> None:
        status = volume.get("status") or {}
        if status.get("phase") == new_phase:
            return
        updated = {**status, "phase": new_phase}
        if message:
            updated["message"] = message
        else:
            updated.pop("message", None)
        try:
            await self.client.update_status(PVS, {**volume, "status": updated})
        except ApiError as exc:
            if not exc.not_found:
                raise
