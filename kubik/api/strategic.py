"""Strategic merge patch: JSON merge patch that knows how the kind's lists merge.

What kubectl sends for `apply` (client-side), `edit`, `set image`, `rollout
restart` and `patch` by default. As upstream (apimachinery strategicpatch),
driven by the kind's schema (`x-kubernetes-patch-strategy` and
`-patch-merge-key` on the property): maps merge key by key and null deletes;
lists with a merge key merge item by item, lists of primitives with the
`merge` strategy are unions, other lists are replaced. Directives:

- `$patch: replace` / `delete` in a map replaces it by the rest of the patch
  map / empties it; in an item of a merging list, `delete` removes the items
  with that key and `replace` makes the list the patch's items;
- `$deleteFromPrimitiveList/<field>: [...]` removes values from a list;
- `$retainKeys: [...]` drops the fields of the map it does not name;
- `$setElementOrder/<field>: [...]` orders the merged list.

Custom resources have no schema: upstream refuses the patch type for them (415).
"""

from __future__ import annotations

import copy
from typing import Any

from kubik.api import errors, fieldpath, schemas
from kubik.api.fieldpath import Schema
from kubik.api.patch import MalformedPatchError, PatchError
from kubik.api.registry import Resource

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_LIST = "$deleteFromPrimitiveList"
SET_ORDER = "$setElementOrder"
CONTENT_TYPE = "application/strategic-merge-patch+json"


def apply(current: dict, patch: Any, resource: Resource) -> dict:
    """`current` with the strategic merge `patch` applied (neither is changed)."""
    if not resource.schema_name:
        raise errors.unsupported_media_type(CONTENT_TYPE)
    if not isinstance(patch, dict):
        raise MalformedPatchError("a strategic merge patch must be a JSON object")
    return _merge_map(
        copy.deepcopy(current), copy.deepcopy(patch), schemas.named(resource.schema_name)
    )


def _field(schema: Schema, name: str) -> tuple[Schema, str, str]:
    """(property schema, patch strategy other than retainKeys, merge key) of a field."""
    prop = fieldpath.child_schema(schema, name)
    strategies = prop.get("x-kubernetes-patch-strategy", "").split(",")
    strategy = next((s for s in strategies if s and s != "retainKeys"), "")
    return prop, strategy, prop.get("x-kubernetes-patch-merge-key", "")


def _target(key: str, prefix: str, problem: str) -> str:
    """The field a `<prefix>/<field>` directive key is about."""
    head, slash, name = key.partition("/")
    if head != prefix or not slash:
        raise MalformedPatchError(problem)
    return name


# ----------------------------------------------------------------------- maps


def _merge_map(original: dict, patch: dict, schema: Schema) -> dict:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != DIRECTIVE}
            return _merge_map({}, rest, schema)
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive} in map: {patch}")
    _retain_keys(original, patch)
    done = _order_lists(original, patch, schema)
    for key, value in patch.items():
        if key == RETAIN_KEYS or key.startswith(SET_ORDER) or key in done:
            continue
        deleting = key.startswith(DELETE_FROM_LIST)
        name = (
            _target(key, DELETE_FROM_LIST, "invalid patch format of primitive list")
            if deleting
            else key
        )
        if value is None:
            original.pop(name, None)
            continue
        prop, strategy, merge_key = _field(schema, name)
        if name not in original:
            if not deleting:
                original[name] = _fresh(value, prop, strategy, merge_key)
            continue
        current = original[name]
        if _kind(current) != _kind(value):
            if not deleting:
                original[name] = _fresh(value, prop, strategy, merge_key)
        elif isinstance(value, dict):
            if strategy == "replace":
                original[name] = _fresh(value, prop, strategy, merge_key)
            else:
                original[name] = _merge_map(current, value, prop)
        elif isinstance(value, list):
            if strategy == "merge" or deleting:
                original[name] = _merge_list(current, value, prop, merge_key, deleting=deleting)
            else:
                original[name] = value
        else:
            original[name] = value
    return original


def _fresh(value: Any, prop: Schema, strategy: str, merge_key: str) -> Any:
    """A patch value for a field the object does not have (directives applied)."""
    if isinstance(value, dict):
        return _merge_map({}, value, prop)
    if isinstance(value, list) and strategy == "merge":
        return _merge_list([], value, prop, merge_key, deleting=False)
    return value


def _retain_keys(original: dict, patch: dict) -> None:
    """`$retainKeys`: the map keeps only the fields named (the patch may set no others)."""
    if RETAIN_KEYS not in patch:
        return
    retained = patch[RETAIN_KEYS]
    if not isinstance(retained, list):
        raise MalformedPatchError("invalid patch format of retainKeys")
    names = {name for name in retained if isinstance(name, str)}
    for key, value in patch.items():
        if value is None or key == RETAIN_KEYS or key.startswith((DELETE_FROM_LIST, SET_ORDER)):
            continue
        if key not in names:
            raise MalformedPatchError("invalid patch format of retainKeys")
    for key in [k for k in original if k not in names]:
        del original[key]


def _order_lists(original: dict, patch: dict, schema: Schema) -> set[str]:
    """Apply each `$setElementOrder/<field>` with its list; the fields it handled."""
    done = set()
    for key, order in patch.items():
        if not key.startswith(SET_ORDER):
            continue
        problem = "invalid patch format of setElementOrder list"
        name = _target(key, SET_ORDER, problem)
        if not isinstance(order, list):
            raise MalformedPatchError(problem)
        prop, strategy, merge_key = _field(schema, name)
        before = original.get(name, [])
        changes = patch.get(name, [])
        if not isinstance(before, list) or not isinstance(changes, list):
            raise PatchError(f"{name} must be a list to be ordered")
        _check_order(changes, order, merge_key)
        if name in original and name in patch:
            merged = (
                _merge_list(before, changes, prop, merge_key, deleting=False)
                if strategy == "merge"
                else changes
            )
        elif name in original:
            merged = before
        elif name in patch:
            merged = _fresh(changes, prop, strategy, merge_key)
        else:
            continue
        key_name = merge_key if _element_kind(before + changes) == "map" else ""
        original[name] = _reorder(merged, order, before, key_name)
        done.add(name)
    return done


def _check_order(changes: list, order: list, merge_key: str) -> None:
    """The patch list's items must come in the order `$setElementOrder` gives."""
    if not order or not changes:
        return
    kept = [i for i in changes if not (merge_key and _directive(i) == "delete")]
    pi = oi = 0
    while pi < len(kept) and oi < len(order):
        if _directive(kept[pi]) is not None:
            pi += 1
            continue
        if _index([order[oi]], kept[pi], merge_key) == 0:
            pi += 1
        oi += 1
    if pi < len(kept):
        raise PatchError(
            f"The order in patch list:\n{changes}\n doesn't match {SET_ORDER} list:\n{order}\n"
        )


# ---------------------------------------------------------------------- lists


def _merge_list(original: list, patch: list, prop: Schema, merge_key: str, *, deleting: bool):
    if not original and not patch:
        return original
    if _element_kind(original + patch) != "map":
        if deleting:
            return [v for v in original if _index(patch, v, "") < 0]
        merged = []
        for value in original + patch:
            if _index(merged, value, "") < 0:
                merged.append(value)
        return _reorder(merged, patch, original, "")
    if not merge_key:
        raise PatchError("cannot merge lists without merge key")
    original, patch = _special_items(original, patch, merge_key)
    items = fieldpath.item_schema(prop)
    merged = list(original)
    for item in patch:
        if merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
        position = _index(merged, item, merge_key)
        if position >= 0:
            merged[position] = _merge_map(merged[position], item, items)
        else:
            merged.append(_merge_map({}, item, items))
    return _reorder(merged, patch, original, merge_key)


def _special_items(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Apply the `$patch` items of a merging list: (what is left of original, plain items)."""
    plain, replace = [], False
    for item in patch:
        directive = _directive(item)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [o for o in original if _index([item], o, merge_key) < 0]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {item}")
    return (plain, []) if replace else (original, plain)


def _reorder(merged: list, patch_order: list, server_order: list, merge_key: str) -> list:
    """Upstream's order for a merged list: the patch's items in the patch's order,
    the others in the object's order, interleaved by where the object had them."""
    for item in merged:
        if merge_key and merge_key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
    patched = [i for i in merged if _index(patch_order, i, merge_key) >= 0]
    others = [i for i in merged if _index(patch_order, i, merge_key) < 0]
    patched.sort(key=lambda i: _position(patch_order, i, merge_key))
    others.sort(key=lambda i: _position(server_order, i, merge_key))
    result = []
    while patched or others:
        if others and patched:
            left = _index(server_order, others[0], merge_key)
            right = _index(server_order, patched[0], merge_key)
            take_left = 0 <= left < right
        else:
            take_left = bool(others)
        result.append(others.pop(0) if take_left else patched.pop(0))
    return result


# ---------------------------------------------------------------------- values


def _directive(item: Any) -> Any:
    return item.get(DIRECTIVE) if isinstance(item, dict) else None


def _kind(value: Any) -> str:
    """The JSON type of a value, numbers being one type as in Go's decoding."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "string"


def _element_kind(items: list) -> str:
    kinds = {_kind(item) for item in items}
    if "list" in kinds:
        raise PatchError("lists of lists are not supported")
    if len(kinds) > 1:
        raise PatchError(f"list element types are not identical: {items}")
    return kinds.pop() if kinds else ""


def _index(items: list, value: Any, merge_key: str) -> int:
    """Where `value` is in `items` (by merge key value for maps), or -1."""
    for position, item in enumerate(items):
        if merge_key:
            if (
                isinstance(item, dict)
                and isinstance(value, dict)
                and merge_key in item
                and fieldpath.same(item[merge_key], value.get(merge_key))
            ):
                return position
        elif fieldpath.same(item, value):
            return position
    return -1


def _position(order: list, value: Any, merge_key: str) -> int:
    position = _index(order, value, merge_key)
    return position if position >= 0 else len(order)
