"""Real kubectl through the API server to a node and containerd: logs, exec, attach, port-forward.

kubectl 1.32 speaks WebSocket (exec/attach v5, port-forward tunnelled SPDY),
kubectl 1.29 SPDY. Both go kubectl → `kubik server` → node API → containerd.

The node here is assembled by the test, so these paths are tested on their
own: a `kubik server` (no agent) and a containerd share a network namespace
of the test's own; the node API (NodeServer) runs in the test process inside
that namespace, registered as a Node whose InternalIP and kubelet port point
at it, with a serving certificate of the cluster's CA. The pod is created in
the API bound to that node, and run straight through the CRI with the labels
the pod manager would give it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import pytest_asyncio
from kubernetes.client import CoreV1Api
from kubernetes.config import new_client_from_config
from kubernetes.stream import stream

from kubik.apiserver import tls
from kubik.kubelet.images import BUSYBOX_IMAGE
from kubik.kubelet.server import NodeServer
from tests.support.cluster import KUBECTL, KubikServer, Result, kubectl_version
from tests.support.containerd import running_containerd
from tests.support.netns import NetNS, nsenter_argv, run_in
from tests.support.polling import eventually
from tests.support.streaming import network_namespace, node_serving_context, remove_pod, run_pod

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE = "streaming-node"
POD = "streamer"
KUBECTL_129 = kubectl_version(29)
KUBECTLS = pytest.mark.parametrize("kubectl", [KUBECTL, KUBECTL_129], ids=["1.32", "1.29"])
TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
WEB = "mkdir /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"
CONTAINERS = {  # name: (command, keeps stdin open)
    "main": (["sh", "-c", TICKER], False),
    "web": (["sh", "-c", WEB], False),
    "talker": (["sh", "-c", 'while read line; do echo "got $line"; done'], True),
}
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read())"


def manifest(name: str, **spec) -> str:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "containers": [
                {"name": c, "image": BUSYBOX_IMAGE, "command": command, "stdin": stdin}
                for c, (command, stdin) in CONTAINERS.items()
            ],
            "tolerations": [{"operator": "Exists"}],  # the node sends no heartbeats
            **spec,
        },
    }
    return json.dumps(pod)


@dataclass
class Cluster:
    kubik: KubikServer
    netns: NetNS

    def kubectl(self, *args: str, binary: str = KUBECTL, stdin: str | None = None) -> Result:
        return self.kubik.kubectl(*args, binary=binary, stdin=stdin)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory):
    async with running_containerd() as env:
        await env.enable_network()
        kubik = KubikServer(tmp_path_factory.mktemp("kubik"), wrapper=nsenter_argv(env.netns, []))
        await asyncio.to_thread(kubik.start)
        sandbox_id = ""
        try:
            ca = tls.ClusterCA(str(kubik.data_dir / "tls"))
            serving = node_serving_context(ca, tmp_path_factory.mktemp("node-tls"))
            pod = await asyncio.to_thread(create_running_pod, kubik)
            with network_namespace(env.netns.path):
                node = NodeServer(env.client, lambda: [pod], serving, "127.0.0.1", 0)
                await node.start()
                try:
                    await asyncio.to_thread(register_node, kubik, node.port)
                    uid = pod["metadata"]["uid"]
                    sandbox_id = await run_pod(env, "default", POD, uid, CONTAINERS)
                    yield Cluster(kubik, env.netns)
                finally:
                    await node.stop()
        finally:
            await asyncio.to_thread(kubik.stop)
            if sandbox_id:
                await remove_pod(env, sandbox_id)


def register_node(kubik: KubikServer, port: int) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    kubik.ok("create", "-f", "-", stdin=json.dumps(node))
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }
    }
    kubik.ok(
        "patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def create_running_pod(kubik: KubikServer) -> dict:
    """The pod, bound to the node and marked Running (kubectl port-forward checks)."""
    kubik.ok("create", "-f", "-", stdin=manifest(POD, nodeName=NODE))
    running = json.dumps({"status": {"phase": "Running"}})
    kubik.ok("patch", "pod", POD, "--subresource=status", "--type=merge", "-p", running)
    return json.loads(kubik.ok("get", "pod", POD, "-o", "json"))


def background(cluster: Cluster, binary: str, *args: str) -> subprocess.Popen:
    """kubectl left running (logs -f, attach, port-forward), its output read line by line."""
    kubik = cluster.kubik
    cache = str(kubik.data_dir / "kubectl-cache")  # in the test's own folder
    argv = [*kubik.wrapper, binary, "--kubeconfig", kubik.kubeconfig, "--cache-dir", cache]
    return subprocess.Popen(
        [*argv, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"HOME": cache, "PATH": "/usr/bin:/bin"},
    )


async def read_until(proc: subprocess.Popen, pattern: str, lines: int = 1) -> list[str]:
    """Lines of stdout until `lines` of them match `pattern` (60 s at most)."""

    def read() -> list[str]:
        seen = []
        while sum(bool(re.search(pattern, line)) for line in seen) < lines:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"kubectl ended: {seen} {proc.stderr.read()}")
            seen.append(line)
        return seen

    try:
        return await asyncio.wait_for(asyncio.to_thread(read), 60)
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- exec


@KUBECTLS
async def test_exec_passes_output_and_exit_code(cluster, kubectl):
    script = "echo out; echo err >&2; exit 3"
    result = await asyncio.to_thread(
        cluster.kubectl, "exec", POD, "-c", "main", "--", "sh", "-c", script, binary=kubectl
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out\n"
    assert "err" in result.stderr


@KUBECTLS
async def test_exec_with_stdin_ends_when_stdin_does(cluster, kubectl):
    result = await asyncio.to_thread(
        cluster.kubectl,
        "exec",
        "-i",
        POD,
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "tr a-z A-Z",
        binary=kubectl,
        stdin="piped through\n",
    )
    assert (result.returncode, result.stdout) == (0, "PIPED THROUGH\n"), result.stderr


async def test_exec_errors_are_upstreams(cluster):
    result = await asyncio.to_thread(cluster.kubectl, "exec", POD, "-c", "nope", "--", "true")
    assert result.returncode != 0
    assert "container nope is not valid for pod streamer" in result.stderr
    await asyncio.to_thread(
        cluster.kubik.ok, "create", "-f", "-", stdin=manifest("unscheduled", schedulerName="nobody")
    )
    result = await asyncio.to_thread(
        cluster.kubectl, "exec", "unscheduled", "-c", "main", "--", "true"
    )
    assert "pod unscheduled does not have a host assigned" in result.stderr


# ---------------------------------------------------------------------- logs


@KUBECTLS
async def test_logs_tail_and_follow(cluster, kubectl):
    async def three_lines():
        result = await asyncio.to_thread(
            cluster.kubectl, "logs", POD, "-c", "main", "--tail=3", binary=kubectl
        )
        return result.stdout if result.stdout.count("\n") == 3 else None

    tail = await eventually(three_lines, "three lines of log")
    assert all(line.startswith("tick ") for line in tail.splitlines())
    following = background(cluster, kubectl, "logs", "-f", POD, "-c", "main", "--tail=1")
    lines = await read_until(following, r"^tick \d+$", lines=4)
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4


async def test_logs_need_a_container_name_among_several(cluster):
    result = await asyncio.to_thread(cluster.kubectl, "logs", POD, "-c", "nope")
    assert result.returncode != 0
    assert "container nope is not valid for pod streamer" in result.stderr


# -------------------------------------------------------------------- attach


@KUBECTLS
async def test_attach_reaches_the_containers_stdin(cluster, kubectl):
    attached = background(cluster, kubectl, "attach", "-i", POD, "-c", "talker")
    word = f"w{uuid.uuid4().hex[:6]}"
    attached.stdin.write(f"{word}\n")
    attached.stdin.flush()
    lines = await read_until(attached, f"got {word}")
    assert lines[-1].strip() == f"got {word}"


# -------------------------------------------------------------- port-forward


@KUBECTLS
async def test_port_forward(cluster, kubectl):
    forwarding = background(cluster, kubectl, "port-forward", f"pod/{POD}", ":8080")
    try:
        line = await asyncio.wait_for(asyncio.to_thread(forwarding.stdout.readline), 60)
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, f"{line!r} {forwarding.stderr.read() if forwarding.poll() else ''}"
        url = f"http://127.0.0.1:{match.group(1)}/"

        async def fetched():
            done = await asyncio.to_thread(run_in, cluster.netns, ["python3", "-c", FETCH, url])
            return done.stdout if "hello-from-pod" in done.stdout else None

        assert "hello-from-pod" in await eventually(fetched, "the pod's page", seconds=60)
        # A second connection over the same port-forward session.
        assert "hello-from-pod" in await fetched()
    finally:
        forwarding.kill()
        forwarding.wait()


# ------------------------------------------------------ the Python client


async def test_python_client_exec_over_websocket_v4(cluster):
    """The `kubernetes` package's stream() speaks WebSocket v4.channel.k8s.io."""

    def run() -> str:
        api = CoreV1Api(new_client_from_config(config_file=cluster.kubik.kubeconfig))
        return stream(
            api.connect_get_namespaced_pod_exec,
            POD,
            "default",
            container="main",
            command=["sh", "-c", "echo from-python"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )

    # A thread made now, from this thread, shares its network namespace (the API's).
    with ThreadPoolExecutor(1) as pool:
        output = await asyncio.get_running_loop().run_in_executor(pool, run)
    assert output == "from-python\n"
