"""kubectl logs/exec/attach/port-forward against a real node: `kubik server` with its agent.

Where test_kubectl_streaming.py assembles the node by hand, here the agent's
pod manager runs the pods and its node API serves them: the CRI labels, log
paths and pod statuses the streaming code relies on come from the real thing.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from kubik.kubelet.images import BUSYBOX_IMAGE
from tests.support.cluster import KUBECTL, kubectl_version
from tests.support.node import KubikNode

KUBECTL_129 = kubectl_version(29)
KUBECTLS = pytest.mark.parametrize("kubectl", [KUBECTL, KUBECTL_129], ids=["1.32", "1.29"])
WEB = (
    "mkdir /www && echo hello-from-node > /www/index.html && echo serving"
    " && exec httpd -f -p 8080 -h /www"
)
FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read())"
READLINES = 'while read line; do echo "got $line"; done'


def container(name: str, script: str, **extra) -> dict:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        **extra,
    }


PODS = [
    {"metadata": {"name": "web"}, "spec": {"containers": [container("web", WEB)]}},
    {
        "metadata": {"name": "talker"},
        "spec": {"containers": [container("talker", READLINES, stdin=True)]},
    },
    {  # exits every time: its restarts give `logs --previous` something to show
        "metadata": {"name": "restarts"},
        "spec": {"containers": [container("job", "echo run $RANDOM; sleep 1; exit 1")]},
    },
]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    kubik = KubikNode(tmp_path_factory.mktemp("streaming-node")).start()
    try:
        for pod in PODS:
            manifest = {"apiVersion": "v1", "kind": "Pod", **pod}
            kubik.ok("create", "-f", "-", stdin=json.dumps(manifest))
        for name in ("web", "talker"):
            kubik.ok("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
        yield kubik
    finally:
        kubik.stop()


def background(node: KubikNode, binary: str, *args: str) -> subprocess.Popen:
    cache = str(node.data_dir / "kubectl-cache")  # in the test's own folder
    argv = [*node.wrapper, binary, "--kubeconfig", node.kubeconfig, "--cache-dir", cache, *args]
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"HOME": cache, "PATH": "/usr/bin:/bin"},
    )


@KUBECTLS
def test_exec(node, kubectl):
    result = node.kubectl("exec", "web", "--", "sh", "-c", "echo out; exit 4", binary=kubectl)
    assert (result.returncode, result.stdout) == (4, "out\n"), result.stderr
    result = node.kubectl("exec", "-i", "web", "--", "cat", binary=kubectl, stdin="round trip\n")
    assert (result.returncode, result.stdout) == (0, "round trip\n"), result.stderr


@KUBECTLS
def test_logs(node, kubectl):
    assert node.ok("logs", "web", binary=kubectl) == "serving\n"
    deadline = time.monotonic() + 120
    while True:
        pod = node.get("pod", "restarts")
        statuses = pod["status"].get("containerStatuses") or [{}]
        if statuses[0].get("restartCount", 0) >= 1:
            break
        assert time.monotonic() < deadline, f"the container did not restart: {statuses}"
        time.sleep(0.5)
    previous = node.kubectl("logs", "--previous", "restarts", binary=kubectl)
    assert previous.returncode == 0, previous.stderr
    assert re.fullmatch(r"run \d+\n", previous.stdout), previous.stdout


def test_logs_previous_of_a_container_that_never_restarted(node):
    result = node.kubectl("logs", "--previous", "web")
    assert result.returncode != 0
    assert 'previous terminated container "web" in pod "web" not found' in result.stderr


def test_attach(node):
    attached = background(node, KUBECTL, "attach", "-i", "talker")
    try:
        attached.stdin.write("hello\n")
        attached.stdin.flush()
        line = ""
        while "got hello" not in line:
            line = attached.stdout.readline()
            assert line, attached.stderr.read()
    finally:
        attached.kill()
        attached.wait()


@KUBECTLS
def test_port_forward(node, kubectl):
    forwarding = background(node, kubectl, "port-forward", "pod/web", ":8080")
    try:
        line = forwarding.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, f"{line!r}: {forwarding.stderr.read() if forwarding.poll() else ''}"
        url = f"http://127.0.0.1:{match.group(1)}/"
        fetched = node.exec_in_netns(["python3", "-c", FETCH, url])
        assert "hello-from-node" in fetched.stdout, fetched.stderr
    finally:
        forwarding.kill()
        forwarding.wait()
