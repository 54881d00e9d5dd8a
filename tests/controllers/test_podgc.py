"""The pod garbage collector against a real `kubik server` (with no controllers of its own).

The controller runs in the test, with a short quarantine, and passes are
started by hand instead of every 20 s.
"""

from __future__ import annotations

import asyncio

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.controllers import podgc
from kubik.controllers.base import Context
from tests.support.cluster import KubikServer

PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")
NAMESPACES = builtin.lookup("", "v1", "namespaces")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("podgc"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def controller(client):
    factory = InformerFactory(client)
    controller = podgc.PodGCController(
        Context(client, factory, EventRecorder(client, "podgc-test"))
    )
    controller.quarantine = 0.3
    controller.setup()
    factory.start()
    await factory.wait_synced()
    yield controller
    await controller.stop()
    await factory.stop()


async def make_namespace(client: Client, name: str) -> None:
    await client.create(NAMESPACES, {"metadata": {"name": name}})


async def make_pod(
    client: Client,
    namespace: str,
    name: str,
    *,
    node: str = "",
    phase: str = "",
    finalizers: tuple[str, ...] = (),
) -> None:
    spec: dict = {"containers": [{"name": "main", "image": "kubik.local/busybox:1"}]}
    if node:
        spec["nodeName"] = node
    metadata: dict = {"name": name, "namespace": namespace}
    if finalizers:
        metadata["finalizers"] = list(finalizers)
    await client.create(PODS, {"metadata": metadata, "spec": spec})
    if phase:
        await client.patch(
            PODS, namespace, name, {"status": {"phase": phase}}, subresource="status"
        )


async def pod(client: Client, namespace: str, name: str) -> dict | None:
    try:
        return await client.get(PODS, namespace, name)
    except ApiError as exc:
        assert exc.not_found
        return None


async def eventually(predicate) -> None:
    async with asyncio.timeout(10):
        while not predicate():
            await asyncio.sleep(0.05)


def cached(controller: podgc.PodGCController, namespace: str, count: int):
    """Whether the controller's pod cache holds `count` pods of the namespace."""
    return lambda: len(controller.pods.list(namespace)) == count


async def test_pods_on_a_missing_node_go_after_the_quarantine(client, controller):
    await make_namespace(client, "orphans")
    await client.create(NODES, {"metadata": {"name": "present"}})
    await make_pod(client, "orphans", "kept", node="present", phase="Running")
    await make_pod(client, "orphans", "lost", node="ghost", phase="Running")
    await make_pod(client, "orphans", "held", node="ghost", finalizers=("x.io/hold",))
    await eventually(cached(controller, "orphans", 3))

    await controller.collect()  # the missing node is quarantined: nothing goes yet
    assert await pod(client, "orphans", "lost") is not None

    await asyncio.sleep(controller.quarantine)
    await controller.collect()

    assert await pod(client, "orphans", "lost") is None
    assert await pod(client, "orphans", "kept") is not None
    # the pod a finalizer holds shows what happened to it: Failed, with the reason
    held = await pod(client, "orphans", "held")
    assert held["metadata"]["deletionTimestamp"]
    assert held["status"]["phase"] == "Failed"
    [condition] = [c for c in held["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True",
        "DeletionByPodGC",
        "PodGC: node no longer exists",
    )
    await client.patch(PODS, "orphans", "held", {"metadata": {"finalizers": None}})


async def test_a_node_that_appears_during_the_quarantine_keeps_its_pods(client, controller):
    await make_namespace(client, "late")
    await make_pod(client, "late", "waiting", node="late-node", phase="Running")
    await eventually(cached(controller, "late", 1))
    await controller.collect()

    await client.create(NODES, {"metadata": {"name": "late-node"}})
    await asyncio.sleep(controller.quarantine)
    await controller.collect()

    assert await pod(client, "late", "waiting") is not None


async def test_terminated_pods_beyond_the_threshold_go_oldest_first(client, controller):
    await make_namespace(client, "finished")
    for index in range(4):
        await make_pod(client, "finished", f"done-{index}", phase="Succeeded")
    await make_pod(client, "finished", "running", phase="Running")
    await make_pod(client, "finished", "evicted", phase="Failed")
    await client.patch(
        PODS, "finished", "evicted", {"status": {"reason": "Evicted"}}, subresource="status"
    )
    await eventually(
        lambda: (
            (controller.pods.get("finished/evicted") or {}).get("status", {}).get("reason")
            and cached(controller, "finished", 6)()
        )
    )
    terminated_elsewhere = sum(
        1
        for p in controller.pods.list()
        if p["metadata"]["namespace"] != "finished"
        and p.get("status", {}).get("phase") in ("Succeeded", "Failed")
    )
    controller.threshold = terminated_elsewhere + 2

    await controller.collect()

    names = {p["metadata"]["name"] for p in (await client.list(PODS, "finished"))["items"]}
    # evicted pods go first, then the oldest (creation time, then name)
    assert names == {"done-2", "done-3", "running"}


async def test_terminating_pods_that_nothing_will_finish_are_force_deleted(client, controller):
    await make_namespace(client, "stuck")
    await client.create(
        NODES,
        {
            "metadata": {"name": "out-of-service"},
            "spec": {
                "taints": [
                    {"key": podgc.OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}
                ]
            },
        },
    )
    await client.create(NODES, {"metadata": {"name": "healthy-node"}})
    await make_pod(client, "stuck", "shut-down", node="out-of-service", phase="Running")
    await make_pod(client, "stuck", "graceful", node="healthy-node", phase="Running")
    for name in ("shut-down", "graceful"):
        await client.delete(PODS, "stuck", name)  # 30 s of grace no kubelet will use
    await eventually(
        lambda: (
            cached(controller, "stuck", 2)()
            and all(p["metadata"].get("deletionTimestamp") for p in controller.pods.list("stuck"))
        )
    )

    await controller.collect()

    assert await pod(client, "stuck", "shut-down") is None
    assert (await pod(client, "stuck", "graceful"))["metadata"]["deletionTimestamp"]


def test_the_threshold_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(podgc.THRESHOLD_VARIABLE, raising=False)
    assert podgc.threshold_from_environment() == 12500
    monkeypatch.setenv(podgc.THRESHOLD_VARIABLE, "7")
    assert podgc.threshold_from_environment() == 7
    monkeypatch.setenv(podgc.THRESHOLD_VARIABLE, "many")
    assert podgc.threshold_from_environment() == 12500


async def test_pods_bound_while_their_node_is_deleted_are_collected(client, controller):
    """No pod stays bound to a deleted node. The binding API does not look for the node
    (nor does upstream's), so a binding in flight lands after the deletion (`late`,
    bound by hand); pods the server's scheduler bound before it are on the missing node
    too. podgc removes them all; pods made after the deletion wait, unschedulable."""
    await make_namespace(client, "race")
    room = {"cpu": "8", "memory": "8Gi", "pods": "110"}
    await client.create(
        NODES,
        {
            "metadata": {"name": "doomed", "labels": {"podgc-race": "yes"}},
            "status": {"capacity": room, "allocatable": room},
        },
    )
    names = [f"p-{i:02}" for i in range(24)]
    for index, name in enumerate(names):
        if index == len(names) // 2:  # half made before the node goes, half after
            await client.delete(NODES, "", "doomed")
        body = {
            "metadata": {"name": name, "namespace": "race"},
            "spec": {
                "nodeSelector": {"podgc-race": "yes"},
                "containers": [{"name": "main", "image": "kubik.local/busybox:1"}],
            },
        }
        await client.create(PODS, body)
    await make_pod(client, "race", "late")  # bound after the node went: nothing refuses it
    binding = {"metadata": {"name": "late"}, "target": {"kind": "Node", "name": "doomed"}}
    await client.post_subresource(PODS, "race", "late", "binding", binding)

    await eventually(lambda: len(controller.pods.list("race")) == len(names) + 1)

    async def on_the_missing_node() -> list[str]:
        items = (await client.list(PODS, "race"))["items"]
        return [p["metadata"]["name"] for p in items if p["spec"].get("nodeName")]

    assert "late" in await on_the_missing_node()
    async with asyncio.timeout(20):  # a binding in flight may land after a pass
        while await on_the_missing_node():
            await controller.collect()
            await asyncio.sleep(controller.quarantine)

    left = (await client.list(PODS, "race"))["items"]
    assert not [p["metadata"]["name"] for p in left if p["spec"].get("nodeName")]
    assert "late" not in {p["metadata"]["name"] for p in left}

    def waiting(pod: dict) -> bool:
        """Never bound: Pending, and saying why."""
        conditions = (pod.get("status") or {}).get("conditions") or []
        return pod["status"]["phase"] == "Pending" and any(
            (c["type"], c["status"], c["reason"]) == ("PodScheduled", "False", "Unschedulable")
            for c in conditions
        )

    async with asyncio.timeout(20):
        while not all(waiting(p) for p in (await client.list(PODS, "race"))["items"]):
            await asyncio.sleep(0.05)
