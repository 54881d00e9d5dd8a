"""Field paths and field sets: the vocabulary of managedFields and server-side apply.

A path is a tuple of path elements, each spelled as in FieldsV1: `f:<name>`
for a field, `k:<json>` for an item of a map-type list (its key fields,
sorted), `v:<json>` for an item of a set, `i:<n>` for a position. A field
set is a plain `set` of paths; every path in it is a member (a field that
only has members below it is not itself one unless added).

The walks over objects need to know, at each place, what upstream's
structured-merge-diff would: whether a map is atomic, whether a list is
atomic, a set, or a map keyed by which fields. They read it from the kind's
OpenAPI schema (`x-kubernetes-list-type`, `-list-map-keys`, `-map-type`,
and for lists without a type, a `merge` patch strategy); where there is no
schema, maps are granular and lists atomic, as upstream deduces.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubik.api import schemas

Path = tuple[str, ...]
Schema = dict[str, Any]

# Key fields upstream gives a default to, so items that leave them out still
# have a key (a container port without `protocol` is the TCP one).
_KEY_DEFAULTS = {"protocol": "TCP"}

# Go structs that are values, not pointers, in upstream's types: they are
# always present in an object, so writing into them never adds them.
_VALUE_STRUCTS = {
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    "io.k8s.api.core.v1.PodTemplateSpec",
    "io.k8s.api.core.v1.PodSpec",
    "io.k8s.api.core.v1.ResourceRequirements",
    "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
    "io.k8s.api.apps.v1.DeploymentStrategy",
    "io.k8s.api.apps.v1.StatefulSetUpdateStrategy",
    "io.k8s.api.apps.v1.DaemonSetUpdateStrategy",
    "io.k8s.api.batch.v1.JobTemplateSpec",
    "io.k8s.api.batch.v1.JobSpec",
}
_TOP_LEVEL_VALUES = {"metadata", "spec", "status"}

_ABSENT: Any = object()  # a field that is not there (unlike one that is null)


class FieldPathError(ValueError):
    """A value field paths cannot describe; the message says where, as upstream does."""


# ------------------------------------------------------------------ elements


def canonical_json(value: Any) -> str:
    """JSON as Go writes it: compact, keys sorted, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def field_element(name: str) -> str:
    return "f:" + name


def key_element(key: dict[str, Any]) -> str:
    return "k:" + canonical_json(key)


def value_element(value: Any) -> str:
    return "v:" + canonical_json(value)


def parse_element(text: str) -> str:
    """A path element from FieldsV1, in the canonical spelling (ValueError if bad)."""
    kind, sep, body = text[:1], text[1:2], text[2:]
    if sep != ":":
        raise FieldPathError(f"invalid path element {text!r}")
    if kind == "f":
        return text
    if kind == "i" and body.isdigit():
        return f"i:{int(body)}"
    if kind in ("k", "v"):
        try:
            value = json.loads(body)
        except ValueError:
            raise FieldPathError(f"invalid path element {text!r}") from None
        if kind == "v":
            return value_element(value)
        if isinstance(value, dict):
            return key_element(value)
    raise FieldPathError(f"invalid path element {text!r}")


def _go_string(value: Any) -> str:
    """A value as upstream prints it inside a path: strings quoted, others bare."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if isinstance(value, int | float) else canonical_json(value)


def describe_element(element: str) -> str:
    kind, body = element[0], element[2:]
    if kind == "f":
        return "." + body
    if kind == "k":
        key = json.loads(body)
        return "[" + ",".join(f"{name}={_go_string(key[name])}" for name in sorted(key)) + "]"
    if kind == "v":
        return f"[={_go_string(json.loads(body))}]"
    return f"[{body}]"


def describe(path: Path) -> str:
    """A path as upstream prints it: `.spec.containers[name="web"].image`."""
    return "".join(describe_element(element) for element in path)


@functools.lru_cache(maxsize=4096)
def _element_order(element: str) -> tuple:
    """Upstream's order of path elements: fields, then keys, values, indexes."""
    kind, body = element[0], element[2:]
    if kind == "f":
        return (0, body)
    if kind == "k":
        key = json.loads(body)
        return (1, tuple((name, _value_order(key[name])) for name in sorted(key)))
    if kind == "v":
        return (2, _value_order(json.loads(body)))
    return (3, int(body))


def _value_order(value: Any) -> tuple:
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if value is None:
        return (5,)
    return (3 if isinstance(value, list) else 4, canonical_json(value))


# ------------------------------------------------------------------ FieldsV1


@dataclass
class _Node:
    member: bool = False
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(paths: Iterable[Path]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for element in path:
            node = node.children.setdefault(element, _Node())
        node.member = True
    return root


def to_fields_v1(paths: Iterable[Path]) -> dict:
    """The FieldsV1 object of a field set, ordered as upstream writes it."""
    return _emit(_tree(paths))


def _emit(node: _Node) -> dict:
    out: dict = {}
    for element in sorted(node.children, key=_element_order):
        child = node.children[element]
        body: dict = {".": {}} if child.member and child.children else {}
        body.update(_emit(child))
        out[element] = body
    return out


def from_fields_v1(data: Any) -> set[Path]:
    """The field set a FieldsV1 object describes (FieldPathError if malformed)."""
    if not isinstance(data, dict):
        raise FieldPathError("fieldsV1 must be an object")
    paths: set[Path] = set()
    _read(data, (), paths)
    return paths


def _read(data: dict, prefix: Path, paths: set[Path]) -> None:
    for text, body in data.items():
        if not isinstance(body, dict):
            raise FieldPathError(f"fieldsV1 entry {text!r} must be an object")
        if text == ".":
            if prefix:
                paths.add(prefix)
            continue
        path = prefix + (parse_element(text),)
        if body:
            _read(body, path, paths)
        else:
            paths.add(path)


def ordered(paths: Iterable[Path]) -> list[Path]:
    """Paths in upstream's iteration order: a level's members, then each subtree."""
    return list(_iterate(_tree(paths), ()))


def _iterate(node: _Node, prefix: Path) -> Iterator[Path]:
    elements = sorted(node.children, key=_element_order)
    for element in elements:
        if node.children[element].member:
            yield prefix + (element,)
    for element in elements:
        if node.children[element].children:
            yield from _iterate(node.children[element], prefix + (element,))


def group(paths: Iterable[Path]) -> dict[str, tuple[bool, set[Path]]]:
    """Paths by first element: (is that element itself a member, the rest below it)."""
    groups: dict[str, tuple[bool, set[Path]]] = {}
    for path in paths:
        if not path:
            continue
        member, below = groups.get(path[0], (False, set()))
        if len(path) == 1:
            member = True
        else:
            below.add(path[1:])
        groups[path[0]] = (member, below)
    return groups


# ------------------------------------------------------------------- schemas


def child_schema(schema: Schema, name: str) -> Schema:
    """The (unresolved) schema of field `name` of a map: a property or the map's values."""
    resolved = schemas.resolve(schema)
    properties = resolved.get("properties") or {}
    if name in properties:
        return properties[name]
    extra = resolved.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def is_named(schema: Schema, name: str) -> bool:
    """Is `name` a declared field of a struct (rather than a key of a map)?"""
    return name in (schemas.resolve(schema).get("properties") or {})


def _closed(schema: Schema) -> bool:
    """Does a struct schema reject fields it does not declare?"""
    resolved = schemas.resolve(schema)
    return (
        bool(resolved.get("properties"))
        and "additionalProperties" not in resolved
        and not resolved.get("x-kubernetes-preserve-unknown-fields")
    )


def item_schema(schema: Schema) -> Schema:
    return schemas.resolve(schema).get("items") or {}


def atomic_map(schema: Schema) -> bool:
    return "atomic" in (
        schema.get("x-kubernetes-map-type"),
        schemas.resolve(schema).get("x-kubernetes-map-type"),
    )


def list_type(schema: Schema) -> tuple[str, tuple[str, ...]]:
    """("atomic" | "set" | "map", key fields) of a list, as upstream converts the schema."""
    for candidate in (schema, schemas.resolve(schema)):
        kind = candidate.get("x-kubernetes-list-type")
        if kind == "map":
            keys = tuple(candidate.get("x-kubernetes-list-map-keys") or ())
            return ("map", keys) if keys else ("atomic", ())
        if kind in ("set", "atomic"):
            return kind, ()
    strategy = schema.get("x-kubernetes-patch-strategy", "")
    if strategy == "merge" or strategy.startswith("merge,"):
        key = schema.get("x-kubernetes-patch-merge-key")
        return ("map", (key,)) if key else ("set", ())
    return "atomic", ()


def item_element(item: Any, kind: str, keys: tuple[str, ...]) -> str:
    """The path element of an item of a set or map-type list."""
    if kind == "map":
        if not isinstance(item, dict):
            raise FieldPathError("associative list with keys may not have non-map elements")
        key = {}
        for name in keys:
            if name in item:
                key[name] = item[name]
            elif name in _KEY_DEFAULTS:
                key[name] = _KEY_DEFAULTS[name]
            else:
                raise FieldPathError(
                    f'associative list with keys has an element that omits key field "{name}" '
                    "(and doesn't have default value)"
                )
        return key_element(key)
    if isinstance(item, dict):
        raise FieldPathError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise FieldPathError("not supported: associative list with lists as elements")
    if item is None:
        raise FieldPathError("associative list without keys has an element that's an explicit null")
    return value_element(item)


def ensure_named_fields(paths: set[Path], schema: Schema) -> set[Path]:
    """`paths` plus every declared struct field above one of them (upstream's
    EnsureNamedFieldsAreMembers), so pruning can remove a struct field whole."""
    result = set(paths)
    for path in paths:
        current = schema
        for depth, element in enumerate(path[:-1]):
            if element.startswith("f:"):
                name = element[2:]
                if is_named(current, name):
                    result.add(path[: depth + 1])
                current = child_schema(current, name)
            else:
                current = item_schema(current)
    return result


# ------------------------------------------------------------------- walks


def same(a: Any, b: Any) -> bool:
    """JSON equality (True is not 1, 1 is 1.0)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    return a == b


def field_set(value: Any, schema: Schema, *, strict: bool = False) -> set[Path]:
    """The fields an object sets (upstream's ToFieldSet).

    Leaves, atomic lists and maps, items of sets and map-type lists, map
    entries that are not declared fields, and null or empty-map fields are
    members. `strict` (an applied configuration) also rejects undeclared
    fields and duplicate list items, with upstream's messages.
    """
    paths: set[Path] = set()
    _collect(value, schema, (), "", paths, strict)
    return paths


def _collect(value: Any, schema: Schema, path: Path, where: str, out: set, strict: bool) -> None:
    if isinstance(value, dict):
        if atomic_map(schema):
            out.add(path)
            if not strict:
                return
            out = set()  # walk on only to check the fields
        for name, child in value.items():
            named = is_named(schema, name)
            if strict and not named and _closed(schema):
                raise FieldPathError(f"{where}.{name}: field not declared in schema")
            child_path = path + (field_element(name),)
            _collect(child, child_schema(schema, name), child_path, f"{where}.{name}", out, strict)
            if child is None or child == {} or not named:
                out.add(child_path)
    elif isinstance(value, list):
        kind, keys = list_type(schema)
        items = item_schema(schema)
        if kind == "atomic":
            out.add(path)
            for index, item in enumerate(value if strict else ()):
                _collect(item, items, path + (f"i:{index}",), f"{where}[{index}]", set(), strict)
            return
        seen = set()
        for index, item in enumerate(value):
            try:
                element = item_element(item, kind, keys)
            except FieldPathError as exc:
                raise FieldPathError(f"{where}: element {index}: {exc}") from None
            if strict and element in seen:
                raise FieldPathError(
                    f"{where}: duplicate entries for key {describe_element(element)}"
                )
            seen.add(element)
            item_path = path + (element,)
            _collect(item, items, item_path, where + describe_element(element), out, strict)
            out.add(item_path)
    else:
        out.add(path)


@dataclass
class Comparison:
    """What changed from one object to the next, as field sets."""

    added: set[Path] = field(default_factory=set)
    modified: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)

    @property
    def changed(self) -> set[Path]:
        return self.added | self.modified

    def without(self, keep: Callable[[Path], bool]) -> Comparison:
        """Only the paths `keep(path)` accepts."""
        return Comparison(
            {p for p in self.added if keep(p)},
            {p for p in self.modified if keep(p)},
            {p for p in self.removed if keep(p)},
        )


def compare(old: Any, new: Any, schema: Schema) -> Comparison:
    """Fields added, modified and removed from `old` to `new` (upstream's Compare).

    Leaves are compared by value; a map or list item that appears or goes
    away is itself added or removed along with what it holds.
    """
    result = Comparison()
    _diff(old, new, schema, (), result)
    return result


def _diff(old: Any, new: Any, schema: Schema, path: Path, result: Comparison) -> None:
    present = [v for v in (old, new) if v is not _ABSENT and v is not None]
    if present and all(isinstance(v, dict) for v in present) and not atomic_map(schema):
        olds = old if isinstance(old, dict) else {}
        news = new if isinstance(new, dict) else {}
        if not olds and not news:
            return _leaf(old, new, path, result)
        for name in {**olds, **news}:
            _diff(
                olds[name] if name in olds else _zero(old, schema, name, path),
                news[name] if name in news else _zero(new, schema, name, path),
                child_schema(schema, name),
                path + (field_element(name),),
                result,
            )
    elif present and all(isinstance(v, list) for v in present) and list_type(schema)[0] != "atomic":
        olds = old if isinstance(old, list) else []
        news = new if isinstance(new, list) else []
        if not olds and not news:
            return _leaf(old, new, path, result)
        _diff_items(olds, news, schema, path, result)
    else:
        return _leaf(old, new, path, result)
    if old is _ABSENT:
        result.added.add(path)
    elif new is _ABSENT:
        result.removed.add(path)


def _zero(parent: Any, schema: Schema, name: str, path: Path) -> Any:
    """A missing field of a present struct, as upstream's Go types always have it:
    an empty struct for value structs, null for required fields, else absent."""
    if not isinstance(parent, dict) or not is_named(schema, name):
        return _ABSENT
    resolved = schemas.resolve(schema)
    ref = schemas.ref_name(resolved["properties"][name])
    if ref in _VALUE_STRUCTS or (not path and name in _TOP_LEVEL_VALUES):
        return {}
    return None if name in (resolved.get("required") or ()) else _ABSENT


def _leaf(old: Any, new: Any, path: Path, result: Comparison) -> None:
    if old is _ABSENT:
        result.added.add(path)
    elif new is _ABSENT:
        result.removed.add(path)
    elif not same(old, new):
        result.modified.add(path)


def _diff_items(olds: list, news: list, schema: Schema, path: Path, result: Comparison) -> None:
    kind, keys = list_type(schema)
    items = item_schema(schema)
    before: dict[str, list] = {}
    after: dict[str, list] = {}
    for source, index in ((olds, before), (news, after)):
        for position, item in enumerate(source):
            try:
                index.setdefault(item_element(item, kind, keys), []).append(item)
            except FieldPathError as exc:
                raise FieldPathError(f"{describe(path)}: element {position}: {exc}") from None
    for element in {**before, **after}:
        lefts, rights = before.get(element, []), after.get(element, [])
        item_path = path + (element,)
        if len(lefts) <= 1 and len(rights) <= 1:
            left = lefts[0] if lefts else _ABSENT
            right = rights[0] if rights else _ABSENT
            _diff(left, right, items, item_path, result)
        elif len(lefts) >= 2 and len(rights) >= 2:
            if not same(lefts, rights):
                result.modified.add(item_path)
        elif len(lefts) >= 2:
            if rights:
                _diff(_ABSENT, rights[0], items, item_path, result)
            result.removed.add(item_path)
        else:
            if lefts:
                _diff(lefts[0], _ABSENT, items, item_path, result)
            result.added.add(item_path)
