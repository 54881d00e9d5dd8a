"""Server-side apply: merge an applied configuration into the live object.

As upstream (sigs.k8s.io/structured-merge-diff, driven by the kind's
schema): the applied object is merged into the live one (maps field by
field, map-type lists item by item, sets as unions, everything else
replaced); the fields it sets become its manager's "Apply" entry; fields the
manager applied last time but no longer does are removed, unless another
manager owns them; and changing a field another manager owns is a conflict
(409, with upstream's message) unless `force` takes it over.

kubectl's field manager `kubectl` gets upstream's help in moving from
client-side apply: conflicts on fields the last-applied annotation set (and
that still have those values) are not conflicts, and that annotation is kept
up to date when present.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from kubik.api import errors, fieldmanager, fieldpath, meta, schemas
from kubik.api.fieldmanager import APPLY, Entry
from kubik.api.fieldpath import Path, Schema
from kubik.api.registry import Resource

Object = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_KUBECTL = "kubectl"  # the manager `kubectl apply --server-side` uses
_MAX_ANNOTATIONS_SIZE = 256 * 1024
_ABSENT: Any = object()


def apply(
    live: Object | None, applied: Object, *, manager: str, force: bool, resource: Resource
) -> Object:
    """The live object (None: a new one) with `applied` merged in and managedFields updated."""
    applied = copy.deepcopy(applied)
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise errors.bad_request("metadata.managedFields must be nil")
    schema = schemas.named(resource.schema_name) if resource.schema_name else {}
    keep = _scope(resource)
    try:
        config = {p for p in fieldpath.field_set(applied, schema, strict=True) if keep(p)}
    except fieldpath.FieldPathError as exc:
        raise _server_error(
            f"failed to create typed patch object ({_identify(applied, resource)}): {exc}"
        ) from None
    current = fieldmanager.without_managed_fields(copy.deepcopy(live)) if live is not None else {}
    try:
        entries = fieldmanager.entries_of(live)
        if live is not None and not entries:
            entries = fieldmanager.adopt_existing(current, schema, keep)
        attempt = _Attempt(current, applied, config, entries, manager, resource, schema, keep)
        try:
            merged = attempt.run(force=force)
        except fieldmanager.Conflicts as exc:
            allowed = _allowed_by_last_applied(current, schema, resource)
            remaining = [
                (e, p) for e, p in exc.conflicts if manager != _KUBECTL or p not in allowed
            ]
            if remaining:
                raise _conflict_error(remaining) from None
            merged = attempt.run(force=True)
    except fieldpath.FieldPathError as exc:
        raise _server_error(f"failed to apply ({_identify(applied, resource)}): {exc}") from None
    if manager == _KUBECTL:
        _sync_last_applied(merged, applied)
    return merged


def _scope(resource: Resource) -> Callable[[Path], bool]:
    """Which paths an apply to the main resource owns: not status, when the
    status subresource owns it."""
    if not resource.has_status:
        return lambda path: True
    return lambda path: fieldmanager.in_scope(path, status=False)


@dataclasses.dataclass
class _Attempt:
    """One go at applying; run again (with force) when conflicts turn out allowed."""

    live: Object
    applied: Object
    config: set[Path]
    entries: list[Entry]
    manager: str
    resource: Resource
    schema: Schema
    keep: Callable[[Path], bool]

    def run(self, *, force: bool) -> Object:
        entries = [dataclasses.replace(e, fields=set(e.fields)) for e in self.entries]
        merged = _merge(self.live, self.applied, self.schema)
        mine = Entry(self.manager, APPLY, self.resource.group_version, set(self.config))
        previous = fieldmanager.find(entries, mine.identity)
        if previous is not None:
            entries.remove(previous)
            mine.time = previous.time
        entries.append(mine)
        if previous is not None:
            merged = _prune(merged, entries, previous.fields, self.schema)
        changes = fieldpath.compare(self.live, merged, self.schema).without(self.keep)
        fieldmanager.claim(entries, changes, owner=mine.identity, force=force)
        mine.fields = fieldmanager.strip(mine.fields)
        if mine.time is None or not fieldpath.same(merged, self.live):
            mine.time = meta.now()
        fieldmanager.store(merged, entries)
        return merged


# ------------------------------------------------------------------- merging


def _merge(live: Any, config: Any, schema: Schema) -> Any:
    """`config` merged into `live`: granular maps and keyed lists and sets merge,
    anything else is replaced; null fields go away."""
    if config is _ABSENT:
        return live
    if live is _ABSENT:
        return config
    if isinstance(live, dict) and isinstance(config, dict):
        if (live or config) and not fieldpath.atomic_map(schema):
            merged = {}
            for name in {**live, **config}:
                value = _merge(
                    live.get(name, _ABSENT),
                    config.get(name, _ABSENT),
                    fieldpath.child_schema(schema, name),
                )
                if value is not None:
                    merged[name] = value
            return merged
    elif isinstance(live, list) and isinstance(config, list):
        if (live or config) and fieldpath.list_type(schema)[0] != "atomic":
            return _merge_items(live, config, schema)
    return config


def _merge_items(live: list, config: list, schema: Schema) -> list:
    """Items of both lists: live order kept, config items in config order,
    shared items where the config puts them (upstream's merge order)."""
    kind, keys = fieldpath.list_type(schema)
    items = fieldpath.item_schema(schema)
    config_elements = [fieldpath.item_element(item, kind, keys) for item in config]
    config_items = dict(zip(config_elements, config, strict=True))
    live_elements = [fieldpath.item_element(item, kind, keys) for item in live]
    live_items: dict[str, Any] = {}
    for element, item in zip(live_elements, live, strict=True):
        live_items[element] = _ABSENT if element in live_items else item  # duplicates merge as new
    shared = [e for e in config_elements if e in live_items]
    next_shared = shared.pop(0) if shared else None
    done: set[str] = set()
    merged: list = []
    li = ri = 0
    while li < len(live_elements) or ri < len(config_elements):
        if li < len(live_elements) and ri < len(config_elements):
            element = live_elements[li]
            if element == config_elements[ri]:
                done.add(element)
                merged.append(_merge(live_items[element], config_items[element], items))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if element in config_items and next_shared is not None and next_shared != element:
                li += 1
                continue
        if li < len(live_elements):
            element = live_elements[li]
            if element not in config_items:
                merged.append(live[li])
                li += 1
                continue
            if element in done:
                li += 1
        if ri < len(config_elements):
            element = config_elements[ri]
            done.add(element)
            merged.append(_merge(live_items.get(element, _ABSENT), config_items[element], items))
            ri += 1
            if next_shared == element:
                next_shared = shared.pop(0) if shared else None
    return merged


# ------------------------------------------------------------------- pruning


def _prune(merged: Object, entries: list[Entry], last: set[Path], schema: Schema) -> Object:
    """Remove what the manager applied last time and no longer does, unless
    someone (the manager's new configuration included) still owns it.

    Upstream's three steps: remove all of the last applied fields, add back
    what anyone owns, then add back what the last apply did not own.
    """
    last = fieldpath.ensure_named_fields(last, schema)
    owned = fieldpath.ensure_named_fields(set().union(*(e.fields for e in entries)), schema)
    everything = _named_fields(merged, schema)
    pruned = _remove(merged, last, schema)
    pruned = _remove(merged, everything - (_named_fields(pruned, schema) | owned), schema)
    return _remove(merged, (everything - _named_fields(pruned, schema)) & last, schema)


def _named_fields(obj: Any, schema: Schema) -> set[Path]:
    return fieldpath.ensure_named_fields(fieldpath.field_set(obj or {}, schema), schema)


def _remove(value: Any, paths: set[Path], schema: Schema) -> Any:
    """`value` without the fields and items `paths` name (None when nothing is left
    of a map or list that lost something)."""
    if not paths or not value:
        return value
    groups = fieldpath.group(paths)
    if isinstance(value, dict):
        if fieldpath.atomic_map(schema):
            return value
        kept = {}
        for name, child in value.items():
            member, below = groups.get(fieldpath.field_element(name), (False, set()))
            if member:
                continue
            if below:
                child = _remove(child, below, fieldpath.child_schema(schema, name))
            if child is not None:
                kept[name] = child
        return kept or None
    if isinstance(value, list):
        kind, keys = fieldpath.list_type(schema)
        if kind == "atomic":
            return value
        items = fieldpath.item_schema(schema)
        remaining = []
        for item in value:
            member, below = groups.get(fieldpath.item_element(item, kind, keys), (False, set()))
            if member:
                continue
            remaining.append(_remove(item, below, items) if below else item)
        return remaining or None
    return value


# ------------------------------------------------------- client-side apply


def _allowed_by_last_applied(live: Object, schema: Schema, resource: Resource) -> set[Path]:
    """Fields the last-applied annotation set and the live object still has as
    set: `kubectl` may take them from client-side apply without conflicts."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        last = json.loads(text) if text else None
        if not isinstance(last, dict) or last.get("apiVersion") != resource.group_version:
            return set()
        changes = fieldpath.compare(last, live, schema)
        return fieldpath.field_set(last, schema) - changes.changed - changes.removed
    except (ValueError, fieldpath.FieldPathError):
        return set()


def _sync_last_applied(merged: Object, applied: Object) -> None:
    """Keep an existing last-applied annotation equal to what was applied."""
    annotations = (merged.get("metadata") or {}).get("annotations")
    if not isinstance(annotations, dict) or not annotations.get(LAST_APPLIED):
        return
    config = copy.deepcopy(applied)
    config_annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(config_annotations, dict):
        config_annotations.pop(LAST_APPLIED, None)
    annotations[LAST_APPLIED] = fieldpath.canonical_json(config) + "\n"
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > _MAX_ANNOTATIONS_SIZE:
        del annotations[LAST_APPLIED]


# -------------------------------------------------------------------- errors


def _identify(obj: Object, resource: Resource) -> str:
    """An object as upstream's apply errors name it: `ns/name; group/version, Kind=K`."""
    return (
        f"{meta.namespace_of(obj)}/{meta.name_of(obj)}; "
        f"{resource.group}/{resource.version}, Kind={resource.kind}"
    )


def _server_error(message: str) -> errors.APIError:
    """Upstream answers apply failures it did not classify as 500 without a reason."""
    return errors.APIError(500, "", message)


def _conflict_error(conflicts: list[tuple[Entry, Path]]) -> errors.APIError:
    """409 naming each conflicting field and its manager, worded as upstream."""
    conflicts = sorted(conflicts, key=lambda c: c[0].identity)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": fieldpath.describe(path),
        }
        for entry, path in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = (
            f"Apply failed with 1 conflict: conflict with {entry.describe()}: "
            f"{fieldpath.describe(path)}"
        )
    else:
        lines: list[str] = []
        for index, (entry, path) in enumerate(conflicts):
            if index == 0 or conflicts[index - 1][0].identity != entry.identity:
                lines.append(f"conflicts with {entry.describe()}:")
            lines.append(f"- {fieldpath.describe(path)}")
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return errors.APIError(409, "Conflict", message, details={"causes": causes})
