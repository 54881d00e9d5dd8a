"""InterPodAffinity: the plugin over a cache of nodes and pods, then end to end with hollow
nodes across three zones, and the API refusing a malformed term."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from kubik.client.api import ApiError
from kubik.scheduler.cache import Cache
from kubik.scheduler.framework import Code, CycleState
from kubik.scheduler.nodeinfo import PodInfo
from kubik.scheduler.plugins.interpodaffinity import (
    REASON_AFFINITY,
    REASON_ANTI_AFFINITY,
    REASON_EXISTING_ANTI_AFFINITY,
    InterPodAffinity,
)
from tests.scheduler.live import node_of, submit, unschedulable
from tests.scheduler.objects import HOST, ZONE, labelled, on
from tests.scheduler.pluginrun import THREE_ZONES, filter_nodes, fits, score_nodes, zones


def term(key: str, labels: dict | None = None, **extra) -> dict:
    selector = {"matchLabels": labels} if labels is not None else None
    return {"labelSelector": selector, "topologyKey": key, **extra}


def required(*terms: dict, anti: bool = False) -> dict:
    kind = "podAntiAffinity" if anti else "podAffinity"
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


def preferred(*weighted: tuple[int, dict], anti: bool = False) -> dict:
    kind = "podAntiAffinity" if anti else "podAffinity"
    terms = [{"weight": w, "podAffinityTerm": t} for w, t in weighted]
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": terms}}


class Namespaces:
    """A namespaces informer's reads, over fixed namespaces (name → labels)."""

    def __init__(self, labels: dict[str, dict]) -> None:
        self._objects = {n: {"metadata": {"name": n, "labels": v}} for n, v in labels.items()}

    def get(self, name: str) -> dict | None:
        return self._objects.get(name)

    def list(self, namespace: str = "") -> list[dict]:
        return list(self._objects.values())


def plugin(cache: Cache, namespaces: dict[str, dict] | None = None, **args) -> InterPodAffinity:
    informers = None
    if namespaces is not None:
        informers = SimpleNamespace(informer=lambda _: Namespaces(namespaces))
    return InterPodAffinity(handle=SimpleNamespace(cache=cache, informers=informers), args=args)


def filter_all(cache: Cache, incoming: dict, **kwargs) -> dict[str, str | None]:
    return filter_nodes(plugin(cache, **kwargs), cache, incoming)


# ------------------------------------------------------------------- filter


def test_required_affinity_needs_a_matching_pod_in_the_nodes_zone():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}), "a1"))
    web = labelled("web", {"app": "web"}, affinity=required(term(ZONE, {"app": "db"})))
    results = filter_all(cache, web)
    assert fits(results) == ["a1", "a2"]
    assert results["b1"] == REASON_AFFINITY
    state = CycleState(PodInfo(web))
    affinity = plugin(cache)
    affinity.pre_filter(state, web)
    assert affinity.filter(state, web, cache.get("c1")).code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_a_node_without_the_topology_key_fails_affinity():
    cache = zones(("a1", "a"), ("bare", ""))
    cache.add_pod(on(labelled("db", {"app": "db"}), "a1"))
    web = labelled("web", {}, affinity=required(term(ZONE, {"app": "db"})))
    assert filter_all(cache, web) == {"a1": None, "bare": REASON_AFFINITY}


def test_every_term_must_match_the_same_pod():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}), "a1"))
    cache.add_pod(on(labelled("cache", {"tier": "cache"}), "b1"))
    both = required(term(ZONE, {"app": "db"}), term(ZONE, {"tier": "cache"}))
    results = filter_all(cache, labelled("web", {}, affinity=both))
    assert set(results.values()) == {REASON_AFFINITY}


def test_the_first_pod_of_a_group_that_attracts_itself_goes_anywhere():
    cache = zones(*THREE_ZONES, ("bare", ""))
    self_attracted = required(term(ZONE, {"app": "web"}))
    first = filter_all(cache, labelled("web-0", {"app": "web"}, affinity=self_attracted))
    assert fits(first) == ["a1", "a2", "b1", "c1"]
    assert first["bare"] == REASON_AFFINITY
    stranger = filter_all(cache, labelled("other", {"app": "other"}, affinity=self_attracted))
    assert fits(stranger) == []
    cache.add_pod(on(labelled("web-0", {"app": "web"}), "b1"))
    second = filter_all(cache, labelled("web-1", {"app": "web"}, affinity=self_attracted))
    assert fits(second) == ["b1"]


def test_required_anti_affinity_keeps_away_from_matching_pods():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("web-0", {"app": "web"}), "a1"))
    spread = required(term(HOST, {"app": "web"}), anti=True)
    results = filter_all(cache, labelled("web-1", {"app": "web"}, affinity=spread))
    assert results["a1"] == REASON_ANTI_AFFINITY
    assert fits(results) == ["a2", "b1", "c1"]
    by_zone = required(term(ZONE, {"app": "web"}), anti=True)
    assert fits(filter_all(cache, labelled("web-1", {"app": "web"}, affinity=by_zone))) == [
        "b1",
        "c1",
    ]


def test_existing_pods_anti_affinity_keeps_the_pod_out_of_their_domain():
    cache = zones(*THREE_ZONES)
    loner = labelled("loner", {}, affinity=required(term(ZONE, {"app": "web"}), anti=True))
    cache.add_pod(on(loner, "a1"))
    results = filter_all(cache, labelled("web", {"app": "web"}))
    assert results == {
        "a1": REASON_EXISTING_ANTI_AFFINITY,
        "a2": REASON_EXISTING_ANTI_AFFINITY,
        "b1": None,
        "c1": None,
    }
    assert filter_all(cache, labelled("db", {"app": "db"})) == {}  # nothing to check: skipped
    cache.remove_pod(on(loner, "a1"))
    assert filter_all(cache, labelled("web", {"app": "web"})) == {}


def test_a_pod_without_terms_is_skipped_while_no_pod_has_required_anti_affinity():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}, affinity=required(term(ZONE, {}))), "a1"))
    assert filter_all(cache, labelled("web", {"app": "web"})) == {}


def test_terms_select_pods_of_the_pods_namespace_unless_told_otherwise():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}, namespace="data"), "b1"))
    wants_db = term(ZONE, {"app": "db"})
    here = filter_all(cache, labelled("web", {}, affinity=required(wants_db)))
    assert fits(here) == []
    named = {**wants_db, "namespaces": ["data"]}
    assert fits(filter_all(cache, labelled("web", {}, affinity=required(named)))) == ["b1"]
    everywhere = {**wants_db, "namespaceSelector": {}}
    assert fits(filter_all(cache, labelled("web", {}, affinity=required(everywhere)))) == ["b1"]


def test_a_namespace_selector_selects_namespaces_by_their_labels():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}, namespace="data"), "b1"))
    cache.add_pod(on(labelled("db", {"app": "db"}, namespace="scratch"), "c1"))
    namespaces = {"data": {"team": "a"}, "scratch": {"team": "b"}, "default": {}}
    selected = {**term(ZONE, {"app": "db"}), "namespaceSelector": {"matchLabels": {"team": "a"}}}
    results = filter_all(
        cache, labelled("web", {}, affinity=required(selected)), namespaces=namespaces
    )
    assert fits(results) == ["b1"]
    # an existing pod's anti-affinity selects the incoming pod by its namespace's labels
    cache = zones(*THREE_ZONES)
    guard = {**term(ZONE, {"app": "web"}), "namespaceSelector": {"matchLabels": {"team": "a"}}}
    cache.add_pod(on(labelled("guard", {}, affinity=required(guard, anti=True)), "a1"))
    team_a = filter_all(cache, labelled("web", {"app": "web"}, "data"), namespaces=namespaces)
    assert fits(team_a) == ["b1", "c1"]
    team_b = filter_all(cache, labelled("web", {"app": "web"}, "scratch"), namespaces=namespaces)
    assert team_b == {}


def test_match_label_keys_narrow_a_term_to_the_pods_own_values():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("old", {"app": "web", "version": "1"}), "a1"))
    cache.add_pod(on(labelled("new", {"app": "web", "version": "2"}), "b1"))
    spread = term(HOST, {"app": "web"}, matchLabelKeys=["version"])
    results = filter_all(
        cache, labelled("v2", {"app": "web", "version": "2"}, affinity=required(spread, anti=True))
    )
    assert fits(results) == ["a1", "a2", "c1"]
    apart = term(HOST, {"app": "web"}, mismatchLabelKeys=["version"])
    results = filter_all(
        cache, labelled("v2", {"app": "web", "version": "2"}, affinity=required(apart, anti=True))
    )
    assert fits(results) == ["a2", "b1", "c1"]


def test_a_term_without_a_label_selector_selects_no_pod():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("web-0", {"app": "web"}), "a1"))
    no_selector = required(term(HOST), anti=True)
    assert fits(filter_all(cache, labelled("web", {"app": "web"}, affinity=no_selector))) == [
        "a1",
        "a2",
        "b1",
        "c1",
    ]


def test_nominated_pods_are_counted_and_clones_are_independent():
    cache = zones(*THREE_ZONES)
    spread = required(term(ZONE, {"app": "web"}), anti=True)
    incoming = labelled("web", {"app": "web"}, affinity=spread)
    affinity = plugin(cache)
    state = CycleState(PodInfo(incoming))
    assert affinity.pre_filter(state, incoming) is None
    simulated = state.clone()
    nominated = PodInfo(on(labelled("nominated", {"app": "web"}, affinity=spread), "b1"))
    affinity.pre_filter_add_pod(simulated, incoming, nominated, cache.get("b1"))
    status = affinity.filter(simulated, incoming, cache.get("b1"))
    assert status.reasons == [REASON_ANTI_AFFINITY]
    assert affinity.filter(state, incoming, cache.get("b1")) is None
    affinity.pre_filter_remove_pod(simulated, incoming, nominated, cache.get("b1"))
    assert affinity.filter(simulated, incoming, cache.get("b1")) is None


# ------------------------------------------------------------------- score


def scores(cache: Cache, incoming: dict, **args) -> dict[str, int] | None:
    return score_nodes(plugin(cache, **args), cache, incoming)


def test_preferred_terms_weigh_the_domains():
    cache = zones(*THREE_ZONES)
    cache.add_pod(on(labelled("db", {"app": "db"}), "a1"))
    cache.add_pod(on(labelled("cache", {"app": "cache"}), "b1"))
    likes = {
        **preferred((80, term(ZONE, {"app": "db"})), (20, term(ZONE, {"app": "cache"}))),
    }
    assert scores(cache, labelled("web", {}, affinity=likes)) == {
        "a1": 100,
        "a2": 100,
        "b1": 25,
        "c1": 0,
    }
    dislikes = preferred((50, term(ZONE, {"app": "db"})), anti=True)
    assert scores(cache, labelled("web", {}, affinity=dislikes)) == {
        "a1": 0,
        "a2": 0,
        "b1": 100,
        "c1": 100,
    }


def test_existing_pods_terms_score_the_incoming_pod():
    cache = zones(*THREE_ZONES)
    needs_web = labelled("agent", {}, affinity=required(term(ZONE, {"app": "web"})))
    cache.add_pod(on(needs_web, "b1"))
    web = labelled("web", {"app": "web"})
    assert scores(cache, web) == {"a1": 0, "a2": 0, "b1": 100, "c1": 0}
    assert scores(cache, web, hardPodAffinityWeight=0) is None
    cache.add_pod(on(labelled("shy", {}, affinity=preferred((5, term(ZONE, {})), anti=True)), "c1"))
    assert scores(cache, web, hardPodAffinityWeight=0) == {"a1": 100, "a2": 100, "b1": 100, "c1": 0}
    assert scores(cache, web, ignorePreferredTermsOfExistingPods=True) is None


def test_no_matching_pod_means_no_score():
    cache = zones(*THREE_ZONES)
    likes = preferred((80, term(ZONE, {"app": "db"})))
    assert scores(cache, labelled("web", {}, affinity=likes)) is None


def test_the_hard_weight_must_be_in_range():
    with pytest.raises(ValueError, match="hardPodAffinityWeight"):
        plugin(Cache(), hardPodAffinityWeight=101)


# -------------------------------------------------------------- end to end


async def zone_of(client, namespace: str, name: str, hollow_zones: dict[str, str]) -> str:
    return hollow_zones[await node_of(client, namespace, name)]


def zones_of(names: list[str]) -> dict[str, str]:
    """Hollow node i is in zone-a, zone-b, zone-c in turn."""
    return {name: f"zone-{'abc'[i % 3]}" for i, name in enumerate(names)}


async def test_affinity_and_anti_affinity_across_zones(client, namespace, hollow):
    where = zones_of(await hollow(6))
    await submit(client, namespace, "db", {"app": "db"}, nodeSelector={ZONE: "zone-b"})
    assert await zone_of(client, namespace, "db", where) == "zone-b"
    near_db = required(term(ZONE, {"app": "db"}))
    for i in range(3):
        await submit(client, namespace, f"web-{i}", {}, affinity=near_db)
    for i in range(3):
        assert await zone_of(client, namespace, f"web-{i}", where) == "zone-b"

    one_per_zone = required(term(ZONE, {"app": "ha"}), anti=True)
    for i in range(4):
        await submit(client, namespace, f"ha-{i}", {"app": "ha"}, affinity=one_per_zone)
    placed = [await zone_of(client, namespace, f"ha-{i}", where) for i in range(3)]
    assert sorted(placed) == ["zone-a", "zone-b", "zone-c"]
    message = await unschedulable(client, namespace, "ha-3")
    assert message.startswith(
        "0/6 nodes are available: 6 node(s) didn't match pod anti-affinity rules."
    )


async def test_existing_pods_anti_affinity_end_to_end(client, namespace, hollow):
    names = await hollow(3)
    keeps_web_away = required(term(HOST, {"app": "web"}), anti=True)
    alone = {HOST: names[0]}
    await submit(client, namespace, "loner", {}, affinity=keeps_web_away, nodeSelector=alone)
    assert await node_of(client, namespace, "loner") == names[0]
    await submit(client, namespace, "web", {"app": "web"})
    assert await node_of(client, namespace, "web") in names[1:]
    await submit(client, namespace, "pinned", {"app": "web"}, nodeSelector=alone)
    message = await unschedulable(client, namespace, "pinned")
    assert message.startswith("0/3 nodes are available: 1 node(s) didn't satisfy existing pods")
    assert "2 node(s) didn't match Pod's node affinity/selector" in message


async def test_the_api_refuses_a_term_without_a_topology_key(client, namespace):
    bad = required(term("", {"app": "db"}))
    with pytest.raises(ApiError) as caught:
        await submit(client, namespace, "bad", {"app": "web"}, affinity=bad)
    assert caught.value.code == 422
    path = "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey"
    causes = caught.value.status["details"]["causes"]
    assert {
        "reason": "FieldValueRequired",
        "message": "Required value: can not be empty",
        "field": path,
    } in causes
    heavy = preferred((101, term(ZONE, {"app": "db"})))
    with pytest.raises(ApiError, match="must be in the range 1-100"):
        await submit(client, namespace, "heavy", {}, affinity=heavy)
