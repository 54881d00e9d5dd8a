"""The Summary API (`/stats/summary`): CPU, memory and disk of the node and its pods.

The shape is upstream's `stats/v1alpha1` Summary, which metrics-server and
`kubectl top` (through metrics-server) read. Container figures come from the
runtime (CRI ListContainerStats), the node's from /proc and statvfs. A CPU
rate (usageNanoCores) needs two samples: the first summary after start has
none for a container the runtime gives no rate for.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient
from kubik.kubelet.runtimestate import CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID

Object = dict[str, Any]


def _rfc3339(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _key_values(text: str) -> dict[str, int]:
    """`name value [unit]` lines (meminfo, vmstat) as a dict; meminfo's kB become bytes."""
    values = {}
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1]) * (1024 if parts[2:] == ["kB"] else 1)
    return values


def node_cpu_ns(stat: str) -> int:
    """Busy CPU time of all cores since boot, in ns, from /proc/stat's text."""
    fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    ticks = user + nice + system + irq + softirq + steal
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def node_memory(meminfo: str, vmstat: str, now_ns: int) -> Object:
    info = _key_values(meminfo)
    faults = _key_values(vmstat)
    total = info.get("MemTotal", 0)
    usage = total - info.get("MemFree", 0)
    working_set = max(usage - info.get("Inactive(file)", 0), 0)
    return {
        "time": _rfc3339(now_ns),
        "availableBytes": max(total - working_set, 0),
        "usageBytes": usage,
        "workingSetBytes": working_set,
        "rssBytes": info.get("AnonPages", 0),
        "pageFaults": faults.get("pgfault", 0),
        "majorPageFaults": faults.get("pgmajfault", 0),
    }


def filesystem(path: str, now_ns: int) -> Object:
    try:
        fs = os.statvfs(path)
    except OSError:
        return {"time": _rfc3339(now_ns)}
    return {
        "time": _rfc3339(now_ns),
        "availableBytes": fs.f_bavail * fs.f_frsize,
        "capacityBytes": fs.f_blocks * fs.f_frsize,
        "usedBytes": (fs.f_blocks - fs.f_bfree) * fs.f_frsize,
        "inodesFree": fs.f_favail,
        "inodes": fs.f_files,
        "inodesUsed": fs.f_files - fs.f_ffree,
    }


def _boot_ns(stat: str) -> int:
    for line in stat.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1_000_000_000
    return 0


class StatsProvider:
    """Builds summaries; remembers the previous CPU samples to give rates."""

    def __init__(self, runtime: RuntimeClient, node_name: str, root_dir: str = "/") -> None:
        self._runtime = runtime
        self._node_name = node_name
        self._root_dir = root_dir
        # CPU samples (time ns, usage ns) by node/pod/container: the last summary's,
        # and this one's (kept for the next; what vanished is forgotten).
        self._cpu_samples: dict[str, tuple[int, int]] = {}
        self._fresh_samples: dict[str, tuple[int, int]] = {}

    def _cpu(self, key: str, now_ns: int, usage_ns: int, rate: int | None = None) -> Object:
        previous = self._cpu_samples.get(key)
        self._fresh_samples[key] = (now_ns, usage_ns)
        if rate is None and previous is not None and now_ns > previous[0]:
            rate = max(usage_ns - previous[1], 0) * 1_000_000_000 // (now_ns - previous[0])
        cpu: Object = {"time": _rfc3339(now_ns), "usageCoreNanoSeconds": usage_ns}
        if rate is not None:
            cpu["usageNanoCores"] = rate
        return cpu

    async def summary(self) -> Object:
        now = time.time_ns()
        stat = _read("/proc/stat")
        node = {
            "nodeName": self._node_name,
            "startTime": _rfc3339(_boot_ns(stat)),
            "cpu": self._cpu("", now, node_cpu_ns(stat)) if stat else {"time": _rfc3339(now)},
            "memory": node_memory(_read("/proc/meminfo"), _read("/proc/vmstat"), now),
            "fs": filesystem(self._root_dir, now),
            "systemContainers": [],
        }
        pods = await self._pods(now)
        self._cpu_samples, self._fresh_samples = self._fresh_samples, {}
        return {"node": node, "pods": pods}

    async def _pods(self, now: int) -> list[Object]:
        runtime = self._runtime.runtime
        ready = api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)
        sandboxes = (
            await runtime.ListPodSandbox(
                api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(state=ready))
            )
        ).items
        containers = {
            c.id: c
            for c in (await runtime.ListContainers(api_pb2.ListContainersRequest())).containers
        }
        stats = (await runtime.ListContainerStats(api_pb2.ListContainerStatsRequest())).stats
        by_sandbox: dict[str, list[Object]] = {}
        for entry in stats:
            container = containers.get(entry.attributes.id)
            if container is None or container.state != api_pb2.CONTAINER_RUNNING:
                continue
            by_sandbox.setdefault(container.pod_sandbox_id, []).append(
                self._container(entry, container, now)
            )
        pods = []
        for sandbox in sandboxes:
            listed = by_sandbox.get(sandbox.id, [])
            pods.append(
                {
                    "podRef": {
                        "name": sandbox.labels.get(POD_NAME, sandbox.metadata.name),
                        "namespace": sandbox.labels.get(POD_NAMESPACE, sandbox.metadata.namespace),
                        "uid": sandbox.labels.get(POD_UID, sandbox.metadata.uid),
                    },
                    "startTime": _rfc3339(sandbox.created_at),
                    "containers": listed,
                    "cpu": self._cpu(
                        sandbox.id,
                        now,
                        sum(c["cpu"].get("usageCoreNanoSeconds", 0) for c in listed),
                    ),
                    "memory": {
                        "time": _rfc3339(now),
                        "usageBytes": sum(c["memory"].get("usageBytes", 0) for c in listed),
                        "workingSetBytes": sum(
                            c["memory"].get("workingSetBytes", 0) for c in listed
                        ),
                        "rssBytes": sum(c["memory"].get("rssBytes", 0) for c in listed),
                    },
                }
            )
        return pods

    def _container(
        self, entry: api_pb2.ContainerStats, container: api_pb2.Container, now: int
    ) -> Object:
        cpu = entry.cpu
        given_rate = cpu.usage_nano_cores.value if cpu.HasField("usage_nano_cores") else None
        memory = entry.memory
        layer = entry.writable_layer
        return {
            "name": container.labels.get(CONTAINER_NAME, container.metadata.name),
            "startTime": _rfc3339(container.created_at),
            "cpu": self._cpu(
                container.id, now, cpu.usage_core_nano_seconds.value, given_rate or None
            ),
            "memory": {
                "time": _rfc3339(memory.timestamp or now),
                "usageBytes": memory.usage_bytes.value,
                "workingSetBytes": memory.working_set_bytes.value,
                "rssBytes": memory.rss_bytes.value,
                "pageFaults": memory.page_faults.value,
                "majorPageFaults": memory.major_page_faults.value,
            },
            "rootfs": {
                "time": _rfc3339(layer.timestamp or now),
                "usedBytes": layer.used_bytes.value,
                "inodesUsed": layer.inodes_used.value,
            },
        }
