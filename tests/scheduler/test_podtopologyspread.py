"""PodTopologySpread: the plugin over a cache of nodes and pods (constraints, policies,
defaults, scores), then end to end with hollow nodes across three zones, and the API
refusing malformed constraints."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kubik.client.api import ApiError
from kubik.scheduler.cache import Cache
from kubik.scheduler.framework import Code, CycleState
from kubik.scheduler.nodeinfo import PodInfo
from kubik.scheduler.plugins.podtopologyspread import (
    REASON,
    REASON_MISSING_LABEL,
    REPLICA_SETS,
    SERVICES,
    PodTopologySpread,
)
from tests.scheduler.live import NODES, node_of, submit, unschedulable
from tests.scheduler.objects import HOST, ZONE, labelled, node, on, taint
from tests.scheduler.pluginrun import THREE_ZONES, filter_nodes, fits, score_nodes, zones

WEB = {"app": "web"}


def spread(key: str = ZONE, skew: int = 1, action: str = "DoNotSchedule", **extra) -> dict:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": action,
        "labelSelector": {"matchLabels": WEB},
        **extra,
    }


def web(name: str = "web", *constraints: dict, **spec) -> dict:
    return labelled(name, WEB, topologySpreadConstraints=list(constraints), **spec)


def cluster(*names_zones: tuple[str, str], **pods_on: int) -> Cache:
    """Nodes (name, zone; "" for none) and, per node name, that many web pods on it."""
    cache = zones(*names_zones)
    for name, count in pods_on.items():
        for i in range(count):
            cache.add_pod(on(web(f"{name}-{i}"), name))
    return cache


class Store:
    """An informer's reads over fixed objects."""

    def __init__(self, *objects: dict) -> None:
        self._objects = {
            f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objects
        }

    def get(self, key: str) -> dict | None:
        return self._objects.get(key)

    def list(self, namespace: str = "") -> list[dict]:
        return [o for o in self._objects.values() if o["metadata"]["namespace"] == namespace]


def plugin(cache: Cache, stores: dict | None = None, **args) -> PodTopologySpread:
    informers = None
    if stores is not None:
        informers = SimpleNamespace(informer=lambda resource: stores.get(resource, Store()))
    return PodTopologySpread(handle=SimpleNamespace(cache=cache, informers=informers), args=args)


def filter_all(cache: Cache, incoming: dict) -> dict[str, str | None]:
    return filter_nodes(plugin(cache), cache, incoming)


# ------------------------------------------------------------------- filter


def test_a_zone_may_hold_at_most_max_skew_pods_more_than_the_emptiest():
    cache = cluster(*THREE_ZONES, a1=1, b1=1)
    results = filter_all(cache, web("new", spread()))
    assert results == {"a1": REASON, "a2": REASON, "b1": REASON, "c1": None}
    assert fits(filter_all(cache, web("new", spread(skew=2)))) == ["a1", "a2", "b1", "c1"]


def test_a_pod_its_selector_does_not_match_does_not_count_itself():
    cache = cluster(*THREE_ZONES, a1=1, b1=1)
    other = labelled("other", {"app": "other"}, topologySpreadConstraints=[spread()])
    assert fits(filter_all(cache, other)) == ["a1", "a2", "b1", "c1"]


def test_a_node_without_the_topology_key_is_refused_for_good():
    cache = cluster(("a1", "a"), ("bare", ""))
    results = filter_all(cache, web("new", spread()))
    assert results == {"a1": None, "bare": REASON_MISSING_LABEL}
    state = CycleState(PodInfo(web("new", spread())))
    spreading = plugin(cache)
    spreading.pre_filter(state, web("new", spread()))
    status = spreading.filter(state, web("new", spread()), cache.get("bare"))
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_hostname_spreading_counts_empty_nodes_whether_or_not_every_node_has_each_key():
    # every node has both keys: domains come from the cache's label counts
    cache = cluster(*THREE_ZONES, a1=1, b1=1, c1=1)
    assert fits(filter_all(cache, web("new", spread(HOST)))) == ["a2"]
    # a node without a zone: one pass over the nodes finds the domains
    cache = cluster(*THREE_ZONES, ("bare", ""), a1=1, b1=1, c1=1)
    both = web("new", spread(HOST), spread(ZONE, skew=3))
    results = filter_all(cache, both)
    assert fits(results) == ["a2"]
    assert results["bare"] == REASON_MISSING_LABEL


def test_domains_follow_nodes_relabelled_added_and_removed():
    cache = cluster(*THREE_ZONES, a1=1, b1=1)
    assert fits(filter_all(cache, web("new", spread()))) == ["c1"]
    cache.update_node(node("c1", labels={ZONE: "b"}))  # zone c is gone: a and b are even
    assert fits(filter_all(cache, web("new", spread()))) == ["a1", "a2", "b1", "c1"]
    cache.add_node(node("d1", labels={ZONE: "d"}))
    assert fits(filter_all(cache, web("new", spread()))) == ["d1"]
    cache.remove_node(node("d1"))
    assert fits(filter_all(cache, web("new", spread()))) == ["a1", "a2", "b1", "c1"]
    cache.remove_pod(on(web("a1-0"), "a1"))  # zone a empty, zone b (b1 and c1) one pod
    assert fits(filter_all(cache, web("new", spread()))) == ["a1", "a2"]


def test_min_domains_counts_missing_domains_as_empty():
    cache = cluster(("a1", "a"), ("b1", "b"), a1=1, b1=1)
    assert fits(filter_all(cache, web("new", spread()))) == ["a1", "b1"]
    assert fits(filter_all(cache, web("new", spread(minDomains=3)))) == []
    assert fits(filter_all(cache, web("new", spread(minDomains=2)))) == ["a1", "b1"]


def test_node_affinity_policy_decides_which_zones_are_domains():
    cache = cluster(*THREE_ZONES, a1=1, b1=1)
    not_c = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": ZONE, "operator": "In", "values": ["a", "b"]}]}
                ]
            }
        }
    }
    # zone c is no domain: a and b are even (c1 is left to NodeAffinity to refuse)
    honored = web("new", spread(), affinity=not_c)
    assert fits(filter_all(cache, honored)) == ["a1", "a2", "b1", "c1"]
    ignored = web("new", spread(nodeAffinityPolicy="Ignore"), affinity=not_c)
    assert fits(filter_all(cache, ignored)) == ["c1"]


def test_node_taints_policy_leaves_out_tainted_nodes_when_honored():
    cache = cluster(("a1", "a"), ("b1", "b"), a1=1)
    cache.add_node(node("c1", labels={ZONE: "c"}, taints=[taint("dedicated", "db")]))
    assert fits(filter_all(cache, web("new", spread()))) == ["b1", "c1"]
    honored = web("new", spread(nodeTaintsPolicy="Honor"))
    assert fits(filter_all(cache, honored)) == ["b1", "c1"]
    cache.add_pod(on(web("b1-0"), "b1"))
    assert fits(filter_all(cache, web("new", spread()))) == ["c1"]
    assert fits(filter_all(cache, honored)) == ["a1", "b1", "c1"]


def test_terminating_pods_and_other_namespaces_do_not_count():
    cache = cluster(*THREE_ZONES)
    leaving = on(web("leaving"), "a1")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cache.add_pod(leaving)
    cache.add_pod(on(labelled("elsewhere", WEB, namespace="other"), "a1"))
    assert fits(filter_all(cache, web("new", spread()))) == ["a1", "a2", "b1", "c1"]


def test_match_label_keys_spread_each_version_on_its_own():
    cache = Cache()
    for name, zone in THREE_ZONES:
        cache.add_node(node(name, labels={ZONE: zone}))
    cache.add_pod(on(labelled("old-0", {**WEB, "version": "1"}), "a1"))
    cache.add_pod(on(labelled("old-1", {**WEB, "version": "1"}), "b1"))
    cache.add_pod(on(labelled("new-0", {**WEB, "version": "2"}), "a1"))
    new = labelled(
        "new-1",
        {**WEB, "version": "2"},
        topologySpreadConstraints=[spread(matchLabelKeys=["version"])],
    )
    assert fits(filter_all(cache, new)) == ["b1", "c1"]


def test_no_constraints_and_no_default_selector_skip_the_plugin():
    cache = cluster(*THREE_ZONES)
    assert filter_all(cache, labelled("plain", WEB)) == {}
    # ScheduleAnyway constraints are not filters
    assert filter_all(cache, web("soft", spread(action="ScheduleAnyway"))) == {}


def test_nominated_pods_count_and_clones_are_independent():
    cache = cluster(*THREE_ZONES, a1=1)
    incoming = web("new", spread())
    spreading = plugin(cache)
    state = CycleState(PodInfo(incoming))
    assert spreading.pre_filter(state, incoming) is None
    simulated = state.clone()
    for name in ("b1", "c1"):
        nominated = PodInfo(on(web(f"nominated-{name}"), name))
        spreading.pre_filter_add_pod(simulated, incoming, nominated, cache.get(name))
    assert spreading.filter(simulated, incoming, cache.get("a1")) is None
    assert spreading.filter(state, incoming, cache.get("a1")).reasons == [REASON]
    victim = PodInfo(on(web("a1-0"), "a1"))
    spreading.pre_filter_remove_pod(state, incoming, victim, cache.get("a1"))
    assert spreading.filter(state, incoming, cache.get("a1")) is None


# ------------------------------------------------------------------- score


def test_fewer_matching_pods_score_higher():
    cache = cluster(("n1", "a"), ("n2", "a"), ("n3", "b"), n1=2, n2=1)
    soft = web("new", spread(HOST, action="ScheduleAnyway"))
    # 2·ln(5) rounds to 3 and ln(5) to 2; then 100·(3 + 0 - score) / 3
    assert score_nodes(plugin(cache), cache, soft) == {"n1": 0, "n2": 33, "n3": 100}
    by_zone = web("new", spread(ZONE, action="ScheduleAnyway"))
    # zone a holds 3 pods, zone b none: 3·ln(4) rounds to 4
    assert score_nodes(plugin(cache), cache, by_zone) == {"n1": 0, "n2": 0, "n3": 100}


def test_nodes_without_a_key_score_zero():
    cache = cluster(("n1", "a"), ("n2", "b"), ("bare", ""), n1=1)
    soft = web("new", spread(ZONE, action="ScheduleAnyway"))
    assert score_nodes(plugin(cache), cache, soft) == {"n1": 0, "n2": 100, "bare": 0}


def owned(name: str, kind: str, owner: str) -> dict:
    obj = labelled(name, WEB)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": kind, "name": owner, "controller": True}
    ]
    return obj


def test_system_defaults_spread_the_pods_of_a_replica_set_or_service():
    cache = cluster(("n1", "a"), ("n2", "a"), ("n3", "b"), n1=2, n2=1)
    rs = {
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"selector": {"matchLabels": WEB}},
    }
    spreading = plugin(cache, {REPLICA_SETS: Store(rs)})
    # hostname (maxSkew 3) 2·ln(5) + 2, ln(5) + 2, 2; zone (maxSkew 5) 3·ln(4) + 4 twice,
    # then 4: totals 13.4, 11.8 and 6 round to 13, 12, 6; then 100·(13 + 6 - total) / 13
    assert score_nodes(spreading, cache, owned("new", "ReplicaSet", "web-1")) == {
        "n1": 46,
        "n2": 53,
        "n3": 100,
    }
    assert score_nodes(spreading, cache, owned("new", "ReplicaSet", "gone")) is None
    assert score_nodes(spreading, cache, labelled("orphan", WEB)) is None
    service = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": WEB}}
    by_service = plugin(cache, {SERVICES: Store(service)})
    assert score_nodes(by_service, cache, labelled("served", WEB)) == {
        "n1": 46,
        "n2": 53,
        "n3": 100,
    }
    # the defaults score only: no filter
    assert (
        plugin(cache, {SERVICES: Store(service)})
        .pre_filter(CycleState(PodInfo(labelled("served", WEB))), labelled("served", WEB))
        .code
        == Code.SKIP
    )


def test_list_defaulting_uses_the_configured_constraints():
    cache = cluster(*THREE_ZONES, a1=1, b1=1)
    service = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": WEB}}
    args = {
        "defaultingType": "List",
        "defaultConstraints": [
            {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}
        ],
    }
    spreading = plugin(cache, {SERVICES: Store(service)}, **args)
    incoming = labelled("served", WEB)
    state = CycleState(PodInfo(incoming))
    assert spreading.pre_filter(state, incoming) is None
    assert [n.name for n in cache.node_infos() if not spreading.filter(state, incoming, n)] == [
        "c1"
    ]
    nothing = plugin(cache, {SERVICES: Store(service)}, defaultingType="List")
    assert score_nodes(nothing, cache, incoming) is None


@pytest.mark.parametrize(
    "args, message",
    [
        ({"defaultingType": "Sometimes"}, "defaultingType"),
        ({"defaultConstraints": [spread()]}, "must be empty"),
        (
            {"defaultingType": "List", "defaultConstraints": [spread()]},
            "must not define a selector",
        ),
        (
            {"defaultingType": "List", "defaultConstraints": [{"maxSkew": 0, "topologyKey": ZONE}]},
            "maxSkew",
        ),
    ],
)
def test_bad_args_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        plugin(Cache(), **args)


# -------------------------------------------------------------- end to end


async def test_six_pods_spread_two_per_zone(client, namespace, hollow):
    names = await hollow(6)
    zone_of = {name: f"zone-{'abc'[i % 3]}" for i, name in enumerate(names)}
    for i in range(6):
        await submit(client, namespace, f"web-{i}", WEB, topologySpreadConstraints=[spread()])
    placed = [zone_of[await node_of(client, namespace, f"web-{i}")] for i in range(6)]
    assert sorted(placed) == ["zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c"]


async def test_do_not_schedule_leaves_the_pod_pending_with_the_reason(client, namespace, hollow):
    names = await hollow(3)
    await client.patch(NODES, "", names[2], {"spec": {"unschedulable": True}})
    for i in range(3):
        await submit(client, namespace, f"web-{i}", WEB, topologySpreadConstraints=[spread()])
    placed = {await node_of(client, namespace, f"web-{i}") for i in range(2)}
    assert placed == set(names[:2])  # zone c is a domain, but its node takes no pod
    message = await unschedulable(client, namespace, "web-2")
    assert message.startswith(
        "0/3 nodes are available: 1 node(s) were unschedulable, "
        "2 node(s) didn't match pod topology spread constraints."
    )


async def test_the_api_refuses_malformed_constraints(client, namespace):
    bad = [
        spread(minDomains=2, action="ScheduleAnyway"),
        spread(action="ScheduleAnyway"),
        spread(nodeTaintsPolicy="Sometimes"),
    ]
    with pytest.raises(ApiError) as caught:
        await submit(client, namespace, "bad", WEB, topologySpreadConstraints=bad)
    assert caught.value.code == 422
    causes = {c["field"]: c["message"] for c in caught.value.status["details"]["causes"]}
    assert causes == {
        "spec.topologySpreadConstraints[0].minDomains": (
            "Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
            "not ScheduleAnyway"
        ),
        "spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}": (
            'Duplicate value: "{topology.kubernetes.io/zone, ScheduleAnyway}"'
        ),
        "spec.topologySpreadConstraints[2].nodeTaintsPolicy": (
            'Unsupported value: "Sometimes": supported values: "Honor", "Ignore"'
        ),
    }
