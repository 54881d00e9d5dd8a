"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) on object dicts.

Both raise `PatchError` with a message naming what did not apply; the API
answers it as upstream does (422 for a JSON patch that does not apply, 400
for a malformed patch document).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(Exception):
    """A patch that cannot apply to this object."""


class MalformedPatchError(PatchError):
    """A patch document of the wrong shape."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 applied to a copy of `target`."""
    if not isinstance(operations, list):
        raise MalformedPatchError("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise MalformedPatchError(f"operation {index} needs 'op' and 'path'")
        document = _apply_operation(document, operation)
    return document


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise MalformedPatchError(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _apply_operation(document: Any, operation: dict) -> Any:
    op = operation["op"]
    path = _pointer(operation["path"])
    if op == "add":
        return _add(document, path, copy.deepcopy(_value(operation)))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        document, _ = _remove(document, path)
        return _add(document, path, copy.deepcopy(_value(operation)))
    if op in ("move", "copy"):
        source = _pointer(operation.get("from"))
        value = copy.deepcopy(_get(document, source))
        if op == "move":
            document, _ = _remove(document, source)
        return _add(document, path, value)
    if op == "test":
        if _get(document, path) != _value(operation):
            raise PatchError(f"testing value {operation['path']} failed")
        return document
    raise MalformedPatchError(f"unknown JSON patch operation {op!r}")


def _value(operation: dict) -> Any:
    if "value" not in operation:
        raise MalformedPatchError(f"operation {operation['op']!r} needs a 'value'")
    return operation["value"]


def _get(document: Any, path: list[str]) -> Any:
    current = document
    for part in path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and _index(part, len(current)) is not None:
            current = current[_index(part, len(current))]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(path)}")
    return current


def _index(part: str, length: int, *, allow_end: bool = False) -> int | None:
    if part == "-" and allow_end:
        return length
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        return None
    index = int(part)
    limit = length + 1 if allow_end else length
    return index if index < limit else None


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        index = _index(last, len(parent), allow_end=True)
        if index is None:
            raise PatchError(f"add operation index out of bounds: /{'/'.join(path)}")
        parent.insert(index, value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: /{'/'.join(path)}")
    return document


def _remove(document: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        return None, document
    parent = _get(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and last in parent:
        return document, parent.pop(last)
    if isinstance(parent, list):
        index = _index(last, len(parent))
        if index is not None:
            return document, parent.pop(index)
    raise PatchError(f"remove operation does not apply: doc is missing path: /{'/'.join(path)}")
