"""Tables: the columns `kubectl get` prints, rendered by the server (meta.k8s.io Table).

Each built-in kind has a printer (upstream: pkg/printers/internalversion)
giving its column definitions and the cells of one object's row; the
printers live in `kubik.api.printers`, one module per API group. The server
always renders the wide form (every column, priority 1 included) and kubectl
hides priority-1 columns unless asked for `-o wide`. Kinds without a printer
get upstream's default table convertor (Name, Created At); custom resources
get the columns their CRD version declares, once registered
(`register_custom_resource`) or directly (`custom_resource_table`).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubik.api import schemas
from kubik.api.registry import Resource

Object = dict[str, Any]
Column = dict[str, Any]
Cells = Callable[[Object], list[Any]]
Conditions = Callable[[Object], list[Object]]


@dataclass(frozen=True)
class Printer:
    """One kind's columns, the cells of a row, and (rarely) the row's conditions."""

    columns: list[Column]
    cells: Cells
    conditions: Conditions | None = None


_PRINTERS: dict[tuple[str, str], Printer] = {}  # built-in kinds by (group, kind)
_CUSTOM: dict[tuple[str, str, str], Printer] = {}  # custom resources by (group, version, kind)

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def doc(definition: str, field: str) -> str:
    """A field's description in upstream's schemas: the text upstream's columns carry."""
    properties = schemas.named(definition).get("properties") or {}
    return (properties.get(field) or {}).get("description", "")


def column(
    name: str, type_: str = "string", description: str = "", *, priority: int = 0, format_: str = ""
) -> Column:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


NAME = column("Name", format_="name", description=doc(_OBJECT_META, "name"))
AGE = column("Age", description=doc(_OBJECT_META, "creationTimestamp"))
_CREATED_AT = column("Created At", "date", doc(_OBJECT_META, "creationTimestamp"))


def printer(
    group: str, kind: str, columns: list[Column], *, conditions: Conditions | None = None
) -> Callable[[Cells], Cells]:
    """Register the decorated cells function as the printer of group/kind."""

    def register(cells: Cells) -> Cells:
        _PRINTERS[(group, kind)] = Printer(columns, cells, conditions)
        return cells

    return register


def now() -> datetime.datetime:
    """The clock ages are measured against (one place, so tests can freeze it)."""
    return datetime.datetime.now(datetime.UTC)


def parse_timestamp(timestamp: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime) as an aware datetime; None if unset."""
    if not timestamp or not isinstance(timestamp, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def age(obj: Object) -> str:
    """The object's age as kubectl prints it (translateTimestampSince)."""
    return human_duration_since((obj.get("metadata") or {}).get("creationTimestamp"))


def human_duration_since(timestamp: str | datetime.datetime | None) -> str:
    """How long ago `timestamp` was, "<unknown>" when it is unset or unreadable."""
    then = timestamp if isinstance(timestamp, datetime.datetime) else parse_timestamp(timestamp)
    if then is None:
        return "<unknown>"
    return human_duration(seconds_between(then, now()))


def seconds_between(start: datetime.datetime, end: datetime.datetime) -> int:
    """Whole seconds from start to end, truncated toward zero as Go's int(d.Seconds())."""
    return int((end - start).total_seconds())


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
    found = _CUSTOM.get((resource.group, resource.version, resource.kind)) or _PRINTERS.get(
        (resource.group, resource.kind), _DEFAULT
    )
    return render(found, objects, version, include=include)


def custom_resource_table(
    crd_version_schema: Object, objects: list[Object], version: str, *, include: str = "Metadata"
) -> Object:
    """A Table of custom resources with the columns of their CRD version.

    `crd_version_schema` is the CRD's entry in `spec.versions` (its
    `additionalPrinterColumns`); a version declaring none prints NAME and AGE.
    """
    return render(_custom.printer_for(crd_version_schema), objects, version, include=include)


def register_custom_resource(resource: Resource, crd_version: Object) -> None:
    """From now on print `resource` (one served version of a CRD) with its declared columns."""
    _CUSTOM[(resource.group, resource.version, resource.kind)] = _custom.printer_for(crd_version)


def unregister_custom_resource(resource: Resource) -> None:
    _CUSTOM.pop((resource.group, resource.version, resource.kind), None)


def render(found: Printer, objects: list[Object], version: str, *, include: str) -> Object:
    """The Table of `objects` as `found` prints them; `include` says what each row carries."""
    rows = []
    for obj in objects:
        row: Object = {"cells": found.cells(obj)}
        conditions = found.conditions(obj) if found.conditions else []
        if conditions:
            row["conditions"] = conditions
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
        "columnDefinitions": found.columns,
        "rows": rows,
    }


def _default_cells(obj: Object) -> list[Any]:
    """Upstream's default table convertor: the name and the creation time in RFC 3339 UTC."""
    created = parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    return [(obj.get("metadata") or {}).get("name", ""), _rfc3339(created)]


def _rfc3339(moment: datetime.datetime | None) -> str:
    """A time as Go prints time.RFC3339 in UTC; an unset time is Go's zero time."""
    t = moment.astimezone(datetime.UTC) if moment else datetime.datetime.min
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


_DEFAULT = Printer([NAME, _CREATED_AT], _default_cells)

# The printers register themselves on import; they need the helpers above.
from kubik.api import printers as _printers  # noqa: E402, F401
from kubik.api.printers import custom as _custom  # noqa: E402
