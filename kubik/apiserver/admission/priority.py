"""Priority: a pod's priority comes from its PriorityClass, by name, when it is created.

(upstream: plugin/pkg/admission/priority)

On pod create, `spec.priorityClassName` names the class whose `value`
becomes `spec.priority` and whose `preemptionPolicy` becomes the pod's; a
pod naming no class gets the `globalDefault` class (the lowest valued, if
several claim it), or priority 0 and PreemptLowerPriority. An unknown class
is refused ("no PriorityClass with name X was found"), as is a pod that
sets a priority or policy other than the one its class computes. A new
PriorityClass gets `preemptionPolicy: PreemptLowerPriority` by default and
may not be a second global default.

Unlike the chain's plugins, it runs before the kind's defaults: it must
see whether the client set `spec.priority` itself (kubik's pod defaults
fill in priority 0 for pods of no custom class). The built-in classes,
system-cluster-critical and system-node-critical, exist from bootstrap on.
"""

from __future__ import annotations

from kubik.api import errors
from kubik.api.kinds.podspec import SYSTEM_PRIORITIES
from kubik.apiserver.admission import CREATE, Attributes, Stores, forbidden
from kubik.apiserver.storage import Object

GROUP = "scheduling.k8s.io"
PLURAL = "priorityclasses"
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
_DESCRIPTIONS = {
    "system-node-critical": "Used for system critical pods that must not be moved from their "
    "current node.",
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, "
    "but can be moved to another node if necessary.",
}


def system_classes() -> list[Object]:
    """The PriorityClasses every cluster has (created at bootstrap)."""
    return [
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": _DESCRIPTIONS[name],
            "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
        }
        for name, value in SYSTEM_PRIORITIES.items()
    ]


class Priority:
    """Call `admit` on every create, before the kind's defaults and the admission chain."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores

    async def admit(self, attrs: Attributes) -> None:
        if attrs.operation != CREATE or attrs.subresource:
            return
        resource = attrs.resource
        if resource.group == "" and resource.plural == "pods":
            await self._admit_pod(attrs)
        elif resource.group == GROUP and resource.plural == PLURAL:
            await self._admit_class(attrs)

    async def _admit_pod(self, attrs: Attributes) -> None:
        spec = attrs.obj.setdefault("spec", {})
        name = spec.get("priorityClassName") or ""
        if name:
            found = await self._get(name)
            if found is None:
                raise forbidden(attrs, f"no PriorityClass with name {name} was found")
        else:
            found = await self._global_default()
            if found is not None:
                spec["priorityClassName"] = found["metadata"]["name"]
        value = found.get("value", 0) if found is not None else 0
        policy = (found or {}).get("preemptionPolicy") or PREEMPT_LOWER_PRIORITY
        if spec.get("priority") is not None and spec["priority"] != value:
            raise forbidden(
                attrs,
                f"the integer value of priority ({spec['priority']}) must not be provided in "
                f"pod spec; priority admission controller computed {value} from the given "
                "PriorityClass name",
            )
        spec["priority"] = value
        if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
            raise forbidden(
                attrs,
                f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                f"provided in pod spec; priority admission controller computed {policy} from "
                "the given PriorityClass name",
            )
        spec["preemptionPolicy"] = policy

    async def _admit_class(self, attrs: Attributes) -> None:
        obj = attrs.obj
        if not obj.get("preemptionPolicy"):
            obj["preemptionPolicy"] = PREEMPT_LOWER_PRIORITY
        if not obj.get("globalDefault"):
            return
        existing = await self._global_default()
        if existing is not None and existing["metadata"]["name"] != attrs.name:
            raise forbidden(
                attrs,
                f"PriorityClass {existing['metadata']['name']} is already marked as default. "
                "Only one default can exist",
            )

    async def _get(self, name: str) -> Object | None:
        """The class from the watch cache, or (just created, say) from the store."""
        store = self.stores.store(GROUP, PLURAL)
        for from_cache in (True, False):
            try:
                return await store.get("", name, from_cache=from_cache)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        return None

    async def _global_default(self) -> Object | None:
        defaults = [c for c in await self.stores.list(GROUP, PLURAL) if c.get("globalDefault")]
        return min(defaults, key=lambda c: c.get("value", 0), default=None)
