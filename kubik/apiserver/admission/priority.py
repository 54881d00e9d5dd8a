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

It comes first in the chain: it must see whether the client set
`spec.priority` itself, and kubik's pod defaults (which LimitRanger applies
before its own) fill in priority 0 for pods of no custom class. The
built-in classes, system-cluster-critical and system-node-critical, exist
from bootstrap on.
"""

from __future__ import annotations

from kubik.api import errors
from kubik.api.kinds.podspec import SYSTEM_PRIORITIES
from kubik.api.registry import Resource
from kubik.apiserver.admission import CREATE, Attributes, Plugin, forbidden
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


class Priority(Plugin):
    def handles(self, operation: str, resource: Resource, subresource: str) -> bool:
        return (
            operation == CREATE
            and not subresource
            and (resource.group, resource.plural) in (("", "pods"), (GROUP, PLURAL))
        )

    async def admit(self, attrs: Attributes) -> None:
        if attrs.is_core("pods"):
            await self._admit_pod(attrs)
        else:
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
        found = found or {}
        computed = (
            ("priority", "integer value of priority", found.get("value", 0)),
            (
                "preemptionPolicy",
                "string value of PreemptionPolicy",
                found.get("preemptionPolicy") or PREEMPT_LOWER_PRIORITY,
            ),
        )
        for field, what, value in computed:
            given = spec.get(field)
            if given is not None and given != value:
                raise forbidden(
                    attrs,
                    f"the {what} ({given}) must not be provided in pod spec; priority admission "
                    f"controller computed {value} from the given PriorityClass name",
                )
            spec[field] = value

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
