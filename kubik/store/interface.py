"""The store contract every backend (SQLite, etcd) fulfils, word for word.

The API server builds resourceVersion, optimistic concurrency and watch on
this contract, exactly as upstream builds them on etcd's revisions:

- one global revision, strictly increasing, bumped by every write;
- every key-value carries the revision that created it and the revision that
  last modified it (`mod_revision` becomes an object's resourceVersion);
- writes are compare-and-swap on `mod_revision`: a stale revision is a
  `ConflictError`, never a silent overwrite;
- `watch` yields every change after a revision, in revision order, with the
  previous value on updates and deletes; a revision that compaction already
  dropped raises `CompactedError` (the API answers 410 Gone).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from kubik.store import errors, keys


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int = 0


class EventType(enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    # No change: the store has reached `revision` and nothing in the watched
    # prefix changed up to it. Lets an idle watcher know how current it is.
    PROGRESS = "PROGRESS"


@dataclass(frozen=True, slots=True)
class Event:
    """A change seen by a watch.

    `kv` is the new value for CREATE/UPDATE; for DELETE it is the deleted key
    with an empty value and `mod_revision` = the deleting revision. `prev` is
    the value before the change (None for CREATE and PROGRESS).
    """

    type: EventType
    revision: int
    kv: KeyValue | None = None
    prev: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a prefix listing, read at one revision.

    `revision` is the store revision the page was read at (pass it back with
    `start` = the last key + "\\x00" to read the next page consistently);
    `more` says keys remain after this page; `count` is the number of keys
    in the whole range at that revision (for `remainingItemCount`).
    """

    kvs: list[KeyValue]
    revision: int
    more: bool
    count: int


# A guaranteed_update function: given the current value (None when the key
# is absent) return the new value, or raise to abandon the update.
UpdateFunc = Callable[[KeyValue | None], bytes]


class Store(abc.ABC):
    """The async cluster store; see the module docstring for the contract."""

    # --- reads ---------------------------------------------------------
    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The newest revision of the store (0 when nothing was ever written)."""

    @abc.abstractmethod
    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """The key's value at `revision` (0: the latest), or None if absent."""

    @abc.abstractmethod
    async def list(
        self, prefix: str, *, revision: int = 0, limit: int = 0, start: str = ""
    ) -> ListResult:
        """Keys under `prefix` in key order, at `revision` (0: the latest).

        `limit` 0 means no limit; `start` (inclusive, must lie under `prefix`)
        resumes a paged listing. A revision older than compaction kept raises
        `CompactedError`; one newer than the store raises `FutureRevisionError`.
        """

    @abc.abstractmethod
    async def count(self, prefix: str) -> int:
        """How many keys exist under `prefix` now."""

    # --- writes (compare-and-swap) --------------------------------------
    @abc.abstractmethod
    async def create(self, key: str, value: bytes, *, lease: int = 0) -> KeyValue:
        """Write a new key; `KeyExistsError` if it is present."""

    @abc.abstractmethod
    async def update(
        self, key: str, value: bytes, *, expected_mod_revision: int, lease: int = 0
    ) -> KeyValue:
        """Replace the key if its mod_revision is still `expected_mod_revision`.

        `ConflictError` (carrying the current value) when it moved on,
        `KeyNotFoundError` when it is gone.
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        """Delete the key (only at `expected_mod_revision` when not 0).

        Returns the deleted value; `KeyNotFoundError` / `ConflictError` as for
        `update`.
        """

    async def guaranteed_update(
        self, key: str, update: UpdateFunc, *, create_if_absent: bool = False, lease: int = 0
    ) -> KeyValue:
        """Read, apply `update`, write with CAS; retry while others win the race.

        With `create_if_absent` the function may be handed None and its result
        is created; otherwise an absent key raises `KeyNotFoundError`.
        """
        current = await self.get(key)
        while True:
            if current is None and not create_if_absent:
                raise errors.KeyNotFoundError(key)
            new_value = update(current)
            try:
                if current is None:
                    return await self.create(key, new_value, lease=lease)
                return await self.update(
                    key, new_value, expected_mod_revision=current.mod_revision, lease=lease
                )
            except errors.ConflictError as conflict:
                current = conflict.current
            except errors.KeyExistsError:
                current = await self.get(key)
            except errors.KeyNotFoundError:
                if not create_if_absent:
                    raise
                current = None

    # --- watch -----------------------------------------------------------
    @abc.abstractmethod
    def watch(
        self, prefix: str, *, from_revision: int, progress_interval: float = 5.0
    ) -> AsyncIterator[Event]:
        """Every change under `prefix` after `from_revision`, in order.

        Changes with revision <= from_revision are not sent. When nothing
        changes for `progress_interval` seconds a PROGRESS event carries the
        store's current revision. Raises `CompactedError` (when iterated) if
        `from_revision` is older than compaction kept. Closing the iterator
        (aclose, or leaving `async for`) ends the watch.
        """

    # --- leases ------------------------------------------------------------
    @abc.abstractmethod
    async def grant_lease(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; keys written with it die with it."""

    @abc.abstractmethod
    async def keepalive_lease(self, lease: int) -> int:
        """Restart the lease's TTL; returns the TTL. `LeaseNotFoundError` if gone."""

    @abc.abstractmethod
    async def revoke_lease(self, lease: int) -> None:
        """End the lease now, deleting its keys (each a DELETE event)."""

    # --- maintenance ---------------------------------------------------------
    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history before `revision`: reads and watches at older
        revisions raise `CompactedError` afterwards. Current values stay."""

    @abc.abstractmethod
    async def compacted_revision(self) -> int:
        """The revision of the last compaction (0 if never)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def check_write(key: str, value: bytes) -> None:
    """Validate a write before any backend sees it (nothing is written on error)."""
    keys.check_key(key)
    if not isinstance(value, bytes | bytearray | memoryview):
        raise errors.InvalidValueError(
            f"value for {key!r} must be bytes, not {type(value).__name__}"
        )
    if len(value) > MAX_VALUE_BYTES:
        raise errors.ValueTooLargeError(
            f"value for {key!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES} (1.5 MiB)"
        )


# etcd's default request limit; kubik enforces it on every backend so that a
# cluster can move from SQLite to etcd without objects that no longer fit.
MAX_VALUE_BYTES = 1536 * 1024
