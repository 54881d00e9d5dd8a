"""The resourcequota controller: a quota's status says what its namespace really uses.

For each ResourceQuota it copies `spec.hard` to `status.hard` and recounts
`status.used` from the objects themselves (listed from the API server, so
the count is current), measured as the admission plugin charges them
(`kubik.api.quota`). Admission only ever adds to `used`; this controller
gives usage back: when a pod ends or goes, a service or claim goes or stops
using something, the namespace's quotas are recounted, and every quota is
recounted each period anyway (`KUBIK_RESOURCE_QUOTA_SYNC_PERIOD` seconds,
upstream's --resource-quota-sync-period default of 5 minutes), which also
corrects charges for writes that failed after admission. The status is
written with the quota's resourceVersion: a charge made meanwhile makes the
write conflict, and the recount is retried. Quota updates that only change
`status.used` (the admission plugin's charges) do not trigger a recount.
(upstream: pkg/controller/resourcequota)
"""

from __future__ import annotations

import os

from kubik.api import builtin, quota
from kubik.api.registry import Resource
from kubik.client.api import ApiError
from kubik.client.informer import split_key
from kubik.controllers.base import Context, Controller, Object, register

RESOURCE_QUOTAS = builtin.lookup("", "v1", "resourcequotas")
CRDS = builtin.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
# The resources whose changes (not only deletions) may give quota back.
_REPLENISHED = ("pods", "services", "persistentvolumeclaims")


@register
class ResourceQuotaController(Controller):
    name = "resourcequota"
    workers = 5  # upstream's --concurrent-resource-quota-syncs

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.period = float(os.environ.get("KUBIK_RESOURCE_QUOTA_SYNC_PERIOD", "300"))

    def setup(self) -> None:
        self.quotas = self.informers.informer(RESOURCE_QUOTAS)
        self.quotas.add_handlers(on_add=self.enqueue, on_update=self._quota_updated)
        for plural in _REPLENISHED:
            evaluator = quota.evaluator("", plural)
            self.informers.informer(builtin.lookup("", "v1", plural)).add_handlers(
                on_update=lambda old, new, e=evaluator: self._maybe_released(e, old, new),
                on_delete=self._released,
            )

    def _quota_updated(self, old: Object, new: Object) -> None:
        if old.get("spec") != new.get("spec") or _uncounted(new):
            self.enqueue(new)

    def _maybe_released(self, evaluator: quota.Evaluator, old: Object, new: Object) -> None:
        """Recount when the object's usage changed; measuring it only where a quota is."""
        quotas = self.quotas.list(new["metadata"].get("namespace", ""))
        if quotas and evaluator.usage(old) != evaluator.usage(new):
            for resource_quota in quotas:
                self.enqueue(resource_quota)

    def _released(self, obj: Object) -> None:
        """Something in the namespace may use less now: recount its quotas."""
        for resource_quota in self.quotas.list(obj["metadata"].get("namespace", "")):
            self.enqueue(resource_quota)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        try:
            resource_quota = await self.client.get(RESOURCE_QUOTAS, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self.queue.add_after(key, self.period)
        hard = (resource_quota.get("spec") or {}).get("hard") or {}
        used = await self._usage(resource_quota, namespace, hard)
        counted = {resource: str(used.get(resource, quota.ZERO)) for resource in hard}
        status = {"hard": dict(hard), "used": counted}
        if resource_quota.get("status") == status:
            return
        resource_quota["status"] = status
        await self.client.update_status(RESOURCE_QUOTAS, resource_quota)

    async def _usage(self, resource_quota: Object, namespace: str, hard: dict) -> quota.Usage:
        """What the namespace's objects use of the quota's resources, within its scopes."""
        used: quota.Usage = {}
        for evaluator in quota.evaluators_for(hard):
            resource = await self._resource(evaluator.group, evaluator.plural)
            if resource is None:
                continue
            listing = await self.client.list_all(resource, namespace)
            for obj in listing["items"]:
                if evaluator.matches_scopes(resource_quota, obj):
                    used = quota.add(used, quota.mask(evaluator.usage(obj), hard))
        return used

    async def _resource(self, group: str, plural: str) -> Resource | None:
        """A built-in resource, or a custom one from its CRD (None if neither exists)."""
        for resource in builtin.BUILTIN:
            if resource.group == group and resource.plural == plural:
                return resource
        try:
            crd = await self.client.get(CRDS, "", f"{plural}.{group}")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        spec = crd.get("spec") or {}
        versions = [v["name"] for v in spec.get("versions") or [] if v.get("served")]
        if not versions:
            return None
        names = spec.get("names") or {}
        return Resource(
            group, versions[0], names.get("kind", ""), plural, spec.get("scope") == "Namespaced"
        )


def _uncounted(resource_quota: Object) -> bool:
    """Does the status miss something the spec limits (a new quota, a new resource)?"""
    hard = (resource_quota.get("spec") or {}).get("hard") or {}
    status = resource_quota.get("status") or {}
    used = status.get("used") or {}
    return status.get("hard") != hard or any(resource not in used for resource in hard)
