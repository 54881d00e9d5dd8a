"""Controller benchmark: a 1,000-replica deployment on 100 hollow nodes.

Processes: `kubik server --disable-controller-manager` (store, API server,
scheduler), `kubik controller-manager` on its own (so its CPU and memory are
its own), and 100 hollow nodes in this process (kubik.hollow). Measured in
one run:
- creating a 1,000-replica deployment until 1,000 pods exist (pods/s created
  by the ReplicaSet controller) and until all are available;
- a rolling update (new image, 25% surge / 25% unavailable) to completion;
- deleting the deployment until its ReplicaSets and pods are gone (GC);
- the controller manager's CPU seconds and RSS.

Usage: .venv/bin/python bench/controllers.py [--replicas 1000] [--nodes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import cpu_seconds, rss_mb  # noqa: E402
from kubik.api import builtin  # noqa: E402
from kubik.client.api import Client  # noqa: E402
from kubik.hollow.nodes import HollowNodes  # noqa: E402
from tests.support.cluster import KubikServer, free_port  # noqa: E402

DEPLOYMENTS = builtin.lookup("apps", "v1", "deployments")
REPLICASETS = builtin.lookup("apps", "v1", "replicasets")
PODS = builtin.lookup("", "v1", "pods")
MANAGER: subprocess.Popen | None = None  # the controller manager process, once started


def deployment(replicas: int, image: str) -> dict:
    labels = {"app": "bench"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": image,
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                        }
                    ]
                },
            },
        },
    }


async def wait_until(check, seconds: float = 600.0, every: float = 0.2) -> float:
    """Seconds until `check()` is true; fails at once if the controller manager died."""
    start = time.perf_counter()
    async with asyncio.timeout(seconds):
        while not await check():
            if MANAGER is not None and MANAGER.poll() is not None:
                raise RuntimeError("the controller manager exited; see its log")
            await asyncio.sleep(every)
    return time.perf_counter() - start


async def run(server: KubikServer, manager: subprocess.Popen, args) -> None:
    client = Client.from_kubeconfig(server.kubeconfig, pool_size=8)
    hollow = HollowNodes(client, count=args.nodes, start_delay=0.2, ready_delay=0.2)
    await hollow.start()
    replicas = args.replicas
    cpu_before = cpu_seconds(manager.pid)

    async def pod_count() -> int:
        listing = await client.list(PODS, "default", label_selector="app=bench")
        return len(listing["items"])

    async def status() -> dict:
        return (await client.get(DEPLOYMENTS, "default", "bench")).get("status") or {}

    try:
        await client.create(DEPLOYMENTS, deployment(replicas, "kubik.local/busybox:1"))
        created = await wait_until(lambda: _at_least(pod_count, replicas))
        print(
            f"  {replicas} pods created by the ReplicaSet controller   {created:6.1f} s "
            f"({replicas / created:.0f} pods/s; aim >= 500/s)",
            flush=True,
        )
        available = await wait_until(lambda: _status_is(status, replicas, replicas))
        print(f"  ... and all available (scheduled, hollow-Ready)   {available:6.1f} s", flush=True)
        updated = await client.patch(
            DEPLOYMENTS,
            "default",
            "bench",
            {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "web", "image": "kubik.local/busybox:2"}]}
                    }
                }
            },
            patch_type="strategic",
        )
        generation = updated["metadata"]["generation"]
        rolled = await wait_until(lambda: _rolled_out(status, replicas, generation))
        print(f"  rolling update to completion (25%/25%)         {rolled:6.1f} s", flush=True)
        await client.delete(DEPLOYMENTS, "default", "bench", propagation_policy="Background")

        async def all_gone() -> bool:
            sets = await client.list(REPLICASETS, "default", label_selector="app=bench")
            return not sets["items"] and await pod_count() == 0

        gone = await wait_until(all_gone)
        print(f"  delete with cascading GC until all pods gone    {gone:6.1f} s", flush=True)
        print(
            f"  controller manager: {cpu_seconds(manager.pid) - cpu_before:.1f} CPU s "
            f"over the run, RSS {rss_mb(manager.pid):.0f} MB",
            flush=True,
        )
    finally:
        await hollow.stop()
        await client.close()


async def _at_least(count, wanted: int) -> bool:
    return await count() >= wanted


async def _status_is(status, replicas: int, available: int) -> bool:
    current = await status()
    return (
        current.get("availableReplicas", 0) >= available and current.get("replicas", 0) == replicas
    )


async def _rolled_out(status, replicas: int, generation: int) -> bool:
    current = await status()
    return (
        current.get("observedGeneration", 0) >= generation
        and current.get("updatedReplicas") == replicas
        and current.get("availableReplicas") == replicas
        and current.get("replicas") == replicas
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="kubik-bench-controllers-"))
    server = KubikServer(data_dir, extra_args=["--disable-controller-manager"]).start()
    log = open(data_dir / "controller-manager.log", "ab")  # noqa: SIM115
    global MANAGER
    manager = MANAGER = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "controller-manager",
            "--kubeconfig",
            server.kubeconfig,
            "--leader-elect",
            "false",
            "--controller-metrics-address",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    print(f"== {args.replicas}-replica deployment on {args.nodes} hollow nodes ==")
    print(
        "Anchor: upstream's default client limits (20 QPS, burst 30) allow ~20-50 pod "
        "creations/s without tuning.",
        flush=True,
    )
    try:
        asyncio.run(run(server, manager, args))
    finally:
        manager.send_signal(signal.SIGTERM)
        manager.wait(timeout=30)
        log.close()
        server.stop()


if __name__ == "__main__":
    main()
