"""Object metadata: the fields the server owns (uid, timestamps, names, versions)."""

from __future__ import annotations

import datetime
import os
import random
import uuid
from typing import Any

# generateName suffixes use upstream's alphabet: no vowels, no look-alikes. They need to
# be unlikely to collide, not unpredictable: a seeded generator, as upstream's math/rand,
# costs a fraction of the system randomness (one syscall per character) on every create.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_names = random.Random()
os.register_at_fork(after_in_child=_names.seed)  # a forked child must not repeat its parent


def now() -> str:
    """The current time in RFC 3339 at second precision, as metadata timestamps are."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """RFC 3339 with microseconds (MicroTime: leases, events.k8s.io, managedFields)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generated_name(prefix: str) -> str:
    return prefix + "".join(_names.choices(_NAME_ALPHABET, k=5))


def metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """The object's metadata dict, created if missing."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def name_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def namespace_of(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""
