"""The node lifecycle and taint eviction controllers.

Their rules as functions (taints from conditions, how long a pod may stay),
then end to end: a real `kubik server` running just these two controllers,
with short timings from the environment, and the test as the nodes'
kubelets (a Lease renewed, the Ready condition posted).
"""

from __future__ import annotations

import asyncio

import pytest

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.controllers import nodelifecycle as lifecycle
from tests.support.cluster import KubikServer, free_port
from tests.support.polling import eventually

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")
EVENTS = builtin.lookup("", "v1", "events")

GRACE = 3  # seconds of silence before a node is Unknown
TOLERATION = 3  # seconds a pod without its own toleration may stay


# ------------------------------------------------------------------ rules


def node_with(conditions: dict[str, str], taints=(), unschedulable=False) -> dict:
    return {
        "metadata": {"name": "n"},
        "spec": {"taints": list(taints), "unschedulable": unschedulable},
        "status": {"conditions": [{"type": t, "status": s} for t, s in conditions.items()]},
    }


def test_conditions_give_their_taints():
    node = node_with({"Ready": "False", "MemoryPressure": "True", "DiskPressure": "False"})
    taints = lifecycle.wanted_taints(node, "T")
    assert {(t["key"], t["effect"]) for t in taints} == {
        (lifecycle.NOT_READY, "NoSchedule"),
        (lifecycle.NOT_READY, "NoExecute"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    }
    assert [t.get("timeAdded") for t in taints if t["effect"] == "NoExecute"] == ["T"]


def test_unknown_swaps_not_ready_for_unreachable_and_keeps_other_taints():
    own = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    old = {"key": lifecycle.NOT_READY, "effect": "NoExecute", "timeAdded": "old"}
    taints = lifecycle.wanted_taints(node_with({"Ready": "Unknown"}, [own, old]), "T")
    assert own in taints and old not in taints
    assert {"key": lifecycle.UNREACHABLE, "effect": "NoExecute", "timeAdded": "T"} in taints


def test_a_ready_node_loses_its_condition_taints_and_a_cordoned_one_is_unschedulable():
    taints = [
        {"key": lifecycle.UNREACHABLE, "effect": "NoExecute", "timeAdded": "old"},
        {"key": lifecycle.UNREACHABLE, "effect": "NoSchedule"},
    ]
    node = node_with({"Ready": "True"}, taints, unschedulable=True)
    assert lifecycle.wanted_taints(node, "T") == [
        {"key": lifecycle.UNSCHEDULABLE, "effect": "NoSchedule"}
    ]


def test_a_node_without_ready_keeps_its_no_execute_taints():
    kept = {"key": lifecycle.UNREACHABLE, "effect": "NoExecute", "timeAdded": "old"}
    assert lifecycle.wanted_taints(node_with({}, [kept]), "T") == [kept]


def pod_tolerating(*tolerations) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"tolerations": list(tolerations)}}


UNREACHABLE_TAINT = {"key": lifecycle.UNREACHABLE, "effect": "NoExecute"}


def test_pods_without_their_own_toleration_get_the_default():
    assert lifecycle.eviction_delay(pod_tolerating(), [UNREACHABLE_TAINT], 300) == 300


def test_a_toleration_without_seconds_keeps_the_pod_for_ever():
    forever = {"key": lifecycle.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    assert lifecycle.eviction_delay(pod_tolerating(forever), [UNREACHABLE_TAINT], 300) is None
    # tolerating every taint (no key, Exists) also stands in for the defaults
    everything = {"operator": "Exists"}
    assert lifecycle.eviction_delay(pod_tolerating(everything), [UNREACHABLE_TAINT], 300) is None


def test_the_shortest_toleration_used_wins_and_an_untolerated_taint_evicts_at_once():
    dedicated = {"key": "dedicated", "value": "db", "effect": "NoExecute"}
    tolerate_db = {
        "key": "dedicated",
        "value": "db",
        "effect": "NoExecute",
        "tolerationSeconds": 20,
    }
    pod = pod_tolerating(tolerate_db)
    assert lifecycle.eviction_delay(pod, [UNREACHABLE_TAINT, dedicated], 300) == 20
    assert lifecycle.eviction_delay(pod_tolerating(), [dedicated], 300) == 0
    wrong_value = {"key": "dedicated", "value": "web", "effect": "NoExecute"}
    assert lifecycle.eviction_delay(pod_tolerating(wrong_value), [dedicated], 300) == 0
    assert lifecycle.eviction_delay(pod_tolerating(), [], 300) is None


def test_durations_from_the_environment(monkeypatch):
    monkeypatch.setenv("KUBIK_TEST_DURATION", "500ms")
    assert lifecycle.duration_from_env("KUBIK_TEST_DURATION", 40) == 0.5
    monkeypatch.setenv("KUBIK_TEST_DURATION", "2m")
    assert lifecycle.duration_from_env("KUBIK_TEST_DURATION", 40) == 120
    monkeypatch.setenv("KUBIK_TEST_DURATION", "7")
    assert lifecycle.duration_from_env("KUBIK_TEST_DURATION", 40) == 7
    monkeypatch.setenv("KUBIK_TEST_DURATION", "soon")
    assert lifecycle.duration_from_env("KUBIK_TEST_DURATION", 40) == 40


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("nodelifecycle"),
        extra_args=[
            "--controllers",
            "nodelifecycle,taint-eviction-controller",
            "--controller-metrics-address",
            f"127.0.0.1:{free_port()}",
        ],
        env={
            "KUBIK_NODE_MONITOR_GRACE_PERIOD": str(GRACE),
            "KUBIK_NODE_STARTUP_GRACE_PERIOD": str(GRACE),
            "KUBIK_DEFAULT_TOLERATION_SECONDS": str(TOLERATION),
        },
    ).start()
    yield kubik
    kubik.stop()


class Heartbeat:
    """A kubelet's signs of life for one node: the node registered with its conditions,
    its Lease renewed, and the Ready condition kept at `ready` — while running."""

    def __init__(self, client: Client, name: str, *, period: float = 0.3) -> None:
        self.client = client
        self.name = name
        self.period = period
        self.ready = "True"
        self._task: asyncio.Task | None = None

    async def register(self) -> None:
        now = meta.now()
        conditions = [
            {
                "type": kind,
                "status": "True" if kind == "Ready" else "False",
                "reason": "KubeletReady" if kind == "Ready" else "KubeletHasSufficient",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for kind in lifecycle.KUBELET_CONDITIONS
        ]
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name},
            "status": {"conditions": conditions},
        }
        await self.client.create(NODES, node)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": lifecycle.NODE_LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": 40,
                "renewTime": meta.now_micro(),
            },
        }
        await self.client.create(LEASES, lease)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.period)

    async def beat(self) -> None:
        await self.client.patch(
            LEASES,
            lifecycle.NODE_LEASE_NAMESPACE,
            self.name,
            {"spec": {"renewTime": meta.now_micro()}},
        )
        node = await self.client.get(NODES, "", self.name)
        if lifecycle.condition(node, "Ready")["status"] != self.ready:
            now = meta.now()
            patch = {
                "status": {
                    "conditions": [
                        {
                            "type": kind,
                            "status": self.ready if kind == "Ready" else "False",
                            "reason": "KubeletReady" if kind == "Ready" else "KubeletPosted",
                            "message": "posted by the test",
                            "lastHeartbeatTime": now,
                            "lastTransitionTime": now,
                        }
                        for kind in lifecycle.KUBELET_CONDITIONS
                    ]
                }
            }
            await self.client.patch(
                NODES, "", self.name, patch, patch_type="strategic", subresource="status"
            )


async def running_pod(client: Client, name: str, node: str, ip: str, tolerations=()) -> None:
    """A pod on `node`, running and Ready, as its kubelet would report it."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx"}],
            "tolerations": list(tolerations),
        },
    }
    await client.create(PODS, pod)
    status = {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": meta.now()},
            ],
        }
    }
    await client.patch(PODS, "default", name, status, subresource="status")


async def get_node(client: Client, name: str) -> dict:
    return await client.get(NODES, "", name)


def taint_keys(node: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


async def pod_or_none(client: Client, name: str) -> dict | None:
    try:
        return await client.get(PODS, "default", name)
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


async def test_a_silent_node_becomes_unknown_tainted_and_its_pods_are_evicted(client):
    kubelet = Heartbeat(client, "silent")
    await kubelet.register()
    kubelet.start()
    forever = {"key": lifecycle.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    briefly = {**forever, "tolerationSeconds": 1}
    await running_pod(client, "plain", "silent", "10.42.1.2")
    await running_pod(client, "brief", "silent", "10.42.1.3", [briefly])
    await running_pod(client, "patient", "silent", "10.42.1.4", [forever])
    await asyncio.sleep(GRACE / 2)
    assert lifecycle.condition(await get_node(client, "silent"), "Ready")["status"] == "True"

    await kubelet.stop()

    async def unknown():
        node = await get_node(client, "silent")
        return node if lifecycle.condition(node, "Ready")["status"] == "Unknown" else None

    node = await eventually(unknown, "the silent node to be Unknown")
    for kind in lifecycle.KUBELET_CONDITIONS:
        found = lifecycle.condition(node, kind)
        assert found["status"] == "Unknown"
        assert found["reason"] == "NodeStatusUnknown"
        assert found["message"] == "Kubelet stopped posting node status."

    async def tainted():
        node = await get_node(client, "silent")
        wanted = {(lifecycle.UNREACHABLE, "NoExecute"), (lifecycle.UNREACHABLE, "NoSchedule")}
        return node if wanted <= taint_keys(node) else None

    node = await eventually(tainted, "the unreachable taints")
    no_execute = [t for t in node["spec"]["taints"] if t["effect"] == "NoExecute"]
    assert no_execute[0]["timeAdded"]

    async def evicted(name):
        pod = await pod_or_none(client, name)
        return pod is None or bool(pod["metadata"].get("deletionTimestamp"))

    for name in ("plain", "brief"):
        await eventually(lambda name=name: evicted(name), f"{name} to be evicted")
    plain = await pod_or_none(client, "plain")
    if plain is not None:  # deleted gracefully: the (absent) kubelet would finish it
        assert lifecycle.condition(plain, "Ready")["status"] == "False"
        disruption = lifecycle.condition(plain, "DisruptionTarget")
        assert disruption["status"] == "True"
        assert disruption["reason"] == "DeletionByTaintManager"

    await asyncio.sleep(1)  # past the time a wrongly counted toleration would have run out
    patient = await pod_or_none(client, "patient")
    assert patient is not None and not patient["metadata"].get("deletionTimestamp")
    assert lifecycle.condition(patient, "Ready")["status"] == "False"  # the node is not ready

    events = await client.list(EVENTS, "default")
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events["items"]}
    assert ("silent", "NodeNotReady") in reasons
    assert ("plain", "TaintManagerEviction") in reasons

    kubelet.start()  # it comes back

    async def cleared():
        node = await get_node(client, "silent")
        keys = {key for key, _ in taint_keys(node)}
        ready = lifecycle.condition(node, "Ready")["status"] == "True"
        return ready and lifecycle.UNREACHABLE not in keys

    await eventually(cleared, "the taints of the node that is back to be removed")
    await kubelet.stop()


async def test_a_node_reporting_not_ready_is_tainted_not_ready_until_ready_again(client):
    kubelet = Heartbeat(client, "sickly")
    await kubelet.register()
    kubelet.ready = "False"
    kubelet.start()
    try:

        async def not_ready_taints():
            node = await get_node(client, "sickly")
            wanted = {(lifecycle.NOT_READY, "NoExecute"), (lifecycle.NOT_READY, "NoSchedule")}
            return node if wanted <= taint_keys(node) else None

        node = await eventually(not_ready_taints, "the not-ready taints")
        assert lifecycle.condition(node, "Ready")["status"] == "False"  # not made Unknown
        assert (lifecycle.UNREACHABLE, "NoExecute") not in taint_keys(node)

        kubelet.ready = "True"

        async def untainted():
            return not taint_keys(await get_node(client, "sickly"))

        await eventually(untainted, "the not-ready taints to go")
    finally:
        await kubelet.stop()


async def test_a_cordoned_node_is_tainted_unschedulable(client):
    kubelet = Heartbeat(client, "cordoned")
    await kubelet.register()
    kubelet.start()
    try:
        await client.patch(NODES, "", "cordoned", {"spec": {"unschedulable": True}})

        async def unschedulable():
            keys = taint_keys(await get_node(client, "cordoned"))
            return (lifecycle.UNSCHEDULABLE, "NoSchedule") in keys

        await eventually(unschedulable, "the unschedulable taint")
        await client.patch(NODES, "", "cordoned", {"spec": {"unschedulable": False}})

        async def schedulable():
            return not taint_keys(await get_node(client, "cordoned"))

        await eventually(schedulable, "the unschedulable taint to go")
    finally:
        await kubelet.stop()


async def test_a_node_that_never_posted_a_status_becomes_unknown(client):
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "mute"}})

    async def unknown():
        node = await get_node(client, "mute")
        ready = lifecycle.condition(node, "Ready")
        return node if ready and ready["status"] == "Unknown" else None

    node = await eventually(unknown, "the mute node to be Unknown")
    for kind in lifecycle.KUBELET_CONDITIONS:
        found = lifecycle.condition(node, kind)
        assert (found["status"], found["reason"]) == ("Unknown", "NodeStatusNeverUpdated")
        assert found["message"] == "Kubelet never posted node status."

    async def tainted():
        wanted = {(lifecycle.UNREACHABLE, "NoExecute"), (lifecycle.UNREACHABLE, "NoSchedule")}
        return wanted <= taint_keys(await get_node(client, "mute"))

    await eventually(tainted, "the unreachable taints on the mute node")
