"""Label and field selectors, parsed once and matched against object dicts.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`,
`!a`, joined by commas (apimachinery `pkg/labels`). Field selectors: `f=v`,
`f==v`, `f!=v` on the fields a resource supports (`metadata.name`,
`metadata.namespace`, and per kind: a pod's `spec.nodeName`,
`status.phase`, …).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubik.api import errors

Matcher = Callable[[dict[str, Any]], bool]

_KEY = r"(?:[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?"
_VALUE = r"(?:[a-z0-9A-Z](?:[-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?"
_TERM = re.compile(
    rf"^\s*(?:(?P<not>!)\s*(?P<absent>{_KEY})|(?P<key>{_KEY})\s*"
    rf"(?:(?P<op>==|=|!=)\s*(?P<value>{_VALUE})|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?)\s*$"
)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_labels(text: str) -> Matcher | None:
    """A matcher for a label selector (None when the selector is empty)."""
    if not text.strip():
        return None
    checks: list[Matcher] = []
    for term in _split_terms(text):
        match = _TERM.match(term)
        if not match:
            raise errors.bad_request(
                f"unable to parse requirement: invalid label selector {text!r}"
            )
        checks.append(_label_check(match))
    return lambda obj: all(check(_labels(obj)) for check in checks)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _label_check(match: re.Match) -> Callable[[dict[str, str]], bool]:
    if match["absent"]:
        key = match["absent"]
        return lambda labels: key not in labels
    key = match["key"]
    if match["op"] in ("=", "=="):
        value = match["value"]
        return lambda labels: labels.get(key) == value
    if match["op"] == "!=":
        value = match["value"]
        return lambda labels: labels.get(key) != value
    if match["setop"]:
        values = {v.strip() for v in match["set"].split(",") if v.strip()}
        if match["setop"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Does a structured LabelSelector (matchLabels/matchExpressions) select `labels`?"""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


# Fields each kind can be selected by, beyond metadata.name / metadata.namespace.
# (upstream: each kind's GetAttrs / AddFieldLabelConversionFunc)
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "Node": ("spec.unschedulable",),
    "ReplicaSet": ("status.replicas",),
    "Job": ("status.successful",),
    "Service": ("spec.clusterIP", "spec.type"),
    "PersistentVolumeClaim": ("spec.volumeName",),
}


def field_value(obj: dict[str, Any], path: str) -> str:
    """A field as the string a field selector compares (booleans as true/false)."""
    if path == "source" and obj.get("kind") == "Event":
        return (obj.get("source") or {}).get("component", "")
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_fields(text: str, kind: str) -> Matcher | None:
    """A matcher for a field selector on `kind` (None when empty); 400 on unknown fields."""
    if not text.strip():
        return None
    allowed = ("metadata.name", "metadata.namespace", *FIELD_PATHS.get(kind, ()))
    checks: list[Matcher] = []
    for term in _split_terms(text):
        match = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not match:
            raise errors.bad_request(f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        if path not in allowed:
            raise errors.bad_request(f"field label not supported: {path}")
        if op == "!=":
            checks.append(lambda obj, p=path, v=value: field_value(obj, p) != v)
        else:
            checks.append(lambda obj, p=path, v=value: field_value(obj, p) == v)
    return lambda obj: all(check(obj) for check in checks)


def exact_name(text: str) -> str:
    """The name a field selector pins down with metadata.name=X (else "")."""
    for term in _split_terms(text):
        match = re.match(r"^\s*metadata\.name\s*(==|=)\s*(.*?)\s*$", term)
        if match:
            return match.group(2)
    return ""
