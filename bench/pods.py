"""Pod start-up latency on one real node, beside the raw CRI floor, and the agent's cost.

Processes, all in a network namespace of the benchmark's own (this process
enters it first, so the API server, the agent, containerd, the pod network
and this client all live there and nothing reaches the host's network):
`kubik server --disable-agent` and a separate `kubik agent` joined with the
server's node token, so the agent's CPU and memory are its own (containerd is
its child process and is not counted).

Measured in one run:
- the raw CRI floor against the agent's own containerd (bench/crifloor.py:
  RunPodSandbox + CreateContainer + StartContainer, no kubik in the path);
- pod start-up latency, from the create call to the watch showing the pod
  Running and Ready: pods created one after another, then 30 and 100 at once;
  p50 and p99 (nearest rank) of each;
- the agent's RSS and CPU use over an idle window with 0 pods and with 100.

The pods run busybox (offline image, no pulls) with a shell that exits on
SIGTERM, no probes, no requests; each phase's pods are deleted, and gone from
the runtime, before the next.

Usage: .venv/bin/python bench/pods.py [--sequential 20] [--bursts 30,100]
(as root, on a machine where `make setup` built the offline images)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crifloor import _remove, measure_cri_floor  # noqa: E402
from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from kubik.api import builtin  # noqa: E402
from kubik.client.api import Client  # noqa: E402
from kubik.kubelet import images  # noqa: E402
from kubik.kubelet.cri import api_pb2  # noqa: E402
from kubik.kubelet.cri.client import RuntimeClient  # noqa: E402
from tests.support.cluster import KubikServer  # noqa: E402
from tests.support.containerd import sandbox_config  # noqa: E402
from tests.support.netns import NetNS, nsenter_argv  # noqa: E402
from tests.support.node import KubikAgent, containerd_root  # noqa: E402

PODS = builtin.lookup("", "v1", "pods")
NAMESPACES = builtin.lookup("", "v1", "namespaces")
NAMESPACE = "bench"
NODE = "bench-node"
CLONE_NEWNET = 0x40000000
SETTLE = 10.0  # seconds of quiet before a resource window
WINDOW = 30.0  # seconds a resource window lasts
PHASE_TIMEOUT = 600.0
# Shell as PID 1 ignores SIGTERM unless it traps it; with the trap a delete is quick.
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]


def enter_netns(netns: NetNS) -> None:
    """Move this process into `netns`; threads and children made afterwards follow it.

    Called before any thread exists (setns changes the calling thread only)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns.path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns.path}")
    finally:
        os.close(fd)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": NODE},
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": images.BUSYBOX_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": COMMAND,
                }
            ],
        },
    }


def running_and_ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


class ControlPlane(KubikServer):
    """`kubik server --disable-agent` in `netns`, shaped as KubikAgent's server."""

    def __init__(self, data_dir: Path, netns: NetNS) -> None:
        super().__init__(data_dir, wrapper=nsenter_argv(netns, []))
        self.netns = netns

    @property
    def node_token(self) -> str:
        return (self.data_dir / "node-token").read_text().strip()


class Bench:
    def __init__(self, client: Client, runtime: RuntimeClient, agent: KubikAgent) -> None:
        self.client = client
        self.runtime = runtime
        self.agent = agent
        self.bound_at: dict[str, float] = {}  # first seen with spec.nodeName
        self.ready_at: dict[str, float] = {}  # first seen Running and Ready
        self._watcher: asyncio.Task | None = None

    async def wait_until(self, check, what: str, seconds: float = PHASE_TIMEOUT) -> None:
        deadline = time.monotonic() + seconds
        while not await check():
            if self.agent.proc.poll() is not None:
                raise RuntimeError(f"kubik agent exited:\n{self.agent.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)

    async def start_watch(self) -> None:
        listing = await self.client.list(PODS, NAMESPACE)
        self._watcher = asyncio.create_task(self._watch(listing["metadata"]["resourceVersion"]))

    async def _watch(self, revision: str) -> None:
        while True:
            async for kind, obj in self.client.watch(PODS, NAMESPACE, resource_version=revision):
                revision = obj["metadata"].get("resourceVersion", revision)
                name = obj["metadata"].get("name", "")
                if kind not in ("ADDED", "MODIFIED"):
                    continue
                now = time.perf_counter()
                if (obj.get("spec") or {}).get("nodeName"):
                    self.bound_at.setdefault(name, now)
                if running_and_ready(obj):
                    self.ready_at.setdefault(name, now)

    async def stop_watch(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def create_and_wait(self, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        """Create `names` at once; each pod's latency (s) from its create call to Ready,
        and to its binding."""
        sent: dict[str, float] = {}

        async def create(name: str) -> None:
            sent[name] = time.perf_counter()
            await self.client.create(PODS, pod(name))

        await asyncio.gather(*(create(name) for name in names))

        async def all_ready() -> bool:
            return all(name in self.ready_at for name in names)

        await self.wait_until(all_ready, f"{len(names)} pods to be Running and Ready")
        return (
            {name: self.ready_at[name] - sent[name] for name in names},
            {name: self.bound_at[name] - sent[name] for name in names},
        )

    async def delete_all(self) -> None:
        """Delete the phase's pods; wait until the API and the runtime have none left."""
        listing = await self.client.list(PODS, NAMESPACE)
        await asyncio.gather(
            *(
                self.client.delete(PODS, NAMESPACE, item["metadata"]["name"])
                for item in listing["items"]
            )
        )

        async def gone() -> bool:
            if (await self.client.list(PODS, NAMESPACE))["items"]:
                return False
            sandboxes = await self.runtime.runtime.ListPodSandbox(
                api_pb2.ListPodSandboxRequest(
                    filter=api_pb2.PodSandboxFilter(
                        state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
                    )
                ),
                timeout=30,
            )
            return not sandboxes.items

        await self.wait_until(gone, "the pods to be gone")
        self.bound_at.clear()
        self.ready_at.clear()

    async def resources(self, label: str) -> tuple[float, float]:
        """Agent CPU (percent of one core) over a quiet window, and its RSS (MB) after it."""
        pid = self.agent.proc.pid
        await asyncio.sleep(SETTLE)
        before, started = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(WINDOW)
        used = cpu_seconds(pid) - before
        elapsed = time.monotonic() - started
        rss = rss_mb(pid)
        print(
            f"  agent with {label:8} CPU {used:5.2f} s over {elapsed:.0f} s "
            f"({100 * used / elapsed:4.1f}% of a core), RSS {rss:5.1f} MB   (aim RSS < 100 MB)",
            flush=True,
        )
        return used, rss


def print_load() -> None:
    """The machine's load average: the figures are only as quiet as the machine was."""
    one, five, fifteen = os.getloadavg()
    cores = os.cpu_count()
    print(f"  (load average {one:.1f} {five:.1f} {fifteen:.1f} on {cores} cores)", flush=True)


def report(label: str, latencies: dict[str, float] | list[float], extra: str = "") -> None:
    values = sorted(latencies.values() if isinstance(latencies, dict) else latencies)
    print(
        f"  {label:34} p50 {1000 * percentile(values, 50):6.0f} ms   "
        f"p99 {1000 * percentile(values, 99):6.0f} ms{extra}",
        flush=True,
    )


async def raw_burst(runtime: RuntimeClient, n: int, cgroup_parent: str) -> list[float]:
    """`n` pods started at once straight through the CRI (sandbox, then the same busybox
    container as the kubik pods); each one's latency (s). All are removed afterwards."""
    logs = Path(tempfile.mkdtemp(prefix="kubik-bench-raw-"))
    started = time.perf_counter()
    sandboxes: list[str] = []

    async def one(i: int) -> float:
        sandbox = sandbox_config(logs, cgroup_parent, f"raw-{n}-{i}", pod_network=True)
        ran = await runtime.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(config=sandbox), timeout=PHASE_TIMEOUT
        )
        sandboxes.append(ran.pod_sandbox_id)
        container = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=images.BUSYBOX_IMAGE),
            command=COMMAND,
            log_path="main/0.log",
        )
        created = await runtime.runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=ran.pod_sandbox_id, config=container, sandbox_config=sandbox
            ),
            timeout=PHASE_TIMEOUT,
        )
        await runtime.runtime.StartContainer(
            api_pb2.StartContainerRequest(container_id=created.container_id),
            timeout=PHASE_TIMEOUT,
        )
        return time.perf_counter() - started

    try:
        return await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await asyncio.gather(*(_remove(runtime, sandbox) for sandbox in sandboxes))
        shutil.rmtree(logs, ignore_errors=True)


async def run(server: KubikServer, agent: KubikAgent, args) -> None:
    client = Client.from_kubeconfig(server.kubeconfig, pool_size=16)
    runtime = RuntimeClient(str(containerd_root(agent.data_dir) / "containerd.sock"))
    bench = Bench(client, runtime, agent)
    try:
        await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        print(f"node {NODE} is Ready; agent pid {agent.proc.pid} (kubik agent alone)", flush=True)
        print_load()
        await bench.resources("0 pods")

        floor = await measure_cri_floor(runtime, args.floor, cgroup_parent=agent.cgroup_root)
        print(
            f"  raw CRI, one pod (median of {floor['n']}): RunPodSandbox "
            f"{floor['run_pod_sandbox_ms']:.0f} ms + Create+Start "
            f"{floor['create_start_ms']:.0f} ms = {floor['pod_start_ms']:.0f} ms",
            flush=True,
        )
        await bench.start_watch()
        sequential: dict[str, float] = {}
        bound: dict[str, float] = {}
        for i in range(args.sequential):
            ready, scheduled = await bench.create_and_wait([f"seq-{i}"])
            sequential.update(ready)
            bound.update(scheduled)
        report(f"kubik, {args.sequential} pods one by one", sequential)
        report("  of which create -> bound", bound)
        ratio = percentile(list(sequential.values()), 50) / (floor["pod_start_ms"] / 1000)
        print(f"  {'':34} p50 / raw one-pod floor = {ratio:.2f}x   (aim < 2x)", flush=True)
        await bench.delete_all()

        for size in args.bursts:
            raw = await raw_burst(runtime, size, agent.cgroup_root)
            report(f"raw CRI, {size} pods at once", raw)
            cpu_before = cpu_seconds(agent.proc.pid)
            started = time.perf_counter()
            ready, scheduled = await bench.create_and_wait(
                [f"burst{size}-{i}" for i in range(size)]
            )
            took = time.perf_counter() - started
            cpu = cpu_seconds(agent.proc.pid) - cpu_before
            aim = "   (aim p99 < 1 s; upstream SLO 5 s)" if size == 30 else ""
            report(f"kubik, {size} pods at once", ready, aim)
            report("  of which create -> bound", scheduled)
            ratio = percentile(list(ready.values()), 99) / percentile(raw, 99)
            print(
                f"  {'':34} p99 / raw p99 = {ratio:.2f}x; all Ready in {took:.1f} s; "
                f"agent CPU {cpu:.1f} s ({1000 * cpu / size:.0f} ms per pod)",
                flush=True,
            )
            if size == max(args.bursts):
                await bench.resources(f"{size} pods")
            await bench.delete_all()
        print_load()
    finally:
        await bench.stop_watch()
        await runtime.close()
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=20, help="pods one after another")
    parser.add_argument(
        "--bursts",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[30, 100],
        help="sizes of the at-once phases (default 30,100)",
    )
    parser.add_argument("--floor", type=int, default=10, help="pods for the CRI floor")
    args = parser.parse_args()

    images.build(images.DEFAULT_IMAGES_DIR)
    netns = NetNS(prefix="kubik-bench")
    netns.create()
    enter_netns(netns)
    root = Path(tempfile.mkdtemp(prefix="kubik-bench-pods-"))
    server = ControlPlane(root / "server", netns)
    agent = KubikAgent(server, root / "agent", node_name=NODE)  # type: ignore[arg-type]
    finished = False
    print("== pod start-up on one node: kubik server + kubik agent + containerd ==", flush=True)
    print(
        "Anchor: upstream's pod start-up SLO is p99 <= 5 s (stateless pods, image present)",
        flush=True,
    )
    try:
        server.start()
        agent.start()
        asyncio.run(run(server, agent, args))
        finished = True
    finally:
        try:
            agent.stop()  # and what its pods left: shims, cgroups, mounts
        finally:
            server.stop()
            netns.delete()
            if finished:
                shutil.rmtree(root, ignore_errors=True)
            else:
                print(f"logs kept in {root}", file=sys.stderr)


if __name__ == "__main__":
    main()
