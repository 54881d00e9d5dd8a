"""The store contract, run unchanged against every backend (see conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubik.store import errors
from kubik.store.interface import EventType, Store


async def collect(store: Store, prefix: str, *, after: int, count: int, within: float = 20.0):
    """The first `count` non-progress events under `prefix` after revision `after`."""
    events = []
    watch = store.watch(prefix, from_revision=after, progress_interval=0.5)
    try:
        async with asyncio.timeout(within):
            async for event in watch:
                if event.type is not EventType.PROGRESS:
                    events.append(event)
                    if len(events) == count:
                        break
    finally:
        await watch.aclose()
    return events


# ------------------------------------------------------------------ basics


async def test_create_get_and_revisions(store, prefix):
    first = await store.create(prefix + "a", b"1")
    second = await store.create(prefix + "b", b"2")
    assert second.mod_revision > first.mod_revision
    assert first.create_revision == first.mod_revision
    got = await store.get(prefix + "a")
    assert got == first
    assert await store.get(prefix + "missing") is None
    assert await store.current_revision() >= second.mod_revision
    with pytest.raises(errors.KeyExistsError):
        await store.create(prefix + "a", b"again")
    assert (await store.get(prefix + "a")).value == b"1"


async def test_update_is_compare_and_swap(store, prefix):
    created = await store.create(prefix + "k", b"v1")
    updated = await store.update(prefix + "k", b"v2", expected_mod_revision=created.mod_revision)
    assert updated.create_revision == created.create_revision
    assert updated.mod_revision > created.mod_revision
    with pytest.raises(errors.ConflictError) as conflict:
        await store.update(prefix + "k", b"stale", expected_mod_revision=created.mod_revision)
    assert conflict.value.current == updated
    assert (await store.get(prefix + "k")).value == b"v2"
    with pytest.raises(errors.KeyNotFoundError):
        await store.update(prefix + "nope", b"x", expected_mod_revision=1)


async def test_delete_guarded_and_unguarded(store, prefix):
    a = await store.create(prefix + "a", b"a")
    b = await store.create(prefix + "b", b"b")
    with pytest.raises(errors.ConflictError):
        await store.delete(prefix + "a", expected_mod_revision=a.mod_revision + 1000)
    assert await store.get(prefix + "a") == a
    deleted = await store.delete(prefix + "a", expected_mod_revision=a.mod_revision)
    assert deleted == a
    assert await store.get(prefix + "a") is None
    assert (await store.delete(prefix + "b")) == b
    with pytest.raises(errors.KeyNotFoundError):
        await store.delete(prefix + "b")
    # a deleted key can be created again, with a new create_revision
    again = await store.create(prefix + "a", b"new")
    assert again.create_revision > a.create_revision


async def test_concurrent_cas_writers_lose_no_update(store, prefix):
    key = prefix + "counter"
    await store.create(key, b"0")

    def increment(current):
        return str(int(current.value) + 1).encode()

    await asyncio.gather(*(store.guaranteed_update(key, increment) for _ in range(64)))
    assert (await store.get(key)).value == b"64"


async def test_only_one_writer_wins_a_race(store, prefix):
    created = await store.create(prefix + "race", b"start")
    results = await asyncio.gather(
        *(
            store.update(prefix + "race", b"w%d" % i, expected_mod_revision=created.mod_revision)
            for i in range(32)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert all(isinstance(r, errors.ConflictError) for r in results if r not in winners)
    assert (await store.get(prefix + "race")).value == winners[0].value


async def test_guaranteed_update_creates_when_asked(store, prefix):
    made = await store.guaranteed_update(
        prefix + "new", lambda cur: b"fresh" if cur is None else b"old", create_if_absent=True
    )
    assert made.value == b"fresh"
    with pytest.raises(errors.KeyNotFoundError):
        await store.guaranteed_update(prefix + "absent", lambda cur: b"x")


# ------------------------------------------------------------------ lists


async def test_list_prefix_order_count_and_paging(store, prefix):
    names = [f"item-{i:03d}" for i in range(25)]
    for name in reversed(names):
        await store.create(prefix + name, name.encode())
    await store.create(prefix[:-1] + "-other/x", b"outside the prefix")

    full = await store.list(prefix)
    assert [kv.key for kv in full.kvs] == [prefix + n for n in names]
    assert full.count == 25 and not full.more
    assert await store.count(prefix) == 25

    page = await store.list(prefix, limit=10)
    assert len(page.kvs) == 10 and page.more and page.count == 25
    seen = [kv.key for kv in page.kvs]
    at = page.revision
    # writes between pages must not show up in a listing read at one revision
    await store.create(prefix + "item-0105", b"late")
    await store.delete(prefix + names[20])
    while page.more:
        page = await store.list(prefix, revision=at, limit=10, start=page.kvs[-1].key + "\x00")
        assert page.revision == at
        seen += [kv.key for kv in page.kvs]
    assert seen == [prefix + n for n in names]


async def test_list_and_get_at_past_revision(store, prefix):
    v1 = await store.create(prefix + "k", b"v1")
    await store.create(prefix + "other", b"o")
    v2 = await store.update(prefix + "k", b"v2", expected_mod_revision=v1.mod_revision)
    await store.delete(prefix + "other")
    old = await store.list(prefix, revision=v1.mod_revision)
    assert [(kv.key, kv.value) for kv in old.kvs] == [(prefix + "k", b"v1")]
    assert (await store.get(prefix + "k", revision=v1.mod_revision)).value == b"v1"
    before_delete = await store.list(prefix, revision=v2.mod_revision)
    assert [kv.value for kv in before_delete.kvs] == [b"v2", b"o"]
    now = await store.list(prefix)
    assert [kv.value for kv in now.kvs] == [b"v2"]
    with pytest.raises(errors.FutureRevisionError):
        await store.list(prefix, revision=now.revision + 1000)


# ------------------------------------------------------------------ watch


async def test_watch_sees_every_change_in_order_with_previous_values(store, prefix):
    start = await store.current_revision()
    a = await store.create(prefix + "a", b"1")
    a2 = await store.update(prefix + "a", b"2", expected_mod_revision=a.mod_revision)
    await store.delete(prefix + "a")
    await store.create(prefix[:-1] + "-elsewhere/z", b"not watched")
    events = await collect(store, prefix, after=start, count=3)
    assert [e.type for e in events] == [EventType.CREATE, EventType.UPDATE, EventType.DELETE]
    assert events[0].kv == a and events[0].prev is None
    assert events[1].kv == a2 and events[1].prev == a
    assert events[2].prev == a2 and events[2].kv.key == prefix + "a"
    assert events[2].revision > a2.mod_revision


async def test_watch_complete_and_ordered_under_concurrent_writes(store, prefix):
    start = await store.current_revision()
    watcher = asyncio.create_task(collect(store, prefix, after=start, count=200, within=60))

    async def writer(n):
        acked = []
        for i in range(20):
            acked.append((await store.create(f"{prefix}w{n}-{i}", b"x")).mod_revision)
        return acked

    acked = sorted(r for rs in await asyncio.gather(*(writer(n) for n in range(10))) for r in rs)
    events = await watcher
    revisions = [e.revision for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    assert revisions == acked


async def test_watch_resumes_from_a_past_revision(store, prefix):
    first = await store.create(prefix + "a", b"1")
    second = await store.create(prefix + "b", b"2")
    third = await store.create(prefix + "c", b"3")
    events = await collect(store, prefix, after=first.mod_revision, count=2)
    assert [e.kv for e in events] == [second, third]
    later = asyncio.create_task(collect(store, prefix, after=third.mod_revision, count=1))
    await asyncio.sleep(0.2)
    fourth = await store.create(prefix + "d", b"4")
    assert [e.kv for e in await later] == [fourth]


async def test_idle_watch_reports_progress(store, prefix):
    await store.create(prefix + "a", b"1")
    now = await store.current_revision()
    watch = store.watch(prefix, from_revision=now, progress_interval=0.3)
    try:
        async with asyncio.timeout(15):
            event = await anext(watch)
    finally:
        await watch.aclose()
    assert event.type is EventType.PROGRESS
    assert event.revision >= now


# ------------------------------------------------------------------ compaction


async def test_compaction_makes_old_revisions_too_old(store, prefix):
    v1 = await store.create(prefix + "k", b"v1")
    v2 = await store.update(prefix + "k", b"v2", expected_mod_revision=v1.mod_revision)
    v3 = await store.update(prefix + "k", b"v3", expected_mod_revision=v2.mod_revision)
    await store.create(prefix + "gone", b"x")
    await store.delete(prefix + "gone")
    compacted = await store.current_revision()
    await store.compact(compacted)
    assert await store.compacted_revision() >= compacted
    with pytest.raises(errors.CompactedError):
        await store.list(prefix, revision=v2.mod_revision)
    with pytest.raises(errors.CompactedError):
        await collect(store, prefix, after=v1.mod_revision, count=1, within=10)
    at_compaction = await store.list(prefix, revision=compacted)
    assert [kv.value for kv in at_compaction.kvs] == [b"v3"]
    assert (await store.get(prefix + "k")) == v3
    # watching from the compacted revision itself still works
    later = asyncio.create_task(collect(store, prefix, after=compacted, count=1))
    v4 = await store.update(prefix + "k", b"v4", expected_mod_revision=v3.mod_revision)
    events = await later
    assert events[0].kv == v4 and events[0].prev == v3
    # compacting to an older revision again is a no-op, not an error
    await store.compact(v2.mod_revision)


# ------------------------------------------------------------------ leases


async def test_lease_expiry_deletes_keys_with_an_event(store, prefix):
    start = await store.current_revision()
    lease = await store.grant_lease(2)
    await store.create(prefix + "ephemeral", b"x", lease=lease)
    await store.create(prefix + "durable", b"y")
    assert (await store.get(prefix + "ephemeral")).lease == lease
    events = await collect(store, prefix, after=start, count=3, within=20)
    assert events[2].type is EventType.DELETE and events[2].kv.key == prefix + "ephemeral"
    assert await store.get(prefix + "ephemeral") is None
    assert await store.get(prefix + "durable") is not None
    with pytest.raises(errors.LeaseNotFoundError):
        await store.keepalive_lease(lease)


async def test_lease_keepalive_and_revoke(store, prefix):
    lease = await store.grant_lease(5)
    await store.create(prefix + "kept", b"x", lease=lease)
    deadline = time.monotonic() + 8  # outlives the TTL only through the keepalives
    while time.monotonic() < deadline:
        assert await store.keepalive_lease(lease) >= 5
        await asyncio.sleep(1)
    assert await store.get(prefix + "kept") is not None
    await store.revoke_lease(lease)
    assert await store.get(prefix + "kept") is None
    with pytest.raises(errors.LeaseNotFoundError):
        await store.create(prefix + "orphan", b"x", lease=lease)
    assert await store.get(prefix + "orphan") is None


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "key",
    ["relative/key", "/double//slash", "/dot/../up", "/has space", "/trailing/", "", "/tab\tkey"],
)
async def test_invalid_keys_write_nothing(store, prefix, key):
    before = await store.current_revision()
    with pytest.raises(errors.InvalidKeyError):
        await store.create(key, b"x")
    assert await store.current_revision() == before


async def test_value_over_the_limit_writes_nothing(store, prefix):
    before = await store.current_revision()
    with pytest.raises(errors.ValueTooLargeError):
        await store.create(prefix + "big", b"x" * (1536 * 1024 + 1))
    assert await store.current_revision() == before
    assert await store.get(prefix + "big") is None
    fits = await store.create(prefix + "fits", b"x" * (1024 * 1024))
    assert len((await store.get(prefix + "fits")).value) == len(fits.value)
