"""The scheduler component in this process against a real server: the binding and permit
phases, through plugins of the tests' own, and several profiles each placing the pods
that name it."""

from __future__ import annotations

import asyncio

import pytest

from kubik.scheduler import config
from kubik.scheduler.framework import Code, Status, register
from kubik.scheduler.plugins.defaultbinder import DefaultBinder
from kubik.scheduler.scheduler import Scheduler
from tests.scheduler.live import PODS, create, event, names, node_of, unschedulable
from tests.scheduler.objects import node, pod, taint
from tests.support.cluster import KubikServer


@register
class FlakyBinder(DefaultBinder):
    """Fails each pod's first binding, then binds as the default binder does."""

    name = "TestFlakyBinder"

    def __init__(self, handle):
        super().__init__(handle)
        self.failed: set[str] = set()

    async def bind(self, state, pod, node):
        if pod["metadata"]["name"] not in self.failed:
            self.failed.add(pod["metadata"]["name"])
            return Status(Code.ERROR, "the binding went wrong")
        return await super().bind(state, pod, node)


@register
class Pairs:
    """Holds pods at permit until two are waiting, then lets both go (a tiny gang)."""

    name = "TestPairs"

    def __init__(self, handle):
        self.handle = handle
        self.waiting: list[str] = []

    def permit(self, state, pod, node):
        self.waiting.append(pod["metadata"]["uid"])
        if len(self.waiting) < 2:
            return Status(Code.WAIT, timeout=30)
        for uid in self.waiting[:-1]:
            self.handle.waiting_pods[uid].allow(self.name)
        self.waiting.clear()
        return None


@register
class NotHelpful:
    """A post_filter in the manner of preemption: it nominates a node, and says why not more."""

    name = "TestNotHelpful"

    def post_filter(self, state, pod, statuses):
        count = len(statuses)
        message = f"preemption: 0/{count} nodes are available: {count} Preemption is not helpful"
        return sorted(statuses)[0], Status(Code.UNSCHEDULABLE, message + " for scheduling")


def profile(name: str, points: dict) -> dict:
    return {"schedulerName": name, "plugins": points}


CONFIG = {
    "leaderElection": {"leaderElect": False},
    "profiles": [
        profile(
            "flaky",
            {"bind": {"enabled": [{"name": "TestFlakyBinder"}], "disabled": [{"name": "*"}]}},
        ),
        profile("pairs", {"permit": {"enabled": [{"name": "TestPairs"}]}}),
        profile("spreader", {}),  # upstream's defaults: the least allocated node
        {
            "schedulerName": "packer",
            "pluginConfig": [
                {
                    "name": "NodeResourcesFit",
                    "args": {"scoringStrategy": {"type": "MostAllocated"}},
                }
            ],
        },
        profile(
            "preempting",
            {
                "postFilter": {
                    "enabled": [{"name": "TestNotHelpful"}],
                    "disabled": [{"name": "*"}],  # in place of DefaultPreemption
                }
            },
        ),
    ],
}


@pytest.fixture
async def scheduler(server: KubikServer):
    component = Scheduler(kubeconfig=server.kubeconfig, config=config.parse(CONFIG))
    await component.start()
    yield component
    await component.stop()


def of(scheduler_name: str, name: str, group: dict) -> dict:
    obj = pod(name, nodeSelector=group)
    obj["spec"]["schedulerName"] = scheduler_name
    return obj


async def test_a_failed_binding_is_retried(scheduler, client, namespace, nodes):
    group = {"group": namespace}
    await nodes(node(f"{namespace}-n", labels=group))
    await create(client, namespace, of("flaky", "p", group))
    assert await node_of(client, namespace, "p") == f"{namespace}-n"
    failed = await event(client, namespace, "p", "FailedScheduling")
    assert failed["message"] == 'running Bind plugin "TestFlakyBinder": the binding went wrong'
    assert scheduler.session.cache.num_nodes() >= 1


async def test_permit_holds_pods_until_a_plugin_lets_them_go(scheduler, client, namespace, nodes):
    group = {"group": namespace}
    await nodes(node(f"{namespace}-n", labels=group))
    await create(client, namespace, of("pairs", "first", group))
    waiting = scheduler.session.profiles["pairs"].waiting_pods
    async with asyncio.timeout(10):
        while not waiting:
            await asyncio.sleep(0.05)
    assert not (await client.get(PODS, namespace, "first"))["spec"].get("nodeName")
    await create(client, namespace, of("pairs", "second", group))
    assert await node_of(client, namespace, "first") == f"{namespace}-n"
    assert await node_of(client, namespace, "second") == f"{namespace}-n"


async def test_post_filter_messages_and_nominations_reach_the_pod(
    scheduler, client, namespace, nodes
):
    unreachable = taint("node.kubernetes.io/unreachable", effect="NoExecute")
    small, gone_1, gone_2 = names(namespace, "small", "gone-1", "gone-2")
    await nodes(
        node(small, cpu="1"), node(gone_1, taints=[unreachable]), node(gone_2, taints=[unreachable])
    )
    greedy = pod("greedy", requests={"cpu": "2"})
    greedy["spec"]["schedulerName"] = "preempting"
    await create(client, namespace, greedy)
    assert await unschedulable(client, namespace, "greedy") == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    found = await client.get(PODS, namespace, "greedy")
    assert found["status"]["nominatedNodeName"] == gone_1


async def test_each_pod_is_placed_by_the_profile_it_names(scheduler, client, namespace, nodes):
    group = {"group": namespace}
    busy, idle = names(namespace, "busy", "idle")
    await nodes(
        node(busy, cpu="4", memory="4Gi", labels=group),
        node(idle, cpu="4", memory="4Gi", labels=group),
    )
    half = {"cpu": "2", "memory": "2Gi"}
    await create(client, namespace, pod("resident", requests=half, nodeName=busy))
    for profile_name in ("packer", "spreader"):
        obj = pod(profile_name, requests={"cpu": "1", "memory": "1Gi"}, nodeSelector=group)
        obj["spec"]["schedulerName"] = profile_name
        await create(client, namespace, obj)
    assert await node_of(client, namespace, "packer") == busy
    assert await node_of(client, namespace, "spreader") == idle
    for profile_name in ("packer", "spreader"):
        scheduled = await event(client, namespace, profile_name, "Scheduled")
        assert scheduled["source"]["component"] == profile_name
