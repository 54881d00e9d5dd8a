"""Validation of resource requirements and quantities (upstream's ValidateResourceRequirements).

A container may ask for the standard resources (cpu, memory,
ephemeral-storage, huge pages) and for extended ones named by a domain
(`example.com/gpu`); requests may not exceed limits, and must equal them for
resources that cannot be overcommitted (extended resources, huge pages).
"""

from __future__ import annotations

from typing import Any

from kubik.api import quantity
from kubik.api.validation import (
    Causes,
    each_invalid,
    forbidden,
    invalid,
    qualified_name_problems,
    required,
)

Object = dict[str, Any]

_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_COUNTED_RESOURCES = (
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
)  # fmt: skip
_STANDARD_RESOURCES = (
    *_CONTAINER_RESOURCES, "storage", "requests.storage", *_COUNTED_RESOURCES,
    *(f"{scope}.{name}" for scope in ("requests", "limits") for name in _CONTAINER_RESOURCES),
)  # fmt: skip


def _resource_name_problems(name: str) -> list[str]:
    """A container resource: a standard one (cpu, memory…) or a domain-qualified extended one."""
    problems = qualified_name_problems(name)
    if "/" not in name:
        if not problems and name not in _STANDARD_RESOURCES and not _huge_pages(name):
            problems.append("must be a standard resource type or fully qualified")
        if name not in _CONTAINER_RESOURCES and not _huge_pages(name):
            problems.append("must be a standard resource for containers")
    elif not _is_native(name) and not _is_extended(name):
        problems.append("doesn't follow extended resource name standard")
    return problems


def _huge_pages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    """A device plugin's resource: domain-qualified, not native, and countable in quota."""
    if _is_native(name) or name.startswith("requests."):
        return False
    return not qualified_name_problems("requests." + name)


def _overcommit_allowed(name: str) -> bool:
    """Requests may be below limits only for native resources other than huge pages."""
    return _is_native(name) and not _huge_pages(name)


def _is_integer_resource(name: str) -> bool:
    return name in _COUNTED_RESOURCES or _is_extended(name)


def validate_resources(resources: Object, path: str) -> Causes:
    """A container's requests and limits (upstream's ValidateResourceRequirements)."""
    causes: Causes = []
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    parsed: dict[str, dict[str, quantity.Quantity]] = {"limits": {}, "requests": {}}
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, text in values.items():
            at = f"{path}.{kind}[{name}]"
            causes += each_invalid(at, name, _resource_name_problems(name))
            try:
                value = quantity.parse(text)
            except quantity.QuantityError as exc:
                causes.append(invalid(at, text, str(exc)))
                continue
            parsed[kind][name] = value
            causes += quantity_value_problems(name, value, at)
    cpu_or_memory = any(n in ("cpu", "memory") for n in (*limits, *requests))
    huge_pages = any(_huge_pages(n) for n in (*limits, *requests))
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None:
            if request != limit and not _overcommit_allowed(name):
                causes.append(
                    invalid(
                        f"{path}.requests",
                        str(request),
                        f"must be equal to {name} limit of {limit}",
                    )
                )
            elif request > limit:
                causes.append(
                    invalid(
                        f"{path}.requests",
                        str(request),
                        f"must be less than or equal to {name} limit of {limit}",
                    )
                )
        elif name not in limits and not _overcommit_allowed(name):
            causes.append(
                required(f"{path}.limits", "Limit must be set for non overcommitable resources")
            )
    if huge_pages and not cpu_or_memory:
        causes.append(forbidden(path, "HugePages require cpu or memory"))
    return causes


def quantity_value_problems(name: str, value: quantity.Quantity, path: str) -> Causes:
    """Upstream's ValidateResourceQuantityValue: not negative, whole for countable resources."""
    if value.value < 0:
        return [invalid(path, str(value), "must be greater than or equal to 0")]
    if _is_integer_resource(name) and value.value.denominator != 1:
        return [invalid(path, str(value), "must be an integer")]
    return []
