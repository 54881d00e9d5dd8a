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

Other scenarios (`--scenarios`), each against its own scheduler_perf anchor,
with nodes in three zones: "pod anti-affinity" (every pod keeps away from
the others' nodes, as SchedulingPodAntiAffinity) and "topology spread"
(zone spreading, maxSkew 5, DoNotSchedule, as TopologySpreading). Each
run prints pods/s and the p99 of a pod's time from its create call to its
binding seen in the watch. "preemption" is PreemptionBasic: every node is
first filled with four low-priority pods (900m CPU each), then one pod of
priority 10 per node (3 CPUs) must evict three of them to fit; pods/s
counts those, from create to bound, preemption and all.

Usage: .venv/bin/python bench/scheduler.py [--nodes 500,5000] [--pods 2000] [--all-in-one]
       [--scenarios basic,anti-affinity,spread,preemption]
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from bench.store import percentile  # noqa: E402
from kubik.api import builtin  # noqa: E402
from kubik.client.api import Client  # noqa: E402
from tests.support.cluster import KubikServer  # noqa: E402

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
NAMESPACES = builtin.lookup("", "v1", "namespaces")
PRIORITY_CLASSES = builtin.lookup("scheduling.k8s.io", "v1", "priorityclasses")
HOSTNAME = "kubernetes.io/hostname"
NAMESPACE = "bench"
CONCURRENCY = 32


def node(name: str, zone: str = "") -> dict:
    resources = {"cpu": "4", "memory": "32Gi", "pods": "110"}
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
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


def anti_affinity_pod(name: str) -> dict:
    """scheduler_perf's pod-with-pod-anti-affinity: one such pod per node."""
    obj = pod(name)
    obj["metadata"]["labels"] = {"color": "green"}
    term = {"labelSelector": {"matchLabels": {"color": "green"}}, "topologyKey": HOSTNAME}
    obj["spec"]["affinity"] = {
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    }
    return obj


def spread_pod(name: str) -> dict:
    """scheduler_perf's pod-with-topology-spreading: zones at most 5 pods apart."""
    obj = pod(name)
    obj["metadata"]["labels"] = {"color": "blue"}
    obj["spec"]["topologySpreadConstraints"] = [
        {
            "maxSkew": 5,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"color": "blue"}},
        }
    ]
    return obj


@dataclass(frozen=True)
class Scenario:
    title: str
    make_pod: Callable[[str], dict]
    zones: int  # nodes are spread over this many zones (0: no zone label)
    anchor: str  # the scheduler_perf workload answered
    anchor_pods_per_s: int  # its threshold (Go, large machines)
    # what the cluster holds before the measured pods come: prepare(client, nodes)
    prepare: Callable[[Client, int], Awaitable[None]] | None = None
    pods_per_node: int = 0  # measured pods per node, instead of --pods (0: --pods)


LOW_NAMESPACE = "bench-low"  # the victims: a namespace of their own, out of the watch's sight


def high_priority_pod(name: str) -> dict:
    """scheduler_perf's pod-high-priority: 3 CPUs, priority 10 (through its class)."""
    obj = pod(name)
    obj["spec"]["priorityClassName"] = "bench-high"
    obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "3"
    return obj


async def fill_with_low_priority_pods(client: Client, nodes: int) -> None:
    """scheduler_perf's pod-low-priority, four per node (3.6 of 4 CPUs), all bound."""
    high = {"kind": "PriorityClass", "metadata": {"name": "bench-high"}, "value": 10}
    await client.create(PRIORITY_CLASSES, {"apiVersion": "scheduling.k8s.io/v1", **high})
    await client.create(NAMESPACES, {"metadata": {"name": LOW_NAMESPACE}})

    async def create(i: int) -> None:
        obj = pod(f"low-{i:05}")
        obj["metadata"]["namespace"] = LOW_NAMESPACE
        obj["spec"]["terminationGracePeriodSeconds"] = 0
        obj["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "900m"
        await client.create(PODS, obj)

    await in_parallel(4 * nodes, create)
    while True:
        items = (await client.list(PODS, LOW_NAMESPACE))["items"]
        if sum(1 for p in items if p["spec"].get("nodeName")) == 4 * nodes:
            return
        await asyncio.sleep(1.0)


SCENARIOS = {
    "basic": Scenario("basic", pod, 0, "SchedulingBasic 5000 nodes", 680),
    "anti-affinity": Scenario(
        "pod anti-affinity",
        anti_affinity_pod,
        3,
        "SchedulingPodAntiAffinity 5000 nodes",
        60,
    ),
    "spread": Scenario(
        "topology spread",
        spread_pod,
        3,
        "TopologySpreading 5000 nodes",
        460,
    ),
    "preemption": Scenario(
        "preemption (one pod per node)",
        high_priority_pod,
        0,
        "PreemptionAsync 5000 nodes (PreemptionBasic has no threshold)",
        570,
        prepare=fill_with_low_priority_pods,
        pods_per_node=1,
    ),
}


async def in_parallel(count: int, make) -> None:
    """Call `make(i)` for i in range(count), CONCURRENCY at a time."""
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            await make(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def measure(
    kubeconfig: str, nodes: int, pods: int, scheduler_pid: int, scenario: Scenario
) -> dict:
    client = Client.from_kubeconfig(kubeconfig, pool_size=CONCURRENCY)

    def zone(i: int) -> str:
        return f"zone-{i % scenario.zones}" if scenario.zones else ""

    try:
        started = time.perf_counter()
        await in_parallel(nodes, lambda i: client.create(NODES, node(f"node-{i:05}", zone(i))))
        nodes_took = time.perf_counter() - started
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        await asyncio.sleep(2.0)  # the scheduler's informers have the nodes
        if scenario.prepare is not None:
            await scenario.prepare(client, nodes)
        version = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
        bound: dict[str, float] = {}  # pod → when its binding was seen
        sent: dict[str, float] = {}  # pod → when its create call started
        all_bound = asyncio.Event()

        async def watch() -> None:
            async for kind, obj in client.watch(
                PODS, NAMESPACE, resource_version=version, timeout_seconds=3600
            ):
                if kind != "BOOKMARK" and obj["spec"].get("nodeName"):
                    bound.setdefault(obj["metadata"]["name"], time.perf_counter())
                    if len(bound) == pods:
                        all_bound.set()
                        return

        watcher = asyncio.create_task(watch())
        cpu_before = cpu_seconds(scheduler_pid)
        first = time.perf_counter()

        async def create(i: int) -> None:
            name = f"pod-{i:05}"
            sent[name] = time.perf_counter()
            await client.create(PODS, scenario.make_pod(name))

        await in_parallel(pods, create)
        creating = time.perf_counter() - first
        await asyncio.wait_for(all_bound.wait(), timeout=max(120.0, pods / 10))
        took = time.perf_counter() - first
        watcher.cancel()
        return {
            "nodes_per_s": nodes / nodes_took,
            "created_per_s": pods / creating,
            "pods_per_s": pods / took,
            "cpu_ms_per_pod": (cpu_seconds(scheduler_pid) - cpu_before) * 1000 / pods,
            "p99_ms": percentile([bound[n] - sent[n] for n in bound], 99) * 1000,
            "rss_mb": rss_mb(scheduler_pid),
        }
    finally:
        await client.close()


def run_one(nodes: int, pods: int, all_in_one: bool, scenario: Scenario) -> dict:
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
                + ["--kubeconfig", server.kubeconfig, "--leader-elect", "false"]
                + ["--metrics-address", "127.0.0.1:0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()
            pid = scheduler.pid
        return asyncio.run(measure(server.kubeconfig, nodes, pods, pid, scenario))
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
    parser.add_argument(
        "--scenarios",
        default="basic",
        help=f"comma-separated, of: {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args()
    layout = "scheduler in the server process" if args.all_in_one else "scheduler process"
    print(f"scheduler benchmark ({layout}; {os.cpu_count()} CPUs), {args.pods} pods per run")
    for name in args.scenarios.split(","):
        scenario = SCENARIOS[name]
        if scenario.title != "basic":
            print(f" {scenario.title}:")
        for count in [int(n) for n in args.nodes.split(",")]:
            pods = count * scenario.pods_per_node or args.pods
            figures = run_one(count, pods, args.all_in_one, scenario)
            print(
                f"  {count:>5} nodes: {figures['pods_per_s']:6.0f} pods/s scheduled"
                f", p99 {figures['p99_ms']:.0f} ms"
                f"   (pods created at {figures['created_per_s']:.0f}/s;"
                f" scheduler CPU {figures['cpu_ms_per_pod']:.2f} ms/pod,"
                f" RSS {figures['rss_mb']:.0f} MB;"
                f" nodes created at {figures['nodes_per_s']:.0f}/s)"
                f"; ratio to the anchor {figures['pods_per_s'] / scenario.anchor_pods_per_s:.2f}",
                flush=True,
            )
        print(
            f"  anchor: {scenario.anchor}, {scenario.anchor_pods_per_s} pods/s (Go, scheduler_perf)"
        )


if __name__ == "__main__":
    main()
