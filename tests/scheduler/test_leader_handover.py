"""Two `kubik scheduler` processes against one server: the standby takes over a killed leader.

The leader is killed with SIGKILL (no lease release); once the lease
expires the standby leads and schedules the pods created meanwhile. Every
pod ends up bound exactly once, and the nodes are filled exactly to
capacity, so the new leader accounted for the pods the old one bound.
Each scheduler serves /healthz and /metrics on a port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kubik.api import builtin
from tests.scheduler.objects import node, pod
from tests.support.cluster import KubikServer
from tests.support.polling import eventually
from tests.support.process import terminate

NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
EVENTS = builtin.lookup("", "v1", "events")
NAMESPACES = builtin.lookup("", "v1", "namespaces")
LEADER = "became the leader of kube-scheduler"
NODE_COUNT = 4
PODS_PER_WAVE = 20  # two waves of 200m pods fill 4 nodes of 2 CPUs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("handover"),
        extra_args=["--disable-scheduler", "--disable-controller-manager"],
    ).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def namespace(client):
    """The module's name has an underscore, which the shared fixture would put in the name."""
    await client.create(NAMESPACES, {"metadata": {"name": "handover"}})
    return "handover"


class SchedulerProcess:
    def __init__(self, kubeconfig: str, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubik.cli.main", "scheduler"]
                + ["--kubeconfig", kubeconfig, "--metrics-address", "127.0.0.1:0"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def leads(self) -> bool:
        return LEADER in self.log()

    async def metrics_url(self) -> str:
        """Where it serves /healthz and /metrics, once it has said so."""

        async def logged():
            return re.search(r"/metrics on (127\.0\.0\.1:\d+)", self.log())

        match = await eventually(logged, "the scheduler to serve its metrics", seconds=60)
        return f"http://{match.group(1)}"

    def stop(self) -> None:
        terminate(self.proc)


@pytest.fixture
def schedulers(server, tmp_path):
    started = [SchedulerProcess(server.kubeconfig, tmp_path / f"scheduler-{i}.log") for i in (0, 1)]
    yield started
    for scheduler in started:
        scheduler.stop()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.read().decode()


async def create_wave(client, namespace: str, wave: int) -> None:
    for i in range(PODS_PER_WAVE):
        obj = pod(f"w{wave}-{i:02}", requests={"cpu": "200m"})
        obj["metadata"] = {"name": obj["metadata"]["name"], "namespace": namespace}
        obj.pop("status")
        await client.create(PODS, obj)


async def all_bound(client, namespace: str) -> dict[str, str] | None:
    items = (await client.list(PODS, namespace))["items"]
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in items}
    if len(placed) == 2 * PODS_PER_WAVE and all(placed.values()):
        return placed
    return None


async def test_the_standby_takes_over_from_a_killed_leader(client, namespace, schedulers):
    for i in range(NODE_COUNT):
        await client.create(NODES, node(f"{namespace}-{i}", cpu="2"))

    async def a_leader():
        leaders = [s for s in schedulers if s.leads()]
        return leaders[0] if len(leaders) == 1 else None

    leader = await eventually(a_leader, "one scheduler to lead", seconds=60)
    standby = next(s for s in schedulers if s is not leader)
    assert fetch(await standby.metrics_url() + "/healthz") == "ok"

    version = (await client.list(PODS, namespace))["metadata"]["resourceVersion"]
    nodes_seen: dict[str, set[str]] = {}

    async def watch() -> None:
        async for kind, obj in client.watch(
            PODS, namespace, resource_version=version, timeout_seconds=600
        ):
            if kind != "BOOKMARK" and obj["spec"].get("nodeName"):
                nodes_seen.setdefault(obj["metadata"]["name"], set()).add(obj["spec"]["nodeName"])

    watcher = asyncio.create_task(watch())
    try:
        await create_wave(client, namespace, 1)

        async def first_wave_bound():
            return len(nodes_seen) >= PODS_PER_WAVE

        await eventually(first_wave_bound, "the leader to bind the first wave", seconds=60)
        os.kill(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait(timeout=10)
        await create_wave(client, namespace, 2)
        placed = await eventually(
            lambda: all_bound(client, namespace), "the standby to bind the second wave", 120
        )
        assert standby.leads(), standby.log()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    assert all(len(names) == 1 for names in nodes_seen.values()), nodes_seen
    per_node: dict[str, int] = {}
    for node_name in placed.values():
        per_node[node_name] = per_node.get(node_name, 0) + 1
    assert sorted(per_node.values()) == [10] * NODE_COUNT  # 10 × 200m = 2 CPUs each, no more
    scheduled: dict[str, int] = {}
    for item in (await client.list(EVENTS, namespace))["items"]:
        if item["reason"] == "Scheduled":
            name = item["involvedObject"]["name"]
            scheduled[name] = scheduled.get(name, 0) + item.get("count", 1)
    assert all(count == 1 for count in scheduled.values()), scheduled
    metrics = fetch(await standby.metrics_url() + "/metrics")
    match = re.search(
        r'scheduler_schedule_attempts_total\{profile="default-scheduler",result="scheduled"\} '
        r"(\d+)",
        metrics,
    )
    assert match and int(match.group(1)) >= PODS_PER_WAVE, metrics
    assert 'scheduler_pending_pods{queue="active"} 0.0' in metrics
    assert "scheduler_pod_scheduling_sli_duration_seconds_bucket" in metrics
