"""The DaemonSet controller: one pod of the template on every node that should run it.

A node should run a DaemonSet's pod when the template's nodeName (if any),
nodeSelector and required node affinity select it and every NoSchedule or
NoExecute taint on it is tolerated — DaemonSet pods tolerating, besides
their own tolerations, what upstream adds to all of them: not-ready and
unreachable (NoExecute), disk, memory and PID pressure and unschedulable
(NoSchedule), and network-unavailable for host-network pods. A pod already
running may stay while only NoSchedule taints are untolerated.

Each pod is pinned to its node with a required node affinity on the
`metadata.name` field, as upstream does so that the scheduler binds it.
kubik also sets `spec.nodeName` at creation, binding the pod itself, as
upstream did before 1.12, so daemon pods never wait for a scheduler.

Templates are ControllerRevisions named `<set>-<hash>`; pods carry the hash
in `controller-revision-hash`. RollingUpdate replaces out-of-date pods,
deleting at most maxUnavailable unavailable at a time (or, with maxSurge,
starting new pods next to old ones and deleting the old once the new are
available); OnDelete leaves that to whoever deletes pods. The hash is the
pod template hash kubik's Deployments use (upstream's ComputeHash, over the
template's JSON rather than a dump of the Go struct), so names differ from
a real cluster's for the same template.

(upstream: pkg/controller/daemon)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers import revisions as history
from kubik.controllers.base import Controller, register
from kubik.controllers.deployment_util import scaled_value, template_hash
from kubik.controllers.expectations import Expectations
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    ORPHANS,
    claim,
    controller_ref,
    error_message,
    fresh_and_alive,
    index_by_controller,
    index_orphans,
    is_pod_available,
    is_pod_ready,
    namespace_terminating,
    owned_or_orphaned,
    pod_from_template,
    resolve_owner,
    selecting,
    slow_start,
)
from kubik.controllers.revisions import REVISION_LABEL
from kubik.scheduler.plugins.tainttoleration import tolerates

log = logging.getLogger(__name__)

Object = dict[str, Any]
# node name → (up-to-date pods, out-of-date pods) on it, and a pod check
_States = dict[str, tuple[list[Object], list[Object]]]
_Check = Callable[[Object], bool]

DAEMONSETS = builtin.lookup("apps", "v1", "daemonsets")
PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")
KIND = "DaemonSet"

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
BURST_REPLICAS = 250  # creations or deletions per sync
STATUS_RETRIES = 1
FAILED_POD_BACKOFF = (1.0, 15 * 60.0)  # first and longest delay before deleting a failed pod

DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


# ----------------------------------------------------------------- placement


def with_daemon_tolerations(spec: Object) -> Object:
    """A copy of the pod spec with the tolerations every DaemonSet pod gets."""
    spec = dict(spec)
    tolerations = list(spec.get("tolerations") or [])
    wanted = DAEMON_TOLERATIONS + ([HOST_NETWORK_TOLERATION] if spec.get("hostNetwork") else [])
    for toleration in wanted:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return spec


def _requirement_matches(requirement: Object, values: dict[str, str]) -> bool:
    key, operator = requirement.get("key"), requirement.get("operator")
    wanted = requirement.get("values") or []
    if operator == "In":
        return key in values and values[key] in wanted
    if operator == "NotIn":
        return key not in values or values[key] not in wanted
    if operator == "Exists":
        return key in values
    if operator == "DoesNotExist":
        return key not in values
    if operator in ("Gt", "Lt") and key in values and len(wanted) == 1:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if operator == "Gt" else have < limit
    return False


def _term_matches(term: Object, node: Object) -> bool:
    """A node selector term: all its requirements hold; a term with none matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(_requirement_matches(r, labels) for r in expressions) and all(
        r.get("key") == "metadata.name" and _requirement_matches(r, node_fields) for r in fields
    )


def selects_node(spec: Object, node: Object) -> bool:
    """The pod spec's nodeSelector and required node affinity both select the node."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def untolerated(taints: list[Object], tolerations: list[Object], effects: set[str]) -> bool:
    """Is some taint with one of `effects` tolerated by none of the tolerations?"""
    return any(
        taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations)
        for taint in taints
    )


def should_run(node: Object, ds: Object) -> tuple[bool, bool]:
    """(should a new daemon pod start on the node, may a running one stay)."""
    spec = (ds["spec"].get("template") or {}).get("spec") or {}
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False, False
    spec = with_daemon_tolerations(spec)
    if not selects_node(spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    if untolerated(taints, spec["tolerations"], {"NoSchedule", "NoExecute"}):
        return False, not untolerated(taints, spec["tolerations"], {"NoExecute"})
    return True, True


def pin_to_node(spec: Object, node_name: str) -> None:
    """Require the node by name through node affinity, replacing other required terms."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    required["nodeSelectorTerms"] = [term]


def target_node(pod: Object) -> str | None:
    """The node a daemon pod is for: its nodeName, else the one its affinity pins."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In":
                values = field.get("values") or []
                return values[0] if len(values) == 1 else None
    return None


# ------------------------------------------------------------------ pods


def template_generation(ds: Object) -> str | None:
    """The deprecated template generation the API server records on the set, if any."""
    value = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    return value if value is not None and value.lstrip("-").isdigit() else None


def is_updated(pod: Object, hash_: str, generation: str | None) -> bool:
    labels = pod["metadata"].get("labels") or {}
    by_generation = generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == generation
    return bool(hash_) and labels.get(REVISION_LABEL) == hash_ or by_generation


def new_pod(ds: Object, node_name: str, hash_: str) -> Object:
    """The daemon pod for a node: the template, labelled with its revision, bound to the node."""
    pod = pod_from_template(ds, ds["spec"].get("template") or {})
    labels = pod["metadata"]["labels"] = dict(pod["metadata"].get("labels") or {})
    generation = template_generation(ds)
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = generation
    labels[REVISION_LABEL] = hash_
    spec = pod["spec"] = with_daemon_tolerations(pod["spec"])
    pin_to_node(spec, node_name)
    spec["nodeName"] = node_name
    return pod


def _labels(obj: Object) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _phase(pod: Object) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def _deleting(pod: Object) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def oldest_first(pods: list[Object]) -> list[Object]:
    """Pods bound to a node first, then by creation time, then by name."""
    return sorted(
        pods,
        key=lambda p: (
            not (p.get("spec") or {}).get("nodeName"),
            p["metadata"].get("creationTimestamp") or "",
            p["metadata"]["name"],
        ),
    )


def pods_by_node(pods: list[Object], *, with_finished: bool) -> dict[str, list[Object]]:
    """Daemon pods grouped by target node; deleted pods that ended left out unless asked."""
    grouped: dict[str, list[Object]] = {}
    for pod in pods:
        if not with_finished and _deleting(pod) and _phase(pod) in ("Succeeded", "Failed"):
            continue
        node = target_node(pod)
        if node is not None:
            grouped.setdefault(node, []).append(pod)
    return grouped


def surge_and_unavailable(ds: Object, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts out of `desired` nodes."""
    strategy = ds["spec"].get("updateStrategy") or {}
    if strategy.get("type") != "RollingUpdate" or not strategy.get("rollingUpdate"):
        return 0, 0
    rolling = strategy["rollingUpdate"]
    return (
        scaled_value(rolling.get("maxSurge"), desired, round_up=True),
        scaled_value(rolling.get("maxUnavailable"), desired, round_up=True),
    )


class _Backoff:
    """Per-key exponential delays (client-go's flowcontrol.Backoff, as the controller uses it)."""

    def __init__(self, first: float, longest: float) -> None:
        self.first, self.longest = first, longest
        self._entries: dict[str, tuple[float, float]] = {}  # key → (delay, last update)

    def waiting(self, key: str, now: float) -> float:
        """Seconds still to wait for `key` (0 when not backing off)."""
        delay, since = self._entries.get(key, (0.0, now))
        return max(0.0, since + delay - now)

    def step(self, key: str, now: float) -> None:
        delay, since = self._entries.get(key, (0.0, now))
        fresh = not delay or now - since > 2 * self.longest
        self._entries[key] = (self.first if fresh else min(delay * 2, self.longest), now)


# ---------------------------------------------------------------- controller


@register
class DaemonSetController(Controller):
    name = "daemonset"
    component = "daemonset-controller"
    workers = 2  # upstream's --concurrent-daemonset-syncs

    def setup(self) -> None:
        self.sets = self.informers.informer(DAEMONSETS)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.revisions = self.informers.informer(history.REVISIONS)
        for informer in (self.pods, self.revisions):
            informer.add_index(BY_CONTROLLER, index_by_controller)
            informer.add_index(ORPHANS, index_orphans)
        self.creations = Expectations()
        self.deletions = Expectations()
        self.failed_pods = _Backoff(*FAILED_POD_BACKOFF)
        self.sets.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self._set_deleted,
        )
        self.revisions.add_handlers(
            on_add=self._revision_added,
            on_update=self._revision_updated,
            on_delete=self._enqueue_owner,
        )
        self.pods.add_handlers(
            on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted
        )
        self.nodes.add_handlers(on_add=self._node_added, on_update=self._node_updated)

    # ---------------------------------------------------------- handlers

    def _set_deleted(self, ds: Object) -> None:
        self.creations.forget(key_of(ds))
        self.deletions.forget(key_of(ds))
        self.enqueue(ds)

    def _enqueue_owner(self, obj: Object) -> None:
        ds = resolve_owner(self.sets, obj, KIND)
        if ds is not None:
            self.enqueue(ds)

    def _enqueue_selecting(self, obj: Object) -> None:
        for ds in selecting(self.sets, obj):
            self.enqueue(ds)

    def _revision_added(self, revision: Object) -> None:
        if revision["metadata"].get("deletionTimestamp"):
            self._enqueue_owner(revision)
        elif controller_ref(revision) is None:
            self._enqueue_selecting(revision)

    def _revision_updated(self, old: Object, revision: Object) -> None:
        old_ref, ref = controller_ref(old), controller_ref(revision)
        if ref != old_ref and old_ref is not None:
            self._enqueue_owner(old)
        if ref is not None:
            self._enqueue_owner(revision)
        elif ref != old_ref or old["metadata"].get("labels") != revision["metadata"].get("labels"):
            self._enqueue_selecting(revision)

    def _pod_added(self, pod: Object) -> None:
        if _deleting(pod):
            self._pod_deleted(pod)
            return
        if controller_ref(pod) is None:
            self._enqueue_selecting(pod)
            return
        ds = resolve_owner(self.sets, pod, KIND)
        if ds is not None:
            self.creations.creation_observed(key_of(ds))
            self.enqueue(ds)

    def _pod_updated(self, old: Object, pod: Object) -> None:
        if _deleting(pod):
            self._pod_deleted(pod)
            return
        old_ref, ref = controller_ref(old), controller_ref(pod)
        if ref != old_ref and old_ref is not None:
            self._enqueue_owner(old)
        if ref is None:
            if ref != old_ref or old["metadata"].get("labels") != pod["metadata"].get("labels"):
                self._enqueue_selecting(pod)
            return
        ds = resolve_owner(self.sets, pod, KIND)
        if ds is None:
            return
        self.enqueue(ds)
        min_ready = ds["spec"].get("minReadySeconds") or 0
        if min_ready and not is_pod_ready(old) and is_pod_ready(pod):
            self.queue.add_after(key_of(ds), min_ready + 1)

    def _pod_deleted(self, pod: Object) -> None:
        ds = resolve_owner(self.sets, pod, KIND)
        if ds is not None:
            self.deletions.deletion_observed(key_of(ds), key_of(pod))
            self.enqueue(ds)

    def _node_added(self, node: Object) -> None:
        for ds in self.sets.list():
            if should_run(node, ds)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: Object, node: Object) -> None:
        if old["metadata"].get("labels") == node["metadata"].get("labels") and (
            (old.get("spec") or {}).get("taints") == (node.get("spec") or {}).get("taints")
        ):
            return
        for ds in self.sets.list():
            if should_run(old, ds) != should_run(node, ds):
                self.enqueue(ds)

    # -------------------------------------------------------------- sync

    def _satisfied(self, key: str) -> bool:
        return self.creations.satisfied(key) and self.deletions.satisfied(key)

    async def sync(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.creations.forget(key)
            self.deletions.forget(key)
            return
        nodes = self.nodes.list()
        selector = ds["spec"].get("selector") or {}
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            message = "This daemon set is selecting all pods. A non-empty selector is required."
            self.recorder.record(ds, "Warning", "SelectingAll", message)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return

        async def can_adopt() -> bool:
            return await fresh_and_alive(self.client, DAEMONSETS, ds)

        current, old = await self._construct_history(ds, can_adopt)
        hash_ = current["metadata"]["labels"][REVISION_LABEL]
        pods = await claim(self.client, PODS, ds, owned_or_orphaned(self.pods, ds), can_adopt)
        if not self._satisfied(key):
            await self._update_status(ds, nodes, pods, hash_, observed=False)
            return
        try:
            await self._manage(ds, nodes, pods, hash_)
            strategy = (ds["spec"].get("updateStrategy") or {}).get("type")
            if self._satisfied(key) and strategy == "RollingUpdate":
                await self._rolling_update(ds, nodes, pods, hash_)
            await self._cleanup_history(ds, old, pods)
        except Exception:
            try:
                await self._update_status(ds, nodes, pods, hash_, observed=True)
            except ApiError as exc:
                log.warning("daemonset %s: could not update status: %s", key, exc)
            raise
        await self._update_status(ds, nodes, pods, hash_, observed=True)

    # ----------------------------------------------------------- history

    async def _construct_history(
        self, ds: Object, can_adopt: Callable[[], Awaitable[bool]]
    ) -> tuple[Object, list[Object]]:
        """The revision of the current template (made or renumbered if need be), and the others."""
        owned = await claim(
            self.client,
            history.REVISIONS,
            ds,
            owned_or_orphaned(self.revisions, ds),
            can_adopt,
        )
        wanted = history.encode(history.template_patch(ds))
        current, old = [], []
        for revision in owned:
            if REVISION_LABEL not in (revision["metadata"].get("labels") or {}):
                labels = {**(revision["metadata"].get("labels") or {})}
                labels[REVISION_LABEL] = revision["metadata"]["name"]
                revision = await self.client.update(
                    history.REVISIONS,
                    {**revision, "metadata": {**revision["metadata"], "labels": labels}},
                )
            if history.encode(revision.get("data")) == wanted:
                current.append(revision)
            else:
                old.append(revision)
        number = max((r.get("revision", 0) for r in old), default=0) + 1
        if not current:
            return await self._snapshot(ds, number), old
        keep = await self._dedup(ds, current)
        if keep.get("revision", 0) < number:
            keep = await history.renumber(self.client, keep, number)
        return keep, old

    async def _snapshot(self, ds: Object, number: int) -> Object:
        """Record the current template as revision `number`; count a collision if the name
        is taken by another template (the sync fails and retries with the new count)."""
        collisions = (ds.get("status") or {}).get("collisionCount")
        hash_ = template_hash(ds["spec"].get("template") or {}, collisions)
        revision = history.new_revision(ds, REVISION_LABEL, hash_, number)
        try:
            return await self.client.create(history.REVISIONS, revision)
        except ApiError as exc:
            if not exc.already_exists:
                raise
        meta = ds["metadata"]
        existing = await self.client.get(
            history.REVISIONS, meta["namespace"], revision["metadata"]["name"]
        )
        if history.same_data(existing, revision):
            return existing
        fresh = await self.client.get(DAEMONSETS, meta["namespace"], meta["name"])
        fresh_count = (fresh.get("status") or {}).get("collisionCount")
        if fresh_count != collisions:
            raise RuntimeError(
                f"found a stale collision count ({collisions}, expected {fresh_count}) "
                f"of DaemonSet {meta['name']!r}; will retry until it is updated"
            )
        status = {**(fresh.get("status") or {}), "collisionCount": (fresh_count or 0) + 1}
        await self.client.update_status(DAEMONSETS, {**fresh, "status": status})
        raise RuntimeError(f"hash collision for DaemonSet {meta['name']!r}; collision count raised")

    async def _dedup(self, ds: Object, current: list[Object]) -> Object:
        """Keep the newest of several revisions of the current template; relabel its pods."""
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: r.get("revision", 0))
        hash_ = keep["metadata"]["labels"][REVISION_LABEL]
        namespace = ds["metadata"]["namespace"]
        for pod in owned_or_orphaned(self.pods, ds):
            if controller_ref(pod) is None:
                continue
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != hash_:
                patch = {"metadata": {"labels": {REVISION_LABEL: hash_}}}
                await self.client.patch(PODS, namespace, pod["metadata"]["name"], patch)
        for revision in current:
            if revision is not keep:
                await self.client.delete(history.REVISIONS, namespace, revision["metadata"]["name"])
        return keep

    async def _cleanup_history(self, ds: Object, old: list[Object], pods: list[Object]) -> None:
        """Delete the oldest unused revisions beyond revisionHistoryLimit."""
        limit = ds["spec"].get("revisionHistoryLimit")
        excess = len(old) - (10 if limit is None else limit)
        if excess <= 0:
            return
        live = {
            (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
            for node_pods in pods_by_node(pods, with_finished=True).values()
            for pod in node_pods
        }
        await history.prune(
            self.client,
            sorted(old, key=lambda r: r.get("revision", 0)),
            excess,
            lambda r: r["metadata"]["labels"].get(REVISION_LABEL) in live,
        )

    # ------------------------------------------------------------ manage

    async def _manage(
        self, ds: Object, nodes: list[Object], pods: list[Object], hash_: str
    ) -> None:
        """Create daemon pods where missing, delete them where they should not be."""
        by_node = pods_by_node(pods, with_finished=False)
        create_on: list[str] = []
        delete: list[Object] = []
        for node in nodes:
            create, remove = self._node_pods(ds, node, by_node, hash_)
            create_on += create
            delete += remove
        names = {node["metadata"]["name"] for node in nodes}
        for node_name, node_pods in by_node.items():
            if node_name not in names:
                delete += [p for p in node_pods if not (p.get("spec") or {}).get("nodeName")]
        await self._sync_nodes(ds, delete, create_on, hash_)

    def _node_pods(
        self, ds: Object, node: Object, by_node: dict[str, list[Object]], hash_: str
    ) -> tuple[list[str], list[Object]]:
        """(nodes needing a pod, pods to delete) on one node (upstream's podsShouldBeOnNode)."""
        run, keep = should_run(node, ds)
        name = node["metadata"]["name"]
        existing = by_node.get(name)
        if run and existing is None:
            return [name], []
        if not keep:
            return [], [p for p in existing or [] if not _deleting(p)]
        delete: list[Object] = []
        running: list[Object] = []
        for pod in existing or []:
            if _deleting(pod):
                continue
            if _phase(pod) == "Failed":
                observed = (ds.get("status") or {}).get("observedGeneration", 0)
                backoff_key = f"{ds['metadata']['uid']}/{observed}/{name}"
                now = time.monotonic()
                wait = self.failed_pods.waiting(backoff_key, now)
                if wait > 0:
                    self.queue.add_after(key_of(ds), wait)
                    continue
                self.failed_pods.step(backoff_key, now)
                message = (
                    f"Found failed daemon pod {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']} on node {name}, will try to kill it"
                )
                self.recorder.record(ds, "Warning", "FailedDaemonPod", message)
                delete.append(pod)
            elif _phase(pod) == "Succeeded":
                message = (
                    f"Found succeeded daemon pod {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']} on node {name}, will try to delete it"
                )
                self.recorder.record(ds, "Normal", "SucceededDaemonPod", message)
                delete.append(pod)
            else:
                running.append(pod)
        running = oldest_first(running)
        if surge_and_unavailable(ds, 1)[0] <= 0:
            return [], delete + running[1:]
        if len(running) <= 1:
            return ([name] if not running and run else []), delete
        # surging: keep the oldest new pod, and the oldest old pod while the new is not
        # available (or while the old one is ready); everything else goes
        newest = [p for p in running if _labels(p).get(REVISION_LABEL) == hash_]
        outdated = [p for p in running if p not in newest]
        delete += newest[1:] + outdated[1:]
        if newest and outdated:
            min_ready = ds["spec"].get("minReadySeconds") or 0
            if not is_pod_ready(outdated[0]) or is_pod_available(newest[0], min_ready, time.time()):
                delete.append(outdated[0])
        return [], delete

    async def _sync_nodes(
        self, ds: Object, delete: list[Object], create_on: list[str], hash_: str
    ) -> None:
        """Delete `delete` and create a pod on each node of `create_on`, within the burst
        limit, creations in slow-start batches; expectations are set first."""
        key = key_of(ds)
        create_on, delete = create_on[:BURST_REPLICAS], delete[:BURST_REPLICAS]
        self.creations.expect_creations(key, len(create_on))
        self.deletions.expect_deletions(key, [key_of(pod) for pod in delete])
        nodes = iter(create_on)
        created, failure = await slow_start(
            len(create_on), lambda: self._create(ds, next(nodes), hash_)
        )
        for _ in range(len(create_on) - created):  # failed, or never tried: not to be seen
            self.creations.creation_observed(key)
        failures = [failure] if failure and not namespace_terminating(failure) else []
        results = await asyncio.gather(
            *(self._delete(ds, pod) for pod in delete), return_exceptions=True
        )
        for pod, result in zip(delete, results, strict=True):
            if isinstance(result, Exception):
                self.deletions.deletion_observed(key, key_of(pod))
                if not (isinstance(result, ApiError) and result.not_found):
                    failures.append(result)
        if failures:
            raise failures[0]

    async def _create(self, ds: Object, node_name: str, hash_: str) -> None:
        try:
            created = await self.client.create(PODS, new_pod(ds, node_name, hash_))
        except ApiError as exc:
            if not namespace_terminating(exc):
                self.recorder.record(
                    ds, "Warning", "FailedCreate", f"Error creating: {error_message(exc)}"
                )
            raise
        self.recorder.record(
            ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )

    async def _delete(self, ds: Object, pod: Object) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(PODS, meta["namespace"], meta["name"])
        except ApiError as exc:
            if not exc.not_found:
                self.recorder.record(
                    ds, "Warning", "FailedDelete", f"Error deleting: {error_message(exc)}"
                )
            raise
        self.recorder.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # ----------------------------------------------------- rolling update

    async def _rolling_update(
        self, ds: Object, nodes: list[Object], pods: list[Object], hash_: str
    ) -> None:
        """Replace out-of-date pods within maxUnavailable, or maxSurge when surging."""
        by_node = pods_by_node(pods, with_finished=False)
        desired = 0
        for node in nodes:
            if should_run(node, ds)[0]:
                desired += 1
                by_node.setdefault(node["metadata"]["name"], [])
        surge, unavailable = surge_and_unavailable(ds, desired)
        if desired > 0 and surge == 0 and unavailable == 0:
            unavailable = 1
        min_ready = ds["spec"].get("minReadySeconds") or 0
        now = time.time()
        generation = template_generation(ds)

        def available(pod: Object) -> bool:
            return is_pod_available(pod, min_ready, now)

        nodes_by_name = {node["metadata"]["name"]: node for node in nodes}
        states: _States = {}
        for name in sorted(by_node):
            live = [p for p in by_node[name] if not _deleting(p)]
            new = [p for p in live if is_updated(p, hash_, generation)]
            outdated = [p for p in live if p not in new]
            states[name] = (new, outdated)
        if surge == 0:
            await self._replace_within_unavailable(ds, states, unavailable, available, hash_)
        else:
            await self._replace_by_surging(
                ds, states, nodes_by_name, surge, desired, available, hash_
            )

    async def _replace_within_unavailable(
        self, ds: Object, states: _States, allowed: int, available: _Check, hash_: str
    ) -> None:
        unavailable = 0
        replace: list[Object] = []
        candidates: list[Object] = []
        for new, outdated in states.values():
            if len(new) > 1 or len(outdated) > 1 or bool(new) == bool(outdated):
                unavailable += 1  # excess pods or none at all: the manage pass sees to it
            elif new:
                unavailable += not available(new[0])
            elif not available(outdated[0]):
                replace.append(outdated[0])
                unavailable += 1
            elif unavailable < allowed:
                candidates.append(outdated[0])
        budget = max(0, min(allowed - unavailable, len(candidates)))
        await self._sync_nodes(ds, replace + candidates[:budget], [], hash_)

    async def _replace_by_surging(
        self,
        ds: Object,
        states: _States,
        nodes_by_name: dict[str, Object],
        allowed: int,
        desired: int,
        available: _Check,
        hash_: str,
    ) -> None:
        delete: list[Object] = []
        leaving: list[Object] = []  # old pods on nodes the set no longer wants
        candidates: list[str] = []
        create_on: list[str] = []
        surging = 0
        up = 0
        for name, (new, outdated) in states.items():
            if len(new) > 1 or len(outdated) > 1:
                surging += 1
                continue
            if outdated and available(outdated[0]) or not outdated and new and available(new[0]):
                up += 1
            if not outdated:
                continue
            if not new:
                wanted = name in nodes_by_name and should_run(nodes_by_name[name], ds)[0]
                if not available(outdated[0]):
                    if wanted:
                        create_on.append(name)
                    else:
                        delete.append(outdated[0])
                elif not wanted:
                    leaving.append(outdated[0])
                elif surging < allowed:
                    candidates.append(name)
            elif not available(new[0]):
                surging += 1
            else:
                delete.append(outdated[0])
        if (removable := up - desired) > 0:
            delete += leaving[:removable]
        budget = max(0, min(allowed - surging, len(candidates)))
        await self._sync_nodes(ds, delete, create_on + candidates[:budget], hash_)

    # ------------------------------------------------------------ status

    async def _update_status(
        self, ds: Object, nodes: list[Object], pods: list[Object], hash_: str, *, observed: bool
    ) -> None:
        by_node = pods_by_node(pods, with_finished=False)
        min_ready = ds["spec"].get("minReadySeconds") or 0
        generation = template_generation(ds)
        now = time.time()
        counts = dict.fromkeys(
            (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberMisscheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            ),
            0,
        )
        for node in nodes:
            node_pods = by_node.get(node["metadata"]["name"])
            if not should_run(node, ds)[0]:
                counts["numberMisscheduled"] += bool(node_pods)
                continue
            counts["desiredNumberScheduled"] += 1
            if not node_pods:
                continue
            counts["currentNumberScheduled"] += 1
            pod = oldest_first(node_pods)[0]
            if is_pod_ready(pod):
                counts["numberReady"] += 1
                counts["numberAvailable"] += is_pod_available(pod, min_ready, now)
            counts["updatedNumberScheduled"] += is_updated(pod, hash_, generation)
        counts["numberUnavailable"] = counts["desiredNumberScheduled"] - counts["numberAvailable"]
        await self._store_status(ds, counts, observed)
        if min_ready and counts["numberReady"] != counts["numberAvailable"]:
            self.queue.add_after(key_of(ds), min_ready)

    async def _store_status(self, ds: Object, counts: Object, observed: bool) -> None:
        old = ds.get("status") or {}
        generation = ds["metadata"].get("generation") or 0
        if all((old.get(k) or 0) == v for k, v in counts.items()) and (
            (old.get("observedGeneration") or 0) >= generation
        ):
            return
        target = ds
        for attempt in range(STATUS_RETRIES + 1):
            status = {**(target.get("status") or {}), **counts}
            if observed:
                status["observedGeneration"] = generation
            status = _wire_status(status)
            try:
                await self.client.update_status(DAEMONSETS, {**target, "status": status})
                return
            except ApiError:
                if attempt == STATUS_RETRIES:
                    raise
            meta = ds["metadata"]
            target = await self.client.get(DAEMONSETS, meta["namespace"], meta["name"])


def _wire_status(status: Object) -> Object:
    """The status as apps/v1 serializes it: zero counts of optional fields left out."""
    optional = ("updatedNumberScheduled", "numberAvailable", "numberUnavailable")
    return {k: v for k, v in status.items() if v or k not in optional}
