"""DefaultPreemption: victims, node choice, budgets, policy, nomination.

The first tests run one scheduling cycle and the post-filter over an
in-memory cache (the API calls go to a recording fake); the last ones run
the scheduler of a real `kubik server` — with the disruption controller
in-process where a PodDisruptionBudget must have a status.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.controllers.disruption import DisruptionController
from kubik.scheduler import config
from kubik.scheduler.cache import Cache
from kubik.scheduler.cycle import Algorithm
from kubik.scheduler.framework import CycleState, FitError, Framework
from kubik.scheduler.nodeinfo import PodInfo
from kubik.scheduler.plugins.defaultpreemption import (
    Candidate,
    pick_one_node,
    split_by_pdb_violation,
)
from kubik.scheduler.queue import SchedulingQueue
from tests.scheduler.live import event, node_of, unschedulable
from tests.scheduler.objects import node, pod, priority_class, taint
from tests.support.controller import running
from tests.support.polling import eventually

PODS = builtin.lookup("", "v1", "pods")
PDBS = builtin.lookup("policy", "v1", "poddisruptionbudgets")
PRIORITY_CLASSES = builtin.lookup("scheduling.k8s.io", "v1", "priorityclasses")


class RecordingClient:
    """What the preemption asked of the API, in order; deletions fail when `broken`."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.broken = False

    async def patch(self, resource, namespace, name, body, **options):
        self.calls.append(("patch", name, body))
        return {}

    async def delete(self, resource, namespace, name, **options):
        if self.broken:
            raise ApiError(500, {"reason": "InternalError", "message": "the store is down"})
        self.calls.append(("delete", name))
        return {}

    def deleted(self) -> list[str]:
        return sorted(call[1] for call in self.calls if call[0] == "delete")


class Cluster:
    def __init__(self, *nodes: dict) -> None:
        self.cache = Cache()
        for obj in nodes:
            self.cache.add_node(obj)
        self.queue = SchedulingQueue()
        self.client = RecordingClient()
        profile = config.parse({}).profiles[0]
        self.fw = Framework(profile, client=self.client, cache=self.cache, queue=self.queue)
        self.preemption = self.fw.plugins["DefaultPreemption"]
        self.preemption.rng = random.Random(1)
        self.algorithm = Algorithm(self.cache, self.queue, rng=random.Random(1))

    def bind(self, p: dict, node_name: str) -> dict:
        p["spec"]["nodeName"] = node_name
        self.cache.add_pod(p)
        return p

    def attempt(self, p: dict) -> tuple[str | None, str]:
        """One failed cycle: (node nominated, None to keep, "" to clear; the pod's message)."""
        state = CycleState(PodInfo(p))
        with pytest.raises(FitError) as failed:
            self.algorithm.schedule(self.fw, state, p)
        error = failed.value
        nominated, status = self.fw.run_post_filter(state, p, error.diagnosis.statuses)
        error.diagnosis.post_filter_msg = status.message
        if nominated:
            self.queue.add_nominated(PodInfo(p), nominated)
        return nominated, str(error)

    async def evictions(self) -> list[str]:
        await asyncio.gather(*self.preemption._tasks)
        return self.client.deleted()


def low(name: str, priority: int, cpu: str, **spec) -> dict:
    return pod(name, priority=priority, requests={"cpu": cpu}, **spec)


@pytest.mark.parametrize(("cpu", "victims"), [("2", ["low"]), ("3", ["low", "mid"])])
async def test_the_fewest_lowest_priority_pods_are_the_victims(cpu, victims):
    cluster = Cluster(node("n1", cpu="4"))
    for name, priority in (("low", 1), ("mid", 2), ("high", 3)):
        cluster.bind(low(name, priority, "1"), "n1")
    preemptor = pod("preemptor", priority=10, requests={"cpu": cpu})
    nominated, message = cluster.attempt(preemptor)
    assert nominated == "n1"
    assert message == "0/1 nodes are available: 1 Insufficient cpu."
    assert await cluster.evictions() == victims
    patch = cluster.client.calls[0]
    assert patch[0] == "patch"
    (condition,) = patch[2]["status"]["conditions"]
    assert (condition["type"], condition["reason"], condition["message"]) == (
        "DisruptionTarget",
        "PreemptionByScheduler",
        "default-scheduler: preempting to accommodate a higher priority pod",
    )


async def test_the_node_whose_victims_matter_least_is_chosen():
    cluster = Cluster(node("n1", cpu="4"), node("n2", cpu="4"), node("n3", cpu="4"))
    cluster.bind(low("important", 5, "4"), "n1")
    cluster.bind(low("two-a", 1, "2"), "n2")
    cluster.bind(low("two-b", 1, "2"), "n2")
    cluster.bind(low("one", 1, "4"), "n3")
    nominated, _ = cluster.attempt(pod("preemptor", priority=10, requests={"cpu": "3"}))
    assert nominated == "n3"  # lowest highest priority, then the smallest sum of priorities
    assert await cluster.evictions() == ["one"]


def test_the_order_of_preference_between_candidates():
    def candidate(name, *priorities, violations=0, started="2024-01-01T00:00:00Z"):
        victims = []
        for i, priority in enumerate(priorities):
            p = pod(f"{name}-{i}", priority=priority)
            p["status"]["startTime"] = started
            victims.append(PodInfo(p))
        return Candidate(name, victims, violations)

    assert pick_one_node([candidate("a", 1, violations=1), candidate("b", 9)]).node == "b"
    assert pick_one_node([candidate("a", 5), candidate("b", 3, 3)]).node == "b"
    assert pick_one_node([candidate("a", 3, 3), candidate("b", 3, 1)]).node == "b"
    assert pick_one_node([candidate("a", 3, 3), candidate("b", 3)]).node == "b"
    older = candidate("a", 3, started="2024-01-01T00:00:00Z")
    newer = candidate("b", 3, started="2024-06-01T00:00:00Z")
    assert pick_one_node([older, newer]).node == "b"
    assert pick_one_node([candidate("a", 3), candidate("b", 3)]).node == "a"


def test_victims_whose_budget_has_no_room_violate_it():
    pods = [PodInfo(pod(f"web-{i}", labels={"app": "web"})) for i in range(3)]
    for info in pods:
        info.pod["metadata"]["labels"] = {"app": "web"}
    budget = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}},
        "status": {"disruptionsAllowed": 1, "disruptedPods": {"web-2": "2024-01-01T00:00:00Z"}},
    }
    violating, others = split_by_pdb_violation(pods, [budget])
    assert [v.key for v in violating] == ["default/web-1"]
    assert [v.key for v in others] == ["default/web-0", "default/web-2"]
    empty = {**budget, "spec": {"selector": {}}}
    assert split_by_pdb_violation(pods, [empty]) == ([], pods)


async def test_preemption_policy_never_preempts_nothing():
    cluster = Cluster(node("n1", cpu="2"))
    cluster.bind(low("low", 1, "2"), "n1")
    never = pod("never", priority=10, requests={"cpu": "1"}, preemptionPolicy="Never")
    nominated, message = cluster.attempt(never)
    assert nominated is None
    assert message == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: not eligible due to preemptionPolicy=Never.."
    )
    assert await cluster.evictions() == []


async def test_when_preemption_cannot_help_the_nomination_is_cleared():
    cluster = Cluster(node("n1", cpu="2"), node("tainted", taints=[taint("dedicated")]))
    cluster.bind(low("equal", 10, "2"), "n1")
    nominated, message = cluster.attempt(pod("p", priority=10, requests={"cpu": "1"}))
    assert nominated == ""
    assert message == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {dedicated: }. preemption: 0/2 nodes are available: "
        "1 No preemption victims found for incoming pod, "
        "1 Preemption is not helpful for scheduling.."  # upstream's double period
    )


async def test_a_nominated_pod_holds_its_room_against_lower_priority_pods():
    cluster = Cluster(node("n1", cpu="4"))
    victim = cluster.bind(low("victim", 1, "3"), "n1")
    assert cluster.attempt(pod("preemptor", priority=10, requests={"cpu": "3"}))[0] == "n1"
    await cluster.evictions()
    cluster.cache.remove_pod(victim)  # the deletion is observed
    latecomer = pod("latecomer", priority=5, requests={"cpu": "2"})
    _, message = cluster.attempt(latecomer)
    assert message.startswith("0/1 nodes are available: 1 Insufficient cpu.")
    more_important = pod("more-important", priority=20, requests={"cpu": "2"})
    state = CycleState(PodInfo(more_important))
    assert cluster.algorithm.schedule(cluster.fw, state, more_important).node == "n1"


async def test_a_preemptor_whose_victims_could_not_be_deleted_is_retried_at_once():
    cluster = Cluster(node("n1", cpu="2"))
    cluster.bind(low("victim", 1, "2"), "n1")
    cluster.client.broken = True
    preemptor = pod("preemptor", priority=10, requests={"cpu": "2"})
    cluster.queue.add(preemptor)
    queued = await cluster.queue.pop()
    assert cluster.attempt(preemptor)[0] == "n1"
    queued.unschedulable_plugins = {"NodeResourcesFit"}
    cluster.queue.add_unschedulable_if_not_present(queued)
    assert cluster.queue.where("default/preemptor") == "unschedulable"
    assert cluster.attempt(preemptor)[1].endswith(
        "preemption: waiting for the preemption for this pod to be finished."
    )
    assert await cluster.evictions() == []
    assert cluster.queue.where("default/preemptor") == "active"


# ------------------------------------------------------------------ live


@pytest.fixture
async def classes(client, namespace):
    """Classes `<namespace>-low` (1), `-mid` (2), `-high` (1000), `-never` (1000, Never)."""
    made = {
        "low": priority_class(f"{namespace}-low", 1),
        "mid": priority_class(f"{namespace}-mid", 2),
        "high": priority_class(f"{namespace}-high", 1000),
        "never": priority_class(f"{namespace}-never", 1000, preemptionPolicy="Never"),
    }
    for obj in made.values():
        await client.create(PRIORITY_CLASSES, obj)
    yield {key: obj["metadata"]["name"] for key, obj in made.items()}
    for obj in made.values():
        await client.delete(PRIORITY_CLASSES, "", obj["metadata"]["name"])


async def make_pod(
    client,
    namespace: str,
    name: str,
    cls: str,
    cpu: str,
    *,
    node_name: str = "",
    labels: dict | None = None,
) -> None:
    spec = {
        "priorityClassName": cls,
        "terminationGracePeriodSeconds": 0,  # no kubelet: deleted at once
        "containers": [
            {
                "name": "c",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": cpu}},
            }
        ],
    }
    if node_name:
        spec["nodeName"] = node_name
    metadata = {"name": name, "namespace": namespace, "labels": labels or {}}
    await client.create(
        PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    )


@contextlib.asynccontextmanager
async def versions(client, namespace: str):
    """Every version of every pod of the namespace seen from now on: name → list."""
    seen: dict[str, list[dict]] = {}
    version = (await client.list(PODS, namespace))["metadata"]["resourceVersion"]

    async def watch() -> None:
        async for kind, obj in client.watch(PODS, namespace, resource_version=version):
            if kind != "BOOKMARK":
                seen.setdefault(obj["metadata"]["name"], []).append(obj)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def gone(client, namespace: str, name: str) -> bool:
    names = {p["metadata"]["name"] for p in (await client.list(PODS, namespace))["items"]}
    return name not in names


async def test_preemption_in_a_cluster(client, namespace, nodes, classes):
    where = f"{namespace}-n1"
    await nodes(node(where, cpu="4"))
    await make_pod(client, namespace, "low", classes["low"], "1", node_name=where)
    await make_pod(client, namespace, "mid-1", classes["mid"], "1", node_name=where)
    await make_pod(client, namespace, "mid-2", classes["mid"], "1", node_name=where)
    async with versions(client, namespace) as seen:
        await make_pod(client, namespace, "urgent", classes["high"], "2")
        assert await node_of(client, namespace, "urgent") == where
        await eventually(lambda: gone(client, namespace, "low"), "the victim to be deleted")
    assert any((v.get("status") or {}).get("nominatedNodeName") == where for v in seen["urgent"]), (
        seen["urgent"]
    )
    conditions = [c for v in seen["low"] for c in (v.get("status") or {}).get("conditions") or []]
    assert any(
        c["type"] == "DisruptionTarget" and c["reason"] == "PreemptionByScheduler"
        for c in conditions
    )
    preempted = await event(client, namespace, "low", "Preempted")
    assert preempted["message"].startswith("Preempted by pod ")
    assert preempted["message"].endswith(f" on node {where}")
    remaining = {p["metadata"]["name"] for p in (await client.list(PODS, namespace))["items"]}
    assert remaining == {"mid-1", "mid-2", "urgent"}


async def test_a_pod_that_may_not_preempt_waits(client, namespace, nodes, classes):
    where = f"{namespace}-n1"
    await nodes(node(where, cpu="2"))
    await make_pod(client, namespace, "low", classes["low"], "2", node_name=where)
    await make_pod(client, namespace, "polite", classes["never"], "1")
    message = await unschedulable(client, namespace, "polite")
    assert message == (
        "0/1 nodes are available: 1 Insufficient cpu. "
        "preemption: not eligible due to preemptionPolicy=Never.."
    )
    await asyncio.sleep(1.0)
    assert not await gone(client, namespace, "low")


async def test_preemption_respects_disruption_budgets(client, namespace, nodes, classes):
    guarded, free = f"{namespace}-guarded", f"{namespace}-free"
    await nodes(node(guarded, cpu="2"), node(free, cpu="2"))
    await make_pod(
        client, namespace, "db", classes["low"], "2", node_name=guarded, labels={"app": "db"}
    )
    await make_pod(
        client, namespace, "cache", classes["low"], "2", node_name=free, labels={"app": "cache"}
    )
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    for name in ("db", "cache"):
        await client.patch(
            PODS, namespace, name, ready, patch_type="strategic", subresource="status"
        )
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
    }
    await client.create(PDBS, budget)
    async with running(client, DisruptionController):

        async def no_room() -> bool:
            status = (await client.get(PDBS, namespace, "db")).get("status") or {}
            return status.get("currentHealthy") == 1 and status.get("disruptionsAllowed") == 0

        await eventually(no_room, "the budget's status")
        await make_pod(client, namespace, "urgent", classes["high"], "2")
        assert await node_of(client, namespace, "urgent") == free
    assert await gone(client, namespace, "cache")
    assert not await gone(client, namespace, "db")
