"""Scheduler benchmark: pods/s from the first pod created to the last one bound.

Upstream's scheduler_perf SchedulingBasic, in kubik: N Node objects (4 CPU,
32 GiB, 110 pods each, Ready; no kubelet) created through the API, then M
pods (100m CPU, 500 MiB each) created as fast as the API takes them while
the scheduler binds them; a watch sees every binding. By default the API
server (`kubik server --disable-scheduler --disable-controller-manager`)
and the scheduler (`kubik scheduler`) are two processes, as a cluster runs
them; `--all-in-one` runs the scheduler inside the server process instead.
The figure is printed beside the anchor it answers: scheduler_perf's
SchedulingBasic threshold, 680 pods/s at 5000 nodes (Go, large machines).

Usage: .venv/bin/python bench/scheduler.py [--nodes 500,5000] [--pods 2000] [--all-in-one]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubik.api import builtin  # noqa: E402
from kubik.client.api import Client  # noqa: E402
from tests.support.cluster import KubikServer  # noqa: E402

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
NAMESPACES = builtin.lookup("", "v1", "namespaces")
ANCHOR = "anchor: SchedulingBasic 5000 nodes, 680 pods/s (Go, scheduler_perf)"
NAMESPACE = "bench"
CONCURRENCY = 32


def node(name: str) -> dict:
    resources = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def pod(name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {
                    "name": "pause",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}},
                }
            ]
        },
    }


async def in_parallel(count: int, make) -> None:
    """Call `make(i)` for i in range(count), CONCURRENCY at a time."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await make(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(kubeconfig: str, nodes: int, pods: int, scheduler_pid: int) -> dict:
    client = Client.from_kubeconfig(kubeconfig, pool_size=CONCURRENCY)
    try:
        started = time.perf_counter()
        await in_parallel(nodes, lambda i: client.create(NODES, node(f"node-{i:05}")))
        nodes_took = time.perf_counter() - started
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        await asyncio.sleep(2.0)  # the scheduler's informers have the nodes
        version = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
        bound: set[str] = set()
        all_bound = asyncio.Event()

        async def watch() -> None:
            async for kind, obj in client.watch(
                PODS, NAMESPACE, resource_version=version, timeout_seconds=3600
            ):
                if kind != "BOOKMARK" and obj["spec"].get("nodeName"):
                    bound.add(obj["metadata"]["name"])
                    if len(bound) == pods:
                        all_bound.set()
                        return

        watcher = asyncio.create_task(watch())
        cpu_before = cpu_seconds(scheduler_pid)
        first = time.perf_counter()
        await in_parallel(pods, lambda i: client.create(PODS, pod(f"pod-{i:05}")))
        created = time.perf_counter() - first
        await asyncio.wait_for(all_bound.wait(), timeout=max(120.0, pods / 10))
        took = time.perf_counter() - first
        watcher.cancel()
        return {
            "nodes_per_s": nodes / nodes_took,
            "created_per_s": pods / created,
            "pods_per_s": pods / took,
            "cpu_ms_per_pod": (cpu_seconds(scheduler_pid) - cpu_before) * 1000 / pods,
        }
    finally:
        await client.close()


def run_one(nodes: int, pods: int, all_in_one: bool) -> dict:
    extra = ["--disable-controller-manager"]
    if not all_in_one:
        extra.append("--disable-scheduler")
    data_dir = Path(tempfile.mkdtemp(prefix="kubik-bench-scheduler-"))
    server = KubikServer(data_dir, extra_args=extra).start()
    scheduler = None
    try:
        pid = server.proc.pid
        if not all_in_one:
            log = open(data_dir / "scheduler.log", "wb")  # noqa: SIM115 - closed below
            scheduler = subprocess.Popen(
                [sys.executable, "-m", "kubik.cli.main", "scheduler"]
                + ["--kubeconfig", server.kubeconfig, "--leader-elect", "false"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            pid = scheduler.pid
        return asyncio.run(measure(server.kubeconfig, nodes, pods, pid))
    finally:
        if scheduler is not None:
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(timeout=30)
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="500,5000", help="node counts, comma-separated")
    parser.add_argument("--pods", type=int, default=2000, help="pods to schedule per run")
    parser.add_argument(
        "--all-in-one", action="store_true", help="the scheduler inside the server process"
    )
    args = parser.parse_args()
    layout = "scheduler in the server process" if args.all_in_one else "scheduler process"
    print(f"scheduler benchmark ({layout}; {os.cpu_count()} CPUs), {args.pods} pods per run")
    for count in [int(n) for n in args.nodes.split(",")]:
        figures = run_one(count, args.pods, args.all_in_one)
        print(
            f"  {count:>5} nodes: {figures['pods_per_s']:6.0f} pods/s scheduled"
            f"   (pods created at {figures['created_per_s']:.0f}/s;"
            f" scheduler CPU {figures['cpu_ms_per_pod']:.2f} ms/pod;"
            f" nodes created at {figures['nodes_per_s']:.0f}/s)",
            flush=True,
        )
    print(f"  {ANCHOR}")


if __name__ == "__main__":
    main()
