"""PodTopologySpread: pods that match a constraint's selector spread evenly over its domains.

A constraint's domains are the values of its topology key on the eligible
nodes (those with every constraint's key that pass its node inclusion
policies: by default the pod's node selector and required node affinity
count, taints do not). A node fits a DoNotSchedule constraint while
placing the pod there leaves its domain at most `maxSkew` matching pods above
the emptiest domain (taken as 0 while fewer than `minDomains` domains
exist). ScheduleAnyway constraints score nodes: fewer matching pods in a
node's domains score higher. `matchLabelKeys` add the pod's own values of
those labels to the selector. A pod without constraints gets the
profile's defaults (upstream's system defaults: hostname with maxSkew 3 and
zone with maxSkew 5, both ScheduleAnyway) with a selector gathered from the
services selecting it and its ReplicaSet or StatefulSet; without such a
selector it is not spread.

PreFilter counts the matching pods of the namespace once, through the
cache's groups of the namespace's pods by labels (a selector is matched once
per group; terminating pods are not counted); the domains come from the
cache's count of nodes per label value when every node is eligible, from one
pass over the nodes otherwise. Filter then compares counts: O(constraints) per node. PreScore
counts the same way for the nodes found feasible.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from kubik.api import builtin
from kubik.scheduler.framework import (
    MAX_NODE_SCORE,
    NODE_ADD,
    NODE_UPDATE,
    POD_ADD,
    POD_DELETE,
    POD_UPDATE,
    Code,
    CycleState,
    Framework,
    Status,
    register,
)
from kubik.scheduler.labelselector import LabelSelector
from kubik.scheduler.nodeinfo import NodeInfo, PodInfo
from kubik.scheduler.plugins.nodeaffinity import RequiredNodeAffinity
from kubik.scheduler.plugins.tainttoleration import untolerated

Object = dict[str, Any]

REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = REASON + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR, IGNORE = "Honor", "Ignore"
SYSTEM_DEFAULT_CONSTRAINTS: list[Object] = [
    {"topologyKey": HOSTNAME, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": ZONE, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
]
SERVICES = builtin.lookup("", "v1", "services")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")
STATEFUL_SETS = builtin.lookup("apps", "v1", "statefulsets")
_OWNERS = {("apps/v1", "ReplicaSet"): REPLICA_SETS, ("apps/v1", "StatefulSet"): STATEFUL_SETS}
_SKIP = Status(Code.SKIP)
_FILTER_KEY = "PreFilterPodTopologySpread"
_SCORE_KEY = "PreScorePodTopologySpread"
_INVALID_SCORE = -1  # a node left out of scoring (it lacks a topology key)


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    honor_affinity: bool = True  # nodeAffinityPolicy
    honor_taints: bool = False  # nodeTaintsPolicy


def constraints_of(
    specs: list[Object], pod_labels: dict[str, str], action: str
) -> list[Constraint]:
    """The constraints with `whenUnsatisfiable: action`, parsed, with their defaults."""
    constraints = []
    for spec in specs:
        if spec.get("whenUnsatisfiable") != action:
            continue
        label_selector = spec.get("labelSelector")
        equal = {k: pod_labels[k] for k in spec.get("matchLabelKeys") or () if k in pod_labels}
        if equal:  # a missing selector adds nothing to the pod's labels
            selector = LabelSelector.parse(label_selector or {}).with_requirements(equal)
        else:
            selector = LabelSelector.parse(label_selector)
        constraints.append(
            Constraint(
                max_skew=spec.get("maxSkew") or 1,
                topology_key=spec.get("topologyKey") or "",
                selector=selector,
                min_domains=spec.get("minDomains") or 1,
                honor_affinity=(spec.get("nodeAffinityPolicy") or HONOR) == HONOR,
                honor_taints=(spec.get("nodeTaintsPolicy") or IGNORE) == HONOR,
            )
        )
    return constraints


def _has_keys(labels: dict[str, str], constraints: list[Constraint]) -> bool:
    return all(c.topology_key in labels for c in constraints)


class _Eligibility:
    """Which nodes count for which constraint, for one pod: its node affinity and tolerations."""

    __slots__ = ("constraints", "affinity", "tolerations")

    def __init__(self, pod: Object, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.affinity = RequiredNodeAffinity(pod)
        self.tolerations = pod["spec"].get("tolerations") or []

    def constraint(self, node: NodeInfo, c: Constraint) -> bool:
        if c.honor_affinity and not self.affinity.matches(node):
            return False
        return not (c.honor_taints and untolerated(node.no_schedule_taints, self.tolerations))

    def trivial(self, any_tainted: bool) -> bool:
        """Whether every node passes every constraint's inclusion policies."""
        affinity = self.affinity.selector or self.affinity.affinity is not None
        return not any(
            (c.honor_affinity and affinity) or (c.honor_taints and any_tainted)
            for c in self.constraints
        )


class _Domains:
    """One constraint's domains: matching pods per topology value (a domain absent from
    `counts` has none), how many domains there are, and the fewest pods in one."""

    __slots__ = ("counts", "size", "minimum")

    def __init__(self, counts: dict[str, int], size: int) -> None:
        self.counts = counts
        self.size = size
        self.minimum = self._lowest()

    def _lowest(self) -> int:
        if len(self.counts) < self.size:
            return 0
        return min(self.counts.values(), default=0)

    def bump(self, value: str, delta: int) -> None:
        before = self.counts.get(value, 0)
        after = self.counts[value] = before + delta
        if after < self.minimum:
            self.minimum = after
        elif before == self.minimum and after > before:
            self.minimum = self._lowest()

    def clone(self) -> _Domains:
        copy = object.__new__(_Domains)
        copy.counts, copy.size, copy.minimum = dict(self.counts), self.size, self.minimum
        return copy


class _FilterState:
    """What Filter needs: the DoNotSchedule constraints, their domains, whether the pod
    counts for each, and what decides the eligible nodes (for nominated pods)."""

    __slots__ = ("constraints", "domains", "self_match", "eligibility")

    def __init__(self, constraints: list[Constraint], domains: list[_Domains], pod: Object) -> None:
        labels = pod["metadata"].get("labels") or {}
        self.constraints = constraints
        self.domains = domains
        self.self_match = [int(c.selector.matches(labels)) for c in constraints]
        self.eligibility = _Eligibility(pod, constraints)

    def clone(self) -> _FilterState:
        copy = object.__new__(_FilterState)
        copy.constraints, copy.self_match, copy.eligibility = (
            self.constraints,
            self.self_match,
            self.eligibility,
        )
        copy.domains = [d.clone() for d in self.domains]
        return copy


@dataclass(slots=True)
class _ScoreState:
    constraints: list[Constraint]
    ignored: set[str]  # nodes without every topology key
    weights: list[float]  # per constraint, by its number of domains
    counts: list[dict[str, int]]  # per constraint: matching pods by domain (by node: hostname)


@register
class PodTopologySpread:
    name = "PodTopologySpread"
    events = frozenset({NODE_ADD, NODE_UPDATE, POD_ADD, POD_UPDATE, POD_DELETE})

    def __init__(self, handle: Framework, args: Object | None = None) -> None:
        args = args or {}
        defaulting = args.get("defaultingType") or "System"
        defaults = args.get("defaultConstraints") or []
        if defaulting not in ("System", "List"):
            raise ValueError(f'defaultingType: "{defaulting}" is not one of System, List')
        if defaulting == "System" and defaults:
            raise ValueError("defaultConstraints: when .defaultingType is System, must be empty")
        for i, constraint in enumerate(defaults):
            _check_default(constraint, f"defaultConstraints[{i}]")
        self._system_defaulted = defaulting == "System"
        self._defaults = SYSTEM_DEFAULT_CONSTRAINTS if self._system_defaulted else defaults
        self._cache = handle.cache
        informers = handle.informers
        self._services = informers.informer(SERVICES) if informers is not None else None
        self._owners = (
            {key: informers.informer(resource) for key, resource in _OWNERS.items()}
            if informers is not None
            else {}
        )

    # -------------------------------------------------------- constraints

    def _constraints(self, pod: Object, action: str) -> list[Constraint]:
        labels = pod["metadata"].get("labels") or {}
        specs = pod["spec"].get("topologySpreadConstraints")
        if specs:
            return constraints_of(specs, labels, action)
        constraints = constraints_of(self._defaults, labels, action)
        if not constraints:
            return []
        selector = self._default_selector(pod)
        if selector.empty:
            return []
        return [dataclasses.replace(c, selector=selector) for c in constraints]

    def _default_selector(self, pod: Object) -> LabelSelector:
        """What selects the pod's siblings: its services' selectors and its ReplicaSet's or
        StatefulSet's (upstream's DefaultSelector)."""
        metadata = pod["metadata"]
        namespace, labels = metadata.get("namespace", ""), metadata.get("labels") or {}
        merged: dict[str, str] = {}
        if self._services is not None:
            for service in self._services.list(namespace):
                wanted = (service.get("spec") or {}).get("selector")
                if wanted is not None and labels.items() >= wanted.items():
                    merged.update(wanted)
        selector = LabelSelector(merged)
        for ref in metadata.get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            informer = self._owners.get((ref.get("apiVersion"), ref.get("kind")))
            owner = informer.get(f"{namespace}/{ref.get('name')}") if informer else None
            if owner is not None:
                owner_selector = (owner.get("spec") or {}).get("selector")
                selector = selector.combined(LabelSelector.parse(owner_selector))
            break
        return selector

    # ---------------------------------------------------------- filtering

    def pre_filter(self, state: CycleState, pod: Object) -> Status | None:
        constraints = self._constraints(pod, DO_NOT_SCHEDULE)
        if not constraints:
            return _SKIP
        s = _FilterState(constraints, [], pod)
        cache = self._cache
        namespace = pod["metadata"].get("namespace", "")
        counts: list[dict[str, int]] = [{} for _ in constraints]
        eligible: dict[str, list[bool]] | None = None
        if self._every_node_counts(constraints, s.eligibility):
            sizes = [len(cache.label_values(c.topology_key)) for c in constraints]
        else:
            eligible = {}
            for node in cache.node_infos():
                if not _has_keys(node.labels, constraints):
                    continue
                flags = eligible[node.name] = [
                    s.eligibility.constraint(node, c) for c in constraints
                ]
                for i, c in enumerate(constraints):
                    if flags[i]:
                        counts[i].setdefault(node.labels[c.topology_key], 0)
            sizes = [len(domains) for domains in counts]
        for i, c in enumerate(constraints):
            self._count(namespace, c, i, counts[i], eligible)
        s.domains = [_Domains(c, size) for c, size in zip(counts, sizes, strict=True)]
        state[_FILTER_KEY] = s
        return None

    def _every_node_counts(self, constraints: list[Constraint], eligibility: _Eligibility) -> bool:
        """Whether every node is eligible: then the cache's label counts are the domains."""
        cache = self._cache
        if not eligibility.trivial(cache.any_tainted()):
            return False
        total = cache.num_nodes()
        return all(sum(cache.label_values(c.topology_key).values()) == total for c in constraints)

    def _count(
        self,
        namespace: str,
        c: Constraint,
        index: int,
        tally: dict[str, int],
        eligible: dict[str, list[bool]] | None,
    ) -> None:
        """Add the namespace's pods matching constraint `index` to their domains' counts
        (on the nodes `eligible` for it; None: on every node)."""
        key = c.topology_key
        for group in self._cache.label_groups(namespace):
            if group.terminating or not c.selector.matches(group.labels):
                continue
            for node, pods in group.nodes.items():
                if node.node is None:
                    continue
                if eligible is not None:
                    flags = eligible.get(node.name)
                    if flags is None or not flags[index]:
                        continue
                value = node.labels[key]
                tally[value] = tally.get(value, 0) + pods

    def pre_filter_add_pod(
        self, state: CycleState, pod: Object, pod_info: PodInfo, node: NodeInfo
    ) -> None:
        self._update(state, pod, pod_info, node, 1)

    def pre_filter_remove_pod(
        self, state: CycleState, pod: Object, pod_info: PodInfo, node: NodeInfo
    ) -> None:
        self._update(state, pod, pod_info, node, -1)

    @staticmethod
    def _update(state: CycleState, pod: Object, other: PodInfo, node: NodeInfo, delta: int) -> None:
        s: _FilterState | None = state.get(_FILTER_KEY)
        namespace = pod["metadata"].get("namespace", "")
        if (
            s is None
            or node.node is None
            or other.pod["metadata"].get("namespace", "") != namespace
        ):
            return
        if not _has_keys(node.labels, s.constraints):
            return
        labels = other.pod["metadata"].get("labels") or {}
        for i, c in enumerate(s.constraints):
            if c.selector.matches(labels) and s.eligibility.constraint(node, c):
                s.domains[i].bump(node.labels[c.topology_key], delta)

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        s: _FilterState = state[_FILTER_KEY]
        labels = node.labels
        for i, c in enumerate(s.constraints):
            value = labels.get(c.topology_key)
            if value is None:
                return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_MISSING_LABEL)
            domains = s.domains[i]
            minimum = domains.minimum if domains.size >= c.min_domains else 0
            if domains.counts.get(value, 0) + s.self_match[i] - minimum > c.max_skew:
                return Status(Code.UNSCHEDULABLE, REASON)
        return None

    # ------------------------------------------------------------ scoring

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        if not self._cache.num_nodes():
            return _SKIP
        constraints = self._constraints(pod, SCHEDULE_ANYWAY)
        if not constraints:
            return _SKIP
        # a node without a zone may still be spread by hostname under the system defaults
        require_all = bool(pod["spec"].get("topologySpreadConstraints")) or not (
            self._system_defaulted
        )
        ignored = (
            {node.name for node in nodes if not _has_keys(node.labels, constraints)}
            if require_all
            else set()
        )
        counted = [node for node in nodes if node.name not in ignored] if ignored else nodes
        counts: list[dict[str, int]] = [
            {}
            if c.topology_key == HOSTNAME
            else dict.fromkeys({node.labels.get(c.topology_key, "") for node in counted}, 0)
            for c in constraints
        ]
        weights = [
            math.log(
                (len(nodes) - len(ignored) if c.topology_key == HOSTNAME else len(counts[i])) + 2
            )
            for i, c in enumerate(constraints)
        ]
        eligibility = _Eligibility(pod, constraints)
        everywhere = not require_all and eligibility.trivial(self._cache.any_tainted())
        eligible: dict[str, list[bool]] = {}
        for group in self._cache.label_groups(pod["metadata"].get("namespace", "")):
            if group.terminating:
                continue
            matching = [i for i, c in enumerate(constraints) if c.selector.matches(group.labels)]
            if not matching:
                continue
            for node, pods in group.nodes.items():
                if node.node is None:
                    continue
                for i in matching:
                    c = constraints[i]
                    if c.topology_key == HOSTNAME:  # a node's own pods, whatever the node
                        counts[i][node.name] = counts[i].get(node.name, 0) + pods
                        continue
                    if not everywhere:
                        flags = eligible.get(node.name)
                        if flags is None:
                            flags = eligible[node.name] = self._score_eligible(
                                node, constraints, eligibility, require_all
                            )
                        if not flags[i]:
                            continue
                    value = node.labels.get(c.topology_key, "")
                    if value in counts[i]:
                        counts[i][value] += pods
        state[_SCORE_KEY] = _ScoreState(constraints, ignored, weights, counts)
        return None

    @staticmethod
    def _score_eligible(
        node: NodeInfo, constraints: list[Constraint], eligibility: _Eligibility, require_all: bool
    ) -> list[bool]:
        if require_all and not _has_keys(node.labels, constraints):
            return [False] * len(constraints)
        return [eligibility.constraint(node, c) for c in constraints]

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def score_nodes(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> list[int]:
        """Per node, the sum over the constraints of its domain's matching pods (weighted)."""
        s: _ScoreState = state[_SCORE_KEY]
        totals = [0.0] * len(nodes)
        for c, counts, weight in zip(s.constraints, s.counts, s.weights, strict=True):
            key, extra = c.topology_key, c.max_skew - 1
            by_name = key == HOSTNAME
            for j, node in enumerate(nodes):
                value = node.labels.get(key)
                if value is not None:
                    totals[j] += counts.get(node.name if by_name else value, 0) * weight + extra
        ignored = s.ignored
        return [
            _INVALID_SCORE if node.name in ignored else math.floor(total + 0.5)
            for node, total in zip(nodes, totals, strict=True)
        ]

    def normalize_score(self, state: CycleState, pod: Object, scores: list[int]) -> None:
        """Fewest matching pods scores 100; nodes left out score 0."""
        valid = [s for s in scores if s != _INVALID_SCORE]
        if not valid:
            scores[:] = [0] * len(scores)
            return
        lowest, highest = min(valid), max(valid)
        for i, score in enumerate(scores):
            if score == _INVALID_SCORE:
                scores[i] = 0
            elif highest == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (highest + lowest - score) // highest


def _check_default(constraint: Any, where: str) -> None:
    """A `List` default constraint as upstream's args validation wants it."""
    if not isinstance(constraint, dict):
        raise ValueError(f"{where}: must be a mapping")
    skew = constraint.get("maxSkew")
    if not isinstance(skew, int) or isinstance(skew, bool) or skew <= 0:
        raise ValueError(f"{where}.maxSkew: {skew!r}: must be greater than zero")
    if not constraint.get("topologyKey"):
        raise ValueError(f"{where}.topologyKey: can not be empty")
    if constraint.get("whenUnsatisfiable") not in (DO_NOT_SCHEDULE, SCHEDULE_ANYWAY):
        raise ValueError(
            f"{where}.whenUnsatisfiable: {constraint.get('whenUnsatisfiable')!r}: "
            f"must be {DO_NOT_SCHEDULE} or {SCHEDULE_ANYWAY}"
        )
    if constraint.get("labelSelector") is not None:
        raise ValueError(
            f"{where}.labelSelector: constraint must not define a selector, "
            "as they deduced for each pod"
        )
