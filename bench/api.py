"""API server benchmark: a real `kubik server` over HTTPS, driven by kubik's client.

In one run, per backend (embedded SQLite; a 1-member etcd started here):
- pod creates: throughput and p50/p99 at concurrency 1, 16 and 64;
- mutating p99 at a steady 200 creates/s (upstream's SLO: 1 s);
- get p99; list of 10k pods as JSON and as a Table;
- watch delivery p50/p99 with 100 and with 1000 watchers;
- the server's RSS idle and after the run;
and beside them the store's raw CAS throughput at concurrency 64, measured
in the same run (bench/store.py's workload on a fresh store).

Usage: .venv/bin/python bench/api.py [--backends sqlite,etcd] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.proc import rss_mb  # noqa: E402
from bench.store import bench_cas, percentile  # noqa: E402
from kubik.client import kubeconfig  # noqa: E402
from kubik.client.transport import Transport  # noqa: E402
from kubik.store import sqlite as sqlite_backend  # noqa: E402
from tests.support.cluster import KubikServer  # noqa: E402

JSON = [("Content-Type", "application/json"), ("Accept", "application/json")]
TABLE = [("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")]


def pod(name: str) -> bytes:
    return orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "web",
                        "image": "kubik.local/busybox:latest",
                        "command": ["httpd", "-f", "-p", "8080"],
                        "ports": [{"containerPort": 8080}],
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }
                ]
            },
        }
    )


def line(name: str, figure: str, anchor: str = "") -> None:
    print(f"  {name:<44} {figure:<34} {anchor}", flush=True)


async def create_pods(
    api: Transport, namespace: str, names: list[str], concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(names))

    async def worker() -> None:
        while queue:
            name = queue.pop()
            start = time.perf_counter()
            answer = await api.request(
                "POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(name), headers=JSON
            )
            latencies.append(time.perf_counter() - start)
            if answer.status != 201:
                raise RuntimeError(f"create {name}: {answer.status} {answer.body[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def ensure_namespace(api: Transport, name: str) -> None:
    await api.request(
        "POST",
        "/api/v1/namespaces",
        headers=JSON,
        body=orjson.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )


async def paced_creates(api: Transport, namespace: str, rate: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    tasks = []

    async def one(name: str) -> None:
        start = time.perf_counter()
        await api.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(name), headers=JSON
        )
        latencies.append(time.perf_counter() - start)

    for i in range(int(rate * seconds)):
        tasks.append(asyncio.create_task(one(f"paced-{i}")))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return latencies


async def watch_delivery(api: Transport, namespace: str, watchers: int, writes: int) -> list[float]:
    await ensure_namespace(api, namespace)
    answer = await api.request("GET", f"/api/v1/namespaces/{namespace}/configmaps")
    version = orjson.loads(answer.body)["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    opened = 0
    all_open = asyncio.Event()

    async def watcher() -> None:
        nonlocal opened
        path = (
            f"/api/v1/namespaces/{namespace}/configmaps?watch=true&resourceVersion={version}"
            "&allowWatchBookmarks=true"
        )
        stream = api.stream_lines(path)
        seen = 0
        opened += 1
        if opened == watchers:
            all_open.set()
        async for raw in stream:
            event = orjson.loads(raw)
            name = event["object"]["metadata"].get("name")
            if name in sent:
                latencies.append(time.perf_counter() - sent[name])
                seen += 1
                if seen == writes:
                    await stream.aclose()
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.wait_for(all_open.wait(), 120)
    await asyncio.sleep(1.0)  # every stream has reached the server
    for i in range(writes):
        name = f"w{i}"
        sent[name] = time.perf_counter()
        await api.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            headers=JSON,
            body=orjson.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {"i": str(i)},
                }
            ),
        )
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies


async def raw_store_floor(seconds: float) -> float:
    directory = tempfile.mkdtemp(prefix="kubik-bench-floor-")
    store = await sqlite_backend.SqliteStore.open(os.path.join(directory, "state.db"))
    try:
        ops, took, _ = await bench_cas(store, "/registry/floor/", 64, seconds)
    finally:
        await store.close()
    return ops / took


async def run(server: KubikServer, args) -> None:
    config = kubeconfig.load(server.kubeconfig)
    api = Transport(config, pool_size=128)
    pid = server.proc.pid
    line("server RSS, idle", f"{rss_mb(pid):.0f} MB", "(aim < 150 MB; k3s server: 500+ MB)")
    try:
        for concurrency in (1, 16, 64):
            namespace = f"c{concurrency}"
            await ensure_namespace(api, namespace)
            count = int(300 if concurrency == 1 else 200 * concurrency**0.5 * args.seconds / 5)
            names = [f"p{i}" for i in range(count)]
            took, latencies = await create_pods(api, namespace, names, concurrency)
            line(
                f"pod create, concurrency {concurrency}",
                f"{len(names) / took:7.0f}/s  p50 {percentile(latencies, 50) * 1000:6.1f} ms"
                f"  p99 {percentile(latencies, 99) * 1000:6.1f} ms",
                "(aim >= 1000/s at 64)" if concurrency == 64 else "",
            )
        await ensure_namespace(api, "paced")
        latencies = await paced_creates(api, "paced", 200, args.seconds)
        line(
            "mutating at 200 creates/s",
            f"p50 {percentile(latencies, 50) * 1000:.1f} ms"
            f"  p99 {percentile(latencies, 99) * 1000:.1f} ms",
            "(aim < 50 ms; SLO 1 s)",
        )
        gets = []
        for _ in range(500):
            start = time.perf_counter()
            await api.request("GET", "/api/v1/namespaces/c1/pods/p0")
            gets.append(time.perf_counter() - start)
        line(
            "get one pod",
            f"p50 {percentile(gets, 50) * 1000:.2f} ms  p99 {percentile(gets, 99) * 1000:.2f} ms",
            "(SLO 1 s)",
        )
        await ensure_namespace(api, "list")
        await create_pods(api, "list", [f"l{i}" for i in range(10_000)], 64)
        for name, headers in (("JSON", []), ("Table", TABLE)):
            timings = []
            for _ in range(3):
                start = time.perf_counter()
                answer = await api.request("GET", "/api/v1/namespaces/list/pods", headers=headers)
                timings.append(time.perf_counter() - start)
                assert answer.status == 200
            line(
                f"list 10k pods ({name})",
                f"{statistics.median(timings) * 1000:.0f} ms ({len(answer.body) / 1e6:.1f} MB)",
                "(aim < 1 s; SLO 5 s)",
            )
        for watchers in (100, 1000):
            latencies = await watch_delivery(api, f"watch{watchers}", watchers, 20)
            line(
                f"watch delivery, {watchers} watchers",
                f"p50 {percentile(latencies, 50) * 1000:.1f} ms"
                f"  p99 {percentile(latencies, 99) * 1000:.1f} ms",
            )
        line("server RSS, after the run", f"{rss_mb(pid):.0f} MB")
    finally:
        await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    floor = asyncio.run(raw_store_floor(3.0))
    print(f"store raw CAS floor (SQLite, concurrency 64, same run): {floor:.0f} writes/s")
    for backend in args.backends.split(","):
        data_dir = Path(tempfile.mkdtemp(prefix="kubik-bench-api-"))
        cluster = None
        endpoint = ""
        if backend == "etcd":
            from tests.support.etcd import EtcdCluster

            cluster = EtcdCluster(size=1, base_dir=data_dir / "etcd")
            cluster.start()
            endpoint = "etcd://" + ",".join(f"{h}:{p}" for h, p in cluster.endpoints)
        server = KubikServer(data_dir / "server", datastore_endpoint=endpoint).start()
        print(f"\n== kubik server on {backend} ==", flush=True)
        try:
            asyncio.run(run(server, args))
        finally:
            server.stop()
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
