"""The disruption controller: the status of each PodDisruptionBudget.

(upstream: pkg/controller/disruption)

For every budget it counts the pods its selector picks in its namespace
(policy/v1: an empty selector picks them all) and writes what evictions and
the scheduler's preemption read:

- `expectedPods`: with an integer `minAvailable`, the pods found; otherwise
  the replicas their controllers want (a ReplicaSet — or the Deployment
  owning it — or a StatefulSet; kubik serves no ReplicationControllers);
  pods without a controller are not counted then (an `UnmanagedPods`
  warning says so);
- `desiredHealthy`: `minAvailable`, or the expected pods less
  `maxUnavailable` (percentages of the expected pods, rounded up);
- `currentHealthy`: pods Ready, not being deleted, and not recently evicted;
- `disruptionsAllowed`: the healthy pods beyond the desired ones (0 while
  no pod is expected), with the `DisruptionAllowed` condition;
- `disruptedPods`: pods an eviction took a disruption for, kept for two
  minutes unless they are deleted sooner (the budget is synced again then).

A budget whose expected pods cannot be worked out (a pod's controller is
not found) allows no disruption ("SyncFailed").
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError
from kubik.client.informer import key_of, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.podutil import PODS, controller_ref, is_pod_ready, parse_time

log = logging.getLogger(__name__)

Object = dict[str, Any]

PDBS = builtin.lookup("policy", "v1", "poddisruptionbudgets")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")
DEPLOYMENTS = builtin.lookup("apps", "v1", "deployments")
STATEFUL_SETS = builtin.lookup("apps", "v1", "statefulsets")

DELETION_TIMEOUT = 120.0  # seconds an evicted pod has to be deleted before it counts again
DISRUPTION_ALLOWED = "DisruptionAllowed"


class ScaleError(Exception):
    """The expected number of pods cannot be worked out."""


def scaled(value: Any, total: int) -> int:
    """An IntOrString: the integer, or the percentage of `total` rounded up."""
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ScaleError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        percent = int(text[:-1])
    except ValueError as exc:
        raise ScaleError(f"invalid value {text!r}: {exc}") from exc
    return math.ceil(percent * total / 100)


def _api_group(ref: Object) -> str:
    api_version = ref.get("apiVersion") or ""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@register
class DisruptionController(Controller):
    name = "disruption"
    component = "controllermanager"  # upstream's event source for this controller

    def setup(self) -> None:
        self.pdbs = self.informers.informer(PDBS)
        self.pods = self.informers.informer(PODS)
        self.replica_sets = self.informers.informer(REPLICA_SETS)
        self.deployments = self.informers.informer(DEPLOYMENTS)
        self.stateful_sets = self.informers.informer(STATEFUL_SETS)
        self.pdbs.add_handlers(**self.enqueue_handlers())
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda old, new: (self._pod_changed(old), self._pod_changed(new)),
            on_delete=self._pod_changed,
        )

    def _pod_changed(self, pod: Object) -> None:
        labels = pod["metadata"].get("labels") or {}
        for pdb in self.pdbs.by_index("namespace", pod["metadata"].get("namespace", "")):
            if label_selector_matches((pdb.get("spec") or {}).get("selector"), labels):
                self.enqueue(pdb)

    # ----------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        pdb = self.pdbs.get(key)
        if pdb is None:
            return
        namespace, _ = split_key(key)
        selector = (pdb.get("spec") or {}).get("selector")
        pods = [
            p
            for p in self.pods.by_index("namespace", namespace)
            if label_selector_matches(selector, p["metadata"].get("labels") or {})
        ]
        if not pods:
            self.recorder.record(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = self._expected(pdb, pods)
        except ScaleError as exc:
            self.recorder.record(
                pdb,
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {exc}",
            )
            await self._write(pdb, {"disruptionsAllowed": 0}, reason="SyncFailed", why=str(exc))
            return
        if unmanaged:
            self.recorder.record(
                pdb,
                "Warning",
                "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found "
                "to be unmanaged. As a result, the status of the PDB cannot be calculated "
                "correctly, which may result in undefined behavior. To account for these pods "
                'please set ".spec.minAvailable" field of the PDB to an integer value.',
            )
        now = time.time()
        disrupted, recheck = self._disrupted(pdb, pods, now)
        healthy = sum(
            1
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"] not in disrupted
            and is_pod_ready(p)
        )
        allowed = healthy - desired if expected > 0 else 0
        status = {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": max(allowed, 0),
            "disruptedPods": disrupted or None,
        }
        await self._write(pdb, status)
        if recheck is not None:
            self.queue.add_after(key, max(recheck - now, 0.0))

    def _expected(self, pdb: Object, pods: list[Object]) -> tuple[int, int, list[str]]:
        """(expected pods, desired healthy pods, names of pods with no controller)."""
        spec = pdb.get("spec") or {}
        max_unavailable = spec.get("maxUnavailable")
        min_available = spec.get("minAvailable")
        if max_unavailable is not None:
            expected, unmanaged = self._scale(pods)
            return expected, max(expected - scaled(max_unavailable, expected), 0), unmanaged
        if isinstance(min_available, int):
            return len(pods), min_available, []
        if min_available is not None:
            expected, unmanaged = self._scale(pods)
            return expected, scaled(min_available, expected), unmanaged
        return 0, 0, []

    def _scale(self, pods: list[Object]) -> tuple[int, list[str]]:
        """The replicas the pods' controllers want, summed once per controller."""
        scales: dict[str, int] = {}
        unmanaged = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = self._controller_scale(ref, pod["metadata"].get("namespace", ""))
            if found is None:
                raise ScaleError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            uid, replicas = found
            scales[uid] = replicas
        return sum(scales.values()), unmanaged

    def _controller_scale(self, ref: Object, namespace: str) -> tuple[str, int] | None:
        """(uid, desired replicas) of the pod's controller, or of the Deployment above it."""
        kind, group = ref.get("kind"), _api_group(ref)
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self._owner(self.replica_sets, namespace, ref)
            if rs is None:
                return None
            parent = controller_ref(rs)
            if parent is not None and parent.get("kind") == "Deployment":
                deployment = self._owner(self.deployments, namespace, parent)
                return None if deployment is None else _replicas(deployment)
            return _replicas(rs)
        if kind == "StatefulSet" and group == "apps":
            owner = self._owner(self.stateful_sets, namespace, ref)
            return None if owner is None else _replicas(owner)
        return None

    @staticmethod
    def _owner(informer: Any, namespace: str, ref: Object) -> Object | None:
        owner = informer.get(f"{namespace}/{ref.get('name', '')}")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _disrupted(
        self, pdb: Object, pods: list[Object], now: float
    ) -> tuple[dict[str, str], float | None]:
        """The evicted pods still expected to go, and when the first of them stops counting."""
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: float | None = None
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp") or name not in recorded:
                continue
            since = parse_time(recorded[name])
            deadline = (since or 0.0) + DELETION_TIMEOUT
            if deadline < now:
                self.recorder.record(
                    pod,
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {key_of(pdb)} to be deleted but it wasn't",
                )
                continue
            kept[name] = recorded[name]
            recheck = deadline if recheck is None else min(recheck, deadline)
        return kept, recheck

    async def _write(self, pdb: Object, counts: Object, *, reason: str = "", why: str = "") -> None:
        """Store the new status (with its DisruptionAllowed condition) if it changed."""
        old = pdb.get("status") or {}
        generation = pdb["metadata"].get("generation", 0)
        status = {**old, **counts, "observedGeneration": generation}
        if status.get("disruptedPods") is None:
            status.pop("disruptedPods", None)
        allowed = status.get("disruptionsAllowed", 0) > 0
        condition = {
            "type": DISRUPTION_ALLOWED,
            "status": "True" if allowed else "False",
            "observedGeneration": generation,
            "reason": reason or ("SufficientPods" if allowed else "InsufficientPods"),
            "message": why,
        }
        status["conditions"] = _with_condition(old.get("conditions") or [], condition)
        for field in ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed"):
            status.setdefault(field, 0)
        if status == old:
            return
        try:
            await self.client.update_status(PDBS, {**pdb, "status": status})
        except ApiError as exc:
            if exc.not_found:
                return
            raise


def _replicas(owner: Object) -> tuple[str, int]:
    replicas = (owner.get("spec") or {}).get("replicas")
    return owner["metadata"].get("uid", ""), 1 if replicas is None else replicas


def _with_condition(conditions: list[Object], condition: Object) -> list[Object]:
    """The conditions with `condition` set; its transition time changes with its status."""
    result = []
    found = False
    for existing in conditions:
        if existing.get("type") != condition["type"]:
            result.append(existing)
            continue
        found = True
        changed = existing.get("status") != condition["status"]
        since = meta.now() if changed else existing.get("lastTransitionTime") or meta.now()
        result.append({**condition, "lastTransitionTime": since})
    if not found:
        result.append({**condition, "lastTransitionTime": meta.now()})
    return result
