"""Pods on a real node, driven with kubectl: running, restarting, failing, stopping.

One `KubikNode` (server and agent in a network namespace of the test's own;
kubectl runs there too). Pod IPs are reached from inside the namespace with
curl; the node's containerd is read through its CRI socket, a unix socket the
test reaches from the host. A bystander pod runs through the whole module:
whatever goes wrong with the others, it stays Ready and is never restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from kubik.kubelet import runtimestate
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient
from kubik.scheduler.nodeinfo import Resource
from tests.support.cluster import KubikServer
from tests.support.node import KubikNode, apply, events_of

NAMESPACE = "pods"
BUSYBOX = "kubik.local/busybox:latest"
CGROUP_ROOT = Path("/sys/fs/cgroup")
AGENT_READY = "agent is ready"
NODE_READY = '{.status.conditions[?(@.type=="Ready")].status}'
WAIT = 120.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    kubik = KubikNode(tmp_path_factory.mktemp("pods")).start()
    kubik.ok("create", "namespace", NAMESPACE)
    yield kubik
    kubik.stop()


@pytest.fixture(scope="module")
def bystander(node):
    """A pod that must stay as it is while the tests break others (checked after each; the
    last test deletes it with the rest)."""
    apply(node, NAMESPACE, pod("bystander", busybox()))
    return wait_pod(node, "bystander", is_ready, "Ready")


def check_bystander(node: KubikNode, first: dict) -> None:
    now = get_pod(node, "bystander")
    assert is_ready(now) and container(now)["restartCount"] == 0, now["status"]
    assert container(now)["containerID"] == container(first)["containerID"]
    ready = node.ok("get", "node", node.node_name, "-o", f"jsonpath={NODE_READY}")
    assert ready == "True"


@pytest.fixture
def unaffected(node, bystander):
    """Used by tests of things going wrong: the node and the bystander are unaffected."""
    yield
    check_bystander(node, bystander)


# ------------------------------------------------------------------ helpers


def pod(name: str, *containers: dict, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": list(containers), **spec},
    }


def busybox(*command: str, name: str = "main", **fields) -> dict:
    # the image is on the node already (its ":latest" would otherwise be pulled)
    return {
        "name": name,
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command) or ["sleep", "100000"],
        **fields,
    }


def get_pod(node: KubikNode, name: str) -> dict:
    return node.get("pod", name, "-n", NAMESPACE)


def wait_pod(node: KubikNode, name: str, check, what: str, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        last = get_pod(node, name)
        if check(last):
            return last
        time.sleep(0.5)
    raise AssertionError(
        f"pod {name}: timed out waiting for {what}; status {last.get('status')}\n"
        f"events: {events_of(node, NAMESPACE, name)}"
    )


def status_column(node: KubikNode, name: str) -> str:
    """The STATUS kubectl prints for the pod."""
    line = node.ok("get", "pod", name, "-n", NAMESPACE, "--no-headers").split()
    return line[2]


def container(pod_: dict, name: str = "main", key: str = "containerStatuses") -> dict:
    for status in (pod_.get("status") or {}).get(key) or []:
        if status["name"] == name:
            return status
    return {}


def waiting(pod_: dict, name: str = "main", key: str = "containerStatuses") -> dict:
    return (container(pod_, name, key).get("state") or {}).get("waiting") or {}


def phase(pod_: dict) -> str:
    return (pod_.get("status") or {}).get("phase", "")


def is_ready(pod_: dict) -> bool:
    conditions = (pod_.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def delete(node: KubikNode, *names: str, grace: int | None = None) -> None:
    extra = [f"--grace-period={grace}"] if grace is not None else []
    node.ok("delete", "pod", "-n", NAMESPACE, *names, *extra, timeout=WAIT)


def runtime_listing(node: KubikNode) -> runtimestate.NodeListing:
    async def listing():
        client = RuntimeClient(node.socket)
        try:
            return await runtimestate.list_node(client)
        finally:
            await client.close()

    return asyncio.run(listing())


# ------------------------------------------------------------------ running


def test_a_web_pod_becomes_ready_and_answers_on_its_pod_ip(node):
    serve = (
        "mkdir -p /www && echo hello from $(hostname) > /www/index.html"
        " && exec httpd -f -p 8080 -h /www"
    )
    apply(
        node,
        NAMESPACE,
        pod(
            "web",
            busybox(
                "sh",
                "-c",
                serve,
                ports=[{"containerPort": 8080, "name": "http", "hostPort": 18080}],
                readinessProbe={
                    "httpGet": {"path": "/index.html", "port": "http"},
                    "periodSeconds": 1,
                },
                livenessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 2},
            ),
        ),
    )
    web = wait_pod(
        node, "web", lambda p: phase(p) == "Running" and is_ready(p), "Running and Ready"
    )
    ip = web["status"]["podIP"]
    answer = node.exec_in_netns(["curl", "-s", "--max-time", "10", f"http://{ip}:8080/index.html"])
    assert answer.stdout == "hello from web\n", answer
    host_ip = web["status"]["hostIP"]
    mapped = node.exec_in_netns(["curl", "-s", "--max-time", "10", f"http://{host_ip}:18080/"])
    assert mapped.stdout == "hello from web\n", mapped
    assert container(web)["ready"] and container(web)["restartCount"] == 0
    assert status_column(node, "web") == "Running"
    wide = node.ok("get", "pod", "web", "-n", NAMESPACE, "-o", "wide", "--no-headers").split()
    assert ip in wide and node.node_name in wide
    delete(node, "web")


def test_a_crashing_container_is_restarted_with_growing_back_off(node, unaffected):
    apply(node, NAMESPACE, pod("crasher", busybox("sh", "-c", "echo oops; exit 1")))
    crashed = wait_pod(
        node,
        "crasher",
        lambda p: (
            container(p).get("restartCount", 0) >= 2
            and waiting(p).get("reason") == "CrashLoopBackOff"
        ),
        "two restarts and CrashLoopBackOff",
    )
    assert container(crashed)["lastState"]["terminated"]["exitCode"] == 1
    assert status_column(node, "crasher") in ("CrashLoopBackOff", "Error")
    assert "oops" in node.ok("logs", "-n", NAMESPACE, "crasher", "--previous")
    assert any(
        e.startswith("BackOff: Back-off restarting failed container main")
        for e in events_of(node, NAMESPACE, "crasher")
    )
    delete(node, "crasher")


def test_a_failing_init_container_blocks_the_pod(node, unaffected):
    apply(
        node,
        NAMESPACE,
        pod(
            "init-fails",
            busybox(),
            initContainers=[busybox("sh", "-c", "exit 2", name="setup")],
            restartPolicy="Never",
        ),
        pod(
            "init-retries", busybox(), initContainers=[busybox("sh", "-c", "exit 2", name="setup")]
        ),
    )
    failed = wait_pod(node, "init-fails", lambda p: phase(p) == "Failed", "Failed")
    assert (
        container(failed, "setup", "initContainerStatuses")["state"]["terminated"]["exitCode"] == 2
    )
    assert waiting(failed).get("reason") == "PodInitializing"
    assert status_column(node, "init-fails") == "Init:Error"
    retrying = wait_pod(
        node,
        "init-retries",
        lambda p: container(p, "setup", "initContainerStatuses").get("restartCount", 0) >= 1,
        "the init container to be retried",
    )
    assert phase(retrying) == "Pending"
    assert status_column(node, "init-retries").startswith("Init:")
    delete(node, "init-fails", "init-retries")


def test_a_memory_limit_ends_in_oom_killed(node, unaffected):
    apply(
        node,
        NAMESPACE,
        pod(
            "hog",
            busybox(
                "sh",
                "-c",
                "head -c 200m /dev/zero | tail",
                resources={"limits": {"memory": "32Mi", "cpu": "500m"}},
            ),
            restartPolicy="Never",
        ),
    )
    hog = wait_pod(node, "hog", lambda p: phase(p) == "Failed", "Failed")
    terminated = container(hog)["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert status_column(node, "hog") == "OOMKilled"
    delete(node, "hog")


def test_graceful_deletion_runs_pre_stop_within_the_grace_period(node, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    apply(
        node,
        NAMESPACE,
        pod(
            "graceful",
            busybox(
                "sh",
                "-c",
                "trap 'echo term >> /trace/log; exit 0' TERM; while true; do sleep 0.2; done",
                volumeMounts=[{"name": "trace", "mountPath": "/trace"}],
                lifecycle={
                    "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /trace/log"]}}
                },
            ),
            busybox(name="stubborn"),  # PID 1 ignores TERM: it is killed when the grace ends
            volumes=[{"name": "trace", "hostPath": {"path": str(trace)}}],
            terminationGracePeriodSeconds=30,
        ),
    )
    wait_pod(node, "graceful", is_ready, "Ready")
    began = time.monotonic()
    delete(node, "graceful", grace=4)
    assert time.monotonic() - began >= 4
    assert (trace / "log").read_text() == "prestop\nterm\n"


# ------------------------------------------------------------------ failures


def test_failures_carry_a_clear_reason(node, unaffected):
    missing_image = "127.0.0.1:1/missing/image:v1"  # refused inside the node's namespace
    apply(
        node,
        NAMESPACE,
        pod("no-image", {"name": "main", "image": missing_image}),
        pod("no-command", busybox("/bin/not-there")),
        pod(
            "no-config",
            busybox(envFrom=[{"configMapRef": {"name": "not-created"}}]),
        ),
    )
    pulled = wait_pod(
        node,
        "no-image",
        lambda p: waiting(p).get("reason") == "ImagePullBackOff",
        "ImagePullBackOff",
    )
    assert waiting(pulled)["message"].startswith(f'Back-off pulling image "{missing_image}"')
    assert "connection refused" in waiting(pulled)["message"]
    events = events_of(node, NAMESPACE, "no-image")
    assert any(e.startswith(f'Failed: Failed to pull image "{missing_image}"') for e in events)
    assert "Failed: Error: ErrImagePull" in events

    nocmd = wait_pod(
        node,
        "no-command",
        lambda p: (
            waiting(p).get("reason") in ("RunContainerError", "CrashLoopBackOff")
            and container(p).get("lastState", {}).get("terminated")
        ),
        "a start error",
    )
    last = container(nocmd)["lastState"]["terminated"]
    assert last["reason"] == "StartError" and "/bin/not-there" in last["message"]

    config = wait_pod(
        node,
        "no-config",
        lambda p: waiting(p).get("reason") == "CreateContainerConfigError",
        "CreateContainerConfigError",
    )
    assert waiting(config)["message"] == 'configmap "not-created" not found'
    assert status_column(node, "no-config") == "CreateContainerConfigError"
    delete(node, "no-image", "no-command", "no-config")


def too_big(name: str, resource: str, amount: str, **spec) -> dict:
    return pod(name, busybox(resources={"requests": {resource: amount}}), **spec)


def test_requests_the_node_cannot_meet(node, unaffected):
    allocatable = Resource.from_list(node.get("node", node.node_name)["status"]["allocatable"])
    # through the scheduler: no node fits, the pod stays Pending
    apply(node, NAMESPACE, too_big("unschedulable", "cpu", "1000"))
    pending = wait_pod(
        node,
        "unschedulable",
        lambda p: any(c["type"] == "PodScheduled" for c in p["status"].get("conditions") or []),
        "the scheduler's verdict",
    )
    scheduled = next(c for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "1 Insufficient cpu" in scheduled["message"]
    assert phase(pending) == "Pending" and not pending["spec"].get("nodeName")

    # bound to the node by its creator: the kubelet turns it away, as upstream's does
    bound = {"nodeName": node.node_name}
    apply(
        node,
        NAMESPACE,
        too_big("out-of-cpu", "cpu", "1000", **bound),
        too_big("out-of-memory", "memory", "1000Ti", **bound),
    )
    for name, resource, requested, capacity in (
        ("out-of-cpu", "cpu", 1000_000, allocatable.milli_cpu),
        ("out-of-memory", "memory", 1000 * 2**40, allocatable.memory),
    ):
        rejected = wait_pod(node, name, lambda p: phase(p) == "Failed", "Failed")
        assert rejected["status"]["reason"] == f"OutOf{resource}"
        message = rejected["status"]["message"]
        assert message.startswith(
            f"Pod was rejected: Node didn't have enough resource: {resource}, "
            f"requested: {requested}, used: "
        ), message
        assert message.endswith(f", capacity: {capacity}"), message
        assert status_column(node, name) == f"OutOf{resource}"
        assert not rejected["status"].get("containerStatuses")
        assert f"OutOf{resource}: {message.removeprefix('Pod was rejected: ')}" in events_of(
            node, NAMESPACE, name
        )
        assert rejected["metadata"]["uid"] not in runtime_listing(node).uids()
    delete(node, "unschedulable", "out-of-cpu", "out-of-memory")


def test_a_malformed_probe_is_refused_by_the_api(node):
    probe = {
        "exec": {"command": ["true"]},
        "httpGet": {"port": 80},
        "periodSeconds": -1,
    }
    manifest = pod("bad-probe", busybox(livenessProbe=probe, readinessProbe={"periodSeconds": 1}))
    done = node.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(manifest))
    assert done.returncode != 0
    for complaint in (
        'The Pod "bad-probe" is invalid',
        "spec.containers[0].livenessProbe.httpGet: Forbidden: may not specify more than 1 "
        "handler type",
        "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater "
        "than or equal to 0",
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    ):
        assert complaint in done.stderr, done.stderr
    named = pod("bad-probe", busybox(livenessProbe={"grpc": {"port": "grpc"}}))
    done = node.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(named))
    assert done.returncode != 0
    assert (
        'Error from server (BadRequest): error when creating "STDIN": the value of '
        "spec.containers[0].livenessProbe.grpc.port is a string, but the schema wants integer"
    ) in done.stderr, done.stderr
    missing = node.kubectl("get", "pod", "bad-probe", "-n", NAMESPACE)
    assert "NotFound" in missing.stderr


# ------------------------------------------------------------------ the kubelet's own restarts


def _kill_container_processes(cgroup_root: str, container_id: str) -> int:
    killed = 0
    for procs in (CGROUP_ROOT / "pids" / cgroup_root.lstrip("/")).rglob(
        f"{container_id}/cgroup.procs"
    ):
        for pid in procs.read_text().split():
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
    return killed


def test_a_killed_kubelet_comes_back_to_the_same_containers(node, unaffected):
    apply(node, NAMESPACE, pod("steady", busybox()), pod("pair", busybox(), busybox(name="side")))
    steady = wait_pod(node, "steady", is_ready, "Ready")
    pair = wait_pod(node, "pair", is_ready, "Ready")
    side_id = container(pair, "side")["containerID"].removeprefix("containerd://")
    started = node.log_path.read_text(errors="replace").count(AGENT_READY)

    assert node.proc is not None
    node.proc.send_signal(signal.SIGKILL)  # server and agent at once; the pods' shims stay
    node.proc.wait()
    assert _kill_container_processes(node.cgroup_root, side_id) >= 1  # dies meanwhile
    _start_again(node, AGENT_READY)
    assert node.log_path.read_text(errors="replace").count(AGENT_READY) == started + 1

    pair = wait_pod(
        node,
        "pair",
        lambda p: is_ready(p) and container(p, "side").get("restartCount") == 1,
        "the side container restarted and the pod Ready",
    )
    assert (
        container(pair, "main")["containerID"]
        == container(get_pod(node, "pair"), "main")["containerID"]
    )
    again = wait_pod(node, "steady", is_ready, "still Ready")
    assert container(again)["containerID"] == container(steady)["containerID"]
    assert container(again)["restartCount"] == 0
    listing = runtime_listing(node)
    known = {p["metadata"]["uid"] for p in node.get("pods", "-n", NAMESPACE)["items"]}
    assert listing.uids() <= known  # no strays
    running = api_pb2.ContainerState.CONTAINER_RUNNING
    for name, containers in (("steady", ["main"]), ("pair", ["main", "side"])):
        uid = get_pod(node, name)["metadata"]["uid"]
        sandboxes = listing.sandboxes.get(uid, [])
        assert len(sandboxes) == 1, f"{name} has sandboxes {sandboxes}"
        alive = [c.metadata.name for c in listing.containers[uid] if c.state == running]
        assert sorted(alive) == containers, f"{name} runs {alive}"
    delete(node, "steady", "pair")


def _containerd_pid(node: KubikNode) -> int:
    """The node's containerd: the server's child running `containerd --config`."""
    assert node.proc is not None
    for task in Path(f"/proc/{node.proc.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if argv[:2] == [b"containerd", b"--config"]:
                return int(child)
    raise AssertionError("the node's containerd is not running")


def test_a_containerd_restart_is_survived(node, unaffected):
    apply(node, NAMESPACE, pod("survivor", busybox()))
    before = wait_pod(node, "survivor", is_ready, "Ready")
    old = _containerd_pid(node)
    os.kill(old, signal.SIGKILL)  # the agent starts it again; the pods' shims live on
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if _containerd_pid(node) != old:
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.5)
    apply(node, NAMESPACE, pod("newcomer", busybox()))
    wait_pod(node, "newcomer", is_ready, "a new pod Ready after the restart")
    after = wait_pod(node, "survivor", is_ready, "still Ready")
    assert container(after)["containerID"] == container(before)["containerID"]
    assert container(after)["restartCount"] == 0
    assert node.ok("exec", "-n", NAMESPACE, "survivor", "--", "echo", "hi") == "hi\n"
    delete(node, "survivor", "newcomer")


def _start_again(node: KubikNode, line: str) -> None:
    """Start the stopped server once more; return once its log has one more `line` (the log
    is appended to: what it says already is from before)."""
    before = node.log_path.read_text(errors="replace").count(line)
    KubikServer.start(node, WAIT)
    deadline = time.monotonic() + WAIT
    while node.log_path.read_text(errors="replace").count(line) <= before:
        assert node.proc is not None and node.proc.poll() is None, node.log_tail()
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.2)


def test_a_pod_deleted_while_the_agent_was_down_is_torn_down(node, unaffected):
    apply(node, NAMESPACE, pod("orphan", busybox()))
    uid = wait_pod(node, "orphan", is_ready, "Ready")["metadata"]["uid"]
    started = node.log_path.read_text(errors="replace").count(AGENT_READY)
    KubikServer.stop(node)  # its pods keep running
    node.agent = False
    try:
        _start_again(node, "apiserver is ready")  # the control plane alone: the node is away
        node.ok("delete", "pod", "orphan", "-n", NAMESPACE, "--grace-period=0", "--force")
        KubikServer.stop(node)
    finally:
        node.agent = True
    _start_again(node, AGENT_READY)
    assert node.log_path.read_text(errors="replace").count(AGENT_READY) == started + 1
    deadline = time.monotonic() + WAIT
    while uid in runtime_listing(node).uids() or (node.data_dir / "agent" / "pods" / uid).exists():
        assert time.monotonic() < deadline, f"pod {uid} still on the node"
        time.sleep(0.5)
    wait_pod(node, "bystander", is_ready, "the bystander Ready again")


def test_nothing_is_left_on_the_node_after_deletion(node):
    apply(node, NAMESPACE, pod("leftover", busybox(), busybox(name="second")))
    wait_pod(node, "leftover", is_ready, "Ready")
    node.ok("delete", "pods", "--all", "-n", NAMESPACE, "--grace-period=1", timeout=WAIT)
    deadline = time.monotonic() + WAIT
    while True:
        listing = runtime_listing(node)
        pods_dir = node.data_dir / "agent" / "pods"
        leftovers = sorted(listing.uids()) + [p.name for p in pods_dir.iterdir()]
        if not leftovers:
            break
        assert time.monotonic() < deadline, f"left on the node: {leftovers}"
        time.sleep(0.5)
    cgroups = CGROUP_ROOT / "memory" / node.cgroup_root.lstrip("/")
    pod_cgroups = [p for p in cgroups.rglob("pod*") if p.is_dir()] if cgroups.exists() else []
    assert not pod_cgroups
