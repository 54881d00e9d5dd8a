"""The embedded backend: the whole store contract on one SQLite file.

Layout (one file, WAL journal, fsync on every commit):
- `log`: every revision ever written and not yet compacted, one row each
  (key, value, create_revision, prev_revision, lease, deleted). Its primary
  key is the revision, so watches replay history with a range scan.
- `current`: the live keys, pointing at their newest `log` row, so a list at
  the latest revision is an index range scan, never a full-table scan.
- `leases` and `meta` (the revision counter and the compacted revision).

Why no "database is locked": exactly one thread of this process writes. Every
write is queued to it; it drains the queue and applies everything waiting in
ONE transaction (group commit), each operation checked against the state the
earlier ones left, then fsyncs once and acknowledges them all. Readers use
their own connections in a small thread pool and, in WAL mode, never block
the writer or each other. A lock file keeps a second process off the file.

Watches are fed by the writer after each commit, in revision order; a watcher
starting in the past (or one that fell behind) first replays the `log` table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from kubik.store import errors, keys
from kubik.store.interface import Event, EventType, KeyValue, ListResult, Store, check_write

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB
);
CREATE INDEX IF NOT EXISTS log_key ON log (key, revision);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    mod_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_lease ON current (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS leases (
    id INTEGER PRIMARY KEY,
    ttl INTEGER NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
"""

# Columns that make a KeyValue out of a `log` row, in _kv's order.
_KV_COLUMNS = "l.key, l.value, l.create_revision, l.revision, l.lease"

_MAX_BATCH = 1000  # writes applied in one transaction at most
_READERS = 4  # reader threads (and connections)
_WATCH_QUEUE_LIMIT = 10_000  # queued events before a watcher falls back to the log
_HISTORY_PAGE = 1000  # log rows per replay query
_COMPACT_CHUNK = 5000  # revisions examined per compaction transaction


def _kv(row: tuple) -> KeyValue:
    key, value, create_revision, mod_revision, lease = row
    return KeyValue(key, bytes(value), create_revision, mod_revision, lease)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@dataclass(slots=True)
class _Op:
    """A write queued for the writer thread; `future` lives on the event loop."""

    apply: Callable[[_Txn], Any]
    future: asyncio.Future


@dataclass(slots=True, eq=False)
class _Watcher:
    prefix: str
    end: str
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    lagging: bool = False


_LAGGED = object()  # queued when a watcher's queue overflowed: replay from the log
_CLOSED = object()  # queued when the store closes


class _Txn:
    """The writer thread's view while applying one batch: cursor, revision, events."""

    def __init__(self, conn: sqlite3.Connection, revision: int, leases: dict[int, float]):
        self.conn = conn
        self.revision = revision
        self.leases = leases
        self.events: list[Event] = []

    def current(self, key: str) -> KeyValue | None:
        row = self.conn.execute(
            f"SELECT {_KV_COLUMNS} FROM current c JOIN log l ON l.revision = c.mod_revision "
            "WHERE c.key = ?",
            (key,),
        ).fetchone()
        return _kv(row) if row else None

    def check_lease(self, lease: int) -> None:
        if lease and lease not in self.leases:
            raise errors.LeaseNotFoundError(lease)

    def put(self, key: str, value: bytes, lease: int, prev: KeyValue | None) -> KeyValue:
        self.revision += 1
        rev = self.revision
        created = prev.create_revision if prev else rev
        self.conn.execute(
            "INSERT INTO log VALUES (?, ?, 0, ?, ?, ?, ?)",
            (rev, key, created, prev.mod_revision if prev else 0, lease, value),
        )
        self.conn.execute("INSERT OR REPLACE INTO current VALUES (?, ?, ?)", (key, rev, lease))
        kv = KeyValue(key, bytes(value), created, rev, lease)
        kind = EventType.UPDATE if prev else EventType.CREATE
        self.events.append(Event(kind, rev, kv, prev))
        return kv

    def remove(self, prev: KeyValue) -> KeyValue:
        self.revision += 1
        rev = self.revision
        self.conn.execute(
            "INSERT INTO log VALUES (?, ?, 1, ?, ?, 0, NULL)",
            (rev, prev.key, prev.create_revision, prev.mod_revision),
        )
        self.conn.execute("DELETE FROM current WHERE key = ?", (prev.key,))
        gone = KeyValue(prev.key, b"", prev.create_revision, rev, 0)
        self.events.append(Event(EventType.DELETE, rev, gone, prev))
        return prev

    def revoke(self, lease: int) -> None:
        attached = self.conn.execute(
            "SELECT key FROM current WHERE lease = ? ORDER BY key", (lease,)
        ).fetchall()
        for (key,) in attached:
            prev = self.current(key)
            if prev is not None:
                self.remove(prev)
        self.conn.execute("DELETE FROM leases WHERE id = ?", (lease,))
        del self.leases[lease]


class SqliteStore(Store):
    """See the module docstring. Open with `await SqliteStore.open(path)`."""

    def __init__(
        self, path: str, lock_fd: int, revision: int, compacted: int, leases: dict[int, float]
    ) -> None:
        self._path = path
        self._lock_fd = lock_fd
        self._loop = asyncio.get_running_loop()
        self._revision = revision  # newest revision published to watchers
        self._compacted = compacted
        self._leases = leases  # lease id -> expiry (time.time()); owned by the writer thread
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._watchers: set[_Watcher] = set()
        self._closed = False
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_local = threading.local()
        self._readers = concurrent.futures.ThreadPoolExecutor(
            _READERS, thread_name_prefix="kubik-sqlite-read"
        )
        self._writer_conn = _connect(path)
        self._writer = threading.Thread(
            target=self._write_loop, name="kubik-sqlite-write", daemon=True
        )
        self._writer.start()

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Open (creating if needed) the database file at `path`."""
        lock_fd, revision, compacted, leases = await asyncio.to_thread(cls._prepare, path)
        return cls(path, lock_fd, revision, compacted, leases)

    @staticmethod
    def _prepare(path: str) -> tuple[int, int, int, dict[int, float]]:
        """Lock the file for this process, create the schema, read the counters."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
            lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise errors.StoreUnavailableError(f"cannot open SQLite store {path}: {exc}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise errors.StoreUnavailableError(
                f"SQLite store {path} is in use by another process"
            ) from None
        try:
            conn = _connect(path)
            try:
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file
                conn.executescript(_SCHEMA)
                meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
                leases = dict(conn.execute("SELECT id, expires FROM leases").fetchall())
            finally:
                conn.close()
        except sqlite3.Error as exc:
            os.close(lock_fd)
            raise errors.StoreUnavailableError(f"cannot open SQLite store {path}: {exc}") from None
        return lock_fd, meta["revision"], meta["compacted"], leases

    # ------------------------------------------------------------------ reads

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._reader_local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            self._reader_local.conn = conn
            self._reader_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` on a reader connection inside one read transaction (a snapshot)."""
        if self._closed:
            raise errors.StoreUnavailableError("the store is closed")

        def run() -> Any:
            conn = self._reader()
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")

        return await self._loop.run_in_executor(self._readers, run)

    @staticmethod
    def _snapshot_revisions(conn: sqlite3.Connection) -> tuple[int, int]:
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        return meta["revision"], meta["compacted"]

    @classmethod
    def _check_revision(cls, conn: sqlite3.Connection, revision: int) -> int:
        """The revision to read at: the snapshot's for 0, else `revision` if still readable."""
        current, compacted = cls._snapshot_revisions(conn)
        if revision == 0:
            return current
        if revision > current:
            raise errors.FutureRevisionError(revision, current)
        if revision < compacted:
            raise errors.CompactedError(revision, compacted)
        return revision

    async def current_revision(self) -> int:
        return await self._read(lambda conn: self._snapshot_revisions(conn)[0])

    async def compacted_revision(self) -> int:
        return await self._read(lambda conn: self._snapshot_revisions(conn)[1])

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        keys.check_key(key)

        def read(conn: sqlite3.Connection) -> KeyValue | None:
            at = self._check_revision(conn, revision)
            if revision == 0:
                row = conn.execute(
                    f"SELECT {_KV_COLUMNS} FROM current c JOIN log l "
                    "ON l.revision = c.mod_revision WHERE c.key = ?",
                    (key,),
                ).fetchone()
                return _kv(row) if row else None
            row = conn.execute(
                f"SELECT {_KV_COLUMNS}, l.deleted FROM log l WHERE l.key = ? AND l.revision <= ? "
                "ORDER BY l.revision DESC LIMIT 1",
                (key, at),
            ).fetchone()
            return _kv(row[:5]) if row and not row[5] else None

        return await self._read(read)

    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start: str = ""
    ) -> ListResult:
        keys.check_prefix(prefix)
        end = keys.prefix_end(prefix)
        if start and not start.startswith(prefix):
            raise errors.InvalidKeyError(f"list start {start!r} is not under prefix {prefix!r}")
        low = max(start, prefix)

        def read(conn: sqlite3.Connection) -> ListResult:
            at = self._check_revision(conn, revision)
            page = limit + 1 if limit > 0 else -1
            if revision == 0 or not self._changed_since(conn, prefix, end, at):
                rows = conn.execute(
                    f"SELECT {_KV_COLUMNS} FROM current c JOIN log l "
                    "ON l.revision = c.mod_revision WHERE c.key >= ? AND c.key < ? "
                    "ORDER BY c.key LIMIT ?",
                    (low, end, page),
                ).fetchall()
                (count,) = conn.execute(
                    "SELECT count(*) FROM current WHERE key >= ? AND key < ?", (prefix, end)
                ).fetchone()
            else:
                rows = conn.execute(
                    f"SELECT {_KV_COLUMNS} FROM log l {_AT_REVISION} ORDER BY l.key LIMIT ?",
                    (low, end, at, page),
                ).fetchall()
                (count,) = conn.execute(
                    f"SELECT count(*) FROM log l {_AT_REVISION}", (prefix, end, at)
                ).fetchone()
            more = limit > 0 and len(rows) > limit
            return ListResult([_kv(r) for r in (rows[:limit] if more else rows)], at, more, count)

        return await self._read(read)

    @staticmethod
    def _changed_since(conn: sqlite3.Connection, prefix: str, end: str, revision: int) -> bool:
        """Did anything under the prefix change after `revision`?

        When not, the `current` table IS the state at that revision, and a
        paged list can use it. The unary + keeps SQLite on the revision key.
        """
        return (
            conn.execute(
                "SELECT 1 FROM log WHERE revision > ? AND +key >= ? AND +key < ? LIMIT 1",
                (revision, prefix, end),
            ).fetchone()
            is not None
        )

    async def count(self, prefix: str) -> int:
        keys.check_prefix(prefix)
        end = keys.prefix_end(prefix)
        return await self._read(
            lambda conn: conn.execute(
                "SELECT count(*) FROM current WHERE key >= ? AND key < ?", (prefix, end)
            ).fetchone()[0]
        )

    # ----------------------------------------------------------------- writes

    async def _submit(self, apply: Callable[[_Txn], Any]) -> Any:
        if self._closed:
            raise errors.StoreUnavailableError("the store is closed")
        future = self._loop.create_future()
        self._ops.put(_Op(apply, future))
        return await future

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        check_write(key, value)

        def apply(txn: _Txn) -> KeyValue:
            if txn.current(key) is not None:
                raise errors.KeyExistsError(key)
            txn.check_lease(lease)
            return txn.put(key, value, lease, None)

        return await self._submit(apply)

    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, lease: int = 0
    ) -> KeyValue:
        check_write(key, value)

        def apply(txn: _Txn) -> KeyValue:
            prev = self._expect(txn, key, expected_mod_revision)
            txn.check_lease(lease)
            return txn.put(key, value, lease, prev)

        return await self._submit(apply)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        keys.check_key(key)
        return await self._submit(
            lambda txn: txn.remove(self._expect(txn, key, expected_mod_revision))
        )

    @staticmethod
    def _expect(txn: _Txn, key: str, expected: int) -> KeyValue:
        current = txn.current(key)
        if current is None:
            raise errors.KeyNotFoundError(key)
        if expected and current.mod_revision != expected:
            raise errors.ConflictError(key, expected, current)
        return current

    # ----------------------------------------------------------------- leases

    async def grant_lease(self, ttl: int) -> int:
        if not isinstance(ttl, int) or ttl <= 0:
            raise errors.InvalidValueError(
                f"lease TTL must be a positive number of seconds: {ttl!r}"
            )
        lease = secrets.randbits(62) + 1

        def apply(txn: _Txn) -> int:
            expires = time.time() + ttl
            txn.conn.execute("INSERT INTO leases VALUES (?, ?, ?)", (lease, ttl, expires))
            txn.leases[lease] = expires
            return lease

        return await self._submit(apply)

    async def keepalive_lease(self, lease: int) -> int:
        def apply(txn: _Txn) -> int:
            txn.check_lease(lease)
            (ttl,) = txn.conn.execute("SELECT ttl FROM leases WHERE id = ?", (lease,)).fetchone()
            expires = time.time() + ttl
            txn.conn.execute("UPDATE leases SET expires = ? WHERE id = ?", (expires, lease))
            txn.leases[lease] = expires
            return ttl

        return await self._submit(apply)

    async def revoke_lease(self, lease: int) -> None:
        def apply(txn: _Txn) -> None:
            txn.check_lease(lease)
            txn.revoke(lease)

        await self._submit(apply)

    # ------------------------------------------------------------- compaction

    async def compact(self, revision: int) -> None:
        """Mark history before `revision` gone, then delete it in chunks.

        The mark comes first and in its own transaction, so no reader is ever
        served from half-deleted history; the chunks then interleave with
        ordinary writes instead of stalling them.
        """

        def mark(txn: _Txn) -> int:
            if revision > txn.revision:
                raise errors.FutureRevisionError(revision, txn.revision)
            if revision > self._compacted:
                txn.conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))
                self._compacted = revision
            (oldest,) = txn.conn.execute("SELECT min(revision) FROM log").fetchone()
            return oldest or revision

        # Rows from before an earlier compaction may still be superseded now,
        # so the sweep starts at the oldest row, not at the last compaction.
        oldest = await self._submit(mark)
        for low in range(oldest, revision + 1, _COMPACT_CHUNK):
            high = min(low + _COMPACT_CHUNK, revision + 1)
            await self._submit(
                lambda txn, low=low, high=high: txn.conn.execute(
                    "DELETE FROM log WHERE revision >= ? AND revision < ? AND (deleted = 1 OR "
                    "EXISTS (SELECT 1 FROM log n WHERE n.key = log.key "
                    "AND n.revision > log.revision AND n.revision <= ?))",
                    (low, high, revision),
                )
            )
        await self._submit(lambda txn: txn.conn.execute("PRAGMA incremental_vacuum"))

    # ---------------------------------------------------------- writer thread

    def _write_loop(self) -> None:
        conn = self._writer_conn
        revision = self._revision
        while True:
            op = self._ops.get(timeout=None) if not self._leases else self._next_op()
            batch: list[_Op] = []
            stopping = op is None
            if op is not None:
                batch.append(op)
            while len(batch) < _MAX_BATCH and not stopping:
                try:
                    more = self._ops.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    batch.append(more)
            revision = self._apply_batch(conn, batch, revision)
            if stopping:
                conn.close()
                return

    def _next_op(self) -> _Op | None | bool:
        """The next queued op, waiting no longer than the next lease expiry."""
        wait = max(0.0, min(self._leases.values()) - time.time())
        try:
            return self._ops.get(timeout=min(wait, 1.0))
        except queue.Empty:
            return False

    def _apply_batch(self, conn: sqlite3.Connection, batch: list, revision: int) -> int:
        """Apply every op of the batch (and expired leases) in one transaction."""
        batch = [op for op in batch if op is not False]
        expired = [lid for lid, expires in self._leases.items() if expires <= time.time()]
        if not batch and not expired:
            return revision
        txn = _Txn(conn, revision, self._leases)
        results: list[tuple[bool, Any]] = []
        leases_before = dict(self._leases)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for lease in expired:
                txn.revoke(lease)
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, op.apply(txn)))
                    conn.execute("RELEASE op")
                except errors.StoreError as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((False, exc))
            if txn.revision != revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (txn.revision,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("SQLite write failed, %d writes refused: %s", len(batch), exc)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._leases.clear()
            self._leases.update(leases_before)
            failure = errors.StoreUnavailableError(f"SQLite write failed: {exc}")
            self._loop.call_soon_threadsafe(
                self._publish, batch, [(False, failure)] * len(batch), [], revision
            )
            return revision
        self._loop.call_soon_threadsafe(self._publish, batch, results, txn.events, txn.revision)
        return txn.revision

    # ---------------------------------------------------------- event loop side

    def _publish(self, batch: list[_Op], results: list, events: list[Event], revision: int) -> None:
        """On the loop: deliver committed events to watchers, then answer writers."""
        self._revision = revision
        for watcher in self._watchers:
            if watcher.lagging:
                continue
            for event in events:
                if watcher.prefix <= event.kv.key < watcher.end:
                    if watcher.queue.qsize() >= _WATCH_QUEUE_LIMIT:
                        watcher.lagging = True
                        watcher.queue.put_nowait(_LAGGED)
                        break
                    watcher.queue.put_nowait(event)
        for op, (ok, value) in zip(batch, results, strict=True):
            if op.future.done():
                continue
            if ok:
                op.future.set_result(value)
            else:
                op.future.set_exception(value)

    async def watch(
        self, prefix: str, *, from_revision: int, progress_interval: float = 5.0
    ) -> AsyncIterator[Event]:
        keys.check_prefix(prefix)
        watcher = _Watcher(prefix, keys.prefix_end(prefix))
        # Registered synchronously at published revision `upto`: every event
        # after it reaches the queue, everything up to it comes from the log.
        self._watchers.add(watcher)
        upto = self._revision
        delivered = from_revision
        try:
            if from_revision < self._compacted:
                raise errors.CompactedError(from_revision, self._compacted)
            while True:
                if delivered < upto:
                    async for event in self._replay(watcher, after=delivered, upto=upto):
                        delivered = event.revision
                        yield event
                    delivered = upto
                item = await self._next_event(watcher, progress_interval)
                if item is _CLOSED:
                    return
                if item is _LAGGED:
                    watcher.lagging = False
                    upto = self._revision
                    continue
                if item is None:
                    # Only with nothing queued is self._revision fully delivered: an
                    # event published as the wait timed out must come before progress.
                    if watcher.queue.empty():
                        yield Event(EventType.PROGRESS, self._revision)
                elif item.revision > delivered:
                    delivered = item.revision
                    yield item
        finally:
            self._watchers.discard(watcher)

    @staticmethod
    async def _next_event(watcher: _Watcher, progress_interval: float) -> Any:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that arrives as the get completes, leaving the watch uncancellable.
        try:
            async with asyncio.timeout(progress_interval):
                return await watcher.queue.get()
        except TimeoutError:
            return None

    async def _replay(self, watcher: _Watcher, *, after: int, upto: int) -> AsyncIterator[Event]:
        """Events under the watcher's prefix in (after, upto], read from the log."""
        while after < upto:
            page = await self._read(
                lambda conn, after=after: self._history_page(conn, watcher, after, upto)
            )
            for event in page:
                yield event
            after = page[-1].revision if len(page) == _HISTORY_PAGE else upto

    def _history_page(
        self, conn: sqlite3.Connection, watcher: _Watcher, after: int, upto: int
    ) -> list[Event]:
        compacted = self._snapshot_revisions(conn)[1]
        if after < compacted:
            raise errors.CompactedError(after, compacted)
        rows = conn.execute(
            "SELECT l.revision, l.key, l.deleted, l.create_revision, l.lease, l.value, "
            "p.revision, p.value, p.lease "
            "FROM log l LEFT JOIN log p ON p.revision = l.prev_revision "
            "WHERE l.revision > ? AND l.revision <= ? AND l.key >= ? AND l.key < ? "
            "ORDER BY l.revision LIMIT ?",
            (after, upto, watcher.prefix, watcher.end, _HISTORY_PAGE),
        ).fetchall()
        events = []
        for rev, key, deleted, created, lease, value, prev_rev, prev_value, prev_lease in rows:
            prev = (
                None
                if prev_rev is None
                else KeyValue(key, bytes(prev_value), created, prev_rev, prev_lease)
            )
            if deleted:
                events.append(
                    Event(EventType.DELETE, rev, KeyValue(key, b"", created, rev, 0), prev)
                )
            else:
                kind = EventType.UPDATE if prev else EventType.CREATE
                events.append(
                    Event(kind, rev, KeyValue(key, bytes(value), created, rev, lease), prev)
                )
        return events

    # ------------------------------------------------------------------ close

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.put(None)
        await asyncio.to_thread(self._writer.join)
        for watcher in self._watchers:
            watcher.queue.put_nowait(_CLOSED)
        self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        os.close(self._lock_fd)


# The newest non-deleted version of each key in [?, ?) at revision ?.
_AT_REVISION = (
    "WHERE l.key >= ? AND l.key < ? AND l.deleted = 0 AND l.revision = "
    "(SELECT max(m.revision) FROM log m WHERE m.key = l.key AND m.revision <= ?)"
)
