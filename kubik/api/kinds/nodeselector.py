"""Validation of node selectors: a pod's node affinity, required and preferred.

Upstream's ValidateNodeSelector and ValidatePreferredSchedulingTerms. The
scheduler reads these terms as they are, so a term it could not evaluate
(an unknown operator, `In` with no values, a field other than the node's
name) is refused when the pod is written rather than left to match nothing.
"""

from __future__ import annotations

from typing import Any

from kubik.api.validation import (
    Causes,
    dns1123_subdomain_problems,
    each_invalid,
    invalid,
    is_int,
    required,
    validate_requirement,
)

Object = dict[str, Any]

NODE_NAME_FIELD = "metadata.name"  # the one field a term's matchFields may name


def validate_node_affinity(affinity: Object, path: str) -> Causes:
    causes: Causes = []
    strict = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if strict is not None:
        causes += validate_node_selector(
            strict, f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
        )
    preferred = "preferredDuringSchedulingIgnoredDuringExecution"
    for i, weighted in enumerate(affinity.get(preferred) or []):
        at = f"{path}.{preferred}[{i}]"
        weight = weighted.get("weight")
        if not is_int(weight) or not 1 <= weight <= 100:
            causes.append(invalid(f"{at}.weight", weight, "must be in the range 1-100"))
        causes += _term(weighted.get("preference") or {}, f"{at}.preference")
    return causes


def validate_node_selector(selector: Object, path: str) -> Causes:
    terms = selector.get("nodeSelectorTerms") or []
    if not terms:
        return [required(f"{path}.nodeSelectorTerms", "must have at least one node selector term")]
    causes: Causes = []
    for i, term in enumerate(terms):
        causes += _term(term, f"{path}.nodeSelectorTerms[{i}]")
    return causes


def _term(term: Object, path: str) -> Causes:
    causes: Causes = []
    for i, requirement in enumerate(term.get("matchExpressions") or []):
        causes += validate_requirement(
            requirement, f"{path}.matchExpressions[{i}]", comparisons=True
        )
    for i, requirement in enumerate(term.get("matchFields") or []):
        causes += _field_requirement(requirement, f"{path}.matchFields[{i}]")
    return causes


def _field_requirement(requirement: Object, path: str) -> Causes:
    operator, values = requirement.get("operator", ""), requirement.get("values") or []
    causes: Causes = []
    if operator in ("In", "NotIn"):
        if len(values) != 1:
            causes.append(
                required(
                    f"{path}.values",
                    "must be only one value when `operator` is 'In' or 'NotIn' "
                    "for node field selector",
                )
            )
    else:
        causes.append(invalid(f"{path}.operator", operator, "not a valid selector operator"))
    key = requirement.get("key", "")
    if key != NODE_NAME_FIELD:
        causes.append(invalid(f"{path}.key", key, "not a valid field selector key"))
    else:
        for i, value in enumerate(values):
            causes += each_invalid(f"{path}.values[{i}]", value, dns1123_subdomain_problems(value))
    return causes
