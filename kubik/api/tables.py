"""Tables: the columns `kubectl get` prints, rendered by the server (meta.k8s.io Table).

Each kind has a printer (upstream: pkg/printers/internalversion) giving its
column definitions and the cells of one object's row. Kinds without one get
NAME and AGE, as upstream's default table convertor prints.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from kubik.api.registry import Resource

Object = dict[str, Any]
Column = dict[str, Any]
Printer = tuple[list[Column], Callable[[Object], list[Any]]]

_PRINTERS: dict[tuple[str, str], Printer] = {}


def column(
    name: str, type_: str = "string", description: str = "", *, priority: int = 0, format_: str = ""
) -> Column:
    col = {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }
    return col


NAME = column("Name", format_="name", description="Name must be unique within a namespace.")
AGE = column(
    "Age",
    description="CreationTimestamp is a timestamp representing the server time "
    "when this object was created.",
)


def printer(group: str, kind: str, columns: list[Column]):
    def register(cells: Callable[[Object], list[Any]]) -> Callable[[Object], list[Any]]:
        _PRINTERS[(group, kind)] = (columns, cells)
        return cells

    return register


def age(obj: Object) -> str:
    """The object's age as kubectl prints it (translateTimestampSince)."""
    return human_duration_since((obj.get("metadata") or {}).get("creationTimestamp"))


def human_duration_since(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.UTC
        )
    except ValueError:
        return "<unknown>"
    seconds = int((datetime.datetime.now(datetime.UTC) - then).total_seconds())
    return human_duration(seconds)


def human_duration(seconds: int) -> str:
    """apimachinery's duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def table(
    resource: Resource, objects: list[Object], version: str, *, include: str = "Metadata"
) -> Object:
    """A meta.k8s.io Table of `objects`; each row carries the object as asked."""
    columns, cells = _PRINTERS.get(
        (resource.group, resource.kind), ([NAME, AGE], lambda obj: [_name(obj), age(obj)])
    )
    rows = []
    for obj in objects:
        row: Object = {"cells": cells(obj)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": f"meta.k8s.io/{version}",
                "metadata": obj.get("metadata", {}),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _name(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "")
