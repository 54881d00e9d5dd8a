"""A pod's quality-of-service class, as upstream's pod strategy stores it on create.

BestEffort: no container asks for or limits CPU or memory. Guaranteed: every
container limits both, and asks for exactly its limits (an unset request
counts as equal to the limit, as defaulting makes it). Burstable: the rest.
(upstream: pkg/apis/core/helper/qos)
"""

from __future__ import annotations

from typing import Any

from kubik.api import quantity

_TRACKED = ("cpu", "memory")


def _amounts(values: dict[str, Any] | None) -> dict[str, quantity.Quantity]:
    amounts = {}
    for name in _TRACKED:
        if name in (values or {}):
            try:
                amount = quantity.parse(values[name])
            except (quantity.QuantityError, TypeError):
                continue
            if amount.value > 0:
                amounts[name] = amount
    return amounts


def qos_class(spec: dict[str, Any]) -> str:
    containers = list(spec.get("initContainers") or []) + list(spec.get("containers") or [])
    anything = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = _amounts(resources.get("requests"))
        limits = _amounts(resources.get("limits"))
        anything = anything or bool(requests) or bool(limits)
        if set(limits) != set(_TRACKED):
            guaranteed = False
        for name, amount in requests.items():
            if name not in limits or limits[name].value != amount.value:
                guaranteed = False
    if not anything:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
