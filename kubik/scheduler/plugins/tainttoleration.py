"""TaintToleration: NoSchedule/NoExecute taints a pod does not tolerate keep it off a node;
PreferNoSchedule taints it does not tolerate lower the node's score.

While no node has such taints the per-node checks are skipped: they would pass them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubik.scheduler.framework import (
    NODE_ADD,
    NODE_UPDATE,
    Code,
    CycleState,
    Framework,
    Status,
    default_normalize_score,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo

Object = dict[str, Any]

_SKIP = Status(Code.SKIP)
_PREFER_KEY = "PreScoreTaintToleration"


def tolerates(toleration: Object, taint: Object) -> bool:
    """Upstream's ToleratesTaint: effect, key, then value (Equal) or anything (Exists)."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: Iterable[Object], tolerations: list[Object]) -> Object | None:
    """The first taint none of the tolerations tolerates."""
    for taint in taints:
        if not any(tolerates(toleration, taint) for toleration in tolerations):
            return taint
    return None


@register
class TaintToleration:
    name = "TaintToleration"
    events = frozenset({NODE_ADD, NODE_UPDATE})

    def __init__(self, handle: Framework) -> None:
        self._cache = handle.cache

    def pre_filter(self, state: CycleState, pod: Object) -> Status | None:
        return None if self._cache.any_tainted() else _SKIP

    def filter(self, state: CycleState, pod: Object, node: NodeInfo) -> Status | None:
        taints = node.no_schedule_taints
        if not taints:
            return None
        taint = untolerated(taints, pod["spec"].get("tolerations") or [])
        if taint is None:
            return None
        return Status(
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}",
        )

    def pre_score(self, state: CycleState, pod: Object, nodes: list[NodeInfo]) -> Status | None:
        """Skipped while no node has a PreferNoSchedule taint: every node would score alike."""
        if not self._cache.any_soft_tainted():
            return _SKIP
        state[_PREFER_KEY] = [
            t
            for t in pod["spec"].get("tolerations") or []
            if t.get("effect") in (None, "", "PreferNoSchedule")
        ]
        return None

    def score(self, state: CycleState, pod: Object, node: NodeInfo) -> int:
        taints = node.prefer_no_schedule_taints
        if not taints:
            return 0
        tolerations = state[_PREFER_KEY]
        return sum(1 for t in taints if not any(tolerates(tol, t) for tol in tolerations))

    def normalize_score(self, state: CycleState, pod: Object, scores: list[int]) -> None:
        default_normalize_score(scores, reverse=True)
