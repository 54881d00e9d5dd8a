"""managedFields: which field manager owns which fields of an object.

Every write is attributed as upstream's field manager does it: an entry per
manager and operation ("Update" entries also per apiVersion, both per
subresource) with the set of fields it owns in FieldsV1. An update (create,
update, patch) takes the fields it changed from whoever owned them and gives
them to its manager; fields it removed leave every owner. Server-side apply
(`apply.py`) builds on the same entries, and refuses to take fields from
other managers without `force`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubik.api import fieldpath, meta, schemas
from kubik.api.fieldpath import Comparison, Path

Object = dict[str, Any]

APPLY = "Apply"
UPDATE = "Update"
BEFORE_FIRST_APPLY = "before-first-apply"

# Fields the server owns: never attributed to a manager (exact paths only).
_STRIPPED: set[Path] = {("f:apiVersion",), ("f:kind",), ("f:metadata",)} | {
    ("f:metadata", "f:" + name)
    for name in (
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    )
}
_STATUS = "f:status"


@dataclass
class Entry:
    """One managedFields entry, its FieldsV1 decoded into a field set."""

    manager: str
    operation: str
    api_version: str
    fields: set[Path]
    time: str | None = None
    subresource: str = ""

    @property
    def identity(self) -> str:
        """Who this entry belongs to, as upstream keys managers: appliers are one
        entry whatever the apiVersion they last applied with."""
        identity: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation != APPLY:
            identity["apiVersion"] = self.api_version
        if self.subresource:
            identity["subresource"] = self.subresource
        return json.dumps(identity, separators=(",", ":"))

    def describe(self) -> str:
        """The manager as conflict messages name it."""
        name = json.dumps(self.manager, ensure_ascii=False)
        return f"{name} using {self.api_version}" if self.operation == UPDATE else name


class Conflicts(Exception):
    """Fields a write would take from other managers: (owner, path) pairs."""

    def __init__(self, conflicts: list[tuple[Entry, Path]]) -> None:
        super().__init__(f"{len(conflicts)} conflicts")
        self.conflicts = conflicts


# ------------------------------------------------------------- entries


def decode(raw: Any) -> list[Entry]:
    """Entries from metadata.managedFields (ValueError when malformed, as upstream)."""
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    by_identity: dict[str, Entry] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"managed fields entry {index} must be an object")
        if item.get("operation") not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        if not item.get("apiVersion"):
            raise ValueError("apiVersion must not be empty")
        if item.get("fieldsType") != "FieldsV1":
            raise ValueError(f"invalid fieldsType in managed fields entry {index}")
        entry = Entry(
            manager=str(item.get("manager", "")),
            operation=item["operation"],
            api_version=item["apiVersion"],
            fields=fieldpath.from_fields_v1(item.get("fieldsV1") or {}),
            time=item.get("time"),
            subresource=str(item.get("subresource", "")),
        )
        by_identity[entry.identity] = entry
    return list(by_identity.values())


def entries_of(obj: Object | None) -> list[Entry]:
    """The entries of a stored object (none when it has none or they do not decode)."""
    raw = ((obj or {}).get("metadata") or {}).get("managedFields")
    try:
        return decode(raw) if raw else []
    except ValueError:
        return []


def encode(entries: list[Entry]) -> list[dict]:
    """metadata.managedFields, in upstream's order: appliers first, then by time, name."""
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    result = []
    for entry in kept:
        item: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
        }
        if entry.time:
            item["time"] = entry.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = fieldpath.to_fields_v1(entry.fields)
        if entry.subresource:
            item["subresource"] = entry.subresource
        result.append(item)
    return result


def store(obj: Object, entries: list[Entry]) -> None:
    """Write `entries` into the object (no managedFields at all when none own anything)."""
    metadata = meta.metadata(obj)
    encoded = encode(entries)
    if encoded:
        metadata["managedFields"] = encoded
    else:
        metadata.pop("managedFields", None)


def find(entries: list[Entry], identity: str) -> Entry | None:
    return next((e for e in entries if e.identity == identity), None)


# ------------------------------------------------------------- ownership


def without_managed_fields(obj: Object) -> Object:
    """A shallow copy of `obj` whose metadata leaves managedFields out."""
    copy = dict(obj)
    copy["metadata"] = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"
    }
    return copy


def schema_of(obj: Object) -> fieldpath.Schema:
    """The OpenAPI schema of an object's kind ({} for kinds without one)."""
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    name = schemas.gvk_names().get((group, version, str(obj.get("kind", ""))), "")
    return schemas.named(name) if name else {}


def in_scope(path: Path, *, status: bool) -> bool:
    """Does a write through the main resource (status=False) or the status
    subresource own this path? Each resets what the other one writes."""
    return path[:1] == (_STATUS,) if status else path[:1] != (_STATUS,)


def strip(paths: set[Path]) -> set[Path]:
    return paths - _STRIPPED


def claim(entries: list[Entry], changes: Comparison, *, owner: str | None, force: bool) -> None:
    """Take changed fields from every entry (but `owner`'s), and drop removed ones.

    Without `force`, a changed field some other entry owns is a conflict and
    nothing is taken (`Conflicts`). Entries left owning nothing are dropped.
    """
    changed = changes.changed
    others = [e for e in entries if e.identity != owner]
    if not force:
        conflicts = [
            (entry, path) for entry in others for path in fieldpath.ordered(entry.fields & changed)
        ]
        if conflicts:
            raise Conflicts(conflicts)
    for entry in others:
        entry.fields = entry.fields - changed - changes.removed
    entries[:] = [e for e in entries if e.fields]


def adopt_existing(
    live: Object, schema: fieldpath.Schema, keep: Callable[[Path], bool]
) -> list[Entry]:
    """The entries of an object nobody owns fields of yet: all of it (what `keep`
    accepts), to "before-first-apply", so a first apply conflicts with what is there."""
    changes = fieldpath.compare({}, live, schema).without(keep)
    fields = strip(changes.changed)
    if not fields:
        return []
    return [Entry(BEFORE_FIRST_APPLY, UPDATE, str(live.get("apiVersion", "")), fields, meta.now())]


def record(
    obj: Object,
    old: Object | None,
    *,
    manager: str,
    operation: str,
    subresource: str = "",
) -> None:
    """Attribute what this write changed (everything it sets, on create) to `manager`.

    The entries to start from are the ones the client sent, unless it sent
    none, ones that do not decode, or writes a subresource: then the stored
    ones. Sending `[]` or `[{}]` resets them. If the object cannot be
    described by field paths, it loses its managedFields, as upstream does.
    """
    metadata = meta.metadata(obj)
    entries = _starting_entries(metadata.get("managedFields"), old, subresource)
    status = subresource == "status"
    try:
        changes = fieldpath.compare(
            without_managed_fields(old) if old is not None else {},
            without_managed_fields(obj),
            schema_of(obj),
        ).without(lambda p: in_scope(p, status=status))
    except fieldpath.FieldPathError:
        metadata.pop("managedFields", None)
        return
    claim(entries, changes, owner=None, force=True)
    taken = strip(changes.changed)
    if taken:
        mine = Entry(manager, operation, str(obj.get("apiVersion", "")), set(), None, subresource)
        entry = find(entries, mine.identity)
        if entry is None:
            entries.append(mine)
            entry = mine
        entry.fields |= taken
        entry.time = meta.now()
    store(obj, entries)


def _starting_entries(sent: Any, old: Object | None, subresource: str) -> list[Entry]:
    if subresource:
        return entries_of(old)
    if isinstance(sent, list) and (sent == [] or sent == [{}]):
        return []
    if sent:
        try:
            entries = decode(sent)
        except ValueError:
            entries = []
        if entries:
            return entries
    return entries_of(old)
