"""The pod start-up floor: containerd + runc through the CRI, with nothing of kubik's around.

Times, for `n` pods one after another (median of each):
- RunPodSandbox (pause container, network namespace, CNI when `pod_network`);
- CreateContainer + StartContainer of a busybox httpd;
- the whole pod start, the sum of both as one span.
Every pod is stopped and removed after its measurement, outside the timing.
kubik's pod start-up latency (bench/pods.py) is read as a ratio to this
floor, measured in the same run.

Usage: .venv/bin/python bench/crifloor.py [-n 5]
(starts its own containerd in a network namespace of its own)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubik.kubelet.cri import api_pb2  # noqa: E402
from kubik.kubelet.cri.client import RuntimeClient  # noqa: E402
from kubik.kubelet.images import BUSYBOX_IMAGE  # noqa: E402
from tests.support.containerd import (  # noqa: E402
    remove_cgroups,
    running_containerd,
    sandbox_config,
)

ANCHOR_MS = {"run_pod_sandbox_ms": 87.0, "create_start_ms": 43.0, "pod_start_ms": 135.0}


async def measure_cri_floor(
    client: RuntimeClient,
    n: int = 5,
    *,
    cgroup_parent: str | None = None,
    pod_network: bool = True,
    image: str = BUSYBOX_IMAGE,
) -> dict:
    """Median timings (ms) of `n` pod starts on the runtime behind `client`.

    Pods go under `cgroup_parent` (default: a fresh /kubik-crifloor-<hex>, removed
    afterwards); with `pod_network` the runtime must have a CNI network ready.
    """
    own_parent = cgroup_parent is None
    parent = cgroup_parent or f"/kubik-crifloor-{uuid.uuid4().hex[:8]}"
    logs = Path(tempfile.mkdtemp(prefix="kubik-crifloor-"))
    sandbox_ms, create_start_ms, pod_ms = [], [], []
    try:
        for i in range(n):
            sandbox = sandbox_config(logs, parent, f"crifloor-{i}", pod_network=pod_network)
            container = api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="web"),
                image=api_pb2.ImageSpec(image=image),
                command=["httpd", "-f", "-p", "8080"],
                log_path="web/0.log",
            )
            t0 = time.perf_counter()
            ran = await client.runtime.RunPodSandbox(
                api_pb2.RunPodSandboxRequest(config=sandbox), timeout=120
            )
            t1 = time.perf_counter()
            try:
                created = await client.runtime.CreateContainer(
                    api_pb2.CreateContainerRequest(
                        pod_sandbox_id=ran.pod_sandbox_id, config=container, sandbox_config=sandbox
                    ),
                    timeout=120,
                )
                await client.runtime.StartContainer(
                    api_pb2.StartContainerRequest(container_id=created.container_id), timeout=120
                )
                t2 = time.perf_counter()
            finally:
                await _remove(client, ran.pod_sandbox_id)
            sandbox_ms.append((t1 - t0) * 1000)
            create_start_ms.append((t2 - t1) * 1000)
            pod_ms.append((t2 - t0) * 1000)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
        if own_parent:
            remove_cgroups(parent)
    return {
        "n": n,
        "run_pod_sandbox_ms": statistics.median(sandbox_ms),
        "create_start_ms": statistics.median(create_start_ms),
        "pod_start_ms": statistics.median(pod_ms),
    }


async def _remove(client: RuntimeClient, sandbox_id: str) -> None:
    await client.runtime.StopPodSandbox(
        api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120
    )
    await client.runtime.RemovePodSandbox(
        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=120
    )


async def _run(n: int) -> dict:
    async with running_containerd() as env:
        await env.enable_network()
        return await measure_cri_floor(env.client, n, cgroup_parent=env.cgroup_parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=5, help="pods to start (default %(default)s)")
    args = parser.parse_args()
    result = asyncio.run(_run(args.n))
    print(f"CRI floor, median of {result['n']} pods (containerd + runc, CNI bridge):")
    labels = {
        "run_pod_sandbox_ms": "RunPodSandbox",
        "create_start_ms": "CreateContainer+StartContainer",
        "pod_start_ms": "whole pod start",
    }
    for key, label in labels.items():
        print(f"  {label:32} {result[key]:7.1f} ms   (anchor {ANCHOR_MS[key]:.0f} ms)")


if __name__ == "__main__":
    main()
