"""Printer of storage.k8s.io/v1 StorageClass."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import name
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_CLASS = "io.k8s.api.storage.v1.StorageClass"
_DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


@printer(
    "storage.k8s.io",
    "StorageClass",
    [
        NAME,
        column("Provisioner", description=doc(_CLASS, "provisioner")),
        column("ReclaimPolicy", description=doc(_CLASS, "reclaimPolicy")),
        column("VolumeBindingMode", description=doc(_CLASS, "volumeBindingMode")),
        column("AllowVolumeExpansion", description=doc(_CLASS, "allowVolumeExpansion")),
        AGE,
    ],
)
def storageclass_cells(sc: Object) -> list[Any]:
    annotations = sc["metadata"].get("annotations") or {}
    default = any(annotations.get(key) == "true" for key in _DEFAULT_ANNOTATIONS)
    return [
        name(sc) + (" (default)" if default else ""),
        sc.get("provisioner") or "",
        sc.get("reclaimPolicy") or "Delete",
        sc.get("volumeBindingMode") or "Immediate",
        bool(sc.get("allowVolumeExpansion")),
        age(sc),
    ]
