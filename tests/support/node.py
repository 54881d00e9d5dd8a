"""Real nodes for tests: `kubik server` WITH its node agent, and `kubik agent`s joining
it, inside a network namespace of the test's own.

`KubikNode` is a `KubikServer` whose process (and so its containerd, pods and
pod network) runs under `nsenter --net` in a fresh netns; kubectl runs there
too, so the API on 127.0.0.1 and pod IPs are reachable only from inside
(`exec_in_netns`). Each node has its own name and cgroup root. `start`
returns once the node is Ready. `KubikAgent` is a second node: a `kubik
agent` process in the same netns, joining with the server's node token.

Stopping undoes everything. The process is stopped by its PID (its
containerd too, should it outlive the agent). The pods' shims outlive both,
as they would on a real node; so containerd is started once more on the
node's state, only to stop and remove every pod sandbox through the CRI
(which also releases their CNI state), and stopped again. Leftover shims,
cgroups and mounts (the pods' volumes among them) are removed; the server's
node deletes the netns last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from kubik.kubelet import images
from kubik.kubelet.containerd import Containerd
from kubik.kubelet.cri.client import RuntimeClient
from tests.support.cluster import KubikServer, Result, free_port
from tests.support.containerd import kill_shims, remove_all_pods, remove_cgroups, unmount_below
from tests.support.netns import NetNS, nsenter_argv, run_in
from tests.support.polling import eventually
from tests.support.process import log_tail, terminate

READY = '{.status.conditions[?(@.type=="Ready")].status}'
AGENT_READY = "agent is ready"  # the server's log line once its agent has started


class KubikNode(KubikServer):
    def __init__(
        self,
        data_dir: Path,
        *,
        node_name: str = "",
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.netns = NetNS()
        self.node_name = node_name or f"node-{uuid.uuid4().hex[:8]}"
        self.cgroup_root = f"/kubik-t-{uuid.uuid4().hex[:10]}"
        super().__init__(
            data_dir,
            extra_args=[
                "--node-name",
                self.node_name,
                "--cgroup-root",
                self.cgroup_root,
                *extra_args,
            ],
            env=env,
            agent=True,
            wrapper=nsenter_argv(self.netns, []),
        )

    @property
    def socket(self) -> str:
        """The CRI socket of the node's containerd (a unix socket: reachable from the host)."""
        return str(containerd_root(self.data_dir) / "containerd.sock")

    @property
    def node_token(self) -> str:
        return (self.data_dir / "node-token").read_text().strip()

    def start(self, timeout: float = 120) -> KubikNode:
        images.build(images.DEFAULT_IMAGES_DIR)  # does nothing when they are up to date
        self.netns.create()
        try:
            super().start(timeout)
            self._wait_agent(1, timeout)
            wait_ready(self, self.node_name, self.proc, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, timeout: float = 120) -> None:
        """Stop the server and its agent (pods keep running), start them again, wait for
        the node to be Ready."""
        started = self._agents_started()
        KubikServer.stop(self)
        KubikServer.start(self, timeout)
        self._wait_agent(started + 1, timeout)
        wait_ready(self, self.node_name, self.proc, timeout)

    def _agents_started(self) -> int:
        return self.log_path.read_text(errors="replace").count(AGENT_READY)

    def _wait_agent(self, count: int, timeout: float) -> None:
        """Wait for the `count`th start of the agent (the Node stored from an earlier run
        may still say Ready)."""
        deadline = time.monotonic() + timeout
        while self._agents_started() < count:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kubik server exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent did not start:\n{self.log_tail()}")
            time.sleep(0.2)

    def get(self, *args: str) -> dict:
        """`kubectl get ARGS -o json`, parsed."""
        return json.loads(self.ok("get", *args, "-o", "json"))

    def exec_in_netns(
        self, argv: Sequence[str], *, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the node's network namespace (to reach pod IPs, say)."""
        return run_in(self.netns, argv, timeout=timeout)

    def stop(self) -> None:
        problems = stop_node(self.proc, super().stop, self.data_dir, self.netns, self.cgroup_root)
        self.netns.delete()
        assert not problems, "kubik node left things behind: " + "; ".join(problems)


class KubikAgent:
    """`kubik agent` joining `server` with its node token, in the server's netns (or, with
    `role_args`, another role: `["kubelet", "--kubeconfig", ...]`)."""

    def __init__(
        self,
        server: KubikNode,
        data_dir: Path,
        *,
        node_name: str = "",
        token: str = "",
        extra_args: Sequence[str] = (),
        role_args: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.data_dir = Path(data_dir)
        self.node_name = node_name or f"agent-{uuid.uuid4().hex[:8]}"
        self.token = token
        self.cgroup_root = f"/kubik-t-{uuid.uuid4().hex[:10]}"
        self.kubelet_port = free_port()
        self.extra_args = list(extra_args)
        self.role_args = list(role_args)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "agent.log"

    def launch(self) -> KubikAgent:
        """Start the process and return at once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = nsenter_argv(
            self.server.netns,
            [
                sys.executable,
                "-m",
                "kubik.cli.main",
                *(
                    self.role_args
                    or [
                        "agent",
                        "--server",
                        self.server.url,
                        "--token",
                        self.token or self.server.node_token,
                    ]
                ),
                "--data-dir",
                str(self.data_dir),
                "--node-name",
                self.node_name,
                "--kubelet-port",
                str(self.kubelet_port),
                "--cgroup-root",
                self.cgroup_root,
                *self.extra_args,
            ],
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return self

    def start(self, timeout: float = 120) -> KubikAgent:
        """Start and wait for the node to be Ready."""
        self.launch()
        try:
            wait_ready(self.server, self.node_name, self.proc, timeout, log=self.log_tail)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        problems = stop_node(
            self.proc,
            lambda: terminate(self.proc),
            self.data_dir,
            self.server.netns,
            self.cgroup_root,
        )
        assert not problems, "kubik agent left things behind: " + "; ".join(problems)


def apply(node: KubikServer, namespace: str, *objects: dict) -> None:
    """`kubectl apply` the objects, as one List, in `namespace`; it must succeed."""
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    done = node.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    assert done.returncode == 0, done.stderr


def events_of(node: KubikNode, namespace: str, name: str) -> list[str]:
    """ "Reason: message" of each event about the object `name`, for assertions and failures."""
    listed = node.get("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    return [f"{e.get('reason')}: {e.get('message')}" for e in listed["items"]]


def containerd_root(data_dir: Path) -> Path:
    return Path(data_dir) / "agent" / "containerd"


def wait_ready(
    server: KubikServer,
    node_name: str,
    proc: subprocess.Popen | None,
    timeout: float,
    *,
    log: Callable[[], str] | None = None,
) -> None:
    """Wait for the Node's Ready condition to be True; fail early if `proc` exits."""
    log = log or server.log_tail
    deadline = time.monotonic() + timeout
    last: Result | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the node's process exited ({proc.returncode}):\n{log()}")
        last = server.kubectl("get", "node", node_name, "-o", f"jsonpath={READY}")
        if last.returncode == 0 and last.stdout == "True":
            return
        time.sleep(0.5)
    raise RuntimeError(f"node {node_name} not Ready ({last}):\n{log()}")


def stop_node(
    proc: subprocess.Popen | None,
    terminate: Callable[[], None],
    data_dir: Path,
    netns: NetNS,
    cgroup_root: str,
) -> list[str]:
    """Stop a node's process with `terminate`, then remove what its pods left; returns
    what had to be cleaned up by force."""
    problems: list[str] = []
    children = _children(proc.pid) if proc is not None and proc.poll() is None else {}
    terminate()
    for pid, argv in children.items():  # containerd, should the agent not have stopped it
        if _argv(pid) == argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                problems.append(f"process {pid} outlived its node")
    root = containerd_root(data_dir)
    if root.is_dir():
        try:
            _in_own_loop(lambda: _remove_pods(root, netns))
        except Exception as exc:  # still undo everything else
            problems.append(f"removing pods: {exc!r}")
    problems += kill_shims(str(root / "containerd.sock"))
    problems += _kill_cgroup_processes(cgroup_root)
    problems += remove_cgroups(cgroup_root)
    # volumes of pods still running when the node stopped stay mounted, as on a real node
    pods_dir = f"{Path(data_dir) / 'agent' / 'pods'}/"
    problems += [m for m in unmount_below(Path(data_dir)) if pods_dir not in m]
    return problems


async def _remove_pods(root: Path, netns: NetNS) -> None:
    """containerd once more on the node's state, to remove the pods it left running."""
    containerd = Containerd(root, netns=netns.path)
    try:
        await containerd.start()
        client = RuntimeClient(containerd.socket)
        try:
            await eventually(
                lambda: _removed_all(client), "containerd to remove the pods", seconds=60
            )
        finally:
            await client.close()
    finally:
        await containerd.stop()


async def _removed_all(client: RuntimeClient) -> bool:
    """Remove every pod; False while containerd still loads its state after a start (its
    CRI answers Version before it can list pods)."""
    try:
        await remove_all_pods(client)
    except grpc.aio.AioRpcError as exc:
        if "not initialized" not in (exc.details() or ""):
            raise
        return False
    return True


def _kill_cgroup_processes(cgroup_root: str) -> list[str]:
    """SIGKILL processes still in the node's cgroups (containers whose shim is gone)."""
    killed = []
    top = Path("/sys/fs/cgroup/pids") / cgroup_root.lstrip("/")
    for procs in top.rglob("cgroup.procs") if top.is_dir() else ():
        for pid in procs.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(f"process {pid} still in {procs.parent}")
    if killed:
        time.sleep(0.5)  # the kernel empties the cgroups once they are reaped
    return killed


def _children(pid: int) -> dict[int, bytes]:
    """The child processes of `pid`: PID → command line."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found[int(child)] = _argv(int(child))
    return found


def _argv(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _in_own_loop(work) -> None:
    """Run `work()` (a coroutine function) to completion in a thread with its own event
    loop, so callers inside or outside a running loop can use it alike."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
