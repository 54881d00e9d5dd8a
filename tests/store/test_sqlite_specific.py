"""What only the SQLite backend has to show: crash safety, one owner, boundedness."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kubik.store import errors, sqlite

# A writer that creates keys from 8 concurrent tasks and prints each key only
# after the store acknowledged it.
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from kubik.store.sqlite import SqliteStore

    async def main(path):
        store = await SqliteStore.open(path)
        async def task(n):
            for i in range(100000):
                key = f"/registry/crash/{n}-{i}"
                await store.create(key, key.encode())
                print(key, flush=True)
        await asyncio.gather(*(task(n) for n in range(8)))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_acknowledged_writes_survive_kill_9(tmp_path):
    path = str(tmp_path / "state.db")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) == 1500:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(acked) == 1500

    async def check():
        async with await sqlite.SqliteStore.open(path) as store:
            for key in acked:
                kv = await store.get(key)
                assert kv is not None, f"acknowledged write {key} was lost"
                assert kv.value == key.encode()
            listed = await store.list("/registry/crash/")
            assert listed.count >= len(acked)
            assert listed.revision == await store.current_revision()

    asyncio.run(check())


async def test_a_second_process_cannot_open_the_same_file(tmp_path):
    path = str(tmp_path / "state.db")
    async with await sqlite.SqliteStore.open(path):
        other = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio,sys; from kubik.store.sqlite import SqliteStore;"
            "asyncio.run(SqliteStore.open(sys.argv[1]))",
            path,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await other.communicate()
        assert other.returncode != 0
        assert b"in use by another process" in stderr


async def test_revisions_continue_after_reopen(tmp_path):
    path = str(tmp_path / "state.db")
    async with await sqlite.SqliteStore.open(path) as store:
        kv = await store.create("/registry/a/x", b"1")
        await store.delete("/registry/a/x")
        last = await store.current_revision()
        await store.compact(last)
    async with await sqlite.SqliteStore.open(path) as store:
        assert await store.current_revision() == last
        assert await store.compacted_revision() == last
        again = await store.create("/registry/a/x", b"2")
        assert again.mod_revision > last > kv.mod_revision


async def test_no_database_is_locked_under_concurrent_load(tmp_path):
    async with await sqlite.SqliteStore.open(str(tmp_path / "state.db")) as store:

        async def writer(n):
            for i in range(100):
                await store.create(f"/registry/load/{n}/{i}", b"x" * 512)

        async def reader():
            for _ in range(100):
                await store.list("/registry/load/", limit=50)

        await asyncio.gather(*(writer(n) for n in range(32)), *(reader() for _ in range(8)))
        assert await store.count("/registry/load/") == 3200


async def test_compaction_keeps_the_file_bounded(tmp_path):
    path = str(tmp_path / "state.db")
    async with await sqlite.SqliteStore.open(path) as store:
        for i in range(50):
            await store.create(f"/registry/churn/{i}", b"x" * 4096)
        sizes = []
        for _round in range(6):
            for i in range(50):
                await store.guaranteed_update(f"/registry/churn/{i}", lambda kv: b"y" * 4096)
            await store.compact(await store.current_revision())
            sizes.append(_size_on_disk(path))
        # after the first rounds the file stops growing: freed pages are reused
        assert max(sizes[2:]) <= sizes[1] * 1.1, sizes
        async with asyncio.timeout(5):
            listed = await store.list("/registry/churn/")
        assert len(listed.kvs) == 50 and all(kv.value == b"y" * 4096 for kv in listed.kvs)


def _size_on_disk(path: str) -> int:
    return os.path.getsize(path) + os.path.getsize(path + "-wal")


async def test_list_at_latest_revision_uses_the_index(tmp_path):
    """The query plan of a prefix list is an index range, never a full scan."""
    path = str(tmp_path / "state.db")
    async with await sqlite.SqliteStore.open(path) as store:
        await store.create("/registry/pods/default/a", b"x")
    import sqlite3

    conn = sqlite3.connect(path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT key FROM current WHERE key >= ? AND key < ? ORDER BY key",
        ("/registry/pods/", "/registry/pods0"),
    ).fetchall()
    conn.close()
    detail = " ".join(row[-1] for row in plan)
    assert "SEARCH" in detail and "SCAN" not in detail, detail


async def test_closed_store_refuses_work(tmp_path):
    store = await sqlite.SqliteStore.open(str(tmp_path / "state.db"))
    await store.close()
    with pytest.raises(errors.StoreUnavailableError):
        await store.get("/registry/x")
    with pytest.raises(errors.StoreUnavailableError):
        await store.create("/registry/x", b"1")
