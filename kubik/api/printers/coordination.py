"""Printer of coordination.k8s.io/v1 Lease."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import get, name
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer


@printer(
    "coordination.k8s.io",
    "Lease",
    [
        NAME,
        column("Holder", description=doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
        AGE,
    ],
)
def lease_cells(lease: Object) -> list[Any]:
    return [name(lease), get(lease, "spec", "holderIdentity") or "", age(lease)]
