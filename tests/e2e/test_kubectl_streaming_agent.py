"""kubectl logs/exec/attach/port-forward against a real node: `kubik server` with its agent.

Where test_kubectl_streaming.py assembles the node by hand, here the agent's
pod manager runs the pods and its node API serves them: the CRI labels, log
paths and pod statuses the streaming code relies on come from the real thing.
`exec -it` runs kubectl on a pseudo-terminal of the test's own, as a person
at a terminal would: what is typed is echoed by the container's terminal, and
the terminal's size reaches the container.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
import uuid

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
TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
ROWS, COLUMNS = 37, 101


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
    {"metadata": {"name": "ticker"}, "spec": {"containers": [container("ticker", TICKER)]}},
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
        for name in ("web", "talker", "ticker"):
            kubik.ok("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
        yield kubik
    finally:
        kubik.stop()


def kubectl_argv(node: KubikNode, binary: str, *args: str) -> list[str]:
    cache = str(node.data_dir / "kubectl-cache")  # in the test's own folder
    return [*node.wrapper, binary, "--kubeconfig", node.kubeconfig, "--cache-dir", cache, *args]


def kubectl_env(node: KubikNode) -> dict[str, str]:
    return {"HOME": str(node.data_dir / "kubectl-cache"), "PATH": "/usr/bin:/bin"}


def background(node: KubikNode, binary: str, *args: str) -> subprocess.Popen:
    argv = kubectl_argv(node, binary, *args)
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl_env(node),
    )


class Terminal:
    """kubectl on a pseudo-terminal of ROWS x COLUMNS: `type` keys, `expect` output."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=follower, stdout=follower, stderr=follower, env={**env, "TERM": "xterm"}
        )
        os.close(follower)
        self.seen = b""

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def expect(self, pattern: str, seconds: float = 60) -> str:
        """Read until the output since the last match has `pattern` (a regex); that output."""
        deadline = time.monotonic() + seconds
        while not (match := re.search(pattern.encode(), self.seen)):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: kubectl has gone, and the terminal with it
                    chunk = b""
                assert chunk, f"kubectl ended before {pattern!r}: {self.seen!r}"
                self.seen += chunk
        found, self.seen = self.seen[: match.end()], self.seen[match.end() :]
        return found.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by its own PID (nsenter execs kubectl)
            self.proc.wait()
        os.close(self.master)


@KUBECTLS
def test_exec(node, kubectl):
    result = node.kubectl("exec", "web", "--", "sh", "-c", "echo out; exit 4", binary=kubectl)
    assert (result.returncode, result.stdout) == (4, "out\n"), result.stderr
    result = node.kubectl("exec", "-i", "web", "--", "cat", binary=kubectl, stdin="round trip\n")
    assert (result.returncode, result.stdout) == (0, "round trip\n"), result.stderr


@KUBECTLS
def test_exec_it_through_a_terminal(node, kubectl):
    terminal = Terminal(
        kubectl_argv(node, kubectl, "exec", "-it", "web", "--", "sh"), kubectl_env(node)
    )
    try:
        terminal.expect(r"/ # ")  # the shell's prompt
        terminal.type("echo $((6 * 7))\r")
        echoed = terminal.expect(r"\r\n42\r\n")
        assert "echo $((6 * 7))" in echoed  # typed keys come back through the container's tty
        terminal.type("stty size; tty\r")
        assert re.search(rf"\n{ROWS} {COLUMNS}\r\n/dev/pts/\d+$", terminal.expect(r"/dev/pts/\d+"))
        terminal.type("exit 3\r")
        assert terminal.proc.wait(timeout=60) == 3
        assert "command terminated with exit code 3" in terminal.expect(r"exit code 3")
    finally:
        terminal.close()


@KUBECTLS
def test_logs_follow(node, kubectl):
    following = background(node, kubectl, "logs", "-f", "ticker", "--tail=1")
    try:
        numbers = []
        while len(numbers) < 4:
            line = following.stdout.readline()
            assert line, following.stderr.read()
            numbers.append(int(re.fullmatch(r"tick (\d+)\n", line).group(1)))
        assert numbers == list(range(numbers[0], numbers[0] + 4))
    finally:
        following.kill()
        following.wait()


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


@KUBECTLS
def test_attach(node, kubectl):
    attached = background(node, kubectl, "attach", "-i", "talker")
    word = f"hello-{uuid.uuid4().hex[:6]}"
    try:
        attached.stdin.write(f"{word}\n")
        attached.stdin.flush()
        line = ""
        while f"got {word}" not in line:
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
