"""Choosing a node for one pod: filter, score, pick (upstream's `schedulePod`).

Nodes are filtered starting where the previous pod stopped, so every node
gets its turn. In large clusters the search stops once enough feasible nodes
are found (upstream's percentageOfNodesToScore: 50% of 100 nodes, falling
by 1% per 125 nodes to 5%, and never fewer than 100 nodes); only those are
scored. The highest total score wins; ties are broken at random. A pod
nominated to a node (by preemption) tries that node first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from kubik.scheduler.cache import Cache
from kubik.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    FitError,
    Framework,
    Status,
)
from kubik.scheduler.nodeinfo import NodeInfo
from kubik.scheduler.queue import SchedulingQueue

Object = dict[str, Any]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50


class NoNodesAvailable(Exception):
    def __str__(self) -> str:
        return "no nodes available to schedule pods"


@dataclass(slots=True)
class ScheduleResult:
    node: str
    evaluated: int  # nodes filtered
    feasible: int  # nodes that fit


def num_feasible_nodes_to_find(percentage: int, num_nodes: int) -> int:
    """How many feasible nodes are enough (percentage 0: upstream's adaptive share)."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage == 0:
        percentage = max(
            BASE_PERCENTAGE_OF_NODES_TO_SCORE - num_nodes // 125,
            MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND,
        )
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


class Algorithm:
    def __init__(
        self,
        cache: Cache,
        queue: SchedulingQueue,
        *,
        percentage_of_nodes_to_score: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        self._cache = cache
        self._queue = queue
        self._percentage = percentage_of_nodes_to_score
        self._rng = rng or random.Random()
        self.next_start = 0

    def schedule(self, fw: Framework, state: CycleState, pod: Object) -> ScheduleResult:
        """The chosen node; raises FitError (no node fits), NoNodesAvailable or SchedulingError."""
        all_nodes = self._cache.node_infos()
        if not all_nodes:
            raise NoNodesAvailable()
        feasible, diagnosis = self._find_nodes_that_fit(fw, state, pod, all_nodes)
        if not feasible:
            raise FitError(len(all_nodes), diagnosis)
        evaluated = len(feasible) + len(diagnosis.statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        fw.run_pre_score(state, pod, feasible)
        totals = fw.run_score(state, pod, feasible)
        best = max(totals)
        winners = [i for i, total in enumerate(totals) if total == best]
        chosen = winners[0] if len(winners) == 1 else self._rng.choice(winners)
        return ScheduleResult(feasible[chosen].name, evaluated, len(feasible))

    def _find_nodes_that_fit(
        self, fw: Framework, state: CycleState, pod: Object, all_nodes: list[NodeInfo]
    ) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis()
        result, status = fw.run_pre_filter(state, pod)
        if not status.success:
            diagnosis.absent_status = status
            diagnosis.pre_filter_msg = status.message
            diagnosis.unschedulable_plugins.add(status.plugin)
            return [], diagnosis
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            node = self._cache.get(nominated)
            if node is not None:
                feasible, _ = self._filter(fw, state, pod, [node], diagnosis, 1)
                if feasible:
                    return feasible, diagnosis
        nodes = all_nodes
        if result is not None:
            nodes = [n for n in map(self._cache.get, sorted(result.node_names)) if n is not None]
            diagnosis.absent_status = Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
                f"node(s) didn't satisfy plugin(s) [{' '.join(result.plugins)}]",
            )
        if not nodes:
            return [], diagnosis
        to_find = num_feasible_nodes_to_find(
            fw.percentage_of_nodes_to_score or self._percentage, len(nodes)
        )
        if not fw.has("score"):
            to_find = 1
        start = self.next_start % len(nodes)
        ordered = nodes[start:] + nodes[:start] if start else nodes
        feasible, processed = self._filter(fw, state, pod, ordered, diagnosis, to_find)
        self.next_start = (self.next_start + processed) % len(all_nodes)
        return feasible, diagnosis

    def _filter(
        self,
        fw: Framework,
        state: CycleState,
        pod: Object,
        nodes: list[NodeInfo],
        diagnosis: Diagnosis,
        to_find: int,
    ) -> tuple[list[NodeInfo], int]:
        """Feasible nodes in order until `to_find` are found, and how many nodes were looked at."""
        filters = fw.filters(state)
        if not filters:
            return nodes[:to_find], min(to_find, len(nodes))
        nominated = self._queue.nominated_nodes()
        statuses = diagnosis.statuses
        feasible: list[NodeInfo] = []
        for index, node in enumerate(nodes):
            if nominated and node.name in nominated:
                status = fw.run_filters_with_nominated_pods(state, pod, node, filters)
            else:
                status = fw.run_filters(state, pod, node, filters)
            if status is None:
                feasible.append(node)
                if len(feasible) >= to_find:
                    return feasible, index + 1
            else:
                statuses[node.name] = status
                diagnosis.unschedulable_plugins.add(status.plugin)
        return feasible, len(nodes)
