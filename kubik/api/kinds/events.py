"""Events, core/v1 and events.k8s.io/v1: the fields Go always writes, and validation.

Neither API version has defaults of its own, but Go writes some empty
fields anyway (`eventTime: null`, `reportingComponent: ""`, `source: {}`…),
so clients read them back as upstream serves them.

Validation follows upstream's ValidateEventCreate: a core/v1 event in the
old style (no eventTime) must name its involved object's namespace; an
event with an eventTime, and every events.k8s.io/v1 event, must say who
reported it, what action it took and why.
"""

from __future__ import annotations

from typing import Any

from kubik.api import defaults
from kubik.api.validation import (
    Causes,
    dns1123_subdomain_problems,
    each_invalid,
    invalid,
    qualified_name_problems,
    required,
    validator,
)

Object = dict[str, Any]

_SHORT_LIMIT = 128  # reportingInstance, action, reason
_NOTE_LIMIT = 1024


@defaults.defaulter("", "Event")
def default_core_event(event: Object) -> None:
    for key, empty in (
        ("involvedObject", {}),
        ("source", {}),
        ("firstTimestamp", None),
        ("lastTimestamp", None),
        ("eventTime", None),
        ("reportingComponent", ""),
        ("reportingInstance", ""),
    ):
        event.setdefault(key, empty)


@defaults.defaulter("events.k8s.io", "Event")
def default_event(event: Object) -> None:
    for key, empty in (
        ("regarding", {}),
        ("deprecatedSource", {}),
        ("deprecatedFirstTimestamp", None),
        ("deprecatedLastTimestamp", None),
        ("eventTime", None),
    ):
        event.setdefault(key, empty)


@validator("", "Event")
def validate_core_event(event: Object, old: Object | None) -> Causes:
    return _legacy_rules(
        event,
        involved=event.get("involvedObject") or {},
        controller_field="reportingComponent",
        message_field="message",
    )


@validator("events.k8s.io", "Event")
def validate_event(event: Object, old: Object | None) -> Causes:
    causes = _legacy_rules(
        event,
        involved=event.get("regarding") or {},
        controller_field="reportingController",
        message_field="note",
    )
    if old is not None:
        return causes
    if not event.get("eventTime"):
        causes.append(required("eventTime"))
    kind = event.get("type") or ""
    if kind not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {kind}"))
    for key in ("deprecatedFirstTimestamp", "deprecatedLastTimestamp", "deprecatedCount"):
        if event.get(key):
            causes.append(invalid(key, "", "needs to be unset"))
    source = event.get("deprecatedSource") or {}
    if source.get("component") or source.get("host"):
        causes.append(invalid("deprecatedSource", "", "needs to be unset"))
    return causes


def _legacy_rules(
    event: Object, *, involved: Object, controller_field: str, message_field: str
) -> Causes:
    causes: Causes = []
    namespace = (event.get("metadata") or {}).get("namespace") or ""
    involved_namespace = involved.get("namespace") or ""
    mismatch = invalid(
        "involvedObject.namespace", involved_namespace, "does not match event.namespace"
    )
    if not event.get("eventTime"):
        if involved_namespace:
            if namespace != involved_namespace:
                causes.append(mismatch)
        elif namespace not in ("", "default"):
            causes.append(mismatch)
    else:
        if not involved_namespace and namespace not in ("default", "kube-system"):
            causes.append(mismatch)
        controller = event.get(controller_field) or ""
        if not controller:
            causes.append(required(controller_field))
        causes += each_invalid(controller_field, controller, qualified_name_problems(controller))
        for key in ("reportingInstance", "action", "reason"):
            value = event.get(key) or ""
            if not value:
                causes.append(required(key))
            if len(value) > _SHORT_LIMIT:
                causes.append(invalid(key, "", f"can have at most {_SHORT_LIMIT} characters"))
        # Upstream names the field by its internal name whichever version was written.
        if len(event.get(message_field) or "") > _NOTE_LIMIT:
            causes.append(invalid("message", "", f"can have at most {_NOTE_LIMIT} characters"))
    causes += each_invalid("namespace", namespace, dns1123_subdomain_problems(namespace))
    return causes
