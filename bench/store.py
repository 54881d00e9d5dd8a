"""Store benchmark: kubik's store against the raw floor of the same machine.

For each backend (embedded SQLite; a real 1-member etcd started here on
127.0.0.1), in one run:
- CAS update throughput and p50/p99 latency at concurrency 1 and 64 (each
  worker updates its own key, guarded by the mod_revision it last saw);
- the raw floor beside it: plain SQLite inserts with the same durability
  (WAL, synchronous=FULL, one transaction per insert) and plain etcd puts
  through the same gRPC client, at the same concurrency;
- a list of 10k and of 100k keys;
- watch delivery latency p50/p99 with 100 watchers.

Usage: .venv/bin/python bench/store.py [--backends sqlite,etcd] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubik.store import sqlite as sqlite_backend  # noqa: E402
from kubik.store.interface import EventType, Store  # noqa: E402

VALUE = b"x" * 1024  # about the size of a small pod object


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def report(name: str, ops: int, seconds: float, latencies: list[float], floor: float | None = None):
    rate = ops / seconds
    line = (
        f"  {name:<34} {rate:>9.0f} ops/s   p50 {percentile(latencies, 50) * 1000:7.2f} ms"
        f"   p99 {percentile(latencies, 99) * 1000:7.2f} ms"
    )
    if floor:
        line += f"   ratio to raw floor {rate / floor:5.2f}"
    print(line, flush=True)
    return rate


async def timed_workers(
    concurrency: int, seconds: float, op: Callable[[int], Awaitable[None]]
) -> tuple[int, float, list[float]]:
    """Run `op(worker)` in a loop on `concurrency` workers for `seconds`."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await op(n)
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return len(latencies), time.perf_counter() - started, latencies


async def bench_cas(store: Store, prefix: str, concurrency: int, seconds: float):
    revisions = {}
    for n in range(concurrency):
        revisions[n] = (await store.create(f"{prefix}cas-{concurrency}-{n}", VALUE)).mod_revision

    async def op(n: int) -> None:
        kv = await store.update(
            f"{prefix}cas-{concurrency}-{n}", VALUE, expected_mod_revision=revisions[n]
        )
        revisions[n] = kv.mod_revision

    return await timed_workers(concurrency, seconds, op)


def raw_sqlite_floor(concurrency: int, seconds: float) -> tuple[int, float, list[float]]:
    """Plain inserts, one transaction each, WAL + synchronous=FULL, one thread per client."""
    directory = tempfile.mkdtemp(prefix="kubik-bench-raw-")
    path = os.path.join(directory, "raw.db")
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    setup.close()
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        conn.execute("PRAGMA synchronous=FULL")
        i = 0
        mine = []
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            conn.execute("INSERT INTO kv VALUES (?, ?)", (f"/raw/{n}/{i}", VALUE))
            mine.append(time.perf_counter() - start)
            i += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), time.perf_counter() - started, latencies


async def fill(store: Store, prefix: str, count: int) -> None:
    async def worker(n: int) -> None:
        for i in range(n, count, 64):
            await store.create(f"{prefix}{i:07d}", VALUE)

    await asyncio.gather(*(worker(n) for n in range(64)))


async def bench_list(store: Store, prefix: str, count: int) -> float:
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        result = await store.list(prefix)
        timings.append(time.perf_counter() - start)
        assert len(result.kvs) == count, (len(result.kvs), count)
    return statistics.median(timings)


async def bench_watch(store: Store, prefix: str, watchers: int, writes: int) -> list[float]:
    """Latency from a write's acknowledgement start to each watcher receiving it."""
    sent: dict[int, float] = {}
    latencies: list[float] = []
    start_revision = await store.current_revision()
    ready = 0
    all_ready = asyncio.Event()

    async def watcher() -> None:
        nonlocal ready
        seen = 0
        watch = store.watch(prefix, from_revision=start_revision, progress_interval=0.2)
        try:
            async for event in watch:
                if event.type is EventType.PROGRESS:
                    if not all_ready.is_set():
                        ready += 1
                        if ready == watchers:
                            all_ready.set()
                    continue
                latencies.append(time.perf_counter() - sent[int(event.kv.value)])
                seen += 1
                if seen == writes:
                    return
        finally:
            await watch.aclose()

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    key = f"{prefix}watched"
    sent[-1] = time.perf_counter()
    kv = await store.create(key, b"-1")
    for i in range(writes - 1):
        await asyncio.sleep(0.01)  # a steady 100 writes/s, not a burst
        sent[i] = time.perf_counter()
        kv = await store.update(key, str(i).encode(), expected_mod_revision=kv.mod_revision)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies


async def run_backend(name: str, store: Store, raw_floor, args) -> None:
    prefix = f"/registry/bench-{int(time.time())}/"
    print(f"\n== {name} ==", flush=True)
    for concurrency in (1, 64):
        raw_ops, raw_seconds, raw_latencies = await raw_floor(concurrency, args.seconds)
        floor = report(f"raw floor, concurrency {concurrency}", raw_ops, raw_seconds, raw_latencies)
        ops, seconds, latencies = await bench_cas(store, prefix, concurrency, args.seconds)
        report(f"kubik CAS update, concurrency {concurrency}", ops, seconds, latencies, floor)
    for count in (10_000, 100_000):
        list_prefix = f"{prefix}list{count}/"
        start = time.perf_counter()
        await fill(store, list_prefix, count)
        filled = time.perf_counter() - start
        took = await bench_list(store, list_prefix, count)
        print(
            f"  list of {count:>7} keys               {took * 1000:9.1f} ms"
            f"   (filled at {count / filled:.0f} creates/s, concurrency 64)",
            flush=True,
        )
    latencies = await bench_watch(store, prefix + "watch/", watchers=100, writes=100)
    print(
        f"  watch delivery, 100 watchers        p50 {percentile(latencies, 50) * 1000:7.2f} ms"
        f"   p99 {percentile(latencies, 99) * 1000:7.2f} ms   (aim: p99 < 50 ms)",
        flush=True,
    )


async def bench_sqlite(args) -> None:
    directory = tempfile.mkdtemp(prefix="kubik-bench-")
    store = await sqlite_backend.SqliteStore.open(os.path.join(directory, "state.db"))

    async def floor(concurrency: int, seconds: float):
        return await asyncio.to_thread(raw_sqlite_floor, concurrency, seconds)

    try:
        await run_backend("SQLite (embedded)", store, floor, args)
    finally:
        await store.close()


async def bench_etcd(args) -> None:
    import grpc

    from kubik.store import etcd
    from kubik.store.etcdpb import etcd_pb2, etcd_pb2_grpc
    from tests.support.etcd import EtcdCluster

    cluster = EtcdCluster(size=1, base_dir=Path(tempfile.mkdtemp(prefix="kubik-bench-etcd-")))
    cluster.start()
    store = await etcd.EtcdStore.connect(cluster.endpoints)
    try:
        host, port = cluster.endpoints[0]
        channel = grpc.aio.insecure_channel(f"{host}:{port}")
        kv_stub = etcd_pb2_grpc.KVStub(channel)

        async def floor(concurrency: int, seconds: float):
            """Plain etcd puts (no compare) through the same generated gRPC stubs."""
            counter = iter(range(10**9))

            async def op(n: int) -> None:
                key = f"/raw/{n}/{next(counter)}".encode()
                await kv_stub.Put(etcd_pb2.PutRequest(key=key, value=VALUE))

            return await timed_workers(concurrency, seconds, op)

        await run_backend("etcd 3.4 (1 member, 127.0.0.1)", store, floor, args)
    finally:
        await channel.close()
        await store.close()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput figure")
    args = parser.parse_args()
    print("Anchors: etcd's own guide (3 x 8 vCPU): 583 writes/s at 1.6 ms with 1 client;")
    print("Kubernetes SLO: mutating call p99 <= 1 s. This machine: 2 vCPU.", flush=True)
    for backend in args.backends.split(","):
        asyncio.run({"sqlite": bench_sqlite, "etcd": bench_etcd}[backend](args))


if __name__ == "__main__":
    main()
