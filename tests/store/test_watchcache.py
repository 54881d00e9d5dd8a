"""The watch cache, in front of a real SqliteStore.

The store is wrapped in `CountingStore`, which counts lists and watches (to
prove resumes are served from memory) and can break or hold the cache's store
watch (to drive the cache's recovery paths).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kubik.store import errors, sqlite
from kubik.store.interface import Event, EventType
from kubik.store.watchcache import WatchCache, WatcherTooSlowError

TIMEOUT = 10.0


class CountingStore:
    """Delegates to a real store; counts list/watch calls and can disturb watches.

    `fail_next`: raised by the current store watch at its next event.
    `hold`: new store watches wait for it before they start (`holding` is
    set while one waits), so a test can write in the gap.
    """

    def __init__(self, store: sqlite.SqliteStore) -> None:
        self._store = store
        self.lists = 0
        self.watches = 0
        self.fail_next: errors.StoreError | None = None
        self.hold = asyncio.Event()
        self.hold.set()
        self.holding = asyncio.Event()
        self.watched = asyncio.Event()  # set once any watch was asked for

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def list(self, prefix: str, **kwargs):
        self.lists += 1
        return await self._store.list(prefix, **kwargs)

    def watch(self, prefix: str, **kwargs):
        self.watches += 1
        self.watched.set()
        return self._watch(prefix, **kwargs)

    async def _watch(self, prefix: str, **kwargs):
        if not self.hold.is_set():
            self.holding.set()
            await self.hold.wait()
        inner = self._store.watch(prefix, **kwargs)
        try:
            async for event in inner:
                if self.fail_next is not None:
                    failure, self.fail_next = self.fail_next, None
                    raise failure
                yield event
        finally:
            await inner.aclose()


@pytest.fixture(params=["sqlite"])
async def store(request, tmp_path):
    opened = await sqlite.SqliteStore.open(str(tmp_path / "state.db"))
    yield opened
    await opened.close()


@pytest.fixture
def prefix():
    return f"/registry/test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def counting(store):
    return CountingStore(store)


async def started(store, prefix: str, **kwargs) -> WatchCache:
    # A short store progress interval keeps idle-prefix tests quick.
    kwargs.setdefault("store_progress_interval", 0.05)
    cache = WatchCache(store, prefix, **kwargs)
    await cache.start()
    return cache


async def take(watch, count: int) -> list[Event]:
    """The next `count` non-progress events of a cache watch."""
    events = []
    async with asyncio.timeout(TIMEOUT):
        while len(events) < count:
            event = await anext(watch)
            if event.type is not EventType.PROGRESS:
                events.append(event)
    return events


async def fill(store, prefix: str, count: int, *, value: bytes = b"v") -> list:
    return [await store.create(f"{prefix}k{i:05d}", value) for i in range(count)]


# ------------------------------------------------------------------ lists and gets


async def test_initial_list_equals_store_list(store, prefix):
    await fill(store, prefix, 25)
    await store.create("/registry/elsewhere/x", b"not ours")
    cache = await started(store, prefix)
    try:
        assert cache.ready.is_set()
        expected = await store.list(prefix)
        got = await cache.list()
        assert got.kvs == expected.kvs
        assert got.revision == expected.revision == cache.revision
        assert got.count == 25 and not got.more
    finally:
        await cache.stop()


async def test_list_and_get_follow_writes(store, prefix):
    await fill(store, prefix, 5)
    cache = await started(store, prefix)
    try:
        first = await store.get(prefix + "k00000")
        updated = await store.update(
            prefix + "k00000", b"new", expected_mod_revision=first.mod_revision
        )
        await store.delete(prefix + "k00001")
        created = await store.create(prefix + "a-first", b"x")

        got = await cache.list(min_revision=created.mod_revision)
        assert cache.revision >= created.mod_revision
        assert got.kvs == (await store.list(prefix)).kvs
        assert [kv.key for kv in got.kvs][0] == prefix + "a-first"
        assert await cache.get(prefix + "k00000") == updated
        assert await cache.get(prefix + "k00001") is None
        assert await cache.get(prefix + "missing") is None
    finally:
        await cache.stop()


async def test_get_waits_for_its_revision(store, prefix):
    cache = await started(store, prefix)
    try:
        # Ask before the write lands: the read must wait rather than answer stale.
        revision = await store.current_revision() + 1
        write = asyncio.create_task(store.create(prefix + "k", b"v"))
        got = await cache.get(prefix + "k", min_revision=revision)
        assert got == await write
    finally:
        await cache.stop()


async def test_paged_list(store, prefix):
    await fill(store, prefix, 10)
    cache = await started(store, prefix)
    try:
        pages, start = [], ""
        while True:
            page = await cache.list(limit=4, start=start)
            assert page.count == 10
            pages.append([kv.key for kv in page.kvs])
            if not page.more:
                break
            start = page.kvs[-1].key + "\x00"
        assert [len(p) for p in pages] == [4, 4, 2]
        assert sum(pages, []) == [kv.key for kv in (await store.list(prefix)).kvs]
    finally:
        await cache.stop()


async def test_list_within_a_key_prefix(store, prefix):
    for ns in ("a", "b", "c"):
        for name in ("x", "y"):
            await store.create(f"{prefix}{ns}/{name}", b"v")
    cache = await started(store, prefix)
    try:
        page = await cache.list(key_prefix=prefix + "b/")
        assert [kv.key for kv in page.kvs] == [prefix + "b/x", prefix + "b/y"]
        assert page.count == 2
        page = await cache.list(key_prefix=prefix + "b/", limit=1)
        assert page.more and page.count == 2 and len(page.kvs) == 1
    finally:
        await cache.stop()


async def test_ten_thousand_keys(store, prefix):
    written = await asyncio.gather(
        *(store.create(f"{prefix}k{i:05d}", b"v") for i in range(10_000))
    )
    counting = CountingStore(store)
    cache = await started(counting, prefix)
    try:
        assert counting.lists == 10  # paged, 1000 keys a page
        everything = await cache.list()
        assert everything.count == 10_000
        assert everything.kvs == sorted(written, key=lambda kv: kv.key)
        page = await cache.list(limit=100, start=f"{prefix}k05000")
        assert page.kvs[0].key == f"{prefix}k05000" and len(page.kvs) == 100 and page.more
    finally:
        await cache.stop()


# ------------------------------------------------------------------ freshness


async def test_wait_fresh_times_out_with_future_revision(store, prefix):
    cache = await started(store, prefix, fresh_timeout=0.2)
    try:
        future = cache.revision + 100
        with pytest.raises(errors.FutureRevisionError) as raised:
            await cache.wait_fresh(future)
        assert raised.value.revision == future
        with pytest.raises(errors.FutureRevisionError):
            await cache.list(min_revision=future)
    finally:
        await cache.stop()


async def test_wait_fresh_for_a_write_elsewhere(store, prefix):
    """A quiet prefix still catches up with the store, through its progress events."""
    cache = await started(store, prefix, fresh_timeout=2.0)
    try:
        elsewhere = await store.create("/registry/elsewhere/y", b"v")
        await cache.wait_fresh(elsewhere.mod_revision)
        assert cache.revision >= elsewhere.mod_revision
    finally:
        await cache.stop()


# ------------------------------------------------------------------ watches


async def test_watch_from_zero_sends_state_then_changes(store, prefix):
    before = await fill(store, prefix, 3)
    cache = await started(store, prefix)
    watch = cache.watch(0)
    try:
        initial = await take(watch, 3)
        assert [e.type for e in initial] == [EventType.CREATE] * 3
        assert [e.kv for e in initial] == before  # real mod_revisions
        assert {e.revision for e in initial} == {cache.revision}

        created = await store.create(prefix + "new", b"1")
        updated = await store.update(
            prefix + "new", b"2", expected_mod_revision=created.mod_revision
        )
        deleted = await store.delete(prefix + "k00000")
        live = await take(watch, 3)
        assert [(e.type, e.revision) for e in live] == [
            (EventType.CREATE, created.mod_revision),
            (EventType.UPDATE, updated.mod_revision),
            (EventType.DELETE, live[2].revision),
        ]
        assert live[1].kv == updated and live[1].prev == created
        assert live[2].prev == deleted and live[2].kv.key == prefix + "k00000"
    finally:
        await watch.aclose()
        await cache.stop()


async def test_resume_inside_window_is_served_from_memory(counting, store, prefix):
    cache = await started(counting, prefix)
    try:
        await asyncio.wait_for(counting.watched.wait(), TIMEOUT)  # the cache's own watch
        lists = counting.lists
        written = await fill(store, prefix, 10)
        await cache.wait_fresh(written[-1].mod_revision)

        resume_at = written[3].mod_revision
        watch = cache.watch(resume_at)
        replayed = await take(watch, 6)
        assert [e.kv for e in replayed] == written[4:]
        # The replay→live switch: nothing lost, nothing twice.
        later = await fill(store, prefix + "later-", 3)
        live = await take(watch, 3)
        assert [e.kv for e in live] == later
        revisions = [e.revision for e in replayed + live]
        assert revisions == sorted(set(revisions))
        await watch.aclose()

        assert (counting.lists, counting.watches) == (lists, 1)
    finally:
        await cache.stop()


async def test_resume_before_window_is_compacted(store, prefix):
    cache = await started(store, prefix, window=5)
    try:
        written = await fill(store, prefix, 10)
        await cache.wait_fresh(written[-1].mod_revision)
        floor = written[4].mod_revision  # the newest event pushed out of the window

        with pytest.raises(errors.CompactedError) as raised:
            await anext(cache.watch(floor - 1))
        assert raised.value.revision == floor - 1
        assert raised.value.compacted == floor

        watch = cache.watch(floor)
        assert [e.kv for e in await take(watch, 5)] == written[5:]
        await watch.aclose()
    finally:
        await cache.stop()


async def test_watch_from_the_future_waits_for_it(store, prefix):
    cache = await started(store, prefix)
    try:
        target = cache.revision + 1
        watch = cache.watch(target)
        first = asyncio.create_task(anext(watch))
        await store.create(prefix + "a", b"1")  # revision target: not sent (not after it)
        second = await store.create(prefix + "b", b"2")
        event = await asyncio.wait_for(first, TIMEOUT)
        assert event.kv == second
        await watch.aclose()
    finally:
        await cache.stop()


async def test_watch_within_a_key_prefix(store, prefix):
    cache = await started(store, prefix)
    watch = cache.watch(cache.revision, key_prefix=prefix + "b/")
    try:
        await store.create(prefix + "a/1", b"v")
        wanted = await store.create(prefix + "b/1", b"v")
        await store.create(prefix + "c/1", b"v")
        assert [e.kv for e in await take(watch, 1)] == [wanted]
    finally:
        await watch.aclose()
        await cache.stop()


async def test_idle_watcher_gets_progress(store, prefix):
    written = await store.create(prefix + "a", b"v")
    cache = await started(store, prefix)
    watch = cache.watch(written.mod_revision, progress_interval=0.05)
    try:
        event = await asyncio.wait_for(anext(watch), TIMEOUT)
        assert event.type is EventType.PROGRESS
        assert event.revision >= written.mod_revision
    finally:
        await watch.aclose()
        await cache.stop()


async def test_slow_watcher_is_dropped_and_others_continue(store, prefix):
    await store.create(prefix + "a-seed", b"v")
    cache = await started(store, prefix, watcher_buffer=5)
    slow = cache.watch(0)
    fast = cache.watch(0)
    try:
        await take(slow, 1)  # registered; it reads nothing more for now
        await take(fast, 1)

        async def keep_up() -> list[Event]:
            return await take(fast, 20)

        reader = asyncio.create_task(keep_up())
        written = await fill(store, prefix, 20)
        assert [e.kv for e in await reader] == written

        # The slow one still gets what was buffered, then the error.
        assert [e.kv for e in await take(slow, 5)] == written[:5]
        with pytest.raises(WatcherTooSlowError):
            await anext(slow)
        # It can resume from its last event: still in the window.
        resumed = cache.watch(written[4].mod_revision)
        assert [e.kv for e in await take(resumed, 15)] == written[5:]
        await resumed.aclose()
    finally:
        await slow.aclose()
        await fast.aclose()
        await cache.stop()


async def test_stop_ends_watches(store, prefix):
    cache = await started(store, prefix)
    watch = cache.watch(cache.revision)
    pending = asyncio.create_task(anext(watch))
    await asyncio.sleep(0.05)
    await cache.stop()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, TIMEOUT)


# ------------------------------------------------------------------ recovery


async def break_store_watch(counting: CountingStore) -> None:
    """Fail the cache's store watch and catch its retry before it starts."""
    counting.hold.clear()
    counting.holding.clear()
    counting.fail_next = errors.StoreUnavailableError("injected")
    async with asyncio.timeout(TIMEOUT):
        await counting.holding.wait()


async def test_broken_store_watch_resumes_without_relist(counting, store, prefix):
    cache = await started(counting, prefix)
    watch = cache.watch(0)
    try:
        before = await fill(store, prefix + "a-", 2)
        assert [e.kv for e in await take(watch, 2)] == before
        lists = counting.lists
        await break_store_watch(counting)
        written = await fill(store, prefix, 3)  # while the cache is not watching
        counting.hold.set()
        # The store watch resumes one revision back (the last one might have
        # been cut short); what the cache already had is not sent again.
        assert [e.kv for e in await take(watch, 3)] == written
        last = await store.create(prefix + "z", b"v")
        assert [e.kv for e in await take(watch, 1)] == [last]
        assert counting.lists == lists
        assert (await cache.list()).kvs == before + written + [last]
    finally:
        await watch.aclose()
        await cache.stop()


async def test_compaction_forces_relist_and_ends_watchers(counting, store, prefix):
    old = await fill(store, prefix, 2)
    cache = await started(counting, prefix)
    watch = cache.watch(0)
    try:
        await take(watch, 2)
        lists = counting.lists
        await break_store_watch(counting)
        await store.delete(old[0].key)
        added = await store.create(prefix + "added", b"v")
        await store.compact(added.mod_revision)  # the cache's revision is gone
        counting.hold.set()

        with pytest.raises(errors.CompactedError):
            await asyncio.wait_for(anext(watch), TIMEOUT)
        assert counting.lists > lists
        assert cache.revision >= added.mod_revision
        assert (await cache.list()).kvs == (await store.list(prefix)).kvs

        # New watchers work from the relisted state on.
        fresh = cache.watch(0)
        assert [e.kv for e in await take(fresh, 2)] == [added, old[1]]  # key order
        later = await store.create(prefix + "later", b"v")
        assert [e.kv for e in await take(fresh, 1)] == [later]
        await fresh.aclose()
    finally:
        await watch.aclose()
        await cache.stop()
