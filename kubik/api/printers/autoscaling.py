"""Printer of autoscaling/v2 HorizontalPodAutoscaler.

TARGETS pairs each metric the autoscaler follows with what it last
measured (status.currentMetrics, in the same order): `current/target`,
"(avg)" for per-pod averages of object and external metrics, `<unknown>`
before a measurement, and at most two metrics before "+ N more...".
"""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import get, name, number, quantity
from kubik.api.tables import AGE, NAME, Object, age, column, doc, printer

_SPEC = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec"
_SHOWN = 2
_FIELDS = {
    "External": "external",
    "Pods": "pods",
    "Object": "object",
    "Resource": "resource",
    "ContainerResource": "containerResource",
}


@printer(
    "autoscaling",
    "HorizontalPodAutoscaler",
    [
        NAME,
        column("Reference", description=doc(_SPEC, "scaleTargetRef")),
        column("Targets", description=doc(_SPEC, "metrics")),
        column("MinPods", description=doc(_SPEC, "minReplicas")),
        column("MaxPods", description=doc(_SPEC, "maxReplicas")),
        column(
            "Replicas",
            description=doc(
                "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas"
            ),
        ),
        AGE,
    ],
)
def hpa_cells(hpa: Object) -> list[Any]:
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    minimum = spec.get("minReplicas")
    return [
        name(hpa),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _targets(spec.get("metrics") or [], get(hpa, "status", "currentMetrics") or []),
        "<unset>" if minimum is None else str(minimum),
        number(spec.get("maxReplicas")),
        number(get(hpa, "status", "currentReplicas")),
        age(hpa),
    ]


def _targets(specs: list[Object], statuses: list[Object]) -> str:
    if not specs:
        return "<none>"
    shown = []
    for index, metric in enumerate(specs):
        field = _FIELDS.get(metric.get("type", ""))
        if field is None:
            shown.append("<unknown type>")
            continue
        status = statuses[index] if index < len(statuses) else {}
        shown.append(_target(field, metric.get(field) or {}, status.get(field)))
    text = ", ".join(shown[:_SHOWN])
    if len(shown) > _SHOWN:
        return f"{text} + {len(shown) - _SHOWN} more..."
    return text


def _target(field: str, source: Object, measured: Object | None) -> str:
    """One metric as current/target, as upstream words each source type."""
    target = source.get("target") or {}
    current = (measured or {}).get("current") or {}
    if field == "pods":
        now = _quantity(current.get("averageValue")) if measured is not None else "<unknown>"
        return f"{now}/{_quantity(target.get('averageValue'))}"
    if field in ("object", "external"):
        if target.get("averageValue") is not None:
            now = current.get("averageValue") if measured is not None else None
            shown = "<unknown>" if now is None else _quantity(now)
            return f"{shown}/{_quantity(target['averageValue'])} (avg)"
        now = _quantity(current.get("value")) if measured is not None else "<unknown>"
        return f"{now}/{_quantity(target.get('value'))}"
    resource = source.get("name", "")
    if target.get("averageValue") is not None:
        now = _quantity(current.get("averageValue")) if measured is not None else "<unknown>"
        return f"{resource}: {now}/{_quantity(target['averageValue'])}"
    utilization = current.get("averageUtilization") if measured is not None else None
    now = "<unknown>" if utilization is None else f"{utilization}%"
    goal = target.get("averageUtilization")
    return f"{resource}: {now}/{'<auto>' if goal is None else f'{goal}%'}"


def _quantity(value: Any) -> str:
    """A quantity that may be absent: Go prints a nil *Quantity as "<nil>"."""
    return "<nil>" if value is None else quantity(value)
