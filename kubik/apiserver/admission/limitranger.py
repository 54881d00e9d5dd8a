"""LimitRanger: a namespace's LimitRanges default and bound what pods and claims ask for.

Mutating, on pod create: every container and init container gets the
`default` limits and `defaultRequest` requests of the LimitRanges' Container
items for the resources it names none of, and the pod is annotated with what
was set (`kubernetes.io/limit-ranger`). Validating: each container's requests
and limits must lie within the Container items' `min` and `max`, and its
limit may be at most `maxLimitRequestRatio` times its request; the Pod items
bound the pod's totals likewise; PersistentVolumeClaim items bound a claim's
storage request (on create and update). Pods are not checked on update: their
containers' resources cannot change. (upstream: plugin/pkg/admission/limitranger)
"""

from __future__ import annotations

from kubik.api import defaults, quota
from kubik.api.quantity import Quantity
from kubik.api.registry import Resource
from kubik.apiserver.admission import CREATE, Attributes, Plugin, aggregate, forbidden
from kubik.apiserver.storage import Object

ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (2**63 - 1) // 1000


class LimitRanger(Plugin):
    def handles(self, operation: str, resource: Resource, subresource: str) -> bool:
        if subresource or resource.group:
            return False
        if resource.plural == "pods":
            return operation == CREATE
        return resource.plural == "persistentvolumeclaims"

    async def _limit_ranges(self, attrs: Attributes) -> list[Object]:
        return await self.stores.list("", "limitranges", attrs.namespace)

    async def admit(self, attrs: Attributes) -> None:
        if attrs.resource.plural != "pods":
            return
        limit_ranges = await self._limit_ranges(attrs)
        if limit_ranges:
            # upstream defaults the pod first: requests copied from limits are not missing
            defaults.apply(attrs.resource, attrs.obj)
        for limit_range in limit_ranges:
            _set_defaults(limit_range, attrs.obj)

    async def validate(self, attrs: Attributes) -> None:
        check = _pod_problems if attrs.resource.plural == "pods" else _claim_problems
        for limit_range in await self._limit_ranges(attrs):
            problems = check(limit_range, attrs.obj)
            if problems:
                raise forbidden(attrs, aggregate(problems))


def _items(limit_range: Object, kind: str) -> list[Object]:
    limits = (limit_range.get("spec") or {}).get("limits") or []
    return [item for item in limits if item.get("type") == kind]


# ---------------------------------------------------------------- defaults


def _set_defaults(limit_range: Object, pod: Object) -> None:
    """Fill in the Container items' defaults where a container names no value."""
    limits: dict[str, object] = {}
    requests: dict[str, object] = {}
    for item in _items(limit_range, "Container"):
        requests.update(item.get("defaultRequest") or {})
        limits.update(item.get("default") or {})
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for key, what in (("containers", "container"), ("initContainers", "init container")):
        for container in spec.get(key) or []:
            resources = container.setdefault("resources", {})
            set_limits = _fill(resources.setdefault("limits", {}), limits)
            set_requests = _fill(resources.setdefault("requests", {}), requests)
            name = container.get("name", "")
            if set_requests:
                notes.append(f"{', '.join(set_requests)} request for {what} {name}")
            if set_limits:
                notes.append(f"{', '.join(set_limits)} limit for {what} {name}")
    if notes:
        annotations = pod["metadata"].setdefault("annotations", {})
        annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _fill(values: dict, defaults: dict) -> list[str]:
    """Copy the defaults values lacks into it; the names set, sorted."""
    missing = sorted(name for name in defaults if name not in values)
    for name in missing:
        values[name] = defaults[name]
    return missing


# -------------------------------------------------------------- validation


def _pod_problems(limit_range: Object, pod: Object) -> list[str]:
    spec = pod.get("spec") or {}
    problems: list[str] = []
    for item in _items(limit_range, "Container"):
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            resources = container.get("resources") or {}
            problems += _bounds(
                item,
                "Container",
                quota.parse_list(resources.get("requests")),
                quota.parse_list(resources.get("limits")),
            )
    for item in _items(limit_range, "Pod"):
        requests = quota.pod_amounts(spec, "requests", overhead=False)
        limits = quota.pod_amounts(spec, "limits", overhead=False)
        problems += _bounds(item, "Pod", requests, limits)
    return problems


def _claim_problems(limit_range: Object, claim: Object) -> list[str]:
    """Claims are bounded by what they request; their limits are not user input."""
    requests = quota.parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    problems: list[str] = []
    for item in _items(limit_range, "PersistentVolumeClaim"):
        for key, upper in (("min", False), ("max", True)):
            for name, bound in quota.parse_list(item.get(key)).items():
                amounts = {"request": requests.get(name)}
                problems += _out_of_bounds(
                    "PersistentVolumeClaim", name, bound, amounts, upper=upper
                )
    return problems


def _bounds(item: Object, kind: str, requests: dict, limits: dict) -> list[str]:
    problems: list[str] = []
    for name, bound in quota.parse_list(item.get("min")).items():
        amounts = {"request": requests.get(name), "limit": limits.get(name)}
        problems += _out_of_bounds(kind, name, bound, amounts, upper=False)
    for name, bound in quota.parse_list(item.get("max")).items():
        amounts = {"limit": limits.get(name), "request": requests.get(name)}
        problems += _out_of_bounds(kind, name, bound, amounts, upper=True)
    for name, bound in quota.parse_list(item.get("maxLimitRequestRatio")).items():
        problems += _ratio(kind, name, bound, requests, limits)
    return problems


def _comparable(*amounts: Quantity) -> list[int]:
    """The amounts at one precision: thousandths when none is too large for it (upstream)."""
    if all(amount.int_value() <= _MAX_MILLI for amount in amounts):
        return [amount.milli_value() for amount in amounts]
    return [amount.int_value() for amount in amounts]


def _beyond(amount: Quantity, bound: Quantity, *, upper: bool) -> bool:
    observed, enforced = _comparable(amount, bound)
    return observed > enforced if upper else observed < enforced


def _out_of_bounds(
    kind: str, name: str, bound: Quantity, amounts: dict[str, Quantity | None], *, upper: bool
) -> list[str]:
    """A `min` (upper=False) or `max` bound on `amounts` ("request"/"limit" → quantity, the
    one that must be given first): why they break it, in upstream's words."""
    prefix = f"{'maximum' if upper else 'minimum'} {name} usage per {kind} is {bound}"
    required = next(iter(amounts))
    if amounts[required] is None:
        return [f"{prefix}.  No {required} is specified"]
    for what, amount in amounts.items():
        if amount is not None and _beyond(amount, bound, upper=upper):
            return [f"{prefix}, but {what} is {amount}"]
    return []


def _ratio(kind: str, name: str, bound: Quantity, requests: dict, limits: dict) -> list[str]:
    request, limit = requests.get(name), limits.get(name)
    prefix = f"{name} max limit to request ratio per {kind} is {bound}"
    if request is None or request.value == 0:
        return [f"{prefix}, but no request is specified or request is 0"]
    if limit is None or limit.value == 0:
        return [f"{prefix}, but no limit is specified or limit is 0"]
    observed_request, observed_limit = _comparable(request, limit)
    ratio = observed_limit / observed_request
    allowed = bound.int_value()
    if allowed <= _MAX_MILLI:
        ratio, allowed = ratio * 1000, bound.milli_value()
    if ratio > allowed:
        return [f"{prefix}, but provided ratio is {observed_limit / observed_request:f}"]
    return []
