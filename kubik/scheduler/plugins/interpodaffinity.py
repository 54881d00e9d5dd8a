"""InterPodAffinity: pods placed by the pods already running, per topology domain.

A term selects pods (by labels, in some namespaces) and names a topology
key; a node's domain is its value of that key. Required affinity: the node's
domain must hold a pod matching all the terms (or, when no pod anywhere
does, the pod must match its own terms: the first of a group that attracts
itself). Required anti-affinity: no matching pod in the node's domain. And
symmetrically, the required anti-affinity of the pods already placed keeps
the pod out of their domains. Preferred terms, and existing pods' terms
matching the pod (their required affinity weighing `hardPodAffinityWeight`),
add or take their weight from the domains' scores.

Everything is counted once per pod, per (topology key, value), in PreFilter
and PreScore — walking only the pods of the namespaces a term can select,
and the cache's index of pods with affinity terms — so that Filter and Score
look a node's labels up in those counts. As upstream's kube-apiserver would
have merged them, `matchLabelKeys` and `mismatchLabelKeys` are applied to a
term's label selector with the labels of the pod it belongs to.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from kubik.api import builtin
from kubik.scheduler.cache import Placed
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
from kubik.scheduler.labelselector import NOTHING, LabelSelector
from kubik.scheduler.nodeinfo import NodeInfo, PodInfo

Object = dict[str, Any]
Pair = tuple[str, str]  # (topology key, value)

NAMESPACES = builtin.lookup("", "v1", "namespaces")
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
DEFAULT_HARD_POD_AFFINITY_WEIGHT = 1
_SKIP = Status(Code.SKIP)
_FILTER_KEY = "PreFilterInterPodAffinity"
_SCORE_KEY = "PreScoreInterPodAffinity"
_TERMS_KEY = "InterPodAffinityTerms"
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"
_NO_LABELS: dict[str, str] = {}


class AffinityTerm:
    """One pod affinity term of a pod, parsed: which pods it selects, and its topology key."""

    __slots__ = ("selector", "namespaces", "namespace_selector", "topology_key", "weight")

    def __init__(self, pod: Object, term: Object, weight: int = 0) -> None:
        metadata = pod["metadata"]
        labels = metadata.get("labels") or {}
        selector = term.get("labelSelector")
        self.selector = LabelSelector.parse(selector)
        if selector is not None:
            equal = {k: labels[k] for k in term.get("matchLabelKeys") or () if k in labels}
            unequal = {k: labels[k] for k in term.get("mismatchLabelKeys") or () if k in labels}
            if equal or unequal:
                self.selector = self.selector.with_requirements(equal, unequal)
        names = term.get("namespaces") or []
        namespace_selector = term.get("namespaceSelector")
        if not names and namespace_selector is None:
            names = [metadata.get("namespace", "")]
        self.namespaces = frozenset(names)
        self.namespace_selector = LabelSelector.parse(namespace_selector)
        self.topology_key: str = term.get("topologyKey") or ""
        self.weight = weight

    @property
    def all_namespaces(self) -> bool:
        return self.namespace_selector.empty

    def matches(self, pod: Object, namespace_labels: dict[str, str]) -> bool:
        """Whether the term selects `pod` (`namespace_labels`: those of its namespace)."""
        metadata = pod["metadata"]
        if metadata.get("namespace", "") in self.namespaces or self.namespace_selector.matches(
            namespace_labels
        ):
            return self.selector.matches(metadata.get("labels") or _NO_LABELS)
        return False

    def with_namespaces(self, names: Iterable[str]) -> AffinityTerm:
        """The term with its namespace selector replaced by the namespaces it selects now."""
        term = object.__new__(AffinityTerm)
        term.selector, term.topology_key, term.weight = (
            self.selector,
            self.topology_key,
            self.weight,
        )
        term.namespaces = self.namespaces | frozenset(names)
        term.namespace_selector = NOTHING
        return term


_KINDS = ("required", "required_anti", "preferred", "preferred_anti")


class PodAffinity:
    """A pod's four lists of pod affinity terms."""

    __slots__ = (*_KINDS, "__weakref__")

    def __init__(self, pod: Object) -> None:
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        attract = affinity.get("podAffinity") or {}
        repel = affinity.get("podAntiAffinity") or {}
        self.required = [AffinityTerm(pod, t) for t in attract.get(_REQUIRED) or []]
        self.required_anti = [AffinityTerm(pod, t) for t in repel.get(_REQUIRED) or []]
        self.preferred = _weighted(pod, attract.get(_PREFERRED) or [])
        self.preferred_anti = _weighted(pod, repel.get(_PREFERRED) or [])

    def resolved(self, resolve: Callable[[AffinityTerm], AffinityTerm]) -> PodAffinity:
        """The same terms, each namespace selector turned into names by `resolve(term)`."""
        copy = object.__new__(PodAffinity)
        for kind in _KINDS:
            setattr(copy, kind, [resolve(term) for term in getattr(self, kind)])
        return copy


def _weighted(pod: Object, terms: list[Object]) -> list[AffinityTerm]:
    return [
        AffinityTerm(pod, t.get("podAffinityTerm") or {}, t.get("weight") or 0)
        for t in terms
        if t.get("weight")
    ]


# Pods made from one template have the same terms: they share one parse, so that a cycle
# matches each distinct term against the pod once (see `Verdicts`).
_PARSED: weakref.WeakValueDictionary[tuple, PodAffinity] = weakref.WeakValueDictionary()


def terms_of(info: PodInfo) -> PodAffinity:
    """A placed pod's terms, parsed on first use and kept with its PodInfo."""
    affinity = info.affinity
    if affinity is None:
        pod = info.pod
        metadata = pod["metadata"]
        spec = pod.get("spec") or {}
        # what the terms depend on: namespace, the terms, and the labels (mis)matchLabelKeys read
        terms = repr(spec.get("affinity"))
        labels = metadata.get("labels") or {}
        key = (
            metadata.get("namespace", ""),
            terms,
            tuple(sorted(labels.items())) if "LabelKeys" in terms else (),
        )
        affinity = _PARSED.get(key)
        if affinity is None:
            affinity = _PARSED[key] = PodAffinity(pod)
        info.affinity = affinity
    return affinity


class Verdicts(dict):
    """Whether each (shared) term of placed pods selects the pod of this cycle."""

    __slots__ = ("pod", "namespace_labels")

    def __init__(self, pod: Object, namespace_labels: dict[str, str]) -> None:
        super().__init__()
        self.pod = pod
        self.namespace_labels = namespace_labels

    def __missing__(self, term: AffinityTerm) -> bool:
        verdict = self[term] = term.matches(self.pod, self.namespace_labels)
        return verdict


def _bump(counts: dict[Pair, int], key: str, labels: dict[str, str], delta: int) -> None:
    value = labels.get(key)
    if value is None:
        return
    count = counts.get((key, value), 0) + delta
    if count:
        counts[(key, value)] = count
    else:
        counts.pop((key, value), None)


class _FilterState:
    """What Filter needs: the pod's required terms and the pods counted per domain."""

    __slots__ = (
        "required",
        "required_anti",
        "self_match",
        "verdicts",
        "affinity_counts",
        "anti_affinity_counts",
        "existing_counts",
        "existing_keys",
    )

    def __init__(self, affinity: PodAffinity, pod: Object, verdicts: Verdicts):
        self.required = affinity.required
        self.required_anti = affinity.required_anti
        self.self_match = bool(self.required) and all(
            t.matches(pod, _NO_LABELS) for t in self.required
        )
        self.verdicts = verdicts
        self.affinity_counts: dict[Pair, int] = {}  # pods matching all required terms
        self.anti_affinity_counts: dict[Pair, int] = {}  # pods matching a required anti term
        self.existing_counts: dict[Pair, int] = {}  # pods whose required anti terms match the pod
        self.existing_keys: set[str] = set()

    def update(self, other: PodInfo, node: NodeInfo, delta: int) -> None:
        """Count (delta 1) or uncount (-1) one pod on `node`."""
        labels = node.labels
        for term in terms_of(other).required_anti:
            if self.verdicts[term]:
                _bump(self.existing_counts, term.topology_key, labels, delta)
                self.existing_keys.add(term.topology_key)
        if self.required and all(t.matches(other.pod, _NO_LABELS) for t in self.required):
            for term in self.required:
                _bump(self.affinity_counts, term.topology_key, labels, delta)
        for term in self.required_anti:
            if term.matches(other.pod, _NO_LABELS):
                _bump(self.anti_affinity_counts, term.topology_key, labels, delta)

    def clone(self) -> _FilterState:
        copy = object.__new__(_FilterState)
        for slot in _FilterState.__slots__:
            setattr(copy, slot, getattr(self, slot))
        copy.affinity_counts = dict(self.affinity_counts)
        copy.anti_affinity_counts = dict(self.anti_affinity_counts)
        copy.existing_counts = dict(self.existing_counts)
        copy.existing_keys = set(self.existing_keys)
        return copy


@register
class InterPodAffinity:
    name = "InterPodAffinity"
    events = frozenset({NODE_ADD, NODE_UPDATE, POD_ADD, POD_UPDATE, POD_DELETE})

    def __init__(self, handle: Framework, args: Object | None = None) -> None:
        args = args or {}
        weight = args.get("hardPodAffinityWeight", DEFAULT_HARD_POD_AFFINITY_WEIGHT)
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise ValueError(f"hardPodAffinityWeight: {weight!r} not in valid range [0, 100]")
        self._hard_weight = weight
        self._ignore_existing_preferred = bool(args.get("ignorePreferredTermsOfExistingPods"))
        self._cache = handle.cache
        informers = handle.informers
        self._namespaces = informers.informer(NAMESPACES) if informers is not None else None

    # ------------------------------------------------------------ helpers

    def _verdicts(self, pod: Object) -> Verdicts:
        """Placed pods' terms against `pod`, judged by its namespace's labels."""
        name = pod["metadata"].get("namespace", "")
        namespace = self._namespaces.get(name) if self._namespaces is not None else None
        return Verdicts(pod, (namespace or {}).get("metadata", {}).get("labels") or {})

    def _resolve(self, term: AffinityTerm) -> AffinityTerm:
        """An incoming pod's term with its namespace selector evaluated now (upstream's merge)."""
        selector = term.namespace_selector
        if selector.nothing or selector.empty:
            return term
        names = []
        if self._namespaces is not None:
            for namespace in self._namespaces.list():
                metadata = namespace["metadata"]
                if selector.matches(metadata.get("labels") or {}):
                    names.append(metadata["name"])
        return term.with_namespaces(names)

    def _incoming(self, state: CycleState, pod: Object) -> PodAffinity:
        """The pod's own terms, namespaces resolved, computed once per cycle."""
        affinity = state.get(_TERMS_KEY)
        if affinity is None:
            affinity = state[_TERMS_KEY] = PodAffinity(pod).resolved(self._resolve)
        return affinity

    def _candidates(self, terms: list[AffinityTerm]) -> Iterable[Placed]:
        """The placed pods the terms may select: those of their namespaces."""
        if any(term.all_namespaces for term in terms):
            return self._cache.all_pods()
        namespaces = set().union(*(term.namespaces for term in terms))
        return itertools.chain.from_iterable(self._cache.pods_in(n) for n in sorted(namespaces))

    # ---------------------------------------------------------- filtering

    def pre_filter(self, state: CycleState, pod: Object) -> Status | None:
        affinity = self._incoming(state, pod)
        existing_anti = self._cache.pods_with_required_anti_affinity()
        if not (affinity.required or affinity.required_anti or existing_anti):
            return _SKIP
        verdicts = self._verdicts(pod)
        s = _FilterState(affinity, pod, verdicts)
        existing = s.existing_counts
        for info, node in existing_anti:
            if node.node is None:
                continue
            for term in terms_of(info).required_anti:
                if verdicts[term]:
                    key = term.topology_key
                    value = node.labels.get(key)
                    if value is not None:
                        existing[(key, value)] = existing.get((key, value), 0) + 1
        s.existing_keys = {key for key, _ in s.existing_counts}
        required, anti = s.required, s.required_anti
        if required or anti:
            for info, node in self._candidates(required + anti):
                if node.node is None:
                    continue
                other, labels = info.pod, node.labels
                if required and all(t.matches(other, _NO_LABELS) for t in required):
                    for term in required:
                        _bump(s.affinity_counts, term.topology_key, labels, 1)
                for term in anti:
                    if term.matches(other, _NO_LABELS):
                        _bump(s.anti_affinity_counts, term.topology_key, labels, 1)
        if not (s.existing_counts or required or anti):
            return _SKIP
        state[_FILTER_KEY] = s
        return None

    def pre_filter_add_pod(
        self, state: CycleState, pod: Object, pod_info: PodInfo, node: NodeInfo
    ) -> None:
        s = state.get(_FILTER_KEY)
        if s is not None:
            s.update(pod_info, node, 1)

    def pre_filter_remove_pod(
        self, state: CycleState, pod: Object, pod_info: PodInfo, node: NodeInfo
    ) -> None:
        s = state.get(_FILTER_KEY)
        if s is not None:
            s.update(pod_info, node, -1)

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        s: _FilterState = state[_FILTER_KEY]
        labels = node.labels
        if s.required:
            found = True
            for term in s.required:
                value = labels.get(term.topology_key)
                if value is None:
                    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_AFFINITY)
                if s.affinity_counts.get((term.topology_key, value), 0) <= 0:
                    found = False
            # no pod anywhere matches: the first of a group may go where its own terms allow
            if not found and (s.affinity_counts or not s.self_match):
                return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_AFFINITY)
        if s.anti_affinity_counts:
            for term in s.required_anti:
                key = term.topology_key
                value = labels.get(key)
                if value is not None and s.anti_affinity_counts.get((key, value), 0) > 0:
                    return Status(Code.UNSCHEDULABLE, REASON_ANTI_AFFINITY)
        if s.existing_counts:
            for key in s.existing_keys:
                value = labels.get(key)
                if value is not None and s.existing_counts.get((key, value), 0) > 0:
                    return Status(Code.UNSCHEDULABLE, REASON_EXISTING_ANTI_AFFINITY)
        return None

    # ------------------------------------------------------------ scoring

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        affinity = self._incoming(state, pod)
        preferred, preferred_anti = affinity.preferred, affinity.preferred_anti
        if self._ignore_existing_preferred and not (preferred or preferred_anti):
            return _SKIP
        scores: dict[str, dict[str, int]] = {}

        def add(key: str, labels: dict[str, str], weight: int) -> None:
            value = labels.get(key)
            if value is not None:
                values = scores.setdefault(key, {})
                values[value] = values.get(value, 0) + weight

        if preferred or preferred_anti:
            for info, node in self._candidates(preferred + preferred_anti):
                if node.node is None or not node.labels:
                    continue
                for term in preferred:
                    if term.matches(info.pod, _NO_LABELS):
                        add(term.topology_key, node.labels, term.weight)
                for term in preferred_anti:
                    if term.matches(info.pod, _NO_LABELS):
                        add(term.topology_key, node.labels, -term.weight)
        if not self._ignore_existing_preferred:
            verdicts = self._verdicts(pod)
            for info, node in self._cache.pods_with_affinity():
                if node.node is None or not node.labels:
                    continue
                terms = terms_of(info)
                if self._hard_weight:
                    for term in terms.required:
                        if verdicts[term]:
                            add(term.topology_key, node.labels, self._hard_weight)
                for term in terms.preferred:
                    if verdicts[term]:
                        add(term.topology_key, node.labels, term.weight)
                for term in terms.preferred_anti:
                    if verdicts[term]:
                        add(term.topology_key, node.labels, -term.weight)
        if not scores:
            return _SKIP
        state[_SCORE_KEY] = scores
        return None

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        labels = node.labels
        total = 0
        for key, values in state[_SCORE_KEY].items():
            value = labels.get(key)
            if value is not None:
                total += values.get(value, 0)
        return total

    def normalize_score(self, state: CycleState, pod: Object, scores: list[int]) -> None:
        """Scale from the lowest (0) to the highest (100); all alike score 0."""
        if not scores:
            return
        lowest, highest = min(scores), max(scores)
        spread = highest - lowest
        if spread <= 0:
            scores[:] = [0] * len(scores)
            return
        scores[:] = [int(MAX_NODE_SCORE * ((s - lowest) / spread)) for s in scores]
