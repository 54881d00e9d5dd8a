"""An in-memory cache of one key prefix, in front of any `Store`.

Why: every LIST and WATCH of a resource would otherwise hit the store, and
every watcher would hold its own store watch. Upstream's apiserver puts a
"cacher" in front of etcd for the same reason; this is kubik's much smaller
take on it, with the same semantics:

- one list of the prefix, then one store watch that keeps an in-memory copy
  of every key current, plus a bounded window of the most recent events;
- lists and gets are served from memory, after waiting (briefly) until the
  cache has caught up with the revision the caller asks for;
- a watcher that reconnects with a revision still covered by the window
  resumes from memory, without a relist; older revisions are
  `CompactedError` (410 Gone), exactly as if the store had compacted them;
- the cache never waits for a watcher: one that falls a whole buffer behind
  is dropped with `WatcherTooSlowError`.

Everything runs on the event loop, so applying one event (state, window,
watcher queues) is atomic with respect to readers: no locks are needed.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from kubik.store import errors, keys
from kubik.store.interface import Event, EventType, KeyValue, ListResult, Store

log = logging.getLogger(__name__)

# Keys per store read when (re)listing the prefix: big enough to be quick,
# small enough that one read never holds the store for long.
LIST_PAGE_SIZE = 1000

# Backoff between attempts to re-watch or re-list after the store failed.
MIN_BACKOFF = 0.05
MAX_BACKOFF = 5.0


class WatcherTooSlowError(errors.StoreError):
    """A watcher fell a whole buffer behind the cache and was dropped.

    The cache never waits for a reader: one stuck client must not stall every
    other watcher of the resource, nor let memory grow without bound. The
    dropped watcher still receives what was already buffered for it, so it
    can usually resume from the last revision it saw (still in the window)
    rather than relist.
    """

    def __init__(self, buffered: int, revision: int) -> None:
        super().__init__(
            f"watcher did not keep up: {buffered} events were waiting for it at revision "
            f"{revision}; watch again from the last revision received"
        )
        self.buffered = buffered
        self.revision = revision


class _Watcher:
    """One reader's live feed: the events queued for it that it has not read yet."""

    def __init__(self, *, key_prefix: str, capacity: int, position: int) -> None:
        self.key_prefix = key_prefix
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(capacity)
        # The newest revision this watcher is guaranteed to have been given
        # (replayed or queued): what a CompactedError reports when it ends.
        self.position = position
        self.finished = False
        self.error: errors.StoreError | None = None

    def offer(self, event: Event) -> bool:
        """Queue the event without ever waiting; False when the buffer is full."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        self.position = event.revision
        return True

    def finish(self, error: errors.StoreError | None) -> None:
        """End the feed: the reader drains what is queued, then gets `error` (or the end)."""
        if self.finished:
            return
        self.finished = True
        self.error = error
        # Wake a reader blocked on an empty queue. A full queue has no reader
        # blocked on it, and the reader checks `finished` once it drained it.
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)


class WatchCache:
    """The current keys under `prefix` and a window of recent events, in memory.

    `window` is how many recent events are kept for watchers resuming from a
    revision; `fresh_timeout` how long a read asking for a revision the cache
    has not reached yet may wait before `FutureRevisionError`;
    `watcher_buffer` how many events may wait for one watcher before it is
    dropped; `store_progress_interval` how often the store must report its
    revision on an idle prefix (keep it well below `fresh_timeout`, or reads
    at a revision written elsewhere time out while the prefix is quiet).
    """

    def __init__(
        self,
        store: Store,
        prefix: str,
        *,
        window: int = 1000,
        fresh_timeout: float = 3.0,
        watcher_buffer: int = 1000,
        store_progress_interval: float = 1.0,
    ) -> None:
        keys.check_prefix(prefix)
        self._store = store
        self._prefix = prefix
        self._window_size = window
        self._fresh_timeout = fresh_timeout
        self._watcher_buffer = watcher_buffer
        self._store_progress_interval = store_progress_interval

        self.ready = asyncio.Event()
        self._revision = 0
        self._items: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # the keys of _items, sorted, for ranged lists
        self._window: collections.deque[Event] = collections.deque()
        # Every event with a revision above the floor is in the window.
        self._floor = 0
        # Keys already applied at `_revision` while it may still be incomplete
        # (events of one store revision can span a watch that broke off).
        self._head_keys: set[str] = set()
        self._advanced: asyncio.Event | None = None  # set when _revision moves
        self._watchers: set[_Watcher] = set()
        self._received = 0  # events taken from the store, to reset the backoff
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Load the prefix, then follow the store in the background.

        The first list runs here, so a store that cannot be read fails the
        caller instead of leaving a cache that is never ready.
        """
        if self._task is not None or self._stopped:
            raise RuntimeError("a WatchCache is started once")
        kvs, revision = await self._list_all()
        self._replace(kvs, revision=revision)
        self._task = asyncio.create_task(self._run(), name=f"watchcache {self._prefix}")

    async def stop(self) -> None:
        """Stop following the store and end every watch (as a closed stream)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            await _cancel(task)
        self._end_watchers(lambda watcher: None)

    async def __aenter__(self) -> WatchCache:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- reads ---------------------------------------------------------------
    @property
    def revision(self) -> int:
        """The store revision the cache reflects: every change up to it is applied."""
        return self._revision

    @property
    def prefix(self) -> str:
        return self._prefix

    async def wait_fresh(self, revision: int) -> None:
        """Wait until the cache reflects `revision`; FutureRevisionError after fresh_timeout.

        A client that just wrote at `revision` (or read it elsewhere) must not
        get an older answer; the store watch usually delivers it within
        milliseconds, and a revision that never arrives is one in the future.
        """
        if self._revision >= revision:
            return
        try:
            async with asyncio.timeout(self._fresh_timeout):
                while self._revision < revision:
                    if self._advanced is None:
                        self._advanced = asyncio.Event()
                    await self._advanced.wait()
        except TimeoutError:
            raise errors.FutureRevisionError(revision, self._revision) from None

    async def get(self, key: str, *, min_revision: int = 0) -> KeyValue | None:
        """The cached value of `key` (None if absent), at least as new as `min_revision`."""
        await self._wait_readable(min_revision=min_revision)
        return self._items.get(key)

    async def list(
        self, *, min_revision: int = 0, limit: int = 0, start: str = "", key_prefix: str = ""
    ) -> ListResult:
        """The cached keys in key order, read at the cache's current revision.

        `limit` 0 means all; `start` (inclusive) continues a paged listing;
        `key_prefix` narrows the range to keys starting with it (a namespace,
        say). Each page is a consistent snapshot at its `revision`, but the
        cache keeps no old versions: a later page may be at a newer revision.
        A caller that needs every page at one revision reads continuation
        pages from the store at the first page's revision.
        """
        await self._wait_readable(min_revision=min_revision)
        low, high = self._key_range(key_prefix)
        first = max(low, bisect.bisect_left(self._keys, start)) if start else low
        end = high if limit <= 0 else min(high, first + limit)
        kvs = [self._items[key] for key in self._keys[first:end]]
        return ListResult(kvs=kvs, revision=self._revision, more=end < high, count=high - low)

    async def _wait_readable(self, *, min_revision: int) -> None:
        await self.ready.wait()
        if min_revision > self._revision:
            await self.wait_fresh(min_revision)

    def _key_range(self, key_prefix: str) -> tuple[int, int]:
        """Indexes into the sorted keys of the keys starting with `key_prefix`."""
        if not key_prefix:
            return 0, len(self._keys)
        low = bisect.bisect_left(self._keys, key_prefix)
        high = bisect.bisect_left(self._keys, keys.prefix_end(key_prefix), lo=low)
        return low, high

    # --- watch -----------------------------------------------------------------
    async def watch(
        self, from_revision: int = 0, *, key_prefix: str = "", progress_interval: float = 0.0
    ) -> AsyncIterator[Event]:
        """Every change after `from_revision`, in revision order, from memory.

        `from_revision` 0 first sends the current state as CREATE events at
        the cache's revision (what upstream does for a watch without a
        resourceVersion), then live changes. A revision the window still
        covers resumes from the window; an older one raises CompactedError
        when iterated. With `progress_interval`, an idle watcher gets a
        PROGRESS event at the cache's revision (a BOOKMARK) that often.

        Ends with WatcherTooSlowError if the reader falls `watcher_buffer`
        events behind, with CompactedError if the cache had to relist (its
        history no longer connects), and plainly when the cache stops.
        """
        await self.ready.wait()
        if from_revision > self._revision:
            await self.wait_fresh(from_revision)
        if self._stopped:
            return
        backlog, watcher = self._subscribe(from_revision=from_revision, key_prefix=key_prefix)
        try:
            for event in backlog:
                yield event
            async for event in self._live(watcher=watcher, progress_interval=progress_interval):
                yield event
        finally:
            self._watchers.discard(watcher)

    def _subscribe(
        self, *, from_revision: int, key_prefix: str
    ) -> tuple[Iterable[Event], _Watcher]:
        """Take the backlog and register for live events in one step.

        No await separates the two, so no event can fall between them or be
        in both: the backlog holds everything up to the cache's revision, the
        queue everything after it.
        """
        if from_revision == 0:
            backlog: Iterable[Event] = self._current_state(key_prefix)
        elif from_revision < self._floor:
            raise errors.CompactedError(from_revision, self._floor)
        else:
            backlog = [
                event
                for event in self._events_after(from_revision)
                if event.kv is not None and event.kv.key.startswith(key_prefix)
            ]
        watcher = _Watcher(
            key_prefix=key_prefix, capacity=self._watcher_buffer, position=self._revision
        )
        self._watchers.add(watcher)
        return backlog, watcher

    def _current_state(self, key_prefix: str) -> Iterator[Event]:
        """The current keys as CREATE events: values captured now, events made lazily."""
        low, high = self._key_range(key_prefix)
        kvs = [self._items[key] for key in self._keys[low:high]]
        revision = self._revision
        return (Event(EventType.CREATE, revision, kv) for kv in kvs)

    def _events_after(self, revision: int) -> list[Event]:
        """The window's events after `revision`, walking back from the newest."""
        recent = []
        for event in reversed(self._window):
            if event.revision <= revision:
                break
            recent.append(event)
        recent.reverse()
        return recent

    async def _live(self, *, watcher: _Watcher, progress_interval: float) -> AsyncIterator[Event]:
        """The watcher's queued events until it is finished; PROGRESS when idle."""
        queue = watcher.queue
        while True:
            if queue.empty():
                if watcher.finished:
                    if watcher.error is not None:
                        raise watcher.error
                    return
                try:
                    async with asyncio.timeout(progress_interval or None):
                        event = await queue.get()
                except TimeoutError:
                    # Nothing is queued, so the watcher has every change up to now.
                    yield Event(EventType.PROGRESS, self._revision)
                    continue
            else:
                event = queue.get_nowait()
            if event is not None:
                yield event

    def _end_watchers(self, error_for: Callable[[_Watcher], errors.StoreError | None]) -> None:
        """Finish every watcher with the error `error_for` gives it (None: a plain end)."""
        for watcher in self._watchers:
            watcher.finish(error_for(watcher))
        self._watchers.clear()

    # --- following the store ------------------------------------------------------
    async def _run(self) -> None:
        """Follow the store for as long as the cache lives, recovering from failures.

        A watch that ends or fails is resumed from the cache's revision, which
        keeps every watcher; only when the store compacted past that revision
        does the cache relist, which ends every watcher with CompactedError.
        """
        delay = MIN_BACKOFF
        while not self._stopped:
            received = self._received
            try:
                await self._follow()
                log.info(
                    "watch of %s ended at revision %d; watching again", self._prefix, self._revision
                )
            except errors.CompactedError as err:
                log.warning("watch of %s lost its history (%s); relisting", self._prefix, err)
                await self._relist()
            except Exception as err:
                log.warning(
                    "watch of %s failed at revision %d (%s); watching again in %.2fs",
                    self._prefix,
                    self._revision,
                    err,
                    delay,
                    exc_info=not isinstance(err, errors.StoreError),
                )
            delay = MIN_BACKOFF if self._received > received else min(delay * 2, MAX_BACKOFF)
            await asyncio.sleep(delay)

    async def _follow(self) -> None:
        """Apply the store's watch to the cache until it ends; raises what it raises."""
        events = self._store.watch(
            self._prefix,
            from_revision=self._resume_revision(),
            progress_interval=self._store_progress_interval,
        )
        try:
            async for event in events:
                if self._stopped:
                    return
                self._received += 1
                self._apply(event)
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _resume_revision(self) -> int:
        """Where a new store watch starts: one revision back while the last may be partial."""
        return self._revision - 1 if self._head_keys else self._revision

    async def _relist(self) -> None:
        """List the prefix again (retrying with backoff) and swap it in."""
        delay = MIN_BACKOFF
        while True:
            try:
                kvs, revision = await self._list_all()
            except Exception as err:
                log.warning(
                    "relisting %s failed (%s); retrying in %.2fs",
                    self._prefix,
                    err,
                    delay,
                    exc_info=not isinstance(err, errors.StoreError),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self._replace(kvs, revision=revision)
            return

    async def _list_all(self) -> tuple[list[KeyValue], int]:
        """Every key under the prefix, read page by page at one revision."""
        page = await self._store.list(self._prefix, limit=LIST_PAGE_SIZE)
        revision = page.revision
        kvs = list(page.kvs)
        while page.more and page.kvs:
            page = await self._store.list(
                self._prefix,
                revision=revision,
                limit=LIST_PAGE_SIZE,
                start=page.kvs[-1].key + "\x00",
            )
            kvs.extend(page.kvs)
        return kvs, revision

    def _replace(self, kvs: list[KeyValue], *, revision: int) -> None:
        """Swap in a fresh listing of the prefix at `revision`.

        What changed between the old revision and this one is unknown, so the
        window no longer connects to the new state and no watcher can be
        carried across: they all end with CompactedError and relist. The one
        exception is a listing identical to what the cache holds.
        """
        if self.ready.is_set() and self._same_state(kvs, revision=revision):
            log.info("relisted %s at revision %d: unchanged", self._prefix, revision)
            self._head_keys.clear()
            return
        if revision < self._revision:
            log.warning(
                "store of %s went back from revision %d to %d",
                self._prefix,
                self._revision,
                revision,
            )
        self._items = {kv.key: kv for kv in kvs}
        self._keys = sorted(self._items)  # already in key order: a linear pass
        self._window.clear()
        self._floor = revision
        self._head_keys.clear()
        self._end_watchers(lambda watcher: errors.CompactedError(watcher.position, revision))
        self._set_revision(revision)
        self.ready.set()
        log.debug("listed %d keys under %s at revision %d", len(kvs), self._prefix, revision)

    def _same_state(self, kvs: list[KeyValue], *, revision: int) -> bool:
        """True when a listing at the cache's own revision matches the cache key for key."""
        if revision != self._revision or len(kvs) != len(self._items):
            return False
        for kv in kvs:
            cached = self._items.get(kv.key)
            if cached is None or cached.mod_revision != kv.mod_revision:
                return False
        return True

    # --- applying events -----------------------------------------------------------
    def _apply(self, event: Event) -> None:
        """Fold one store event into the state, the window and every watcher."""
        if event.type is EventType.PROGRESS:
            if event.revision >= self._revision:
                self._head_keys.clear()  # the store says revision is complete
                self._set_revision(event.revision)
            return
        if event.kv is None or not self._is_new(event):
            return
        key = event.kv.key
        if event.revision > self._revision:
            self._head_keys.clear()
        self._head_keys.add(key)
        self._update_state(event)
        self._remember(event)
        self._set_revision(event.revision)
        self._dispatch(event)

    def _is_new(self, event: Event) -> bool:
        """False for an event the cache already holds (a resumed watch overlaps by a revision)."""
        assert event.kv is not None
        if event.revision != self._revision:
            return event.revision > self._revision
        return bool(self._head_keys) and event.kv.key not in self._head_keys

    def _update_state(self, event: Event) -> None:
        assert event.kv is not None
        key = event.kv.key
        if event.type is EventType.DELETE:
            if self._items.pop(key, None) is not None:
                del self._keys[bisect.bisect_left(self._keys, key)]
            return
        if key not in self._items:
            bisect.insort(self._keys, key)
        self._items[key] = event.kv

    def _remember(self, event: Event) -> None:
        """Keep the event in the window, forgetting the oldest beyond its size."""
        self._window.append(event)
        while len(self._window) > self._window_size:
            self._floor = self._window.popleft().revision

    def _dispatch(self, event: Event) -> None:
        """Queue the event for every interested watcher; drop those that are full."""
        assert event.kv is not None
        key = event.kv.key
        too_slow = [
            watcher
            for watcher in self._watchers
            if key.startswith(watcher.key_prefix) and not watcher.offer(event)
        ]
        for watcher in too_slow:
            log.info(
                "dropping a watcher of %s that fell %d events behind at revision %d",
                self._prefix,
                self._watcher_buffer,
                event.revision,
            )
            self._watchers.discard(watcher)
            watcher.finish(WatcherTooSlowError(self._watcher_buffer, watcher.position))

    def _set_revision(self, revision: int) -> None:
        """Move the cache's revision and wake the readers waiting for it."""
        self._revision = revision
        advanced, self._advanced = self._advanced, None
        if advanced is not None:
            advanced.set()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end, cancelling again while it runs on.

    On Python 3.11, `asyncio.wait_for` (which a store watch may use inside)
    swallows a cancellation that lands just as its inner future completes
    (fixed in 3.12), so a single cancel() does not always stop a task.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        log.error("watch cache task failed", exc_info=task.exception())
