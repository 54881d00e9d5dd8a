"""Every error the store raises, in one place.

The API server maps them to Kubernetes Status objects: KeyExistsError → 409
AlreadyExists, ConflictError → 409 Conflict, KeyNotFoundError → 404,
CompactedError → 410 Gone, FutureRevisionError → 504 "Too large resource
version", the Invalid* errors → 422/400, StoreUnavailableError → 503.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubik.store.interface import KeyValue


class StoreError(Exception):
    """Base of every store error."""


class KeyExistsError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} already exists")
        self.key = key


class KeyNotFoundError(StoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} not found")
        self.key = key


class ConflictError(StoreError):
    """The key moved on since the caller read it; `current` is what it is now."""

    def __init__(self, key: str, expected: int, current: KeyValue) -> None:
        super().__init__(
            f"key {key!r} was modified at revision {current.mod_revision}, "
            f"not {expected} as expected"
        )
        self.key = key
        self.expected = expected
        self.current = current


class CompactedError(StoreError):
    """The revision asked for is older than what compaction kept."""

    def __init__(self, revision: int, compacted: int) -> None:
        super().__init__(
            f"revision {revision} is too old: history before {compacted} was compacted"
        )
        self.revision = revision
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """The revision asked for is newer than the store's current revision."""

    def __init__(self, revision: int, current: int) -> None:
        super().__init__(f"revision {revision} is in the future (the store is at {current})")
        self.revision = revision
        self.current = current


class LeaseNotFoundError(StoreError):
    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease} not found (expired or revoked)")
        self.lease = lease


class InvalidKeyError(StoreError, ValueError):
    """A key (or prefix) outside the allowed shape; nothing was written."""


class InvalidValueError(StoreError, ValueError):
    """A value that is not bytes; nothing was written."""


class ValueTooLargeError(InvalidValueError):
    """A value over the 1.5 MiB request limit; nothing was written."""


class InvalidEndpointError(StoreError, ValueError):
    """A datastore endpoint that cannot be parsed."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached (or opened)."""
