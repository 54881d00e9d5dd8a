"""NodeAffinity: `spec.nodeSelector` and required node affinity filter nodes; preferred
node affinity scores them (the sum of the weights of the terms a node matches).

Node selector terms are ORed; the requirements of one term are ANDed; a
term with no requirement matches nothing; a requirement that cannot be
evaluated (a bad operator, a non-integer for Gt/Lt) fails its term, as
upstream's lazy-error selectors do. Required terms that name nodes through
`matchFields` (`metadata.name In [...]`) narrow the nodes looked at.
The plugin's args may add scheduler-enforced affinity (`addedAffinity`).
"""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    Code,
    CycleState,
    PreFilterResult,
    Status,
    default_normalize_score,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo

Object = dict[str, Any]

REASON_POD = "node(s) didn't match Pod's node affinity/selector"
REASON_ENFORCED = "node(s) didn't match scheduler-enforced node affinity"
REASON_CONFLICT = "pod affinity terms conflict"
NAME_FIELD = "metadata.name"
_SKIP = Status(Code.SKIP)
_FILTER_KEY = "PreFilterNodeAffinity"
_SCORE_KEY = "PreScoreNodeAffinity"


class _Requirement:
    __slots__ = ("key", "operator", "values", "number")

    def __init__(self, requirement: Object) -> None:
        self.key = requirement.get("key", "")
        self.operator = requirement.get("operator", "")
        self.values = set(requirement.get("values") or ())
        self.number: int | None = None
        if self.operator in ("Gt", "Lt"):
            values = requirement.get("values") or []
            self.number = _integer(values[0]) if len(values) == 1 else None

    def matches(self, value: str | None) -> bool:
        """Whether a label (or field) value, None when absent, satisfies the requirement."""
        operator = self.operator
        if operator == "In":
            return value is not None and value in self.values
        if operator == "NotIn":
            return value is None or value not in self.values
        if operator == "Exists":
            return value is not None
        if operator == "DoesNotExist":
            return value is None
        if operator in ("Gt", "Lt") and value is not None and self.number is not None:
            have = _integer(value)
            if have is None:
                return False
            return have > self.number if operator == "Gt" else have < self.number
        return False


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class NodeSelectorTerm:
    """One term: label requirements and `metadata.name` field requirements, all ANDed."""

    __slots__ = ("expressions", "fields", "valid")

    def __init__(self, term: Object) -> None:
        self.expressions = [_Requirement(r) for r in term.get("matchExpressions") or []]
        self.fields = [_Requirement(r) for r in term.get("matchFields") or []]
        self.valid = bool(self.expressions or self.fields) and all(
            f.key == NAME_FIELD and f.operator in ("In", "NotIn") for f in self.fields
        )

    def matches(self, node: NodeInfo) -> bool:
        if not self.valid:
            return False
        labels = node.labels
        for requirement in self.expressions:
            if not requirement.matches(labels.get(requirement.key)):
                return False
        return all(field.matches(node.name) for field in self.fields)

    def node_names(self) -> set[str] | None:
        """The nodes this term is limited to by `metadata.name In`, or None if it is not."""
        names: set[str] | None = None
        for field in self.fields:
            if field.key == NAME_FIELD and field.operator == "In":
                names = set(field.values) if names is None else names & field.values
        return names


class NodeSelector:
    """Terms ORed (a required node affinity)."""

    __slots__ = ("terms",)

    def __init__(self, selector: Object) -> None:
        self.terms = [NodeSelectorTerm(t) for t in selector.get("nodeSelectorTerms") or []]

    def matches(self, node: NodeInfo) -> bool:
        return any(term.matches(node) for term in self.terms)


class RequiredNodeAffinity:
    """A pod's `nodeSelector` and required node affinity, both to be met."""

    __slots__ = ("selector", "affinity")

    def __init__(self, pod: Object) -> None:
        spec = pod.get("spec") or {}
        self.selector: dict[str, str] = spec.get("nodeSelector") or {}
        required = _node_affinity(spec).get("requiredDuringSchedulingIgnoredDuringExecution")
        self.affinity = NodeSelector(required) if required is not None else None

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        for key, value in self.selector.items():
            if labels.get(key) != value:
                return False
        return self.affinity is None or self.affinity.matches(node)


def _node_affinity(spec: Object) -> Object:
    return (spec.get("affinity") or {}).get("nodeAffinity") or {}


def _preferred(terms: list[Object]) -> list[tuple[int, NodeSelectorTerm]]:
    return [
        (term.get("weight") or 0, NodeSelectorTerm(term.get("preference") or {}))
        for term in terms
        if term.get("weight")
    ]


@register
class NodeAffinity:
    name = "NodeAffinity"
    events = frozenset({NODE_ADD, NODE_UPDATE})

    def __init__(self, args: Object | None = None) -> None:
        added = (args or {}).get("addedAffinity") or {}
        required = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self._added_required = NodeSelector(required) if required is not None else None
        self._added_preferred = _preferred(
            added.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        )

    def pre_filter(self, state: CycleState, pod: Object) -> PreFilterResult | Status | None:
        spec = pod["spec"]
        required = _node_affinity(spec).get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is None and self._added_required is None and not spec.get("nodeSelector"):
            return _SKIP
        affinity = RequiredNodeAffinity(pod)
        state[_FILTER_KEY] = affinity
        if affinity.affinity is None or not affinity.affinity.terms:
            return None
        names: set[str] = set()
        for term in affinity.affinity.terms:
            term_names = term.node_names()
            if term_names is None:
                return None  # this term may match any node
            names |= term_names
        if not names:
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_CONFLICT)
        return PreFilterResult(names)

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        if self._added_required is not None and not self._added_required.matches(node):
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_ENFORCED)
        if not state[_FILTER_KEY].matches(node):
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_POD)
        return None

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        preferred = self._added_preferred + _preferred(
            _node_affinity(pod["spec"]).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        )
        if not preferred:
            return _SKIP
        state[_SCORE_KEY] = preferred
        return None

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        return sum(weight for weight, term in state[_SCORE_KEY] if term.matches(node))

    def normalize_score(self, state: CycleState, pod: Object, scores: list[int]) -> None:
        default_normalize_score(scores)
