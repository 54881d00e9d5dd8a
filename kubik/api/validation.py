"""Validation: one cause per bad field, as upstream's 422 Invalid answers list them.

`validate(resource, obj, old=None)` checks the metadata every object has,
then the kind's own rules (registered by kind in `_VALIDATORS`); `old` is the
stored object on update, for immutable fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubik.api.errors import field_cause
from kubik.api.registry import Resource

Object = dict[str, Any]
Causes = list[dict[str, str]]
Validator = Callable[[Object, Object | None], Causes]

_VALIDATORS: dict[tuple[str, str], Validator] = {}

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Kinds whose names must be DNS-1123 labels (≤ 63), not subdomains (upstream).
_LABEL_NAMED = {"Namespace", "Service"}


def validator(group: str, kind: str) -> Callable[[Validator], Validator]:
    def register(fn: Validator) -> Validator:
        _VALIDATORS[(group, kind)] = fn
        return fn

    return register


def validate(resource: Resource, obj: Object, *, old: Object | None) -> Causes:
    causes = validate_metadata(resource, obj.get("metadata") or {}, old)
    fn = _VALIDATORS.get((resource.group, resource.kind))
    if fn is not None:
        causes += fn(obj, old)
    return causes


def dns1123_label_problem(value: str) -> str:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not DNS1123_LABEL.match(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
            "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return ""


def dns1123_subdomain_problem(value: str) -> str:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not DNS1123_SUBDOMAIN.match(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character "
            "(e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return ""


def qualified_name_problem(key: str) -> str:
    """A label or annotation key: an optional DNS subdomain prefix and a name ≤ 63."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or dns1123_subdomain_problem(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is "
            "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return ""


def validate_metadata(resource: Resource, metadata: Object, old: Object | None) -> Causes:
    causes: Causes = []
    name = metadata.get("name", "")
    if not name:
        causes.append(
            field_cause("metadata.name", "name or generateName is required", "FieldValueRequired")
        )
    else:
        problem = (
            dns1123_label_problem(name)
            if resource.kind in _LABEL_NAMED
            else dns1123_subdomain_problem(name)
        )
        if problem:
            causes.append(field_cause("metadata.name", f'Invalid value: "{name}": {problem}'))
    if resource.namespaced and not metadata.get("namespace"):
        causes.append(field_cause("metadata.namespace", "Required value", "FieldValueRequired"))
    for key, value in (metadata.get("labels") or {}).items():
        problem = qualified_name_problem(key)
        if problem:
            causes.append(field_cause("metadata.labels", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                field_cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character",
                )
            )
    for key in metadata.get("annotations") or {}:
        problem = qualified_name_problem(key)
        if problem:
            causes.append(field_cause("metadata.annotations", f'Invalid value: "{key}": {problem}'))
    if old is not None:
        old_meta = old.get("metadata") or {}
        for field in ("name", "namespace"):
            if metadata.get(field, "") != old_meta.get(field, ""):
                causes.append(field_cause(f"metadata.{field}", "Invalid value: field is immutable"))
    return causes
