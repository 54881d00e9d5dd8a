"""ImageLocality: nodes that already have the pod's images score higher.

Each image present on a node counts its size, scaled by the share of nodes
that have it (an image everywhere says little about this node); the sum is
mapped onto 0..100 between 23 MB and 1000 MB per container.
"""

from __future__ import annotations

from typing import Any

from kubik.scheduler.framework import (
    MAX_NODE_SCORE,
    Code,
    CycleState,
    Framework,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import NodeInfo, normalized_image

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB
_SKIP = Status(Code.SKIP)
_KEY = "PreScoreImageLocality"


def priority(sum_scores: int, containers: int) -> int:
    highest = MAX_CONTAINER_THRESHOLD * containers
    sum_scores = min(max(sum_scores, MIN_THRESHOLD), highest)
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (highest - MIN_THRESHOLD)


@register
class ImageLocality:
    name = "ImageLocality"
    events: frozenset[str] = frozenset()

    def __init__(self, handle: Framework) -> None:
        self._cache = handle.cache

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        """Skipped when no node has any of the images: every node would score 0."""
        spec = pod["spec"]
        containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
        total = self._cache.num_nodes()
        spread = []
        for container in containers:
            image = normalized_image(container.get("image") or "")
            having = self._cache.image_spread(image)
            if having:
                spread.append((image, having / total))
        if not spread:
            return _SKIP
        state[_KEY] = (spread, len(containers))
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node: NodeInfo) -> int:
        spread, containers = state[_KEY]
        images = node.images
        total = 0
        for image, share in spread:
            size = images.get(image)
            if size is not None:
                total += int(size * share)
        return priority(total, containers)
