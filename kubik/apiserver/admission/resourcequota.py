"""ResourceQuota: a write may not take a namespace past its quotas' hard limits.

For each quota of the namespace whose scopes select the object and whose
`status.hard` names something the object uses, the write is charged: the
object's usage (on update, only what it adds) goes into the quota's
`status.used` with a compare-and-swap on the quota, re-checked against the
newest status on every conflict, so concurrent writes can never overshoot. A
quota that would be exceeded refuses the write
(`exceeded quota: NAME, requested: ..., used: ..., limited: ...`); one that
limits cpu or memory refuses pods with a container that does not state it
(`failed quota: NAME: must specify ...`). If a later quota refuses, the
earlier charges are given back. A quota the controller has not counted yet
(no `status.hard`) limits nothing; the resourcequota controller corrects
`status.used` from the objects themselves, so over-charges (a write that
failed after admission) do not last. (upstream:
staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota)
"""

from __future__ import annotations

from kubik.api import errors, quota
from kubik.api.registry import Resource
from kubik.apiserver.admission import UPDATE, Attributes, Plugin, forbidden
from kubik.apiserver.storage import Object


class ResourceQuota(Plugin):
    def handles(self, operation: str, resource: Resource, subresource: str) -> bool:
        if subresource or not resource.namespaced:
            return False
        return quota.evaluator(resource.group, resource.plural).handles(operation)

    async def validate(self, attrs: Attributes) -> None:
        quotas = await self.stores.list("", "resourcequotas", attrs.namespace)
        if not quotas:
            return
        evaluator = quota.evaluator(attrs.resource.group, attrs.resource.plural)
        charges = self._charges(attrs, evaluator, quotas)
        if attrs.dry_run:
            for resource_quota, delta in charges:
                _charged(attrs, resource_quota, delta)
            return
        charged: list[tuple[Object, quota.Usage]] = []
        try:
            for resource_quota, delta in charges:
                await self._charge(attrs, resource_quota, delta)
                charged.append((resource_quota, delta))
        except errors.APIError:
            for resource_quota, delta in charged:
                await self._refund(resource_quota, delta)
            raise

    def _charges(
        self, attrs: Attributes, evaluator: quota.Evaluator, quotas: list[Object]
    ) -> list[tuple[Object, quota.Usage]]:
        """(quota, usage to add) for every quota that counts this write."""
        obj = attrs.obj
        interested = []
        for resource_quota in quotas:
            status = resource_quota.get("status") or {}
            restricted = evaluator.counts(status.get("hard") or {})
            if not restricted or not evaluator.matches_scopes(resource_quota, obj):
                continue
            name = resource_quota["metadata"]["name"]
            problem = evaluator.constraints(restricted, obj)
            if problem:
                raise forbidden(attrs, f"failed quota: {name}: {problem}")
            if any(resource not in (status.get("used") or {}) for resource in restricted):
                raise forbidden(
                    attrs, f"status unknown for quota: {name}, resources: {','.join(restricted)}"
                )
            interested.append(resource_quota)
        if not interested:
            return []
        usage = evaluator.usage(obj)
        negative = sorted(name for name, amount in usage.items() if amount.value < 0)
        if negative:
            raise forbidden(attrs, f"quota usage is negative for resource(s): {','.join(negative)}")
        old = attrs.old if attrs.operation == UPDATE else None
        charges = []
        for resource_quota in interested:
            delta = usage
            if old is not None and evaluator.matches_scopes(resource_quota, old):
                delta = quota.subtract_floor(usage, evaluator.usage(old))
            delta = {name: amount for name, amount in delta.items() if amount.value != 0}
            if delta:
                charges.append((resource_quota, delta))
        return charges

    async def _charge(self, attrs: Attributes, resource_quota: Object, delta: quota.Usage) -> None:
        def change(current: Object) -> Object:
            current["status"]["used"] = quota.text_list(_charged(attrs, current, delta))
            return current

        await self._update(resource_quota, change)

    async def _refund(self, resource_quota: Object, delta: quota.Usage) -> None:
        def change(current: Object) -> Object:
            status = current.setdefault("status", {})
            used = quota.parse_list(status.get("used"))
            status["used"] = quota.text_list(quota.subtract_floor(used, delta))
            return current

        await self._update(resource_quota, change)

    async def _update(self, resource_quota: Object, change) -> None:
        """Compare-and-swap the quota's status, retried on conflict by the store."""
        metadata = resource_quota["metadata"]
        store = self.stores.store("", "resourcequotas")
        try:
            await store.update(metadata["namespace"], metadata["name"], change)
        except errors.APIError as exc:
            if exc.code != 404:  # a quota deleted meanwhile limits nothing
                raise


def _charged(attrs: Attributes, resource_quota: Object, delta: quota.Usage) -> quota.Usage:
    """The quota's usage with the write's added, refusing the write if it goes past a hard
    limit; checks only the resources this write uses, as upstream."""
    status = resource_quota.setdefault("status", {})
    hard = quota.parse_list(status.get("hard"))
    used = quota.parse_list(status.get("used"))
    requested = quota.mask(delta, hard)
    new_used = quota.add(used, requested)
    exceeded = sorted(name for name in requested if new_used[name] > hard[name])
    if exceeded:
        raise forbidden(
            attrs,
            f"exceeded quota: {resource_quota['metadata']['name']}, "
            f"requested: {quota.pretty(quota.mask(requested, exceeded))}, "
            f"used: {quota.pretty(quota.mask(used, exceeded))}, "
            f"limited: {quota.pretty(quota.mask(hard, exceeded))}",
        )
    return new_used
