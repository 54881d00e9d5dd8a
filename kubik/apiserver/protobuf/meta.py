"""apimachinery's messages: object metadata, selectors, DeleteOptions and the
value types with their own JSON forms (Time, IntOrString, Quantity).

Field numbers are those of k8s.io/apimachinery pkg/apis/meta/v1,
pkg/util/intstr and pkg/api/resource `generated.proto`.
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from kubik.apiserver.protobuf.wire import WireError

MESSAGES = {
    "ObjectMeta": {
        1: "name string",
        2: "generateName string",
        3: "namespace string",
        4: "selfLink string",
        5: "uid string",
        6: "resourceVersion string",
        7: "generation int",
        8: "creationTimestamp Time",
        9: "deletionTimestamp Time",
        10: "deletionGracePeriodSeconds *int",
        11: "labels {}string",
        12: "annotations {}string",
        13: "ownerReferences []OwnerReference",
        14: "finalizers []string",
        17: "managedFields []ManagedFieldsEntry",
    },
    "OwnerReference": {
        5: "apiVersion *string",
        1: "kind *string",
        3: "name *string",
        4: "uid *string",
        6: "controller *bool",
        7: "blockOwnerDeletion *bool",
    },
    "ManagedFieldsEntry": {
        1: "manager string",
        2: "operation string",
        3: "apiVersion string",
        4: "time Time",
        6: "fieldsType string",
        7: "fieldsV1 FieldsV1",
        8: "subresource string",
    },
    "FieldsV1": {1: "Raw raw"},
    "LabelSelector": {1: "matchLabels {}string", 2: "matchExpressions []LabelSelectorRequirement"},
    "LabelSelectorRequirement": {1: "key *string", 2: "operator *string", 3: "values []string"},
    "FieldSelectorRequirement": {1: "key *string", 2: "operator *string", 3: "values []string"},
    "Condition": {
        1: "type *string",
        2: "status *string",
        3: "observedGeneration int",
        4: "lastTransitionTime Time",
        5: "reason *string",
        6: "message *string",
    },
    "DeleteOptions": {
        1: "gracePeriodSeconds *int",
        2: "preconditions Preconditions",
        3: "orphanDependents *bool",
        4: "propagationPolicy *string",
        5: "dryRun []string",
        6: "ignoreStoreReadErrorWithClusterBreakingPotential *bool",
    },
    "Preconditions": {1: "uid *string", 2: "resourceVersion *string"},
    # runtime.Unknown, the envelope of every protobuf body, and its TypeMeta
    "Unknown": {
        1: "typeMeta TypeMeta",
        2: "raw raw",
        3: "contentEncoding string",
        4: "contentType string",
    },
    "TypeMeta": {1: "apiVersion string", 2: "kind string"},
    # values whose JSON is not an object (see FORMS)
    "Time": {1: "seconds int", 2: "nanos int"},
    "IntOrString": {1: "type int", 2: "intVal int", 3: "strVal string"},
    "Quantity": {1: "string *string"},
}


def _time(fields: dict[str, Any]) -> str | None:
    """RFC 3339 in UTC to the second, as metav1.Time is written; None for the zero time."""
    if not fields:
        return None  # Go writes the zero Time as an empty message, and JSON as null
    try:
        moment = datetime.datetime.fromtimestamp(fields.get("seconds", 0), datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise WireError(f"time {fields.get('seconds')} seconds is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(fields: dict[str, Any]) -> int | str:
    return fields.get("strVal", "") if fields.get("type") == 1 else fields.get("intVal", 0)


def _fields_json(fields: dict[str, Any]) -> Any:
    """FieldsV1 carries managed-field sets as JSON bytes; its JSON form is that JSON."""
    try:
        return orjson.loads(fields.get("Raw", b"{}"))
    except orjson.JSONDecodeError:
        raise WireError("fieldsV1 is not valid JSON") from None


FORMS = {
    "Time": _time,
    "IntOrString": _int_or_string,
    "Quantity": lambda fields: fields.get("string") or "0",
    "FieldsV1": _fields_json,
}

KINDS = {("*", "DeleteOptions"): "DeleteOptions"}
