"""The ReplicaSet controller: as many pods as spec.replicas, made from the template.

(upstream: pkg/controller/replicaset)

A sync claims the pods the set owns or may adopt (orphans its selector
matches; owned pods that stopped matching are released), then creates or
deletes the difference — unless creations or deletions it asked for earlier
are still unobserved (see `expectations`), so a lagging cache never makes it
act twice. Creations go in slow-start batches (1, 2, 4, …): a template the
API refuses costs one failed request per sync, not hundreds, and failed syncs
back off. Deletions take the least useful pods first: unscheduled, pending,
not ready, then the most recently ready or created. Finally the status
counts the pods and carries a ReplicaFailure condition while writes fail.
The ownership and pod helpers it shares with the other workload controllers
are in `podutil`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError
from kubik.client.informer import key_of, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.expectations import Expectations
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    ORPHANS,
    PODS,
    Object,
    claim,
    controller_ref,
    error_message,
    fresh_and_alive,
    index_by_controller,
    index_orphans,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    labels_of,
    namespace_terminating,
    parse_time,
    pod_from_template,
    ready_since,
    resolve_owner,
    selector_of,
    slow_start,
)

log = logging.getLogger(__name__)

REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")

BURST_REPLICAS = 500  # upstream's cap on creations or deletions per sync
IN_FLIGHT = 32  # concurrent pod writes: about the client's pool of connections
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


# --------------------------------------------------------------------- pods


def _restarts(pod: Object) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((s.get("restartCount") or 0 for s in statuses), default=0)


def _deletion_cost(pod: Object) -> int:
    try:
        return int((pod["metadata"].get("annotations") or {}).get(DELETION_COST, 0))
    except ValueError:
        return 0


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def _log_rank(moment: float, now: float) -> int:
    """Age on a log2 scale (nanoseconds, as upstream), so similar ages tie."""
    age = (now - moment) * 1e9
    return int(math.log2(age)) if age > 0 else -1


def _newer_first(a: float | None, b: float | None, uid_a: str, uid_b: str, now: float) -> int:
    """Unknown times first, then the more recent on a log scale; equal scale: by uid."""
    if a is None or b is None:
        return -1 if a is None else 1
    diff = _log_rank(a, now) - _log_rank(b, now)
    if diff == 0:
        return -1 if uid_a < uid_b else 1
    return -1 if diff < 0 else 1


def _deletion_order(a: tuple[Object, int], b: tuple[Object, int], now: float) -> int:
    """Which of two (pod, colocated pods) to delete first (upstream's ActivePodsWithRanks)."""
    (pa, rank_a), (pb, rank_b) = a, b
    node_a, node_b = pa["spec"].get("nodeName", ""), pb["spec"].get("nodeName", "")
    if node_a != node_b and not (node_a and node_b):
        return -1 if not node_a else 1
    phase_a = _PHASE_ORDER.get((pa.get("status") or {}).get("phase"), 0)
    phase_b = _PHASE_ORDER.get((pb.get("status") or {}).get("phase"), 0)
    if phase_a != phase_b:
        return phase_a - phase_b
    ready_a, ready_b = is_pod_ready(pa), is_pod_ready(pb)
    if ready_a != ready_b:
        return -1 if not ready_a else 1
    cost_a, cost_b = _deletion_cost(pa), _deletion_cost(pb)
    if cost_a != cost_b:
        return -1 if cost_a < cost_b else 1
    if rank_a != rank_b:
        return -1 if rank_a > rank_b else 1
    uid_a, uid_b = pa["metadata"].get("uid", ""), pb["metadata"].get("uid", "")
    if ready_a and ready_b:
        since_a, since_b = ready_since(pa), ready_since(pb)
        if since_a != since_b:
            return _newer_first(since_a, since_b, uid_a, uid_b, now)
    restarts_a, restarts_b = _restarts(pa), _restarts(pb)
    if restarts_a != restarts_b:
        return -1 if restarts_a > restarts_b else 1
    born_a = parse_time(pa["metadata"].get("creationTimestamp"))
    born_b = parse_time(pb["metadata"].get("creationTimestamp"))
    if born_a != born_b:
        return _newer_first(born_a, born_b, uid_a, uid_b, now)
    return 0


def pods_to_delete(pods: list[Object], related: list[Object], count: int) -> list[Object]:
    """The `count` pods best deleted; pods sharing a node with more related pods go first."""
    if count >= len(pods):
        return pods[:count]
    on_node: dict[str, int] = {}
    for pod in related:
        if is_pod_active(pod):
            node = pod["spec"].get("nodeName", "")
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(pod, on_node.get(pod["spec"].get("nodeName", ""), 0)) for pod in pods]
    order = functools.partial(_deletion_order, now=time.time())
    ranked.sort(key=functools.cmp_to_key(order))
    return [pod for pod, _ in ranked[:count]]


# --------------------------------------------------------------- controller


@register
class ReplicaSetController(Controller):
    name = "replicaset"
    component = "replicaset-controller"

    def setup(self) -> None:
        self.expectations = Expectations()
        self.writes = asyncio.Semaphore(IN_FLIGHT)
        self.replicasets = self.informers.informer(REPLICA_SETS)
        self.pods = self.informers.informer(PODS)
        for informer in (self.replicasets, self.pods):
            informer.add_index(BY_CONTROLLER, index_by_controller)
        self.pods.add_index(ORPHANS, index_orphans)
        self.replicasets.add_handlers(
            on_add=self.enqueue, on_update=self._set_updated, on_delete=self._set_deleted
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )

    # ------------------------------------------------------------ handlers

    def _set_updated(self, old: Object, new: Object) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self.expectations.forget(key_of(old))
        self.enqueue(new)

    def _set_deleted(self, replica_set: Object) -> None:
        self.expectations.forget(key_of(replica_set))
        self.enqueue(replica_set)

    def _owner_of(self, pod: Object) -> Object | None:
        """The ReplicaSet a pod's controller reference points at, if it is in the cache."""
        return resolve_owner(self.replicasets, pod, "ReplicaSet")

    def _enqueue_matching(self, pod: Object) -> None:
        """An orphan: every set that selects it may want to adopt it."""
        for replica_set in self.replicasets.list(meta.namespace_of(pod)):
            if label_selector_matches(selector_of(replica_set), labels_of(pod)):
                self.enqueue(replica_set)

    def _pod_added(self, pod: Object) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        if controller_ref(pod) is None:
            self._enqueue_matching(pod)
            return
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.creation_observed(key_of(owner))
            self.enqueue(owner)

    def _pod_updated(self, old: Object, new: Object) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        labels_changed = labels_of(old) != labels_of(new)
        if new["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            previous = self._owner_of(old)
            if previous is not None:
                self.enqueue(previous)
        if new_ref is None:
            if labels_changed or old_ref != new_ref:
                self._enqueue_matching(new)
            return
        owner = self._owner_of(new)
        if owner is None:
            return
        self.enqueue(owner)
        min_ready = (owner.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready and not is_pod_ready(old) and is_pod_ready(new):
            # available once ready for minReadySeconds: look again then
            self.queue.add_after(key_of(owner), min_ready + 1)

    def _pod_deleted(self, pod: Object) -> None:
        owner = self._owner_of(pod)
        if owner is not None:
            self.expectations.deletion_observed(key_of(owner), key_of(pod))
            self.enqueue(owner)

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        replica_set = self.replicasets.get(key)
        if replica_set is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        namespace, _ = split_key(key)
        uid = replica_set["metadata"]["uid"]
        candidates = [
            pod
            for pod in self.pods.by_index(BY_CONTROLLER, uid)
            + self.pods.by_index(ORPHANS, namespace)
            if is_pod_active(pod)
        ]
        pods = await claim(
            self.client,
            PODS,
            replica_set,
            candidates,
            lambda: fresh_and_alive(self.client, REPLICA_SETS, replica_set),
        )
        failure: Exception | None = None
        if needs_sync and not replica_set["metadata"].get("deletionTimestamp"):
            failure = await self._manage(key, replica_set, pods)
        updated = await self._write_status(
            replica_set, calculate_status(replica_set, pods, failure)
        )
        spec = updated.get("spec") or {}
        status = updated.get("status") or {}
        replicas = spec.get("replicas", 1)
        if (
            failure is None
            and spec.get("minReadySeconds")
            and status.get("readyReplicas", 0) == replicas
            and status.get("availableReplicas", 0) != replicas
        ):
            self.queue.add_after(key, spec["minReadySeconds"])
        if failure is not None:
            raise failure

    async def _manage(self, key: str, replica_set: Object, pods: list[Object]) -> Exception | None:
        """Create or delete pods toward spec.replicas; the first failure, if any."""
        diff = len(pods) - replica_set["spec"].get("replicas", 1)
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            created, failure = await slow_start(count, lambda: self._create_pod(replica_set))
            for _ in range(count - created):  # never made: no event will count them off
                self.expectations.creation_observed(key)
            return failure
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            victims = pods_to_delete(pods, self._related_pods(replica_set), count)
            self.expectations.expect_deletions(key, [key_of(pod) for pod in victims])
            results = await asyncio.gather(
                *(self._delete_pod(key, replica_set, pod) for pod in victims)
            )
            return next((failure for failure in results if failure is not None), None)
        return None

    def _related_pods(self, replica_set: Object) -> list[Object]:
        """Pods of every set with the same controller (a Deployment's old and new sets)."""
        ref = controller_ref(replica_set)
        if ref is None:
            return []
        siblings = self.replicasets.by_index(BY_CONTROLLER, ref["uid"])
        return [
            pod
            for sibling in siblings
            for pod in self.pods.by_index(BY_CONTROLLER, sibling["metadata"]["uid"])
        ]

    async def _create_pod(self, replica_set: Object) -> None:
        pod = pod_from_template(replica_set, replica_set["spec"].get("template") or {})
        async with self.writes:
            try:
                created = await self.client.create(PODS, pod)
            except ApiError as exc:
                if namespace_terminating(exc):
                    return  # every create would fail; the namespace is going away
                self.recorder.record(
                    replica_set, "Warning", "FailedCreate", f"Error creating: {error_message(exc)}"
                )
                raise
        self.recorder.record(
            replica_set, "Normal", "SuccessfulCreate", f"Created pod: {meta.name_of(created)}"
        )

    async def _delete_pod(self, key: str, replica_set: Object, pod: Object) -> Exception | None:
        name = meta.name_of(pod)
        async with self.writes:
            try:
                await self.client.delete(PODS, meta.namespace_of(pod), name)
            except ApiError as exc:
                # the informer will not see this deletion: stop waiting for it
                self.expectations.deletion_observed(key, key_of(pod))
                if exc.not_found:
                    return None
                self.recorder.record(
                    replica_set, "Warning", "FailedDelete", f"Error deleting: {error_message(exc)}"
                )
                return exc
        self.recorder.record(replica_set, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        return None

    async def _write_status(self, replica_set: Object, status: Object) -> Object:
        """Store the new status; the set as stored.

        A conflict means the set changed since the cache saw it: the watch event
        of that change brings the key back, and the status is computed again then.
        """
        generation = replica_set["metadata"].get("generation", 0)
        old = replica_set.get("status") or {}
        if go_status(old) == status and old.get("observedGeneration") == generation:
            return replica_set
        written = {k: v for k, v in status.items() if k != "conditions"}
        written["observedGeneration"] = generation  # Go's field order
        if "conditions" in status:
            written["conditions"] = status["conditions"]
        try:
            return await self.client.update_status(REPLICA_SETS, {**replica_set, "status": written})
        except ApiError as exc:
            if not (exc.conflict or exc.not_found):
                raise
            log.debug("replicaset %s: %s", key_of(replica_set), exc)
            return replica_set


# ------------------------------------------------------------------- status

_STATUS_FIELDS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")


def go_status(status: Object) -> Object:
    """A ReplicaSetStatus as Go serializes it: zero counts left out (replicas stays)."""
    shown: Object = {"replicas": status.get("replicas", 0)}
    for field in _STATUS_FIELDS[1:]:
        if status.get(field):
            shown[field] = status[field]
    if status.get("conditions"):
        shown["conditions"] = status["conditions"]
    return shown


def calculate_status(replica_set: Object, pods: list[Object], failure: Exception | None) -> Object:
    """Counts of the claimed pods, and the ReplicaFailure condition while writes fail."""
    spec = replica_set.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = spec.get("minReadySeconds") or 0
    now = time.time()
    fully_labeled = ready = available = 0
    wanted = template_labels.items()
    for pod in pods:
        if labels_of(pod).items() >= wanted:
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    conditions = list((replica_set.get("status") or {}).get("conditions") or [])
    has_failure = any(c.get("type") == "ReplicaFailure" for c in conditions)
    if failure is not None and not has_failure:
        diff = len(pods) - spec.get("replicas", 1)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        conditions.append(
            {
                "type": "ReplicaFailure",
                "status": "True",
                "lastTransitionTime": meta.now(),
                "reason": reason,
                "message": error_message(failure),
            }
        )
    elif failure is None and has_failure:
        conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
    return go_status(
        {
            "replicas": len(pods),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        }
    )
