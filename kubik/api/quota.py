"""What an object uses of a ResourceQuota's resources (upstream's pkg/quota/v1 evaluators).

The ResourceQuota admission plugin charges a write with it before the object is
stored, and the resourcequota controller recounts a namespace with it; both
measure here so that they agree. An evaluator answers, for one resource:
which quota resource names it counts (`counts`), whether a quota's scopes
select an object (`matches_scopes`), and the object's `usage`.

Counted names (upstream's): pods count `pods`, `count/pods` and their compute
resources (`cpu` = `requests.cpu`, `limits.cpu`, memory and
ephemeral-storage alike, huge pages and extended resources under
`requests.`); services count `services`, `services.nodeports`,
`services.loadbalancers`; claims count `persistentvolumeclaims` and
`requests.storage` (also per storage class); every resource counts
`count/<plural>.<group>` (`count/<plural>` in the core group), and configmaps,
secrets, replicationcontrollers and resourcequotas their bare plural too.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from typing import Any

from kubik.api import quantity
from kubik.api.kinds import qos
from kubik.api.quantity import Quantity

Object = dict[str, Any]
Usage = dict[str, Quantity]

ONE = quantity.parse("1")
ZERO = quantity.parse("0")
_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_POD_NAMES = {
    "pods", "count/pods", *_COMPUTE,
    *(f"{kind}.{name}" for kind in ("requests", "limits") for name in _COMPUTE),
}  # fmt: skip
_HUGE_PAGES = ("hugepages-", "requests.hugepages-", "limits.hugepages-")
_SERVICE_NAMES = {"services", "count/services", "services.nodeports", "services.loadbalancers"}
_CLAIM_NAMES = {"persistentvolumeclaims", "count/persistentvolumeclaims", "requests.storage"}
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_LEGACY_COUNTS = ("configmaps", "secrets", "replicationcontrollers", "resourcequotas")
# Resources whose every container must name them once a quota limits them (upstream's
# backward-compatible rule for cpu and memory only).
_MUST_DECLARE = {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"}


# ------------------------------------------------------------ resource lists


def parse_list(values: Mapping[str, Any] | None) -> Usage:
    """A ResourceList's quantities; values that are not quantities are left out."""
    amounts: Usage = {}
    for name, text in (values or {}).items():
        try:
            amounts[name] = quantity.parse(text)
        except (quantity.QuantityError, TypeError):
            continue
    return amounts


def add(total: Usage, more: Usage) -> Usage:
    """The sum by name. The sum keeps the format of the left side, unless that is zero
    (upstream's Quantity.Add): "0" plus "1Gi" is "1Gi", not "1073741824"."""
    result = dict(total)
    for name, amount in more.items():
        base = result.get(name)
        if base is None or base.value == 0:
            result[name] = Quantity((base.value if base else 0) + amount.value, amount.format)
        else:
            result[name] = base + amount
    return result


def subtract_floor(new: Usage, old: Usage) -> Usage:
    """new - old by name, never below zero (what an update adds to usage)."""
    result: Usage = {}
    for name, amount in new.items():
        less = amount - old[name] if name in old else amount
        result[name] = less if less.value > 0 else ZERO
    return result


def mask(values: Usage, names: Iterable[str]) -> Usage:
    keep = set(names)
    return {name: amount for name, amount in values.items() if name in keep}


def pretty(values: Usage) -> str:
    """`cpu=1,pods=2`: sorted by name, as upstream's quota messages print a ResourceList."""
    return ",".join(f"{name}={values[name]}" for name in sorted(values))


def text_list(values: Usage) -> dict[str, str]:
    return {name: str(amount) for name, amount in values.items()}


# ----------------------------------------------------------------- pods


def pod_amounts(spec: Object, field: str, *, overhead: bool) -> Usage:
    """The pod's requests or limits (`field`): its containers and sidecars added up, or the
    largest init container (with the sidecars started before it) when that is more;
    optionally plus the runtime's overhead (upstream's PodRequests/PodLimits)."""
    total: Usage = {}
    for container in spec.get("containers") or []:
        total = add(total, _container_amounts(container, field))
    sidecars: Usage = {}
    for container in spec.get("initContainers") or []:
        amounts = _container_amounts(container, field)
        if container.get("restartPolicy") == "Always":
            total = add(total, amounts)
            sidecars = add(sidecars, amounts)
            continue
        for name, peak in add(amounts, sidecars).items():
            if name not in total or peak > total[name]:
                total[name] = peak
    if overhead:
        total = add(total, parse_list(spec.get("overhead")))
    return total


def _container_amounts(container: Object, field: str) -> Usage:
    return parse_list((container.get("resources") or {}).get(field))


def _extended(name: str) -> bool:
    """A device plugin's resource (example.com/gpu): domain-qualified, not kubernetes.io's."""
    return "/" in name and "kubernetes.io/" not in name


def compute_usage(requests: Usage, limits: Usage) -> Usage:
    """A pod's (or one container's) compute resources under their quota names."""
    usage: Usage = {"pods": ONE}
    for name in _COMPUTE:
        if name in requests:
            usage[name] = usage[f"requests.{name}"] = requests[name]
        if name in limits:
            usage[f"limits.{name}"] = limits[name]
    for name, amount in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = usage[f"requests.{name}"] = amount
        elif _extended(name):
            usage[f"requests.{name}"] = amount
    for name, amount in limits.items():
        if name.startswith("hugepages-"):
            usage[f"limits.{name}"] = amount
    return usage


def pod_counts(obj: Object) -> bool:
    """Does the pod still count against quota? Not once it ended, nor once its deletion's
    grace period is over (upstream's QuotaV1Pod)."""
    if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    metadata = obj.get("metadata") or {}
    deleted, grace = metadata.get("deletionTimestamp"), metadata.get("deletionGracePeriodSeconds")
    if deleted and grace is not None:
        moment = datetime.datetime.fromisoformat(deleted.replace("Z", "+00:00"))
        deadline = moment + datetime.timedelta(seconds=grace)
        return datetime.datetime.now(datetime.UTC) <= deadline
    return True


class Evaluator:
    """Counts one resource's objects: by default only the object itself (`count/...`)."""

    def __init__(self, group: str, plural: str) -> None:
        self.group, self.plural = group, plural
        count = f"count/{plural}.{group}" if group else f"count/{plural}"
        self._names = {count} | ({plural} if not group and plural in _LEGACY_COUNTS else set())

    def handles(self, operation: str) -> bool:
        """Object counts change only when objects are made (deletes are the controller's)."""
        return operation == "CREATE"

    def counts(self, names: Iterable[str]) -> list[str]:
        """Which of a quota's resource names this evaluator measures."""
        return sorted(name for name in names if self._counts(name))

    def _counts(self, name: str) -> bool:
        return name in self._names

    def matches_scopes(self, quota: Object, obj: Object) -> bool:
        """Scopes select pods only: a scoped quota counts nothing else."""
        return not scope_requirements(quota)

    def usage(self, obj: Object) -> Usage:
        return {name: ONE for name in self._names}

    def constraints(self, required: Iterable[str], obj: Object) -> str:
        """Why the object may not be admitted under a quota limiting `required` ("" if it may)."""
        return ""


class PodEvaluator(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "pods")

    def _counts(self, name: str) -> bool:
        if name in _POD_NAMES or name.startswith(_HUGE_PAGES):
            return True
        return name.startswith("requests.") and _extended(name.removeprefix("requests."))

    def usage(self, obj: Object) -> Usage:
        usage: Usage = {"count/pods": ONE}
        if not pod_counts(obj):
            return usage
        spec = obj.get("spec") or {}
        requests = pod_amounts(spec, "requests", overhead=True)
        limits = pod_amounts(spec, "limits", overhead=True)
        return add(usage, compute_usage(requests, limits))

    def matches_scopes(self, quota: Object, obj: Object) -> bool:
        return all(_pod_in_scope(obj, *requirement) for requirement in scope_requirements(quota))

    def constraints(self, required: Iterable[str], obj: Object) -> str:
        wanted = set(required) & _MUST_DECLARE
        if not wanted:
            return ""
        spec = obj.get("spec") or {}
        missing: dict[str, set[str]] = {}
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            declared = compute_usage(
                _container_amounts(container, "requests"), _container_amounts(container, "limits")
            )
            for name in wanted - set(declared):
                missing.setdefault(name, set()).add(container.get("name", ""))
        if not missing:
            return ""
        reasons = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(reasons)


class ServiceEvaluator(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "services")

    def handles(self, operation: str) -> bool:
        return operation in ("CREATE", "UPDATE")  # a type change may add node ports

    def _counts(self, name: str) -> bool:
        return name in _SERVICE_NAMES

    def usage(self, obj: Object) -> Usage:
        spec = obj.get("spec") or {}
        usage: Usage = {"services": ONE, "count/services": ONE}
        ports = spec.get("ports") or []
        kind = spec.get("type") or "ClusterIP"
        if kind == "NodePort":
            usage["services.nodeports"] = quantity.parse(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                ports = [port for port in ports if port.get("nodePort")]
            usage["services.nodeports"] = quantity.parse(len(ports))
            usage["services.loadbalancers"] = ONE
        return usage


class ClaimEvaluator(Evaluator):
    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")

    def handles(self, operation: str) -> bool:
        return operation in ("CREATE", "UPDATE")  # claims may grow

    def _counts(self, name: str) -> bool:
        return name in _CLAIM_NAMES or (
            _STORAGE_CLASS_SUFFIX in name
            and name.endswith(("/requests.storage", "/persistentvolumeclaims"))
        )

    def usage(self, obj: Object) -> Usage:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        usage: Usage = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        storage_class = spec.get("storageClassName") or (
            (obj.get("metadata") or {}).get("annotations") or {}
        ).get("volume.beta.kubernetes.io/storage-class", "")
        if storage_class:
            usage[f"{storage_class}{_STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
        storage = parse_list((spec.get("resources") or {}).get("requests")).get("storage")
        allocated = parse_list(status.get("allocatedResources")).get("storage")
        if allocated is not None and (storage is None or allocated > storage):
            storage = allocated
        if storage is not None:
            usage["requests.storage"] = storage
            if storage_class:
                usage[f"{storage_class}{_STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return usage


_SPECIAL: dict[str, type[Evaluator]] = {
    "pods": PodEvaluator,
    "services": ServiceEvaluator,
    "persistentvolumeclaims": ClaimEvaluator,
}


@functools.cache
def evaluator(group: str, plural: str) -> Evaluator:
    """The evaluator of a resource (evaluators keep no state: one each is enough)."""
    special = _SPECIAL.get(plural) if not group else None
    return special() if special else Evaluator(group, plural)


# --------------------------------------------------------------- scopes


def scope_requirements(quota: Object) -> list[tuple[str, str, list[str]]]:
    """(scope, operator, values) from spec.scopes (each: Exists) and spec.scopeSelector."""
    spec = quota.get("spec") or {}
    requirements = [(scope, "Exists", []) for scope in spec.get("scopes") or []]
    for expression in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        requirements.append(
            (
                expression.get("scopeName", ""),
                expression.get("operator", ""),
                list(expression.get("values") or []),
            )
        )
    return requirements


def _pod_in_scope(pod: Object, scope: str, operator: str, values: list[str]) -> bool:
    spec = pod.get("spec") or {}
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        if operator == "In":
            return name in values
        if operator == "NotIn":
            return name not in values
        if operator == "Exists":
            return bool(name)
        return operator == "DoesNotExist" and not name
    deadline = spec.get("activeDeadlineSeconds")
    terminating = deadline is not None and deadline >= 0
    best_effort = qos.qos_class(spec) == "BestEffort"
    selected = {
        "Terminating": terminating,
        "NotTerminating": not terminating,
        "BestEffort": best_effort,
        "NotBestEffort": not best_effort,
    }.get(scope, False)
    return selected if operator != "DoesNotExist" else not selected


def evaluators_for(names: Iterable[str]) -> list[Evaluator]:
    """The evaluators measuring some of a quota's resource names, one per resource."""
    wanted = set(names)
    resources = {("", plural) for plural in (*_SPECIAL, *_LEGACY_COUNTS)}
    for name in wanted:
        if name.startswith("count/"):
            plural, _, group = name.removeprefix("count/").partition(".")
            resources.add((group, plural))
    found = [evaluator(group, plural) for group, plural in sorted(resources)]
    return [each for each in found if each.counts(wanted)]
