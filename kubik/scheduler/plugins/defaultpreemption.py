"""DefaultPreemption: when no node fits a pod, make room for it by evicting lower-priority pods.

As upstream's PostFilter plugin and its preemption evaluator:

1. The pod must be eligible: not `preemptionPolicy: Never`, and not still
   waiting for victims it already chose on its nominated node to go.
2. Only nodes whose filters rejected the pod as `Unschedulable` (not
   "unresolvable", which no eviction can fix) are tried, from a random
   offset, until enough candidates are found (`minCandidateNodesPercentage`
   of them, 10%, and at least `minCandidateNodesAbsolute`, 100) with at
   least one that violates no PodDisruptionBudget.
3. On each, every pod of lower priority is taken away; if the pod fits
   then, victims are given back one by one, most important first (higher
   priority, then the longer running) and those whose PDB would be
   violated before the others, keeping every pod that still lets it fit.
   What cannot be given back is the minimal set of victims. Filters run
   with the pods nominated to the node counted there.
4. The node is chosen by fewest PDB violations, then the lowest
   highest-victim priority, the smallest sum of victim priorities, the
   fewest victims, the latest start of the most important victims.
5. The victims get a `DisruptionTarget` condition and are deleted (waiting
   pods are rejected instead); lower-priority pods nominated to that node
   lose their nomination. That happens in the background: the scheduling
   cycle does not wait for the API. The pod is nominated to the node
   (`status.nominatedNodeName`) and retried when the victims are gone;
   meanwhile other pods are filtered as if it ran there.

A pod that gains nothing from preemption gets upstream's message, e.g.
"preemption: 0/3 nodes are available: 3 Preemption is not helpful for
scheduling.", and its nomination is cleared.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from kubik.api import builtin, meta
from kubik.api.selectors import label_selector_matches
from kubik.client.api import ApiError
from kubik.scheduler import metrics
from kubik.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo, PodInfo, pod_key

log = logging.getLogger(__name__)

Object = dict[str, Any]

PODS = builtin.lookup("", "v1", "pods")
PDBS = builtin.lookup("policy", "v1", "poddisruptionbudgets")

DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
_PRIORITY_OFFSET = 2**31  # makes every priority non-negative when summed, as upstream
_NOT_STARTED = "~"  # sorts after every timestamp: a pod not started yet started "now"


@dataclass(slots=True)
class Candidate:
    """A node the pod fits on once `victims` (most important first) are gone."""

    node: str
    victims: list[PodInfo]
    pdb_violations: int


def _start_time(info: PodInfo) -> str:
    return (info.pod.get("status") or {}).get("startTime") or _NOT_STARTED


def importance(info: PodInfo) -> tuple[int, str]:
    """Sort key, most important first: higher priority, then the earlier started."""
    return -info.priority, _start_time(info)


def _earliest_start_of_most_important(victims: list[PodInfo]) -> str:
    highest = max(v.priority for v in victims)
    return min(_start_time(v) for v in victims if v.priority == highest)


def pick_one_node(candidates: list[Candidate]) -> Candidate:
    """Upstream's order of preference; the first candidate wins what is still tied."""
    return max(
        candidates,
        key=lambda c: (
            -c.pdb_violations,
            -c.victims[0].priority,
            -sum(v.priority + _PRIORITY_OFFSET for v in c.victims),
            -len(c.victims),
            _earliest_start_of_most_important(c.victims),
        ),
    )


def split_by_pdb_violation(
    victims: list[PodInfo], pdbs: list[Object]
) -> tuple[list[PodInfo], list[PodInfo]]:
    """(pods whose eviction would break a budget, the others), each in the order given.

    Each budget allows `status.disruptionsAllowed` evictions; pods it already
    counts as disrupted do not take from it. A budget with an empty selector
    covers no pod here (upstream's choice for preemption).
    """
    allowed = [(pdb.get("status") or {}).get("disruptionsAllowed") or 0 for pdb in pdbs]
    violating: list[PodInfo] = []
    others: list[PodInfo] = []
    for info in victims:
        metadata = info.pod["metadata"]
        labels = metadata.get("labels") or {}
        violated = False
        if labels:
            for i, pdb in enumerate(pdbs):
                if pdb["metadata"].get("namespace") != metadata.get("namespace"):
                    continue
                selector = (pdb.get("spec") or {}).get("selector") or {}
                if not (selector.get("matchLabels") or selector.get("matchExpressions")):
                    continue
                if not label_selector_matches(selector, labels):
                    continue
                if metadata["name"] in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else others).append(info)
    return violating, others


def terminating_by_preemption(pod: Object) -> bool:
    if not pod["metadata"].get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == DISRUPTION_TARGET:
            return (
                condition.get("status") == "True"
                and condition.get("reason") == PREEMPTION_BY_SCHEDULER
            )
    return False


def _ref(pod: Object) -> Object:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": pod["metadata"]}


@register
class DefaultPreemption:
    name = "DefaultPreemption"
    events: frozenset[str] = frozenset()  # never the plugin that rejects a pod

    def __init__(self, args: Object, handle: Framework) -> None:
        self._percentage = args.get("minCandidateNodesPercentage", 10)
        self._absolute = args.get("minCandidateNodesAbsolute", 100)
        if not isinstance(self._percentage, int) or not 0 <= self._percentage <= 100:
            raise ValueError("minCandidateNodesPercentage must be an integer from 0 to 100")
        if not isinstance(self._absolute, int) or self._absolute < 0:
            raise ValueError("minCandidateNodesAbsolute must be a non-negative integer")
        if self._percentage == 0 and self._absolute == 0:
            raise ValueError(
                "minCandidateNodesPercentage and minCandidateNodesAbsolute cannot both be zero"
            )
        self._handle = handle
        informers = handle.informers
        self._pods = informers.informer(PODS) if informers is not None else None
        self._pdbs = informers.informer(PDBS) if informers is not None else None
        self.rng = random.Random()
        self._preempting: set[str] = set()  # preemptors whose victims are being deleted
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ postFilter

    def post_filter(
        self, state: CycleState, pod: Object, statuses: dict[str, Status]
    ) -> tuple[str | None, Status]:
        metrics.PREEMPTION_ATTEMPTS.inc()
        nominated, status = self.preempt(state, pod, statuses)
        if status.message:
            status = Status(status.code, "preemption: " + status.message)
        return nominated, status

    def preempt(
        self, state: CycleState, pod: Object, statuses: dict[str, Status]
    ) -> tuple[str | None, Status]:
        """(node to nominate: "" clears, None keeps; status) for a pod no node fits."""
        if self._pods is not None:
            latest = self._pods.get(pod_key(pod))
            if latest is None:
                return None, Status(Code.ERROR, f'pods "{pod["metadata"]["name"]}" not found')
            pod = latest
        why = self._not_eligible(state, pod, statuses)
        if why:
            return None, Status(Code.UNSCHEDULABLE, why)
        cache = self._handle.cache
        all_nodes = cache.node_infos() if cache is not None else []
        potential = [
            node
            for node in all_nodes
            if (s := statuses.get(node.name)) is not None and s.code == Code.UNSCHEDULABLE
        ]
        candidates: list[Candidate] = []
        node_statuses: dict[str, Status] = {}
        errors: list[str] = []
        if potential:
            offset = self.rng.randrange(len(potential))
            wanted = self.num_candidates(len(potential))
            candidates = self.dry_run(state, pod, potential, offset, wanted, node_statuses, errors)
        if not candidates:
            if errors:
                return None, Status(Code.ERROR, "; ".join(errors))
            diagnosis = Diagnosis()
            diagnosis.statuses = node_statuses
            diagnosis.absent_status = Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NOT_HELPFUL)
            return "", Status(Code.UNSCHEDULABLE, str(FitError(len(all_nodes), diagnosis)))
        best = pick_one_node(candidates)
        log.info(
            "preempting %d pod(s) on %s for %s: %s",
            len(best.victims),
            best.node,
            pod_key(pod),
            ", ".join(v.key for v in best.victims),
        )
        self._prepare(best, pod, state.pod_info.priority if state.pod_info else 0)
        return best.node, SUCCESS

    def num_candidates(self, num_nodes: int) -> int:
        return min(max(num_nodes * self._percentage // 100, self._absolute), num_nodes)

    def _not_eligible(self, state: CycleState, pod: Object, statuses: dict[str, Status]) -> str:
        if pod["spec"].get("preemptionPolicy") == "Never":
            return "not eligible due to preemptionPolicy=Never."
        if pod["metadata"].get("uid") in self._preempting:
            return "waiting for the preemption for this pod to be finished"
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if not nominated:
            return ""
        status = statuses.get(nominated)
        if status is None or status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
            return ""  # that node cannot take it any more: preempting elsewhere may help
        node = self._handle.cache.get(nominated) if self._handle.cache is not None else None
        priority = state.pod_info.priority if state.pod_info else 0
        if node is not None:
            for info in node.pods.values():
                if info.priority < priority and terminating_by_preemption(info.pod):
                    return "not eligible due to a terminating pod on the nominated node."
        return ""

    # -------------------------------------------------------------- dry run

    def dry_run(
        self,
        state: CycleState,
        pod: Object,
        nodes: list[NodeInfo],
        offset: int,
        wanted: int,
        node_statuses: dict[str, Status],
        errors: list[str],
    ) -> list[Candidate]:
        """Candidates (those breaking no budget first), trying nodes from `offset` on."""
        pdbs = self._pdbs.list() if self._pdbs is not None else []
        clean: list[Candidate] = []
        violating: list[Candidate] = []
        for i in range(len(nodes)):
            node = nodes[(offset + i) % len(nodes)]
            try:
                victims, violations, status = self.select_victims(
                    state.clone(), pod, node.clone(), pdbs
                )
            except Exception as exc:
                log.exception("selecting preemption victims on %s failed", node.name)
                victims, violations, status = [], 0, Status(Code.ERROR, str(exc))
            if status is None and victims:
                found = clean if violations == 0 else violating
                if len(found) < wanted:
                    found.append(Candidate(node.name, victims, violations))
                if clean and len(clean) + len(violating) >= wanted:
                    break
                continue
            if status is None:
                status = Status(
                    Code.ERROR, f'expected at least one victim pod on node "{node.name}"'
                )
            if status.code == Code.ERROR:
                errors.append(status.message)
            node_statuses[node.name] = status
        return clean + violating

    def select_victims(
        self, state: CycleState, pod: Object, node: NodeInfo, pdbs: list[Object]
    ) -> tuple[list[PodInfo], int, Status | None]:
        """The fewest, least important pods to evict from `node` (a copy) for `pod` to fit."""
        fw = self._handle
        priority = state.pod_info.priority if state.pod_info else 0
        potential = [info for info in node.pods.values() if info.priority < priority]
        if not potential:
            return [], 0, Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, NO_VICTIMS)
        for info in potential:
            node.remove_pod(info.key)
            fw.run_pre_filter_extensions(state, pod, info, node, added=False)
        status = fw.run_filters_with_nominated_pods(state, pod, node)
        if status is not None:
            return [], 0, status
        potential.sort(key=importance)
        violating, others = split_by_pdb_violation(potential, pdbs)
        victims: list[PodInfo] = []

        def reprieve(info: PodInfo) -> bool:
            node.add_pod(info)
            fw.run_pre_filter_extensions(state, pod, info, node, added=True)
            if fw.run_filters_with_nominated_pods(state, pod, node) is None:
                return True
            node.remove_pod(info.key)
            fw.run_pre_filter_extensions(state, pod, info, node, added=False)
            victims.append(info)
            return False

        violations = sum(1 for info in violating if not reprieve(info))
        for info in others:
            reprieve(info)
        if violating and others:
            victims.sort(key=importance)
        return victims, violations, None

    # ------------------------------------------------------------ eviction

    def _prepare(self, candidate: Candidate, pod: Object, priority: int) -> None:
        """Evict the victims and clear lower nominations on the node, in the background."""
        metrics.PREEMPTION_VICTIMS.observe(len(candidate.victims))
        fw = self._handle
        to_delete = []
        for victim in candidate.victims:
            uid = victim.uid
            if uid in fw.waiting_pods:
                fw.reject_waiting_pod(uid, "preempted")
            elif not victim.pod["metadata"].get("deletionTimestamp"):
                to_delete.append(victim.pod)
        lower = []
        if fw.queue is not None:
            lower = [
                info.pod
                for info in fw.queue.nominated_pods_for_node(candidate.node)
                if info.priority < priority
            ]
        if not to_delete and not lower:
            return
        uid = pod["metadata"].get("uid", "")
        self._preempting.add(uid)
        task = asyncio.get_running_loop().create_task(
            self._evict(pod, candidate.node, to_delete, lower)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evict(
        self, pod: Object, node: str, victims: list[Object], lower: list[Object]
    ) -> None:
        uid = pod["metadata"].get("uid", "")
        try:
            results = await asyncio.gather(
                *(self._clear_nomination(p) for p in lower),
                *(self._preempt_victim(pod, victim, node) for victim in victims),
                return_exceptions=True,
            )
        finally:
            self._preempting.discard(uid)
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed:
            log.warning("preemption for %s on %s: %s", pod_key(pod), node, error)
        if failed and self._handle.queue is not None:
            self._handle.queue.activate(pod_key(pod))  # no deletion event may ever come

    async def _clear_nomination(self, pod: Object) -> None:
        metadata = pod["metadata"]
        try:
            await self._handle.client.patch(
                PODS,
                metadata.get("namespace", ""),
                metadata["name"],
                {"status": {"nominatedNodeName": None}},
                subresource="status",
            )
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def _preempt_victim(self, preemptor: Object, victim: Object, node: str) -> None:
        """Mark the victim as disrupted by preemption, then delete it."""
        client = self._handle.client
        metadata = victim["metadata"]
        namespace, name = metadata.get("namespace", ""), metadata["name"]
        scheduler = preemptor["spec"].get("schedulerName") or "default-scheduler"
        condition = {
            "type": DISRUPTION_TARGET,
            "status": "True",
            "reason": PREEMPTION_BY_SCHEDULER,
            "message": f"{scheduler}: preempting to accommodate a higher priority pod",
            "lastTransitionTime": meta.now(),
        }
        try:
            await client.patch(
                PODS,
                namespace,
                name,
                {"status": {"conditions": [condition]}},
                patch_type="strategic",
                subresource="status",
            )
            await client.delete(PODS, namespace, name, uid=metadata.get("uid", ""))
        except ApiError as exc:
            if exc.not_found or exc.conflict:  # gone already (or replaced by a namesake)
                return
            raise
        if self._handle.recorder is not None:
            self._handle.recorder.record(
                _ref(victim),
                "Normal",
                "Preempted",
                f"Preempted by pod {preemptor['metadata'].get('uid', '')} on node {node}",
            )
