"""Printer of policy/v1 PodDisruptionBudget."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import get, name, number
from kubik.api.tables import AGE, NAME, Object, age, column, printer


@printer(
    "policy",
    "PodDisruptionBudget",
    [
        NAME,
        column("Min Available", description="The minimum number of pods that must be available."),
        column(
            "Max Unavailable", description="The maximum number of pods that may be unavailable."
        ),
        column(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
)
def pdb_cells(pdb: Object) -> list[Any]:
    spec = pdb.get("spec") or {}
    return [
        name(pdb),
        _int_or_string(spec.get("minAvailable")),
        _int_or_string(spec.get("maxUnavailable")),
        number(get(pdb, "status", "disruptionsAllowed")),
        age(pdb),
    ]


def _int_or_string(value: Any) -> str:
    """An IntOrString as text (42 or "50%"), "N/A" when unset."""
    return "N/A" if value is None else str(value)
