"""The DaemonSet controller against a real `kubik server`, the test acting as the kubelet.

The test makes the Node objects itself (Ready, each test with its own label
so sets of different tests never share nodes) and plays the kubelet: pods
bound to a node become Running and Ready, and pods being deleted are
finished off (a bound pod is deleted gracefully, waiting for its kubelet).
"""

from __future__ import annotations

import pytest

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.controllers.daemonset import should_run
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
DAEMONSETS = builtin.lookup("apps", "v1", "daemonsets")
REVISIONS = builtin.lookup("apps", "v1", "controllerrevisions")
TIMEOUT = 30.0
# the test's nodes post no heartbeats: the node lifecycle controller must not
# mark them unreachable (and taint them) while a test runs
NO_HEARTBEAT_CHECKS = {
    "KUBIK_NODE_MONITOR_GRACE_PERIOD": "1h",
    "KUBIK_NODE_STARTUP_GRACE_PERIOD": "1h",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("daemonset"), env=NO_HEARTBEAT_CHECKS).start()
    yield kubik
    kubik.stop()


# ------------------------------------------------------------------ helpers


async def add_node(client: Client, name: str, labels: dict, **spec) -> None:
    now = meta.now()
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }
    await client.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
            "spec": spec,
            "status": {"conditions": [ready]},
        },
    )


async def pods_of(client: Client, namespace: str) -> list[dict]:
    return (await client.list(PODS, namespace))["items"]


async def kubelet_pass(client: Client, namespace: str) -> None:
    """What the kubelets of the nodes would do: run bound pods, finish deleted ones."""
    for pod in await pods_of(client, namespace):
        name = pod["metadata"]["name"]
        if pod["metadata"].get("deletionTimestamp"):
            try:
                await client.delete(PODS, namespace, name, grace_period=0)
            except ApiError as exc:
                if not exc.not_found:
                    raise
        elif pod["spec"].get("nodeName") and pod["status"].get("phase") == "Pending":
            now = meta.now()
            status = {
                "phase": "Running",
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                ],
            }
            try:
                await client.patch(PODS, namespace, name, {"status": status}, subresource="status")
            except ApiError as exc:
                if not exc.not_found:  # deleted meanwhile
                    raise


def daemon_set(name: str, node_label: str, **pod_spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"role": node_label},
                    "containers": [{"name": "agent", "image": "agent:1"}],
                    **pod_spec,
                },
            },
        },
    }


async def placement(client: Client, namespace: str) -> dict[str, list[str]]:
    """Node name → names of the live daemon pods bound to it."""
    placed: dict[str, list[str]] = {}
    for pod in await pods_of(client, namespace):
        if not pod["metadata"].get("deletionTimestamp"):
            placed.setdefault(pod["spec"].get("nodeName", ""), []).append(pod["metadata"]["name"])
    return placed


# -------------------------------------------------------------------- tests


def _node(labels: dict, taints: list | None = None) -> dict:
    return {"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints or []}}


def _set(**pod_spec) -> dict:
    return {"spec": {"template": {"spec": {"containers": [], **pod_spec}}}}


def test_node_selection_follows_selector_affinity_and_taints():
    zone = {"zone": "a", "cpus": "8"}
    assert should_run(_node(zone), _set(nodeSelector={"zone": "a"})) == (True, True)
    assert should_run(_node(zone), _set(nodeSelector={"zone": "b"})) == (False, False)
    assert should_run(_node(zone), _set(nodeName="n2")) == (False, False)

    def affinity(*terms):
        required = {"nodeSelectorTerms": list(terms)}
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}

    big = {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]}
    small = {"matchExpressions": [{"key": "cpus", "operator": "Lt", "values": ["4"]}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    no_zone = {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}
    assert should_run(_node(zone), _set(affinity=affinity(small, big)))[0]  # terms are ORed
    assert should_run(_node(zone), _set(affinity=affinity(by_name)))[0]
    assert not should_run(_node(zone), _set(affinity=affinity(small, no_zone)))[0]
    assert not should_run(_node(zone), _set(affinity=affinity({})))[0]  # an empty term: none

    no_schedule = [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    no_execute = [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]
    # a running pod may stay while only NoSchedule taints are not tolerated
    assert should_run(_node({}, no_schedule), _set()) == (False, True)
    assert should_run(_node({}, no_execute), _set()) == (False, False)
    tolerate = [{"key": "dedicated", "operator": "Equal", "value": "db"}]
    assert should_run(_node({}, no_execute), _set(tolerations=tolerate)) == (True, True)
    wrong_value = [{"key": "dedicated", "operator": "Equal", "value": "web"}]
    assert should_run(_node({}, no_execute), _set(tolerations=wrong_value))[0] is False

    # what every DaemonSet pod tolerates, and host networking's extra toleration
    pressure = [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
    assert should_run(_node({}, pressure), _set()) == (True, True)
    network = [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]
    assert should_run(_node({}, network), _set())[0] is False
    assert should_run(_node({}, network), _set(hostNetwork=True)) == (True, True)


async def test_one_pod_on_each_eligible_node(client, namespace):
    role = namespace
    await add_node(client, f"{role}-a", {"role": role})
    await add_node(client, f"{role}-b", {"role": role})
    await add_node(client, f"{role}-other", {"role": "elsewhere"})
    await add_node(
        client,
        f"{role}-tainted",
        {"role": role},
        taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}],
    )
    # tolerated through the toleration every DaemonSet pod gets
    await add_node(
        client,
        f"{role}-cordoned",
        {"role": role},
        unschedulable=True,
        taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
    )
    await client.create(DAEMONSETS, daemon_set("agent", role), namespace=namespace)
    wanted = {f"{role}-a", f"{role}-b", f"{role}-cordoned"}

    async def placed_and_ready():
        await kubelet_pass(client, namespace)
        ds = await client.get(DAEMONSETS, namespace, "agent")
        status = ds.get("status") or {}
        return ds if status.get("numberReady") == 3 else None

    ds = await eventually(placed_and_ready, "a ready pod on each eligible node")
    placed = await placement(client, namespace)
    assert set(placed) == wanted
    assert all(len(pods) == 1 for pods in placed.values())

    status = ds["status"]
    assert status["desiredNumberScheduled"] == 3
    assert status["currentNumberScheduled"] == 3
    assert status["numberMisscheduled"] == 0
    assert status["numberAvailable"] == 3
    assert status["updatedNumberScheduled"] == 3
    assert status["observedGeneration"] == ds["metadata"]["generation"]

    [revision] = (await client.list(REVISIONS, namespace))["items"]
    hash_ = revision["metadata"]["labels"]["controller-revision-hash"]
    assert revision["metadata"]["name"] == f"agent-{hash_}"
    assert revision["revision"] == 1
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"

    for pod in await pods_of(client, namespace):
        node = pod["spec"]["nodeName"]
        assert pod["metadata"]["labels"]["controller-revision-hash"] == hash_
        assert pod["metadata"]["name"].startswith("agent-")
        [owner] = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("DaemonSet", "agent", True)
        [term] = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert term == {
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]
        }
        tolerated = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert tolerated == {
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        }

    # a node that joins later gets its pod too
    await add_node(client, f"{role}-late", {"role": role})

    async def follows_the_new_node():
        await kubelet_pass(client, namespace)
        return f"{role}-late" in await placement(client, namespace)

    await eventually(follows_the_new_node, "a pod on the node added later")

    async def counted():
        status = (await client.get(DAEMONSETS, namespace, "agent")).get("status") or {}
        return status.get("desiredNumberScheduled") == 4 and status.get("numberReady") == 4

    await eventually(counted, "four nodes counted")


async def test_tolerated_taint_and_a_node_that_stops_matching(client, namespace):
    role = namespace
    await add_node(
        client,
        f"{role}-gpu",
        {"role": role},
        taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}],
    )
    await add_node(client, f"{role}-plain", {"role": role})
    body = daemon_set(
        "driver",
        role,
        tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}],
    )
    await client.create(DAEMONSETS, body, namespace=namespace)

    async def on_both():
        await kubelet_pass(client, namespace)
        placed = await placement(client, namespace)
        return placed if set(placed) == {f"{role}-gpu", f"{role}-plain"} else None

    await eventually(on_both, "a pod on the tolerated tainted node and the plain one")

    # the plain node stops matching the node selector: its pod goes
    await client.patch(NODES, "", f"{role}-plain", {"metadata": {"labels": {"role": "none"}}})

    async def left_the_node():
        await kubelet_pass(client, namespace)
        return set(await placement(client, namespace)) == {f"{role}-gpu"}

    await eventually(left_the_node, "the pod of the node that stopped matching removed")


async def test_rolling_update_replaces_pods_within_max_unavailable(client, namespace):
    role = namespace
    nodes = [f"{role}-{i}" for i in range(3)]
    for node in nodes:
        await add_node(client, node, {"role": role})
    await client.create(DAEMONSETS, daemon_set("proxy", role), namespace=namespace)

    async def all_ready():
        await kubelet_pass(client, namespace)
        status = (await client.get(DAEMONSETS, namespace, "proxy")).get("status") or {}
        return status.get("numberReady") == 3

    await eventually(all_ready, "proxy ready on three nodes")
    old_pods = {p["metadata"]["name"] for p in await pods_of(client, namespace)}

    await client.patch(
        DAEMONSETS,
        namespace,
        "proxy",
        {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}},
    )
    worst = 0

    async def rolled_out():
        nonlocal worst
        await kubelet_pass(client, namespace)
        pods = [
            p
            for p in await pods_of(client, namespace)
            if not p["metadata"].get("deletionTimestamp")
        ]
        serving = {p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running"}
        worst = max(worst, len(set(nodes) - serving))
        ds = await client.get(DAEMONSETS, namespace, "proxy")
        status = ds.get("status") or {}
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        done = (
            status.get("observedGeneration") == ds["metadata"]["generation"]
            and status.get("updatedNumberScheduled") == 3
            and status.get("numberAvailable") == 3
            and images == {"agent:2"}
            and len(pods) == 3
        )
        return pods if done else None

    pods = await eventually(rolled_out, "every pod replaced by one of the new template")
    assert not {p["metadata"]["name"] for p in pods} & old_pods
    assert worst <= 1  # maxUnavailable defaults to 1

    revisions = {
        r["revision"]: r["metadata"]["labels"]["controller-revision-hash"]
        for r in (await client.list(REVISIONS, namespace))["items"]
    }
    assert sorted(revisions) == [1, 2]
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {revisions[2]}


async def test_on_delete_replaces_only_deleted_pods(client, namespace):
    role = namespace
    for i in range(2):
        await add_node(client, f"{role}-{i}", {"role": role})
    body = daemon_set("logs", role)
    body["spec"]["updateStrategy"] = {"type": "OnDelete"}
    await client.create(DAEMONSETS, body, namespace=namespace)

    async def two_ready():
        await kubelet_pass(client, namespace)
        status = (await client.get(DAEMONSETS, namespace, "logs")).get("status") or {}
        return status.get("numberReady") == 2

    await eventually(two_ready, "logs on both nodes")
    await client.patch(
        DAEMONSETS,
        namespace,
        "logs",
        {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}},
    )

    async def observed():
        ds = await client.get(DAEMONSETS, namespace, "logs")
        status = ds.get("status") or {}
        done = status.get("observedGeneration") == ds["metadata"]["generation"]
        return status if done else None

    status = await eventually(observed, "the template change observed")
    assert status.get("updatedNumberScheduled", 0) == 0
    pods = await pods_of(client, namespace)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:1"}

    victim = next(p for p in pods if p["spec"]["nodeName"] == f"{role}-0")
    await client.delete(PODS, namespace, victim["metadata"]["name"])

    async def replaced():
        await kubelet_pass(client, namespace)
        images = {
            p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"]
            for p in await pods_of(client, namespace)
        }
        return images if images == {f"{role}-0": "agent:2", f"{role}-1": "agent:1"} else None

    await eventually(replaced, "only the deleted pod replaced, at the new template")


async def test_surging_update_starts_new_pods_before_removing_old_ones(client, namespace):
    role = namespace
    nodes = {f"{role}-{i}" for i in range(2)}
    for node in nodes:
        await add_node(client, node, {"role": role})
    body = daemon_set("dns", role)
    body["spec"]["updateStrategy"] = {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    await client.create(DAEMONSETS, body, namespace=namespace)

    async def ready():
        await kubelet_pass(client, namespace)
        status = (await client.get(DAEMONSETS, namespace, "dns")).get("status") or {}
        return status.get("numberAvailable") == 2

    await eventually(ready, "dns on both nodes")
    await client.patch(
        DAEMONSETS,
        namespace,
        "dns",
        {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}},
    )
    most_on_a_node = 0

    async def rolled_out():
        nonlocal most_on_a_node
        pods = [
            p
            for p in await pods_of(client, namespace)
            if not p["metadata"].get("deletionTimestamp")
        ]
        serving = {p["spec"]["nodeName"] for p in pods if p["status"].get("phase") == "Running"}
        assert serving == nodes, "a node was left without a running pod"
        for node in nodes:
            most_on_a_node = max(most_on_a_node, sum(p["spec"]["nodeName"] == node for p in pods))
        await kubelet_pass(client, namespace)
        images = {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"] for p in pods}
        return len(pods) == 2 and set(images.values()) == {"agent:2"}

    await eventually(rolled_out, "every node running the new template")
    assert most_on_a_node == 2  # the new pod started next to the old one
