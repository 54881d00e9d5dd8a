"""One plugin's filter or score phase over every node of a cache, as a scheduling cycle runs it,
for the tests of plugins that look at other pods across topology domains."""

from __future__ import annotations

from kubik.scheduler.cache import Cache
from kubik.scheduler.framework import Code, CycleState
from kubik.scheduler.nodeinfo import PodInfo
from tests.scheduler.objects import ZONE, node

THREE_ZONES = (("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c"))


def zones(*names_zones: tuple[str, str]) -> Cache:
    """A cache of nodes (name, zone; "" for a node without the zone label)."""
    cache = Cache()
    for name, zone in names_zones:
        cache.add_node(node(name, labels={ZONE: zone} if zone else {}))
    return cache


def filter_nodes(plugin, cache: Cache, incoming: dict) -> dict[str, str | None]:
    """Each node's rejection reason (None: fits), or {} when pre_filter skips the plugin."""
    state = CycleState(PodInfo(incoming))
    out = plugin.pre_filter(state, incoming)
    if out is not None:
        assert out.code == Code.SKIP
        return {}
    results = {}
    for info in cache.node_infos():
        status = plugin.filter(state, incoming, info)
        results[info.name] = status.reasons[0] if status else None
    return results


def fits(results: dict) -> list[str]:
    return sorted(name for name, reason in results.items() if reason is None)


def score_nodes(plugin, cache: Cache, incoming: dict) -> dict[str, int] | None:
    """Each node's normalized score, or None when pre_score skips the plugin."""
    state = CycleState(PodInfo(incoming))
    nodes = cache.node_infos()
    out = plugin.pre_score(state, incoming, nodes)
    if out is not None:
        assert out.code == Code.SKIP
        return None
    raw = [plugin.score(state, incoming, n) for n in nodes]
    plugin.normalize_score(state, incoming, raw)
    return dict(zip([n.name for n in nodes], raw, strict=True))
