"""coordination.k8s.io/v1 Leases: the spec Go always writes, and its few rules."""

from __future__ import annotations

from typing import Any

from kubik.api import defaults
from kubik.api.validation import Causes, forbidden, invalid, is_int, not_supported, validator

Object = dict[str, Any]


@defaults.defaulter("coordination.k8s.io", "Lease")
def default_lease(lease: Object) -> None:
    lease.setdefault("spec", {})


@validator("coordination.k8s.io", "Lease")
def validate_lease(lease: Object, old: Object | None) -> Causes:
    spec = lease.get("spec") or {}
    causes: Causes = []
    duration = spec.get("leaseDurationSeconds")
    if is_int(duration) and duration <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if is_int(transitions) and transitions < 0:
        causes.append(
            invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
        )
    strategy = spec.get("strategy")
    if strategy is not None and strategy != "OldestEmulationVersion":
        causes.append(not_supported("spec.strategy", strategy, ("OldestEmulationVersion",)))
    if spec.get("preferredHolder") and not strategy:
        causes.append(
            forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
        )
    return causes
