"""The ReplicaSet controller: as many pods as spec.replicas, made from the template.

(upstream: pkg/controller/replicaset, with the pod helpers of pkg/controller)

A sync claims the pods the set owns or may adopt (orphans its selector
matches; owned pods that stopped matching are released), then creates or
deletes the difference — unless creations or deletions it asked for earlier
are still unobserved (see `expectations`), so a lagging cache never makes it
act twice. Creations go in slow-start batches (1, 2, 4, …): a template the
API refuses costs one failed request per sync, not hundreds, and failed syncs
back off. Deletions take the least useful pods first: unscheduled, pending,
not ready, then the most recently ready or created. Finally the status
counts the pods and carries a ReplicaFailure condition while writes fail.

The ownership helpers (`controller_ref`, `claim`, the indexes) serve the
Deployment controller too, which claims ReplicaSets the same way.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError, Client
from kubik.client.informer import key_of, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.expectations import Expectations

log = logging.getLogger(__name__)

Object = dict[str, Any]

PODS = builtin.lookup("", "v1", "pods")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")

BURST_REPLICAS = 500  # upstream's cap on creations or deletions per sync
IN_FLIGHT = 32  # concurrent pod writes: about the client's pool of connections
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
BY_CONTROLLER = "controller-uid"  # index: the uid of an object's controller
ORPHANS = "orphans"  # index: objects with no controller, by namespace


# ------------------------------------------------------------------ objects


def copy_of(obj: Object) -> Object:
    """A private copy of a cached object (caches are shared: never change them)."""
    return orjson.loads(orjson.dumps(obj))


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp, or None."""
    if not value:
        return None
    return datetime.datetime.fromisoformat(value).timestamp()


def controller_ref(obj: Object) -> Object | None:
    """The owner reference marked controller, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def new_controller_ref(owner: Object) -> Object:
    meta_ = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta_["name"],
        "uid": meta_["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def index_by_controller(obj: Object) -> list[str]:
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


def index_orphans(obj: Object) -> list[str]:
    return [] if controller_ref(obj) else [meta.namespace_of(obj)]


def labels_of(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def selector_of(obj: Object) -> Object | None:
    return (obj.get("spec") or {}).get("selector")


def selector_matcher(selector: Object | None) -> Callable[[dict[str, str]], bool]:
    """A fast test of labels against a LabelSelector: syncs match every pod of a set."""
    if selector is not None and not selector.get("matchExpressions"):
        wanted = (selector.get("matchLabels") or {}).items()
        return lambda labels: labels.items() >= wanted
    return functools.partial(label_selector_matches, selector)


def error_message(exc: BaseException) -> str:
    """What upstream prints for an error: a Status's message, not our prefix."""
    if isinstance(exc, ApiError):
        return exc.status.get("message") or str(exc)
    return str(exc)


def namespace_terminating(exc: BaseException) -> bool:
    if not isinstance(exc, ApiError):
        return False
    causes = (exc.status.get("details") or {}).get("causes") or []
    return any(cause.get("reason") == "NamespaceTerminating" for cause in causes)


# --------------------------------------------------------------------- pods


def is_pod_active(pod: Object) -> bool:
    """Neither finished nor being deleted (upstream's IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _ready_condition(pod: Object) -> Object | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def is_pod_ready(pod: Object) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def is_pod_available(pod: Object, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(_ready_condition(pod).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds < now


def _ready_since(pod: Object) -> float | None:
    return (
        parse_time(_ready_condition(pod).get("lastTransitionTime")) if is_pod_ready(pod) else None
    )


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
        since_a, since_b = _ready_since(pa), _ready_since(pb)
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


def pod_from_template(owner: Object, template: Object) -> Object:
    """A new pod of `owner` (upstream's GetPodFromTemplate): `<owner>-` plus a suffix."""
    template_meta = template.get("metadata") or {}
    metadata: Object = {
        "generateName": f"{owner['metadata']['name']}-",
        "namespace": owner["metadata"]["namespace"],
        "ownerReferences": [new_controller_ref(owner)],
    }
    for field in ("labels", "annotations", "finalizers"):
        if template_meta.get(field):
            metadata[field] = template_meta[field]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy_of(template.get("spec") or {}),
    }


# ---------------------------------------------------------------- ownership


async def claim(
    client: Client,
    resource: Any,
    owner: Object,
    candidates: list[Object],
    can_adopt: Callable[[], Awaitable[bool]],
) -> list[Object]:
    """The candidates `owner` controls once ownership is reconciled (ControllerRefManager).

    Owned objects its selector still matches are kept, owned ones it no longer
    matches are released, and matching orphans are adopted — if `can_adopt`
    (a fresh read: the owner is not being deleted) allows, asked at most once.
    """
    owner_uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    selects = selector_matcher(selector_of(owner))
    claimed: list[Object] = []
    adopt_allowed: bool | None = None
    for obj in candidates:
        matches = selects(labels_of(obj))
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != owner_uid:
                continue
            if matches:
                claimed.append(obj)
            elif not owner_deleting:
                await _patch_owners(client, resource, obj, {"$patch": "delete", "uid": owner_uid})
            continue
        if owner_deleting or not matches or obj["metadata"].get("deletionTimestamp"):
            continue
        if adopt_allowed is None:
            adopt_allowed = await can_adopt()
        if adopt_allowed:
            adopted = await _patch_owners(client, resource, obj, new_controller_ref(owner))
            if adopted is not None:
                claimed.append(adopted)
    return claimed


async def _patch_owners(client: Client, resource: Any, obj: Object, ref: Object) -> Object | None:
    """Add (or, with `$patch: delete`, remove) one owner reference; None if the object is gone."""
    patch = {"metadata": {"ownerReferences": [ref], "uid": obj["metadata"]["uid"]}}
    try:
        return await client.patch(
            resource, meta.namespace_of(obj), meta.name_of(obj), patch, patch_type="strategic"
        )
    except ApiError as exc:
        if exc.not_found or exc.code == 422:  # gone, or a new object of the same name
            return None
        raise


async def fresh_and_alive(client: Client, resource: Any, owner: Object) -> bool:
    """Is `owner` (read from the server, not a cache) the same object and not being deleted?"""
    try:
        current = await client.get(resource, meta.namespace_of(owner), meta.name_of(owner))
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    same = current["metadata"].get("uid") == owner["metadata"]["uid"]
    return same and not current["metadata"].get("deletionTimestamp")


async def slow_start(
    count: int, call: Callable[[], Awaitable[None]]
) -> tuple[int, Exception | None]:
    """Run `call` `count` times in batches of 1, 2, 4, …; stop after a batch with a failure.

    Returns (successes, first failure or None).
    """
    done, batch = 0, min(count, 1)
    while batch > 0:
        results = await asyncio.gather(*(call() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        count -= batch
        batch = min(2 * batch, count)
    return done, None


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

    def _owner_of(self, pod: Object, ref: Object | None = None) -> Object | None:
        """The ReplicaSet a pod's controller reference points at, if it is in the cache."""
        ref = ref or controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        owner = self.replicasets.get(f"{meta.namespace_of(pod)}/{ref.get('name')}")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

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
            previous = self._owner_of(old, old_ref)
            if previous is not None:
                self.enqueue(previous)
        if new_ref is None:
            if labels_changed or old_ref != new_ref:
                self._enqueue_matching(new)
            return
        owner = self._owner_of(new, new_ref)
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
