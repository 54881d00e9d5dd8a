"""One scheduling cycle over the framework's default profile: filters, scores, the pick,
and the message when nothing fits."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kubik.scheduler import config
from kubik.scheduler.cache import Cache
from kubik.scheduler.cycle import Algorithm, NoNodesAvailable, num_feasible_nodes_to_find
from kubik.scheduler.framework import (
    Code,
    CycleState,
    FitError,
    Framework,
    SchedulingError,
    Status,
    register,
)
from kubik.scheduler.nodeinfo import PodInfo
from kubik.scheduler.queue import SchedulingQueue
from tests.scheduler.objects import node, pod, taint


def cluster(*nodes: dict, document: dict | None = None, seed: int = 1):
    cache = Cache()
    for obj in nodes:
        cache.add_node(obj)
    queue = SchedulingQueue()
    profile = config.parse(document or {}).profiles[0]
    fw = Framework(profile, cache=cache, queue=queue)
    return cache, fw, Algorithm(cache, queue, rng=random.Random(seed))


def schedule(algorithm: Algorithm, fw: Framework, p: dict):
    return algorithm.schedule(fw, CycleState(PodInfo(p)), p)


def place(cache: Cache, algorithm: Algorithm, fw: Framework, p: dict) -> str:
    chosen = schedule(algorithm, fw, p).node
    cache.assume_pod(PodInfo(p), chosen)
    return chosen


@pytest.mark.parametrize(
    ("nodes", "percentage", "expected"),
    [(50, 0, 50), (100, 0, 100), (1000, 0, 420), (5000, 0, 500), (6000, 0, 300), (1000, 30, 300)],
)
def test_how_many_feasible_nodes_are_enough(nodes, percentage, expected):
    assert num_feasible_nodes_to_find(percentage, nodes) == expected


def test_the_upstream_message_when_no_node_fits():
    unreachable = taint("node.kubernetes.io/unreachable", effect="NoExecute")
    _, fw, algorithm = cluster(
        node("small", cpu="1"),
        node("gone-1", taints=[unreachable]),
        node("gone-2", taints=[unreachable]),
    )
    with pytest.raises(FitError) as error:
        schedule(algorithm, fw, pod("p", requests={"cpu": "2"}))
    assert str(error.value) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
    )
    assert error.value.diagnosis.unschedulable_plugins == {"NodeResourcesFit", "TaintToleration"}


def test_nodes_left_out_by_pre_filter_are_counted_in_the_message():
    _, fw, algorithm = cluster(node("n1"), node("n2", cpu="1"), node("n3"))
    only_n2 = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
                ]
            }
        }
    }
    with pytest.raises(FitError) as error:
        schedule(algorithm, fw, pod("p", requests={"cpu": "2"}, affinity=only_n2))
    assert str(error.value) == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    )
    assert schedule(algorithm, fw, pod("q", affinity=only_n2)).node == "n2"


def test_no_nodes():
    _, fw, algorithm = cluster()
    with pytest.raises(NoNodesAvailable):
        schedule(algorithm, fw, pod("p"))


def test_pods_spread_over_equal_nodes_and_fill_the_emptier_first():
    cache, fw, algorithm = cluster(node("a", cpu="2"), node("b", cpu="2"), node("c", cpu="4"))
    placed = Counter(
        place(cache, algorithm, fw, pod(f"p{i}", requests={"cpu": "500m"})) for i in range(8)
    )
    assert placed == {"a": 2, "b": 2, "c": 4}  # least allocated keeps the shares level


def test_ties_are_broken_at_random():
    _, fw, algorithm = cluster(*(node(f"n{i}") for i in range(5)))
    chosen = {schedule(algorithm, fw, pod(f"p{i}")).node for i in range(40)}
    assert len(chosen) > 1


def test_large_clusters_filter_only_enough_nodes_and_rotate():
    nodes = [node(f"n{i:03}") for i in range(300)]
    _, fw, algorithm = cluster(*nodes)
    # 300 nodes: 50 - 2 = 48% → 144 feasible nodes are enough
    first = schedule(algorithm, fw, pod("p"))
    assert (first.evaluated, first.feasible) == (144, 144)
    assert algorithm.next_start == 144
    schedule(algorithm, fw, pod("q"))
    assert algorithm.next_start == 288


def test_a_nominated_node_is_tried_first():
    _, fw, algorithm = cluster(node("a"), node("b"), node("c"))
    nominated = pod("p")
    nominated["status"]["nominatedNodeName"] = "c"
    result = schedule(algorithm, fw, nominated)
    assert (result.node, result.evaluated) == ("c", 1)


def test_pods_nominated_to_a_node_hold_its_room_for_lower_priority_pods():
    cache, fw, algorithm = cluster(node("a", cpu="2"), node("b", cpu="1"))
    important = pod("important", requests={"cpu": "2"}, priority=100)
    important["status"]["nominatedNodeName"] = "a"
    fw.queue.add(important)
    assert schedule(algorithm, fw, pod("low", requests={"cpu": "1"})).node == "b"
    # a pod of higher priority than the nominated one may take the room
    assert schedule(algorithm, fw, pod("vip", requests={"cpu": "2"}, priority=1000)).node == "a"


@register
class _Broken:
    name = "TestBroken"

    def score(self, state, pod, node):
        return 101


@register
class _Veto:
    name = "TestVeto"

    def filter(self, state, pod, node):
        if node.name != "chosen":
            return Status(Code.UNSCHEDULABLE, "vetoed")
        return None


def test_a_score_out_of_range_is_an_error():
    document = {"profiles": [{"plugins": {"score": {"enabled": [{"name": "TestBroken"}]}}}]}
    _, fw, algorithm = cluster(node("a"), node("b"), document=document)
    with pytest.raises(SchedulingError, match="TestBroken"):
        schedule(algorithm, fw, pod("p"))


def test_a_custom_filter_plugin_decides():
    document = {"profiles": [{"plugins": {"filter": {"enabled": [{"name": "TestVeto"}]}}}]}
    _, fw, algorithm = cluster(node("a"), node("chosen"), node("b"), document=document)
    assert schedule(algorithm, fw, pod("p")).node == "chosen"
