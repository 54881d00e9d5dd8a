"""Each built-in plugin on its own, with upstream's reasons and scores."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kubik.scheduler.cache import Cache
from kubik.scheduler.framework import Code, CycleState, PreFilterResult
from kubik.scheduler.nodeinfo import NodeInfo, PodInfo
from kubik.scheduler.plugins.balancedallocation import NodeResourcesBalancedAllocation
from kubik.scheduler.plugins.imagelocality import ImageLocality
from kubik.scheduler.plugins.nodeaffinity import NodeAffinity
from kubik.scheduler.plugins.nodename import NodeName
from kubik.scheduler.plugins.nodeports import NodePorts
from kubik.scheduler.plugins.noderesources import NodeResourcesFit
from kubik.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kubik.scheduler.plugins.schedulinggates import SchedulingGates
from kubik.scheduler.plugins.tainttoleration import TaintToleration
from tests.scheduler.objects import container, node, pod, taint


def info(obj: dict, *pods: dict) -> NodeInfo:
    node_info = NodeInfo(obj["metadata"]["name"])
    node_info.set_node(obj)
    for p in pods:
        node_info.add_pod(PodInfo(p))
    return node_info


def state_for(p: dict) -> CycleState:
    return CycleState(PodInfo(p))


def run_filter(plugin, p: dict, node_info: NodeInfo):
    state = state_for(p)
    if hasattr(plugin, "pre_filter"):
        out = plugin.pre_filter(state, p)
        if out is not None and not isinstance(out, PreFilterResult):
            assert out.code == Code.SKIP, out
            return None
    return plugin.filter(state, p, node_info)


def scores(plugin, p: dict, nodes: list[NodeInfo]) -> list[int] | None:
    """Normalized scores, or None when pre_score skips the plugin."""
    state = state_for(p)
    if hasattr(plugin, "pre_score"):
        out = plugin.pre_score(state, p, nodes)
        if out is not None:
            assert out.code == Code.SKIP
            return None
    result = [plugin.score(state, p, n) for n in nodes]
    if hasattr(plugin, "normalize_score"):
        plugin.normalize_score(state, p, result)
    return result


# ------------------------------------------------------------ NodeResourcesFit


def test_fit_reports_every_insufficient_resource():
    fit = NodeResourcesFit()
    small = info(node("small", cpu="1", memory="1Gi", extra={"example.com/gpu": "1"}))
    greedy = pod(
        "p",
        requests={
            "cpu": "2",
            "memory": "2Gi",
            "ephemeral-storage": "1Gi",
            "example.com/gpu": "2",
        },
    )
    status = run_filter(fit, greedy, small)
    assert status.code == Code.UNSCHEDULABLE
    assert status.reasons == [
        "Insufficient cpu",
        "Insufficient memory",
        "Insufficient ephemeral-storage",
        "Insufficient example.com/gpu",
    ]
    assert run_filter(fit, pod("q", requests={"cpu": "1", "memory": "1Gi"}), small) is None


def test_fit_counts_the_pods_already_there():
    fit = NodeResourcesFit()
    busy = info(node("busy", cpu="2", pods="2"), pod("a", requests={"cpu": "1500m"}))
    assert run_filter(fit, pod("p", requests={"cpu": "600m"}), busy).reasons == ["Insufficient cpu"]
    assert run_filter(fit, pod("p", requests={"cpu": "500m"}), busy) is None
    full = info(node("full", pods="1"), pod("a"))
    assert run_filter(fit, pod("p"), full).reasons == ["Too many pods"]


def test_fit_ignores_the_extended_resources_it_is_told_to():
    plugin = NodeResourcesFit(args={"ignoredResourceGroups": ["example.com"]})
    assert run_filter(plugin, pod("p", requests={"example.com/gpu": "1"}), info(node("n"))) is None
    plugin = NodeResourcesFit(args={"ignoredResources": ["example.com/gpu"]})
    assert run_filter(plugin, pod("p", requests={"example.com/gpu": "1"}), info(node("n"))) is None
    assert run_filter(
        NodeResourcesFit(), pod("p", requests={"example.com/gpu": "1"}), info(node("n"))
    )


SIZED = [
    node("n1", cpu="4000m", memory="10000"),
    node("n2", cpu="6000m", memory="10000"),
]
HALF = {"cpu": "3000m", "memory": "5000"}


def test_least_allocated_prefers_free_room():
    # upstream's "differently sized machines": (25 + 50) / 2 and (50 + 50) / 2
    assert scores(NodeResourcesFit(), pod("p", requests=HALF), [info(n) for n in SIZED]) == [37, 50]


def test_most_allocated_packs():
    fit = NodeResourcesFit(args={"scoringStrategy": {"type": "MostAllocated"}})
    assert scores(fit, pod("p", requests=HALF), [info(n) for n in SIZED]) == [62, 50]


def test_requested_to_capacity_ratio_follows_its_shape():
    fit = NodeResourcesFit(
        args={
            "scoringStrategy": {
                "type": "RequestedToCapacityRatio",
                "requestedToCapacityRatio": {
                    "shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]
                },
            }
        }
    )
    # cpu 75% → 75, memory 50% → 50, rounded half up: 63; and 50
    assert scores(fit, pod("p", requests=HALF), [info(n) for n in SIZED]) == [63, 50]


def test_fit_scores_pods_without_requests_as_100m_and_200mi():
    fit = NodeResourcesFit()
    nodes = [info(node("n", cpu="1", memory="1000Mi"))]
    # (1000 - 100) / 1000 → 90; (1000 - 200) / 1000 Mi → 80
    assert scores(fit, pod("p"), nodes) == [85]


def test_weights_and_extended_resources_in_scoring():
    fit = NodeResourcesFit(
        args={
            "scoringStrategy": {
                "resources": [
                    {"name": "cpu", "weight": 3},
                    {"name": "example.com/gpu", "weight": 1},
                ]
            }
        }
    )
    with_gpus = info(node("gpu", cpu="4", extra={"example.com/gpu": "4"}))
    without = info(node("plain", cpu="4"))
    # a pod wanting no GPU is scored on CPU only, wherever it goes
    assert scores(fit, pod("p", requests={"cpu": "2"}), [with_gpus, without]) == [50, 50]
    # one GPU of four: (50 * 3 + 75) / 4
    gpu_pod = pod("q", requests={"cpu": "2", "example.com/gpu": "1"})
    assert scores(fit, gpu_pod, [with_gpus]) == [56]


def test_balanced_allocation_favours_equal_shares():
    balanced = NodeResourcesBalancedAllocation()
    # cpu 3/4, memory 5000/10000: 1 - |0.75 - 0.5| / 2 → 87; on n2 both are at 50%
    assert scores(balanced, pod("p", requests=HALF), [info(n) for n in SIZED]) == [87, 100]
    assert scores(balanced, pod("best-effort"), [info(n) for n in SIZED]) is None


# ----------------------------------------------------------- the node filters


def test_node_name():
    wanted = pod("p", nodeName="n2")
    assert run_filter(NodeName(), wanted, info(node("n2"))) is None
    assert run_filter(NodeName(), wanted, info(node("n1"))).reasons == [
        "node(s) didn't match the requested node name"
    ]
    assert run_filter(NodeName(), pod("free"), info(node("n1"))) is None


def handle(*objs: dict) -> SimpleNamespace:
    """What plugins get as their handle: here just a cache holding these nodes."""
    cache = Cache()
    for obj in objs:
        cache.add_node(obj)
    return SimpleNamespace(cache=cache)


def test_node_unschedulable_and_its_toleration():
    cordoned_node = node("n", unschedulable=True)
    plugin = NodeUnschedulable(handle(cordoned_node))
    cordoned = info(cordoned_node)
    status = run_filter(plugin, pod("p"), cordoned)
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == ["node(s) were unschedulable"]
    tolerant = pod(
        "t",
        tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}],
    )
    assert run_filter(plugin, tolerant, cordoned) is None
    assert run_filter(plugin, pod("p"), info(node("ok"))) is None


def test_filters_for_cordons_and_taints_are_skipped_while_no_node_has_them():
    plain = handle(node("plain"))
    state = state_for(pod("p"))
    assert NodeUnschedulable(plain).pre_filter(state, pod("p")).code == Code.SKIP
    assert TaintToleration(plain).pre_filter(state, pod("p")).code == Code.SKIP
    soft = handle(node("soft", taints=[taint("a", effect="PreferNoSchedule")]))
    assert TaintToleration(soft).pre_filter(state, pod("p")).code == Code.SKIP
    hard = handle(node("hard", taints=[taint("a")]))
    assert TaintToleration(hard).pre_filter(state, pod("p")) is None


@pytest.mark.parametrize(
    ("tolerations", "fits"),
    [
        ([], False),
        ([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], True),
        ([{"key": "dedicated", "value": "gpu"}], True),
        ([{"key": "dedicated", "value": "cpu"}], False),
        ([{"key": "dedicated", "operator": "Exists"}], True),
        ([{"operator": "Exists"}], True),
        ([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], False),
    ],
)
def test_taints_need_tolerations(tolerations, fits):
    tainted_node = node(
        "n", taints=[taint("dedicated", "gpu"), taint("soft", effect="PreferNoSchedule")]
    )
    plugin = TaintToleration(handle(tainted_node))
    status = run_filter(plugin, pod("p", tolerations=tolerations), info(tainted_node))
    if fits:
        assert status is None
    else:
        assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        assert status.reasons == ["node(s) had untolerated taint {dedicated: gpu}"]


def test_prefer_no_schedule_taints_lower_the_score():
    soft = [taint("a", effect="PreferNoSchedule"), taint("b", effect="PreferNoSchedule")]
    objs = [node("two", taints=soft), node("one", taints=soft[:1]), node("none")]
    plugin = TaintToleration(handle(*objs))
    nodes = [info(obj) for obj in objs]
    assert scores(plugin, pod("p"), nodes) == [0, 50, 100]
    tolerant = pod(
        "t", tolerations=[{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]
    )
    assert scores(plugin, tolerant, nodes) == [0, 100, 100]
    assert scores(TaintToleration(handle(node("plain"))), pod("p"), nodes) is None


def test_node_ports():
    web = pod("web", containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])])
    busy = info(node("busy"), web)
    other = pod("other", containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])])
    status = run_filter(NodePorts(), other, busy)
    assert status.code == Code.UNSCHEDULABLE
    assert status.reasons == ["node(s) didn't have free ports for the requested pod ports"]
    assert run_filter(NodePorts(), other, info(node("free"))) is None
    udp = pod(
        "udp",
        containers=[container(ports=[{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}])],
    )
    assert run_filter(NodePorts(), udp, busy) is None


def test_scheduling_gates():
    status = SchedulingGates().pre_enqueue(pod("p", schedulingGates=[{"name": "a"}, {"name": "b"}]))
    assert status.reasons == ["waiting for scheduling gates: [a b]"]
    assert SchedulingGates().pre_enqueue(pod("p")) is None


# -------------------------------------------------------------- NodeAffinity


def labelled(name: str, **labels: str) -> NodeInfo:
    return info(node(name, labels=labels))


def required(*terms: dict) -> dict:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def expr(key: str, operator: str, *values: str) -> dict:
    requirement = {"key": key, "operator": operator}
    if values:
        requirement["values"] = list(values)
    return requirement


@pytest.mark.parametrize(
    ("requirement", "matches"),
    [
        (expr("zone", "In", "a", "b"), ["za"]),
        (expr("zone", "NotIn", "a"), ["zc", "bare"]),
        (expr("zone", "Exists"), ["za", "zc"]),
        (expr("zone", "DoesNotExist"), ["bare"]),
        (expr("cores", "Gt", "4"), ["zc"]),
        (expr("cores", "Lt", "8"), ["za"]),
        (expr("cores", "Gt", "four"), []),
        (expr("zone", "Sideways", "a"), []),
    ],
)
def test_required_affinity_operators(requirement, matches):
    nodes = [
        labelled("za", zone="a", cores="4"),
        labelled("zc", zone="c", cores="16"),
        labelled("bare"),
    ]
    p = pod("p", affinity=required({"matchExpressions": [requirement]}))
    assert [n.name for n in nodes if run_filter(NodeAffinity(), p, n) is None] == matches


def test_terms_are_ored_and_requirements_anded():
    nodes = [
        labelled("a1", zone="a", disk="ssd"),
        labelled("a2", zone="a"),
        labelled("b1", zone="b"),
    ]
    p = pod(
        "p",
        affinity=required(
            {"matchExpressions": [expr("zone", "In", "a"), expr("disk", "In", "ssd")]},
            {"matchExpressions": [expr("zone", "In", "b")]},
        ),
    )
    assert [n.name for n in nodes if run_filter(NodeAffinity(), p, n) is None] == ["a1", "b1"]
    status = run_filter(NodeAffinity(), p, nodes[1])
    assert status.reasons == ["node(s) didn't match Pod's node affinity/selector"]
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_node_selector_must_match_every_label():
    p = pod("p", nodeSelector={"zone": "a", "disk": "ssd"})
    assert run_filter(NodeAffinity(), p, labelled("x", zone="a", disk="ssd")) is None
    assert run_filter(NodeAffinity(), p, labelled("y", zone="a")) is not None


def test_match_fields_narrow_the_nodes_looked_at():
    p = pod(
        "p",
        affinity=required(
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]},
        ),
    )
    result = NodeAffinity().pre_filter(state_for(p), p)
    assert isinstance(result, PreFilterResult)
    assert result.node_names == {"n1", "n2", "n3"}
    assert run_filter(NodeAffinity(), p, labelled("n4")) is not None
    assert run_filter(NodeAffinity(), p, labelled("n3")) is None


def test_no_affinity_skips_the_filter():
    assert NodeAffinity().pre_filter(state_for(pod("p")), pod("p")).code == Code.SKIP


def test_scheduler_enforced_affinity():
    plugin = NodeAffinity(
        args={
            "addedAffinity": required({"matchExpressions": [expr("pool", "In", "x")]})[
                "nodeAffinity"
            ]
        }
    )
    status = run_filter(plugin, pod("p"), labelled("other"))
    assert status.reasons == ["node(s) didn't match scheduler-enforced node affinity"]
    assert run_filter(plugin, pod("p"), labelled("in-pool", pool="x")) is None


def test_preferred_affinity_scores_the_weights_of_matching_terms():
    p = pod(
        "p",
        affinity={
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 2, "preference": {"matchExpressions": [expr("a", "In", "b")]}},
                    {"weight": 5, "preference": {"matchExpressions": [expr("c", "Exists")]}},
                ]
            }
        },
    )
    nodes = [labelled("both", a="b", c="x"), labelled("first", a="b"), labelled("neither")]
    assert scores(NodeAffinity(), p, nodes) == [100, 28, 0]
    assert scores(NodeAffinity(), pod("plain"), nodes) is None


# ------------------------------------------------------------- ImageLocality


def test_image_locality_weighs_size_by_spread():
    mb = 1024 * 1024
    big = {"names": ["gcr.io/big:latest"], "sizeBytes": 250 * mb}
    plugin_handle = handle(node("has", images=[big]), node("lacks"), node("also-lacks"))
    cache = plugin_handle.cache
    plugin = ImageLocality(plugin_handle)
    p = pod("p", containers=[container(image="gcr.io/big")])
    # 250 MB on 1 node of 3, against 23 MB .. 1000 MB: 100 * (83.3 - 23) / 977 → 6
    assert scores(plugin, p, cache.node_infos()) == [6, 0, 0]
    assert (
        scores(plugin, pod("q", containers=[container(image="nginx")]), cache.node_infos()) is None
    )
