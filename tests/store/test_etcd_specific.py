"""What only the etcd backend has: connecting, member crashes, etcd-side limits.

The crash tests start their own 3-member clusters (members get killed, so the
shared `etcd3` fixture is left alone); the rest use the shared `etcd1`.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import grpc
import pytest

from kubik.store import errors, open_store
from kubik.store.etcd import EtcdStore
from kubik.store.etcdpb import etcd_pb2 as pb
from kubik.store.etcdpb import etcd_pb2_grpc as rpc
from kubik.store.interface import MAX_VALUE_BYTES, EventType
from tests.support.etcd import EtcdCluster


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def cluster3(tmp_path):
    """A private 3-member cluster that a test may crash members of."""
    cluster = EtcdCluster(size=3, base_dir=tmp_path / "etcd")
    await asyncio.to_thread(cluster.start)
    yield cluster
    await asyncio.to_thread(cluster.stop)


@pytest.fixture
async def etcd_store(etcd1):
    store = await EtcdStore.connect(etcd1.endpoints)
    yield store
    await store.close()


@pytest.fixture
def prefix():
    return f"/registry/etcd-{uuid.uuid4().hex[:12]}/"


# ---------------------------------------------------------------- connecting


async def test_unreachable_endpoint_fails_fast_naming_it():
    port = _unused_port()
    started = time.monotonic()
    with pytest.raises(errors.StoreUnavailableError) as raised:
        await EtcdStore.connect([("127.0.0.1", port)], timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert f"127.0.0.1:{port}" in str(raised.value)


async def test_unresolvable_host_is_unavailable():
    with pytest.raises(errors.StoreUnavailableError, match="no-such-host.invalid"):
        await EtcdStore.connect([("no-such-host.invalid", 2379)], timeout=1.0)


async def test_open_store_from_endpoint_string_resolves_names(etcd1, tmp_path, prefix):
    port = etcd1.endpoints[0][1]
    store = await open_store(f"etcd://localhost:{port}", data_dir=str(tmp_path))
    try:
        assert isinstance(store, EtcdStore)
        written = await store.create(prefix + "k", b"v")
        assert await store.get(prefix + "k") == written
    finally:
        await store.close()


async def test_closed_store_refuses_calls_and_ends_watches(etcd1, prefix):
    store = await EtcdStore.connect(etcd1.endpoints)
    watch = store.watch(prefix, from_revision=await store.current_revision())
    pending = asyncio.ensure_future(anext(watch, None))
    await asyncio.sleep(0.3)
    await store.close()
    assert await asyncio.wait_for(pending, 5) is None
    with pytest.raises(errors.StoreUnavailableError):
        await store.get(prefix + "k")


# ------------------------------------------------------------ etcd specifics


async def test_value_of_exactly_the_limit_fits(etcd_store, prefix):
    """Needs etcd's --max-request-bytes above 1.5 MiB (see tests/support/etcd.py)."""
    written = await etcd_store.create(prefix + "max", b"m" * MAX_VALUE_BYTES)
    assert len((await etcd_store.get(prefix + "max")).value) == MAX_VALUE_BYTES
    assert written.mod_revision == written.create_revision


async def test_paged_list_counts_the_whole_prefix(etcd_store, prefix):
    for i in range(5):
        await etcd_store.create(f"{prefix}k{i}", b"x")
    first = await etcd_store.list(prefix, limit=2)
    second = await etcd_store.list(
        prefix, revision=first.revision, limit=2, start=first.kvs[-1].key + "\x00"
    )
    assert [kv.key for kv in second.kvs] == [prefix + "k2", prefix + "k3"]
    assert second.count == 5 and second.more


async def test_compacted_revision_is_found_by_another_client(etcd1, etcd_store, prefix):
    await etcd_store.create(prefix + "k", b"x")
    target = await etcd_store.current_revision()
    await etcd_store.compact(target)
    other = await EtcdStore.connect(etcd1.endpoints)  # knows nothing of that compaction
    try:
        assert await other.compacted_revision() == target
        with pytest.raises(errors.CompactedError) as raised:
            await other.get(prefix + "k", revision=target - 1)
        assert raised.value.compacted == target
    finally:
        await other.close()


async def test_compacting_the_future_is_refused(etcd_store):
    with pytest.raises(errors.FutureRevisionError):
        await etcd_store.compact(await etcd_store.current_revision() + 1000)


async def test_unknown_lease_is_not_found(etcd_store, prefix):
    with pytest.raises(errors.LeaseNotFoundError):
        await etcd_store.keepalive_lease(123456789)
    with pytest.raises(errors.LeaseNotFoundError):
        await etcd_store.revoke_lease(123456789)
    with pytest.raises(errors.LeaseNotFoundError):
        await etcd_store.create(prefix + "k", b"x", lease=123456789)


# ------------------------------------------------------------ member crashes


async def _write_while(
    store: EtcdStore, prefix: str, total: int, crash_after: int, crash
) -> dict[str, int]:
    """Create `total` keys one by one; run `crash` (in a thread) once `crash_after`
    are acknowledged, while the writes go on. Returns key -> acked mod_revision."""
    acked: dict[str, int] = {}
    crashing = None
    for i in range(total):
        if i == crash_after:
            crashing = asyncio.ensure_future(asyncio.to_thread(crash))
        key = f"{prefix}{i:04d}"
        acked[key] = (await store.create(key, b"value-%d" % i)).mod_revision
    await crashing
    return acked


async def _assert_all_readable(store: EtcdStore, prefix: str, acked: dict[str, int]) -> None:
    listed = await store.list(prefix)
    assert {kv.key: kv.mod_revision for kv in listed.kvs} == acked
    for kv in listed.kvs:
        assert kv.value == b"value-%d" % int(kv.key.rsplit("/", 1)[1])


async def test_acknowledged_writes_survive_a_member_kill(cluster3, prefix):
    store = await EtcdStore.connect(cluster3.endpoints)
    try:
        acked = await _write_while(store, prefix, 250, 200, lambda: cluster3.kill_member(0))
        assert len(acked) == 250
        await _assert_all_readable(store, prefix, acked)
    finally:
        await store.close()

    await asyncio.to_thread(cluster3.restart_member, 0)
    restarted = await EtcdStore.connect([cluster3.endpoints[0]])
    try:
        await _assert_all_readable(restarted, prefix, acked)
    finally:
        await restarted.close()


async def test_writes_go_on_when_the_leader_dies(cluster3, prefix):
    leader = await asyncio.to_thread(_leader_index, cluster3)
    store = await EtcdStore.connect(cluster3.endpoints)
    try:
        acked = await _write_while(store, prefix, 100, 50, lambda: cluster3.kill_member(leader))
        await _assert_all_readable(store, prefix, acked)
    finally:
        await store.close()


async def test_watch_survives_member_kills(cluster3, prefix):
    """Every member is killed in turn, so whichever one serves the watch dies."""
    store = await EtcdStore.connect(cluster3.endpoints)
    try:
        start = await store.current_revision()
        seen: list[int] = []

        async def watch_all(expected: int) -> None:
            async for event in store.watch(prefix, from_revision=start, progress_interval=0.5):
                if event.type is not EventType.PROGRESS:
                    seen.append(event.revision)
                    if len(seen) == expected:
                        return

        watcher = asyncio.ensure_future(watch_all(3 * 20))
        acked = []
        for member in range(3):
            for i in range(10):
                acked.append((await store.create(f"{prefix}{member}-{i}", b"x")).mod_revision)
            await asyncio.to_thread(cluster3.kill_member, member)
            for i in range(10, 20):
                acked.append((await store.create(f"{prefix}{member}-{i}", b"x")).mod_revision)
            await asyncio.to_thread(cluster3.restart_member, member)
        await asyncio.wait_for(watcher, 60)
        assert seen == acked
    finally:
        await store.close()


def _leader_index(cluster: EtcdCluster) -> int:
    """Which member leads now, asked over etcd's Maintenance.Status."""

    async def ask() -> int:
        statuses = []
        for host, port in cluster.endpoints:
            async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
                statuses.append(
                    await rpc.MaintenanceStub(channel).Status(pb.StatusRequest(), timeout=5)
                )
        leader = statuses[0].leader
        return next(i for i, s in enumerate(statuses) if s.header.member_id == leader)

    return asyncio.run(ask())
