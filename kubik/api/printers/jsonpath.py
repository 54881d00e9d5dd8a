"""The JSONPath of kubectl and CRD printer columns (client-go's util/jsonpath), one expression.

Supported: `.field` (with `\\.` escapes), `..field` (recursive descent),
`.*` and `[*]`, `['field']`, `[n]` (negative from the end), `[start:end:step]`,
and filters `[?(@.path OP literal)]` with ==, !=, <, >, <=, >= or a bare
`[?(@.path)]` for existence. Missing keys yield no result, as CRD columns
allow; type errors (indexing a map, filtering a scalar) raise JSONPathError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

_TERMINATORS = set(" \t\r\n.,[]$@{}")
_FILTER = re.compile(r"^\?\((.*)\)$", re.S)
_COMPARISON = re.compile(r"^(.*?)\s*(==|!=|<=|>=|<|>)\s*(.*)$", re.S)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")

Step = Callable[[list[Any]], list[Any]]


class JSONPathError(ValueError):
    """The path cannot be parsed, or cannot be applied to this data."""


def compile_path(path: str) -> Callable[[Any], list[Any]]:
    """Parse `path` (with or without the surrounding braces) into a function of the data."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    steps = list(_parse(text))

    def find(data: Any) -> list[Any]:
        values = [data]
        for step in steps:
            values = step(values)
        return values

    return find


def _parse(text: str) -> Iterator[Step]:
    at = 0
    if text.startswith(("$", "@")):
        at = 1
    while at < len(text):
        char = text[at]
        if text.startswith("..", at):
            yield _recursive
            at += 1
        elif char == ".":
            end, name = _field_name(text, at + 1)
            if name:
                yield _wildcard if name == "*" else _field(name)
            at = end
        elif char == "[":
            end = _closing_bracket(text, at)
            yield _bracket(text[at + 1 : end].strip())
            at = end + 1
        elif char.isspace():
            at += 1
        else:
            raise JSONPathError(f"unrecognized character in action: {char!r}")


def _field_name(text: str, at: int) -> tuple[int, str]:
    name = []
    while at < len(text) and text[at] not in _TERMINATORS:
        if text[at] == "\\" and at + 1 < len(text):
            at += 1
        name.append(text[at])
        at += 1
    return at, "".join(name)


def _closing_bracket(text: str, at: int) -> int:
    depth, quote = 0, ""
    for index in range(at, len(text)):
        char = text[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth == 0:
                return index
    raise JSONPathError("unclosed array expect ]")


def _bracket(inner: str) -> Step:
    if filter_match := _FILTER.match(inner):
        return _filter(filter_match.group(1).strip())
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _field(inner[1:-1])
    if inner == "*":
        return _slice(None, None, None)
    parts = inner.split(":")
    if len(parts) > 3 or not all(_is_int(p) for p in parts):
        raise JSONPathError(f"invalid array index {inner!r}")
    if len(parts) == 1:
        return _index(int(parts[0]))
    numbers = [int(p) if p.strip() else None for p in parts] + [None]
    return _slice(numbers[0], numbers[1], numbers[2])


def _is_int(text: str) -> bool:
    return not text.strip() or re.fullmatch(r"\s*-?\d+\s*", text) is not None


def _field(name: str) -> Step:
    def step(values: list[Any]) -> list[Any]:
        return [v[name] for v in values if isinstance(v, dict) and name in v]

    return step


def _wildcard(values: list[Any]) -> list[Any]:
    found: list[Any] = []
    for value in values:
        if isinstance(value, dict):
            found.extend(value.values())
        elif isinstance(value, list):
            found.extend(value)
    return found


def _recursive(values: list[Any]) -> list[Any]:
    """Each value and everything nested in it, depth first."""
    found: list[Any] = []
    for value in values:
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list) and children:
            found.append(value)
            found.extend(_recursive(list(children)))
    return found


def _lists(values: list[Any]) -> Iterator[list[Any]]:
    for value in values:
        if value is None:
            continue
        if not isinstance(value, list):
            raise JSONPathError(f"{type(value).__name__} is not array or slice")
        yield value


def _index(position: int) -> Step:
    def step(values: list[Any]) -> list[Any]:
        found = []
        for items in _lists(values):
            at = position + len(items) if position < 0 else position
            if not 0 <= at < len(items):
                raise JSONPathError(f"array index out of bounds: index {position}")
            found.append(items[at])
        return found

    return step


def _slice(start: int | None, end: int | None, stride: int | None) -> Step:
    if stride is not None and stride <= 0:
        raise JSONPathError("step must be > 0")

    def step(values: list[Any]) -> list[Any]:
        found = []
        for items in _lists(values):
            first = 0 if start is None else start + len(items) if start < 0 else start
            last = len(items) if end is None else end + len(items) if end < 0 else end
            if first == last:
                continue
            if not 0 <= first < len(items) or not 0 <= last <= len(items) or first > last:
                raise JSONPathError(f"array index out of bounds: {first}:{last}")
            found.extend(items[first : last : stride or 1])
        return found

    return step


def _filter(expression: str) -> Step:
    comparison = _COMPARISON.match(expression)
    left_text = comparison.group(1) if comparison else expression
    left = _operand(left_text.strip())
    operator = comparison.group(2) if comparison else "exists"
    right = _operand(comparison.group(3).strip()) if comparison else None

    def step(values: list[Any]) -> list[Any]:
        found = []
        for items in _lists(values):
            for item in items:
                lefts = left(item)
                if operator == "exists":
                    found.extend([item] if lefts else [])
                    continue
                rights = right(item) if right else []
                if len(lefts) > 1 or len(rights) > 1:
                    raise JSONPathError("can only compare one element at a time")
                if lefts and rights and _compare(lefts[0], operator, rights[0]):
                    found.append(item)
        return found

    return step


def _operand(text: str) -> Callable[[Any], list[Any]]:
    """`@.path` relative to the filtered item, or a literal (string, number, boolean)."""
    if text.startswith("@"):
        return compile_path(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        literal: Any = text[1:-1]
    elif text in ("true", "false"):
        literal = text == "true"
    elif _NUMBER.match(text):
        literal = float(text) if any(c in text for c in ".eE") else int(text)
    else:
        raise JSONPathError(f"unrecognized filter operand {text!r}")
    return lambda _item: [literal]


def _compare(left: Any, operator: str, right: Any) -> bool:
    """Go template comparison: operands of one basic kind, ordering for numbers and strings."""
    if _kind(left) != _kind(right):
        raise JSONPathError("incompatible types for comparison")
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if _kind(left) not in ("int", "float", "str"):
        raise JSONPathError("invalid type for comparison")
    return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[
        operator
    ]


def _kind(value: Any) -> str:
    return type(value).__name__
