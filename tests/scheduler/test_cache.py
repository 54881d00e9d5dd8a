"""The cache: assumed pods, confirmation, expiry, nodes coming and going, zones."""

from __future__ import annotations

from kubik.scheduler.cache import Cache
from kubik.scheduler.nodeinfo import PodInfo
from tests.scheduler.objects import labelled, node, pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bound(obj: dict, node_name: str) -> dict:
    return {**obj, "spec": {**obj["spec"], "nodeName": node_name}}


def test_an_assumed_pod_counts_at_once_and_is_confirmed_by_the_binding():
    cache = Cache()
    cache.add_node(node("a", cpu="2"))
    web = pod("web", requests={"cpu": "1500m"})
    cache.assume_pod(PodInfo(bound(web, "a")), "a")
    assert cache.is_assumed("default/web")
    assert cache.get("a").requested.milli_cpu == 1500
    cache.add_pod(bound(web, "a"))  # the informer sees the binding
    assert not cache.is_assumed("default/web")
    assert cache.get("a").requested.milli_cpu == 1500  # counted once


def test_a_failed_binding_is_forgotten():
    cache = Cache()
    cache.add_node(node("a"))
    cache.assume_pod(PodInfo(pod("web", requests={"cpu": "1"})), "a")
    cache.forget_pod("default/web")
    assert cache.get("a").requested.milli_cpu == 0
    assert not cache.get("a").pods


def test_assumed_pods_expire_when_their_binding_is_never_observed():
    clock = Clock()
    cache = Cache(ttl=30, clock=clock)
    cache.add_node(node("a"))
    cache.assume_pod(PodInfo(pod("web", requests={"cpu": "1"})), "a")
    clock.now += 60
    assert cache.expire_assumed() == []  # the binding is still in flight: never expires
    cache.finish_binding("default/web")
    clock.now += 29
    assert cache.expire_assumed() == []
    clock.now += 2
    assert cache.expire_assumed() == ["default/web"]
    assert cache.get("a").requested.milli_cpu == 0


def test_a_pod_bound_elsewhere_than_assumed_moves():
    cache = Cache()
    cache.add_node(node("a"))
    cache.add_node(node("b"))
    web = pod("web", requests={"cpu": "1"})
    cache.assume_pod(PodInfo(web), "a")
    cache.add_pod(bound(web, "b"))
    assert cache.get("a").requested.milli_cpu == 0
    assert cache.get("b").requested.milli_cpu == 1000


def test_pods_on_a_node_not_seen_yet_are_kept_for_it():
    cache = Cache()
    cache.add_pod(bound(pod("early", requests={"cpu": "1"}), "late"))
    assert cache.node_infos() == []
    cache.add_node(node("late"))
    assert cache.get("late").requested.milli_cpu == 1000
    cache.remove_node(node("late"))
    assert cache.num_nodes() == 0
    cache.add_node(node("late"))
    assert cache.get("late").requested.milli_cpu == 1000  # the pod was never deleted
    cache.remove_pod(bound(pod("early"), "late"))
    assert cache.get("late").requested.milli_cpu == 0


def test_image_spread_follows_nodes():
    image = {"names": ["docker.io/library/nginx:1.25", "nginx:1.25"], "sizeBytes": 100}
    cache = Cache()
    cache.add_node(node("a", images=[image]))
    cache.add_node(node("b", images=[image]))
    cache.add_node(node("c"))
    assert cache.image_spread("nginx:1.25") == 2
    cache.update_node(node("a"))
    assert cache.image_spread("nginx:1.25") == 1
    cache.remove_node(node("b"))
    assert cache.image_spread("nginx:1.25") == 0


def test_nodes_are_listed_zone_by_zone_in_turn():
    cache = Cache()
    for name, zone in [
        ("a1", "a"),
        ("a2", "a"),
        ("a3", "a"),
        ("b1", "b"),
        ("c1", "c"),
        ("c2", "c"),
    ]:
        cache.add_node(node(name, labels={"topology.kubernetes.io/zone": zone}))
    assert [n.name for n in cache.node_infos()] == ["a1", "b1", "c1", "a2", "c2", "a3"]
    cache.update_node(node("a1", labels={"topology.kubernetes.io/zone": "c"}))
    # a1 now heads zone c, which comes first because a1 is the first node known
    assert [n.name for n in cache.node_infos()] == ["a1", "a2", "b1", "c1", "a3", "c2"]


def _groups(cache: Cache, namespace: str = "default") -> dict:
    return {
        (tuple(sorted(g.labels.items())), g.terminating): {n.name: k for n, k in g.nodes.items()}
        for g in cache.label_groups(namespace)
    }


def test_pods_are_grouped_by_labels_with_their_count_per_node():
    cache = Cache()
    cache.add_node(node("a"))
    cache.add_node(node("b"))
    web = {"app": "web"}
    cache.add_pod(bound(labelled("w1", web), "a"))
    cache.add_pod(bound(labelled("w2", web), "a"))
    cache.assume_pod(PodInfo(bound(labelled("w3", web), "b")), "b")
    cache.add_pod(bound(labelled("db", {"app": "db"}), "b"))
    assert _groups(cache) == {
        ((("app", "web"),), False): {"a": 2, "b": 1},
        ((("app", "db"),), False): {"b": 1},
    }
    relabelled = bound(labelled("w2", {"app": "web", "v": "2"}), "a")
    cache.update_pod(relabelled)
    leaving = bound(labelled("w1", web), "a")
    leaving["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    cache.update_pod(leaving)
    cache.forget_pod("default/w3")
    assert _groups(cache) == {
        ((("app", "web"),), True): {"a": 1},
        ((("app", "web"), ("v", "2")), False): {"a": 1},
        ((("app", "db"),), False): {"b": 1},
    }
    for gone in (leaving, relabelled):
        cache.remove_pod(gone)
    cache.remove_node(node("b"))  # its pod stays until deleted itself
    assert _groups(cache) == {((("app", "db"),), False): {"b": 1}}
    cache.remove_pod(bound(labelled("db", {"app": "db"}), "b"))
    assert _groups(cache) == {}
    assert list(cache.label_groups("other")) == []
