"""Hollow nodes: the address and status rules as functions, then end to end against a
real `kubik server`, with the nodes run in the test's event loop (and once as the
`kubik hollow-nodes` process).

kubectl runs on a thread, so the hollow kubelet keeps working while it waits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.hollow import HollowNodes, podstatus
from kubik.hollow.kubelet import EXIT_CODE, STOPPED_EXIT_CODE
from kubik.hollow.network import NodeNetwork
from tests.support.cluster import KubikServer

PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")
LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")


# ------------------------------------------------------------------ rules


def test_nodes_get_documentation_addresses_and_their_own_pod_range():
    assert [NodeNetwork(i).ip for i in (0, 1, 253, 254, 508)] == [
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.254",
        "198.51.100.1",
        "203.0.113.1",
    ]
    first, second = NodeNetwork(0), NodeNetwork(1)
    assert first.assign("ns/a") == "10.244.0.2"
    assert second.assign("ns/a") == "10.244.1.2"
    assert NodeNetwork(300).assign("ns/a") == "10.245.44.2"


def test_pod_ips_are_held_until_released():
    network = NodeNetwork(0)
    assert network.assign("ns/a") == network.assign("ns/a") == "10.244.0.2"
    assert network.assign("ns/b") == "10.244.0.3"
    network.hold("ns/c", "10.244.0.4")  # a pod that ran before the process started
    assert network.assign("ns/d") == "10.244.0.5"
    network.release("ns/a")
    assert network.assign("ns/e") == "10.244.0.2"


def test_a_full_node_has_no_pod_ip_left():
    network = NodeNetwork(0)
    for i in range(253):
        network.assign(f"ns/{i}")
    with pytest.raises(RuntimeError, match="no free pod IP"):
        network.assign("ns/one-more")


def bound_pod(**spec) -> dict:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"nodeName": "n", "containers": [{"name": "app", "image": "nginx"}], **spec},
        "status": {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "T0"},
                {"type": "example.com/gate", "status": "False"},
            ],
        },
    }


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_running_then_ready_keeps_what_the_kubelet_does_not_own():
    pod = bound_pod()
    running = podstatus.running(pod, host_ip="192.0.2.1", pod_ip="10.244.0.2", now="T1")
    assert running["phase"] == "Running"
    assert running["qosClass"] == "BestEffort"
    assert conditions(running) == {
        "example.com/gate": "False",
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "False",
        "ContainersReady": "False",
        "PodScheduled": "True",
    }
    scheduled = next(c for c in running["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["lastTransitionTime"] == "T0"  # unchanged status, unchanged time
    [app] = running["containerStatuses"]
    assert app["state"] == {"running": {"startedAt": "T1"}}
    assert (app["ready"], app["started"], app["restartCount"]) == (False, True, 0)

    ready = podstatus.ready({**pod, "status": running}, now="T2")
    assert conditions(ready)["Ready"] == conditions(ready)["ContainersReady"] == "True"
    assert ready["containerStatuses"][0]["ready"] is True


def test_a_readiness_gate_holds_ready_back_until_its_condition_is_true():
    pod = bound_pod(readinessGates=[{"conditionType": "example.com/gate"}])
    running = podstatus.running(pod, host_ip="192.0.2.1", pod_ip="10.244.0.2", now="T1")
    ready = podstatus.ready({**pod, "status": running}, now="T2")
    assert conditions(ready)["ContainersReady"] == "True"
    assert conditions(ready)["Ready"] == "False"
    assert "example.com/gate" in podstatus.unmet_gates({**pod, "status": ready})
    for condition in ready["conditions"]:
        if condition["type"] == "example.com/gate":
            condition["status"] = "True"
    assert podstatus.unmet_gates({**pod, "status": ready}) == ""
    assert conditions(podstatus.ready({**pod, "status": ready}, now="T3"))["Ready"] == "True"


def test_init_containers_have_run_and_sidecars_keep_running():
    pod = bound_pod(
        initContainers=[
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
        ]
    )
    running = podstatus.running(pod, host_ip="192.0.2.1", pod_ip="10.244.0.2", now="T1")
    setup, proxy = running["initContainerStatuses"]
    assert setup["state"]["terminated"]["exitCode"] == 0
    assert setup["state"]["terminated"]["reason"] == "Completed"
    assert "running" in proxy["state"]


@pytest.mark.parametrize(
    ("code", "phase", "reason"), [(0, "Succeeded", "Completed"), (2, "Failed", "Error")]
)
def test_terminated_ends_every_container_with_the_code(code, phase, reason):
    pod = bound_pod()
    pod["status"] = podstatus.running(pod, host_ip="192.0.2.1", pod_ip="10.244.0.2", now="T1")
    status = podstatus.terminated(pod, code, now="T2")
    assert status["phase"] == phase
    [app] = status["containerStatuses"]
    assert app["state"]["terminated"] == {
        "exitCode": code,
        "reason": reason,
        "startedAt": "T1",
        "finishedAt": "T2",
        "containerID": app["containerID"],
    }
    assert app["ready"] is False
    assert conditions(status)["Ready"] == "False"


# ------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("hollow"),
        extra_args=["--controller-metrics-address", "127.0.0.1:0"],
    ).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def client(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    yield client
    await client.close()


@pytest.fixture
async def hollow(client):
    """Start hollow nodes in this event loop: `await hollow("prefix-", **options)`."""
    started: list[HollowNodes] = []

    async def start(prefix: str, **options) -> HollowNodes:
        settings = {
            "count": 3,
            "heartbeat": 0.5,
            "start_delay": 0.1,
            "ready_delay": 0.3,
            "delete_on_stop": True,
            **options,
        }
        nodes = HollowNodes(client, name_prefix=prefix, **settings)
        started.append(nodes)
        await nodes.start()
        return nodes

    yield start
    for nodes in started:
        await nodes.stop()


async def kubectl(server: KubikServer, *args: str, stdin: str | None = None) -> str:
    return await asyncio.to_thread(server.ok, *args, stdin=stdin)


async def until(check):
    """Poll `check()` (sync or async) until it returns something truthy."""
    async with asyncio.timeout(20):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.1)


def pod_manifest(name: str, node: str, annotations: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}], **spec},
    }


async def revision(client: Client) -> str:
    return (await client.list(PODS, "default", limit=1))["metadata"]["resourceVersion"]


async def watch_pod(client: Client, name: str, since: str, done) -> list[tuple[str, dict]]:
    """Every (event type, pod) of pod `name` in default after revision `since`, until
    `done(type, pod)`."""
    seen = []
    async with asyncio.timeout(30):
        async for kind, pod in client.watch(
            PODS, "default", resource_version=since, field_selector=f"metadata.name={name}"
        ):
            if kind != "BOOKMARK":
                seen.append((kind, pod))
                if done(kind, pod):
                    return seen
    raise AssertionError("the watch ended")


def ready(pod: dict) -> bool:
    return podstatus.condition(pod, "Ready") == "True"


async def test_hollow_nodes_register_and_are_ready(server, hollow):
    nodes = await hollow("reg-", count=5, labels={"team": "hollow"})
    assert nodes.names == [f"reg-{i}" for i in range(5)]
    table = await kubectl(server, "get", "nodes", "-l", "team=hollow")
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert [row.split()[:3] for row in rows] == [[f"reg-{i}", "Ready", "<none>"] for i in range(5)]
    assert {row.split()[4] for row in rows} == {"v1.32.0-hollow"}

    listing = json.loads(await kubectl(server, "get", "nodes", "-l", "team=hollow", "-o", "json"))
    node = listing["items"][1]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "reg-1"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["node.kubernetes.io/instance-type"] == "hollow"
    zones = [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in listing["items"]]
    assert zones == ["zone-a", "zone-b", "zone-c", "zone-a", "zone-b"]
    status = node["status"]
    assert status["capacity"] == status["allocatable"]
    assert {k: status["capacity"][k] for k in ("cpu", "memory", "pods")} == {
        "cpu": "4",
        "memory": "16Gi",
        "pods": "110",
    }
    assert {"type": "InternalIP", "address": "192.0.2.2"} in status["addresses"]
    assert status["nodeInfo"]["containerRuntimeVersion"] == "hollow://1.0"
    assert conditions(status) == {
        "MemoryPressure": "False",
        "DiskPressure": "False",
        "PIDPressure": "False",
        "Ready": "True",
    }


async def test_leases_are_renewed(client, hollow):
    nodes = await hollow("lease-", count=2)
    node = await client.get(NODES, "", "lease-1")
    first = await client.get(LEASES, "kube-node-lease", "lease-1")
    assert first["spec"]["holderIdentity"] == "lease-1"
    assert first["spec"]["leaseDurationSeconds"] == 40
    [owner] = first["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Node",
        "lease-1",
        node["metadata"]["uid"],
    )

    async def renewed():
        lease = await client.get(LEASES, "kube-node-lease", "lease-1")
        return lease["spec"]["renewTime"] > first["spec"]["renewTime"]

    await until(renewed)
    await nodes.stop()
    with pytest.raises(ApiError) as gone:  # delete_on_stop takes the lease too
        await client.get(LEASES, "kube-node-lease", "lease-1")
    assert gone.value.not_found


async def test_a_node_marked_unknown_is_reported_ready_again(client, hollow):
    await hollow("unknown-", count=1)
    patch = {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    node = await client.patch(
        NODES, "", "unknown-0", patch, patch_type="strategic", subresource="status"
    )
    assert conditions(node["status"])["Ready"] == "Unknown"

    async def ready_again():
        node = await client.get(NODES, "", "unknown-0")
        condition = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return condition if condition["status"] == "True" else None

    condition = await until(ready_again)
    assert condition["reason"] == "KubeletReady"


async def test_a_bound_pod_runs_then_becomes_ready(server, client, hollow):
    await hollow("run-")
    since = await revision(client)
    watching = asyncio.create_task(watch_pod(client, "web", since, lambda _, pod: ready(pod)))
    await kubectl(server, "apply", "-f", "-", stdin=json.dumps(pod_manifest("web", "run-1")))
    await kubectl(server, "wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    phases = [
        (pod["status"].get("phase"), podstatus.condition(pod, "Ready")) for _, pod in await watching
    ]
    assert phases[-1] == ("Running", "True")
    assert ("Running", "False") in phases  # running, then ready

    pod = await client.get(PODS, "default", "web")
    status = pod["status"]
    assert status["hostIP"] == "192.0.2.2"
    assert status["podIP"].startswith("10.244.1.")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["startTime"]
    [app] = status["containerStatuses"]
    assert (app["name"], app["ready"], app["restartCount"]) == ("app", True, 0)
    assert "running" in app["state"]
    assert {"PodScheduled", "Initialized", "ContainersReady", "Ready"} <= {
        c["type"] for c in status["conditions"] if c["status"] == "True"
    }


async def test_pods_of_other_nodes_are_left_alone(client, hollow):
    await hollow("mine-", count=1)
    await client.create(PODS, pod_manifest("elsewhere", "not-hollow"), namespace="default")
    await client.create(PODS, pod_manifest("here", "mine-0"), namespace="default")
    await until(lambda: _phase(client, "here", "Running"))
    pod = await client.get(PODS, "default", "elsewhere")
    assert pod["status"]["phase"] == "Pending"
    await client.delete(PODS, "default", "elsewhere")


async def _phase(client: Client, name: str, phase: str) -> bool:
    pod = await client.get(PODS, "default", name)
    return pod["status"].get("phase") == phase


@pytest.mark.parametrize(
    ("code", "phase", "reason"), [("0", "Succeeded", "Completed"), ("3", "Failed", "Error")]
)
async def test_the_exit_code_annotation_ends_a_pod(server, client, hollow, code, phase, reason):
    await hollow(f"exit{code}-", count=1)
    name = f"job-{code}"
    manifest = pod_manifest(name, f"exit{code}-0", {EXIT_CODE: code}, restartPolicy="Never")
    await kubectl(server, "apply", "-f", "-", stdin=json.dumps(manifest))
    await kubectl(
        server, "wait", f"--for=jsonpath={{.status.phase}}={phase}", f"pod/{name}", "--timeout=30s"
    )
    pod = await client.get(PODS, "default", name)
    [app] = pod["status"]["containerStatuses"]
    assert app["state"]["terminated"]["exitCode"] == int(code)
    assert app["state"]["terminated"]["reason"] == reason
    assert pod["status"]["podIP"].startswith("10.244.")


async def test_annotating_a_running_pod_makes_it_exit(server, client, hollow):
    await hollow("late-", count=1)
    await client.create(PODS, pod_manifest("worker", "late-0"), namespace="default")
    await kubectl(server, "wait", "--for=condition=Ready", "pod/worker", "--timeout=30s")
    await kubectl(server, "annotate", "pod", "worker", f"{EXIT_CODE}=0")
    await kubectl(
        server, "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/worker", "--timeout=30s"
    )


async def test_the_fail_ratio_fails_pods_at_start(client, hollow):
    await hollow("flaky-", count=1, fail_ratio=1.0)
    await client.create(PODS, pod_manifest("unlucky", "flaky-0"), namespace="default")
    await until(lambda: _phase(client, "unlucky", "Failed"))
    pod = await client.get(PODS, "default", "unlucky")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (1, "Error")


async def test_deleting_a_pod_stops_its_containers_then_removes_it(server, client, hollow):
    await hollow("del-", count=1)
    await client.create(PODS, pod_manifest("doomed", "del-0"), namespace="default")
    await kubectl(server, "wait", "--for=condition=Ready", "pod/doomed", "--timeout=30s")
    since = await revision(client)
    watching = asyncio.create_task(
        watch_pod(client, "doomed", since, lambda kind, _: kind == "DELETED")
    )
    await kubectl(server, "delete", "pod", "doomed", "--timeout=30s")
    events = await watching
    kind, last = events[-1]
    assert kind == "DELETED"
    assert last["status"]["phase"] == "Failed"
    terminated = last["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == STOPPED_EXIT_CODE
    with pytest.raises(ApiError) as gone:
        await client.get(PODS, "default", "doomed")
    assert gone.value.not_found


async def test_stop_leaves_the_nodes_unless_told_to_delete_them(client, hollow):
    kept = await hollow("kept-", count=1, delete_on_stop=False)
    await kept.stop()
    assert (await client.get(NODES, "", "kept-0"))["metadata"]["name"] == "kept-0"
    await client.delete(NODES, "", "kept-0")


@pytest.fixture
def lifecycle_server(tmp_path):
    """A server running only the node lifecycle controller, with a 2 s monitor grace period."""
    kubik = KubikServer(
        tmp_path,
        extra_args=[
            "--controllers",
            "nodelifecycle",
            "--controller-metrics-address",
            "127.0.0.1:0",
        ],
        env={"KUBIK_NODE_MONITOR_GRACE_PERIOD": "2", "KUBIK_NODE_STARTUP_GRACE_PERIOD": "2"},
    ).start()
    yield kubik
    kubik.stop()


async def test_heartbeats_keep_nodes_ready_and_stopped_nodes_go_unknown(lifecycle_server):
    client = Client.from_kubeconfig(lifecycle_server.kubeconfig)
    try:
        nodes = HollowNodes(client, count=2, name_prefix="beat-", heartbeat=0.5)
        await nodes.start()
        try:
            await asyncio.sleep(4)  # twice the grace period, renewed all along
            node = await client.get(NODES, "", "beat-1")
            assert conditions(node["status"])["Ready"] == "True"
        finally:
            await nodes.stop()

        async def unknown():
            node = await client.get(NODES, "", "beat-1")
            return conditions(node["status"])["Ready"] == "Unknown"

        await until(unknown)
    finally:
        await client.close()


def test_the_command_starts_and_stops_cleanly_on_sigterm(server):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "hollow-nodes",
            "--kubeconfig",
            server.kubeconfig,
            "--count",
            "2",
            "--name-prefix",
            "cli-",
            "--labels",
            "via=cli",
            "--delete-on-stop",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            lines.append(proc.stdout.readline())
            if "hollow-nodes is ready" in lines[-1]:
                break
        assert "hollow-nodes is ready" in lines[-1], "".join(lines)
        assert server.ok("get", "nodes", "-l", "via=cli", "-o", "name").split() == [
            "node/cli-0",
            "node/cli-1",
        ]
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "received SIGTERM" in rest and "stopped" in rest
    assert "Traceback" not in rest
    assert server.ok("get", "nodes", "-l", "via=cli", "-o", "name").strip() == ""


def test_the_command_says_what_is_wrong_with_its_flags(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "hollow-nodes",
            "--kubeconfig",
            str(tmp_path / "x"),
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot read kubeconfig" in result.stderr
    assert "Traceback" not in result.stderr
