"""The arithmetic of Deployments, free of I/O (upstream: pkg/controller/deployment/util).

Which ReplicaSet is new (its template equals the Deployment's, ignoring the
pod-template-hash label) and which are old; the revision and replica-count
annotations; maxSurge/maxUnavailable resolved against spec.replicas;
proportions for scaling during a rollout; the status and its conditions.
Every function takes and returns plain dicts of the wire JSON.
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson

from kubik.api import meta
from kubik.controllers.podutil import parse_time

Object = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# annotations of a Deployment its ReplicaSets do not inherit
_NOT_COPIED = {
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
}
REVISION_HISTORY_CHARS = 2000  # upstream keeps the revision history this short

# condition reasons (upstream's names)
RS_UPDATED = "ReplicaSetUpdated"
RS_CREATE_FAILED = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_MAX_INT32 = 2**31 - 1
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's rand.SafeEncodeString


# --------------------------------------------------------------- templates


def semantic(value: Any) -> Any:
    """`value` without nulls and empty maps or lists: Go does not tell these from absent."""
    if isinstance(value, dict):
        kept = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [semantic(item) for item in value]
    return value


def _without_hash(template: Object) -> Object:
    template = semantic(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        labels = {k: v for k, v in labels.items() if k != HASH_LABEL}
        template["metadata"] = {**template["metadata"], "labels": labels}
    return semantic(template)


def equal_ignore_hash(a: Object, b: Object) -> bool:
    """Are two pod templates the same but for the pod-template-hash label?"""
    return _without_hash(a) == _without_hash(b)


def _fnv1a(data: bytes, value: int = 0x811C9DC5) -> int:
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: Object, collision_count: int | None = None) -> str:
    """The pod-template-hash of a template, as upstream spells it (ComputeHash).

    A 32-bit FNV-1a of the template (here its canonical JSON), mixed with the
    collision count when there is one, written in decimal and each digit
    mapped onto a vowel-free alphabet.
    """
    value = _fnv1a(orjson.dumps(semantic(template), option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        value = _fnv1a((collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4), value)
    return "".join(_SAFE_ALPHABET[ord(digit) % len(_SAFE_ALPHABET)] for digit in str(value))


# ----------------------------------------------------------- replica sets


def replicas(obj: Object | None) -> int:
    """spec.replicas (defaulted to 1 by the server, so always there in practice)."""
    return 0 if obj is None else (obj.get("spec") or {}).get("replicas", 1)


def status_count(obj: Object | None, field: str) -> int:
    return 0 if obj is None else (obj.get("status") or {}).get(field, 0)


def total(sets: list[Object | None], field: str = "") -> int:
    """Sum of spec.replicas, or of a status count when `field` is given."""
    return sum(status_count(rs, field) if field else replicas(rs) for rs in sets if rs)


def active(sets: list[Object | None]) -> list[Object]:
    """Sets that want pods."""
    return [rs for rs in sets if rs is not None and replicas(rs) > 0]


def _created(rs: Object) -> tuple[str, str]:
    return rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]


def oldest_first(sets: list[Object]) -> list[Object]:
    return sorted(sets, key=_created)


def largest_older_first(sets: list[Object]) -> list[Object]:
    """By size, the older first among equals: where scaling down starts."""
    return sorted(sets, key=lambda rs: (-replicas(rs), *_created(rs)))


def largest_newer_first(sets: list[Object]) -> list[Object]:
    """By size, the newer first among equals: where scaling up starts."""
    newest = sorted(sets, key=_created, reverse=True)
    return sorted(newest, key=lambda rs: -replicas(rs))  # stable: keeps newest first


def revision(rs: Object) -> int:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def by_revision(sets: list[Object]) -> list[Object]:
    return sorted(sets, key=lambda rs: (revision(rs), *_created(rs)))


def find_new(deployment: Object, sets: list[Object]) -> Object | None:
    """The oldest set whose template is the Deployment's (ignoring the hash label)."""
    template = deployment["spec"].get("template") or {}
    for rs in oldest_first(sets):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def find_old(deployment: Object, sets: list[Object]) -> list[Object]:
    new = find_new(deployment, sets)
    return [rs for rs in sets if new is None or rs["metadata"]["uid"] != new["metadata"]["uid"]]


def find_active_or_latest(new: Object | None, old: list[Object]) -> Object | None:
    """The only set with replicas, or the newest if none has any; None when several do."""
    if new is None and not old:
        return None
    newest_old = sorted(old, key=_created, reverse=True)
    wanting = active([*newest_old, new])
    if not wanting:
        return new if new is not None else newest_old[0]
    return wanting[0] if len(wanting) == 1 else None


# ------------------------------------------------------------- annotations


def _int_annotation(rs: Object, name: str) -> int | None:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def desired_replicas_annotation(rs: Object) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def set_replicas_annotations(rs: Object, desired: int, maximum: int) -> bool:
    """Record the Deployment's size and its size plus surge on a set; True if changed."""
    annotations = rs["metadata"].setdefault("annotations", {})
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(maximum)}
    changed = any(annotations.get(k) != v for k, v in wanted.items())
    annotations.update(wanted)
    return changed


def replicas_annotations_differ(rs: Object, desired: int, maximum: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DESIRED_REPLICAS) != str(desired) or annotations.get(
        MAX_REPLICAS
    ) != str(maximum)


def set_new_rs_annotations(deployment: Object, rs: Object, new_revision: int, exists: bool) -> bool:
    """Bring the new set's annotations up to date (SetNewReplicaSetAnnotations); True if changed.

    It inherits the Deployment's annotations, gets the next revision when its
    own is lower (a set brought back by a rollback keeps its former revisions
    in revision-history), and a set about to be created gets the replica counts.
    """
    annotations = rs["metadata"].setdefault("annotations", {})
    changed = False
    for name, value in ((deployment["metadata"].get("annotations")) or {}).items():
        if name not in _NOT_COPIED and annotations.get(name) != value:
            annotations[name] = value
            changed = True
    previous = annotations.get(REVISION)
    try:
        old_revision = int(previous) if previous else 0
    except ValueError:
        return changed
    if old_revision < new_revision:
        annotations[REVISION] = str(new_revision)
        changed = True
        if previous:
            annotations[REVISION_HISTORY] = _history_with(
                annotations.get(REVISION_HISTORY, ""), previous
            )
    if not exists:
        spec_replicas = replicas(deployment)
        changed |= set_replicas_annotations(
            rs, spec_replicas, spec_replicas + max_surge(deployment)
        )
    return changed


def _history_with(history: str, revision_: str) -> str:
    """The comma-separated history plus one revision, oldest dropped to stay short."""
    kept = [r for r in history.split(",") if r] + [revision_]
    while len(",".join(kept)) > REVISION_HISTORY_CHARS and len(kept) > 1:
        kept.pop(0)
    return ",".join(kept)


# ---------------------------------------------------------------- rollouts


def is_rolling(deployment: Object) -> bool:
    return ((deployment["spec"].get("strategy") or {}).get("type")) == "RollingUpdate"


def scaled_value(value: int | str | None, total_: int, round_up: bool) -> int:
    """An int-or-percent of `total_` (upstream's GetValueFromIntOrPercent)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = percent * total_ / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(deployment: Object) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods: surge rounds up, unavailability down, and if
    both come to zero one pod may be unavailable."""
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(deployment)
    surge = scaled_value(rolling.get("maxSurge"), desired, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Object) -> int:
    return fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Object) -> int:
    desired = replicas(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


def new_rs_replicas(deployment: Object, all_sets: list[Object], new: Object) -> int:
    """What the new set may grow to now: up to spec.replicas, within the surge."""
    desired = replicas(deployment)
    if not is_rolling(deployment):
        return desired
    ceiling = desired + max_surge(deployment)
    current = total(all_sets)
    if current >= ceiling:
        return replicas(new)
    return replicas(new) + min(ceiling - current, desired - replicas(new))


def is_saturated(deployment: Object, rs: Object | None) -> bool:
    """Does the new set run every desired replica, all of them available?"""
    if rs is None:
        return False
    desired = replicas(deployment)
    return (
        replicas(rs) == desired
        and desired_replicas_annotation(rs) == desired
        and status_count(rs, "availableReplicas") == desired
    )


def proportion(rs: Object, deployment: Object, to_add: int, added: int) -> int:
    """How many replicas `rs` gains (or loses) of a change of `to_add`, `added` being
    handed out already (GetProportion): its share by the max-replicas annotation."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _fraction(rs: Object, deployment: Object) -> int:
    desired = replicas(deployment)
    if desired == 0:
        return -replicas(rs)
    target = desired + max_surge(deployment)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_count(deployment, "replicas")
    exact = replicas(rs) * target / annotated
    return _round_half_away(exact) - replicas(rs)


def _round_half_away(value: float) -> int:
    """Go's math.Round: halves away from zero (Python's round goes to even)."""
    return int(math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1))


def has_progress_deadline(deployment: Object) -> bool:
    deadline = deployment["spec"].get("progressDeadlineSeconds")
    return deadline is not None and deadline != _MAX_INT32


def has_history_limit(deployment: Object) -> bool:
    limit = deployment["spec"].get("revisionHistoryLimit")
    return limit is not None and limit != _MAX_INT32


def complete(deployment: Object, status: Object) -> bool:
    """Every desired replica updated and available, no old ones, the spec observed."""
    desired = replicas(deployment)
    return (
        status.get("updatedReplicas", 0) == desired
        and status.get("replicas", 0) == desired
        and status.get("availableReplicas", 0) == desired
        and status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    )


def progressing(deployment: Object, status: Object) -> bool:
    """Did anything move forward since the stored status?"""
    old = deployment.get("status") or {}
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = status.get("replicas", 0) - status.get("updatedReplicas", 0)
    return (
        status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0)
        or new_old < old_old
        or status.get("readyReplicas", 0) > old.get("readyReplicas", 0)
        or status.get("availableReplicas", 0) > old.get("availableReplicas", 0)
    )


def timed_out(deployment: Object, status: Object, now: float | None = None) -> bool:
    """Has the Progressing condition gone without news for progressDeadlineSeconds?"""
    if not has_progress_deadline(deployment):
        return False
    condition = get_condition(status, "Progressing")
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    updated = parse_time(condition.get("lastUpdateTime"))
    deadline = deployment["spec"]["progressDeadlineSeconds"]
    return updated is not None and updated + deadline < (time.time() if now is None else now)


# -------------------------------------------------------------- conditions


def new_condition(kind: str, status: str, reason: str, message: str) -> Object:
    now = meta.now()
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Object, kind: str) -> Object | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def set_condition(status: Object, condition: Object) -> None:
    """Put `condition` last; nothing changes if one of that status and reason is there, and
    the transition time is kept while the status stays."""
    current = get_condition(status, condition["type"])
    if current is not None and (current["status"], current.get("reason")) == (
        condition["status"],
        condition.get("reason"),
    ):
        return
    if current is not None and current["status"] == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Object, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def calculate_status(all_sets: list[Object], new: Object | None, deployment: Object) -> Object:
    """The Deployment's status from its sets' (upstream's calculateStatus), as Go writes it."""
    available = total(all_sets, "availableReplicas")
    counts = {
        "observedGeneration": deployment["metadata"].get("generation", 0),
        "replicas": total(all_sets, "replicas"),
        "updatedReplicas": status_count(new, "replicas"),
        "readyReplicas": total(all_sets, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(total(all_sets) - available, 0),
    }
    status: Object = {k: v for k, v in counts.items() if v}
    old = deployment.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas(deployment) - max_unavailable(deployment):
        condition = new_condition(
            "Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."
        )
    else:
        condition = new_condition(
            "Available", "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability."
        )
    set_condition(status, condition)
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    return status
