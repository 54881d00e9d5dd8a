"""Custom resources: the columns a CRD version declares (`additionalPrinterColumns`).

As upstream's CRD table convertor: NAME first, then each declared column's
JSONPath value typed by the column (a date shows as an age, an integer or
number as a JSON number, a string column as client-go's jsonpath prints it);
a missing value is null. A version declaring no columns prints NAME and AGE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from kubik.api.printers.cells import name
from kubik.api.printers.jsonpath import JSONPathError, compile_path
from kubik.api.tables import (
    NAME,
    Object,
    Printer,
    column,
    doc,
    human_duration_since,
    parse_timestamp,
)

_DEFAULT_COLUMNS = [
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": doc("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "creationTimestamp"),
    }
]


def printer_for(crd_version: Object) -> Printer:
    """The printer of one CRD version; columns after an unparsable JSONPath are dropped."""
    columns = [NAME]
    finders: list[Callable[[Any], list[Any]]] = []
    for declared in crd_version.get("additionalPrinterColumns") or _DEFAULT_COLUMNS:
        path = declared.get("jsonPath", "")
        try:
            finders.append(compile_path(path))
        except JSONPathError:
            break
        description = declared.get("description") or (
            f"Custom resource definition column (in JSONPath format): {path}"
        )
        columns.append(
            column(
                declared.get("name", ""),
                declared.get("type", ""),
                description,
                priority=declared.get("priority") or 0,
                format_=declared.get("format", ""),
            )
        )
    types = [c["type"] for c in columns[1:]]

    def cells(obj: Object) -> list[Any]:
        return [
            name(obj),
            *(_cell(kind, find, obj) for kind, find in zip(types, finders, strict=True)),
        ]

    return Printer(columns, cells)


def _cell(kind: str, find: Callable[[Any], list[Any]], obj: Object) -> Any:
    try:
        found = find(obj)
    except JSONPathError:
        return None
    if not found:
        return None
    value = found[0]
    if kind == "string":
        return _text(value)
    return _typed(kind, value)


def _typed(kind: str, value: Any) -> Any:
    """A non-string column's cell: the value if it has the column's type, else null."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer" and is_number:
        return int(value) if math.isfinite(value) else None
    if kind == "number" and is_number:
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        if value in ("", "null"):
            return "<unknown>"
        return human_duration_since(value) if parse_timestamp(value) else "<invalid>"
    return None


def _text(value: Any) -> str:
    """A value as client-go's jsonpath prints it: objects and arrays as compact JSON."""
    if isinstance(value, dict | list):
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form below 1e-4 and from 1e6 up."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    shortest = Decimal(repr(value)).normalize()
    sign, digits, exponent = shortest.as_tuple()
    power = len(digits) + int(exponent) - 1
    if -4 <= power < 6:
        return format(shortest, "f")
    text = "".join(map(str, digits))
    mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{'+' if power >= 0 else '-'}{abs(power):02d}"
