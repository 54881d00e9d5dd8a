"""Events, core/v1 and events.k8s.io/v1: one storage, one printer.

Upstream serves both groups from the core event storage, so both print the
same columns; an events.k8s.io object is read through its core field names.
"""

from __future__ import annotations

from typing import Any

from kubik.api.printers.cells import get, name, number
from kubik.api.tables import NAME, Object, column, doc, human_duration_since, printer

_EVENT = "io.k8s.api.core.v1.Event"

COLUMNS = [
    column("Last Seen", description=doc(_EVENT, "lastTimestamp")),
    column("Type", description=doc(_EVENT, "type")),
    column("Reason", description=doc(_EVENT, "reason")),
    column("Object", description=doc(_EVENT, "involvedObject")),
    column(
        "Subobject",
        description=doc("io.k8s.api.core.v1.ObjectReference", "fieldPath"),
        priority=1,
    ),
    column("Source", description=doc(_EVENT, "source"), priority=1),
    column("Message", description=doc(_EVENT, "message")),
    column("First Seen", description=doc(_EVENT, "firstTimestamp"), priority=1),
    column("Count", description=doc(_EVENT, "count"), priority=1),
    {**NAME, "priority": 1},
]

# events.k8s.io/v1 field → the core/v1 field holding the same value
_CORE_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "deprecatedSource": "source",
}


@printer("", "Event", COLUMNS)
def event_cells(event: Object) -> list[Any]:
    first = human_duration_since(event.get("firstTimestamp") or event.get("eventTime"))
    last = human_duration_since(event["lastTimestamp"]) if event.get("lastTimestamp") else first
    count = number(event.get("count"))
    series = event.get("series")
    if series is not None:
        last = human_duration_since(series.get("lastObservedTime"))
        count = number(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    regarding = event.get("involvedObject") or {}
    target = (regarding.get("kind") or "").lower()
    if regarding.get("name"):
        target = f"{target}/{regarding['name']}"
    return [
        last,
        event.get("type", ""),
        event.get("reason", ""),
        target,
        regarding.get("fieldPath", ""),
        _source(event),
        (event.get("message") or "").strip(),
        first,
        count,
        name(event),
    ]


@printer("events.k8s.io", "Event", COLUMNS)
def events_v1_cells(event: Object) -> list[Any]:
    return event_cells({_CORE_FIELDS.get(key, key): value for key, value in event.items()})


def _source(event: Object) -> str:
    """component[, host], falling back to the reporting controller and instance."""
    component = get(event, "source", "component") or event.get("reportingController") or ""
    host = get(event, "source", "host") or event.get("reportingInstance") or ""
    return f"{component}, {host}" if host else component
