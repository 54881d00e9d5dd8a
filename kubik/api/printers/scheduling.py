"""Printer of scheduling.k8s.io/v1 PriorityClass."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import name, number
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_CLASS = "io.k8s.api.scheduling.v1.PriorityClass"


@printer(
    "scheduling.k8s.io",
    "PriorityClass",
    [
        NAME,
        column("Value", "integer", doc(_CLASS, "value")),
        column("Global-Default", "boolean", doc(_CLASS, "globalDefault")),
        AGE,
        # upstream shows this one by default too: it is declared without a priority
        column("PreemptionPolicy", description=doc(_CLASS, "preemptionPolicy")),
    ],
)
def priorityclass_cells(pc: Object) -> list[Any]:
    return [
        name(pc),
        number(pc.get("value")),
        bool(pc.get("globalDefault")),
        age(pc),
        pc.get("preemptionPolicy") or "",
    ]
