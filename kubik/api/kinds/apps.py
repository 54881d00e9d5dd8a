"""apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets, ControllerRevisions.

Defaults are pkg/apis/apps/v1/defaults.go plus the pod template's; the
validation is pkg/apis/apps/validation with the apps/v1 strategies' rule that
a selector never changes. As upstream, a StatefulSet's pod template is only
checked for labels, annotations and restartPolicy, and a DaemonSet without
a selector is told its template labels do not match (there is no "Required").
"""

from __future__ import annotations

from typing import Any

from kubik.api import defaults
from kubik.api.kinds import podspec
from kubik.api.kinds.pod_validation import validate_pod_template
from kubik.api.validation import (
    Causes,
    GoValue,
    forbidden,
    go_int_or_string,
    go_label_selector,
    go_quote,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    percent_problems,
    required,
    selector_is_empty,
    selector_is_parsable,
    semantic_equal,
    template_labels_mismatch,
    validate_annotations,
    validate_label_selector,
    validate_labels,
    validator,
)

Object = dict[str, Any]

_RETENTION_POLICIES = ("Retain", "Delete")
_STATEFULSET_MUTABLE = (
    "replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)  # fmt: skip


# ------------------------------------------------------------------ defaults


@defaults.defaulter("apps", "Deployment")
def default_deployment(deployment: Object) -> None:
    spec = deployment.setdefault("spec", {})
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = spec.setdefault("strategy", {})
    _default_rolling(strategy, max_unavailable="25%", max_surge="25%")
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    podspec.default_pod_template(spec.setdefault("template", {}))


def _default_rolling(strategy: Object, *, max_unavailable: Any, max_surge: Any) -> None:
    """A strategy's type (rolling by default) and, when rolling, its bounds left out."""
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] != "RollingUpdate":
        return
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        rolling = strategy["rollingUpdate"] = {}
    for key, value in (("maxUnavailable", max_unavailable), ("maxSurge", max_surge)):
        if rolling.get(key) is None:
            rolling[key] = value


@defaults.defaulter("apps", "ReplicaSet")
def default_replica_set(replica_set: Object) -> None:
    spec = replica_set.setdefault("spec", {})
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    podspec.default_pod_template(spec.setdefault("template", {}))


@defaults.defaulter("apps", "StatefulSet")
def default_stateful_set(stateful_set: Object) -> None:
    spec = stateful_set.setdefault("spec", {})
    if not spec.get("podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    strategy = spec.setdefault("updateStrategy", {})
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        if strategy.get("rollingUpdate") is None:
            strategy["rollingUpdate"] = {}
    rolling = strategy.get("rollingUpdate")
    if (
        strategy["type"] == "RollingUpdate"
        and rolling is not None
        and rolling.get("partition") is None
    ):
        rolling["partition"] = 0
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if retention is None:
        retention = spec["persistentVolumeClaimRetentionPolicy"] = {}
    for key in ("whenDeleted", "whenScaled"):
        if not retention.get(key):
            retention[key] = "Retain"
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    podspec.default_pod_template(spec.setdefault("template", {}))
    for claim in spec.get("volumeClaimTemplates") or []:
        _default_claim_template(claim)


def _default_claim_template(claim: Object) -> None:
    """Claim templates are whole PVCs: typed, defaulted, with a Pending status (v1 conversion)."""
    claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
    podspec.default_object_meta(claim)
    podspec.default_claim_spec(claim.setdefault("spec", {}))
    status = claim.setdefault("status", {})
    if not status.get("phase"):
        status["phase"] = "Pending"


@defaults.defaulter("apps", "DaemonSet")
def default_daemon_set(daemon_set: Object) -> None:
    spec = daemon_set.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    _default_rolling(strategy, max_unavailable=1, max_surge=0)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    podspec.default_pod_template(spec.setdefault("template", {}))


# ---------------------------------------------------------------- validation


@validator("apps", "Deployment")
def validate_deployment(deployment: Object, old: Object | None) -> Causes:
    spec = deployment.get("spec") or {}
    causes = nonnegative("spec.replicas", spec.get("replicas"))
    causes += _required_selector(spec, "deployment")
    causes += _replica_template(spec, "ReplicaSet")
    causes += _deployment_strategy(spec.get("strategy") or {}, "spec.strategy")
    min_ready = spec.get("minReadySeconds") or 0
    causes += nonnegative("spec.minReadySeconds", min_ready)
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        causes += nonnegative("spec.progressDeadlineSeconds", deadline)
        if deadline <= min_ready:
            causes.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    return causes + _fixed_selector(deployment, old)


@validator("apps", "ReplicaSet")
def validate_replica_set(replica_set: Object, old: Object | None) -> Causes:
    spec = replica_set.get("spec") or {}
    causes = nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    # Upstream's ReplicaSet message says "deployment" too.
    causes += _required_selector(spec, "deployment")
    causes += _replica_template(spec, "ReplicaSet")
    return causes + _fixed_selector(replica_set, old)


@validator("apps", "DaemonSet")
def validate_daemon_set(daemon_set: Object, old: Object | None) -> Causes:
    spec = daemon_set.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template") or {}
    causes = validate_label_selector(selector, "spec.selector")
    if selector_is_parsable(selector):
        causes += template_labels_mismatch(selector, template, "spec.template")
    if selector_is_empty(selector):
        causes.append(
            invalid(
                "spec.selector",
                go_label_selector(selector),
                "empty selector is invalid for daemonset",
            )
        )
    causes += validate_pod_template(template, "spec.template")
    causes += _always_restart(template, "DaemonSet")
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += nonnegative("spec.templateGeneration", spec.get("templateGeneration"))
    causes += _daemon_set_strategy(spec.get("updateStrategy") or {}, "spec.updateStrategy")
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return causes + _fixed_selector(daemon_set, old)


@validator("apps", "StatefulSet")
def validate_stateful_set(stateful_set: Object, old: Object | None) -> Causes:
    spec = stateful_set.get("spec") or {}
    causes: Causes = []
    policy = spec.get("podManagementPolicy") or ""
    if not policy:
        causes.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(
            invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
        )
    causes += _stateful_set_strategy(spec.get("updateStrategy") or {}, "spec.updateStrategy")
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    for key in ("whenDeleted", "whenScaled"):
        value = retention.get(key) or ""
        if value not in _RETENTION_POLICIES:
            causes.append(
                not_supported(
                    f"spec.persistentVolumeClaimRetentionPolicy.{key}", value, _RETENTION_POLICIES
                )
            )
    causes += nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += nonnegative("spec.ordinals.start", (spec.get("ordinals") or {}).get("start"))
    causes += _required_selector(spec, "statefulset")
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if not selector_is_parsable(selector):
        causes.append(invalid("spec.selector", go_label_selector(selector)))
    else:
        # Upstream checks only the labels and annotations of a StatefulSet's template.
        causes += template_labels_mismatch(selector, template, "spec.template")
        metadata = template.get("metadata") or {}
        causes += validate_labels(metadata.get("labels"), "spec.template.labels")
        causes += validate_annotations(metadata.get("annotations"), "spec.template.annotations")
    causes += _always_restart(template, "StatefulSet")
    if old is not None:
        old_spec = old.get("spec") or {}
        fixed = {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE}
        old_fixed = {k: v for k, v in old_spec.items() if k not in _STATEFULSET_MUTABLE}
        if not semantic_equal(fixed, old_fixed):
            causes.append(
                forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                    "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden",
                )
            )
    return causes


@validator("apps", "ControllerRevision")
def validate_controller_revision(revision: Object, old: Object | None) -> Causes:
    causes = [] if revision.get("data") is not None else [required("data", "data is mandatory")]
    causes += nonnegative("revision", revision.get("revision"))
    if old is not None:
        causes += immutable("data", revision.get("data"), old.get("data"))
    return causes


# ------------------------------------------------------------------- helpers


def _required_selector(spec: Object, kind: str) -> Causes:
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector")]
    causes = validate_label_selector(selector, "spec.selector")
    if selector_is_empty(selector):
        causes.append(
            invalid(
                "spec.selector",
                go_label_selector(selector),
                f"empty selector is invalid for {kind}",
            )
        )
    return causes


def _replica_template(spec: Object, kind: str) -> Causes:
    """A ReplicaSet's (or Deployment's) template: selected, valid, always restarting."""
    selector = spec.get("selector")
    if not selector_is_parsable(selector):
        return [invalid("spec.selector", go_label_selector(selector), "invalid label selector")]
    template = spec.get("template") or {}
    causes = template_labels_mismatch(selector, template, "spec.template")
    causes += validate_pod_template(template, "spec.template")
    return causes + _always_restart(template, kind)


def _always_restart(template: Object, kind: str) -> Causes:
    pod_spec = template.get("spec") or {}
    policy = pod_spec.get("restartPolicy") or ""
    causes: Causes = []
    if policy != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", policy, ("Always",)))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        causes.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind} is not Supported",
            )
        )
    return causes


def _fixed_selector(obj: Object, old: Object | None) -> Causes:
    """apps/v1 selectors never change after creation."""
    if old is None:
        return []
    selector = (obj.get("spec") or {}).get("selector")
    old_selector = (old.get("spec") or {}).get("selector")
    return immutable("spec.selector", selector, old_selector, go_label_selector(selector))


def _go_strategy(kind: str, strategy: Object) -> GoValue:
    rolling = "nil" if strategy.get("rollingUpdate") is None else "0xc000000001"
    return GoValue(
        f"apps.{kind}{{Type:{go_quote(strategy.get('type') or '')}, "
        f"RollingUpdate:(*apps.{_ROLLING_TYPES[kind]})({rolling})}}"
    )


_ROLLING_TYPES = {
    "DeploymentStrategy": "RollingUpdateDeployment",
    "DaemonSetUpdateStrategy": "RollingUpdateDaemonSet",
    "StatefulSetUpdateStrategy": "RollingUpdateStatefulSetStrategy",
}


def _deployment_strategy(strategy: Object, path: str) -> Causes:
    kind = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [
                forbidden(
                    f"{path}.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if kind != "RollingUpdate":
        return [
            not_supported(
                path, _go_strategy("DeploymentStrategy", strategy), ("Recreate", "RollingUpdate")
            )
        ]
    if rolling is None:
        return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    at = f"{path}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable", 0), rolling.get("maxSurge", 0)
    causes = _int_or_percent(unavailable, f"{at}.maxUnavailable")
    causes += _int_or_percent(surge, f"{at}.maxSurge")
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        causes.append(
            invalid(
                f"{at}.maxUnavailable",
                go_int_or_string(unavailable),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return causes + _at_most_100_percent(unavailable, f"{at}.maxUnavailable")


def _daemon_set_strategy(strategy: Object, path: str) -> Causes:
    kind = strategy.get("type") or ""
    if kind == "OnDelete":
        return []
    if kind != "RollingUpdate":
        return [
            not_supported(
                path,
                _go_strategy("DaemonSetUpdateStrategy", strategy),
                ("RollingUpdate", "OnDelete"),
            )
        ]
    rolling = strategy.get("rollingUpdate")
    if rolling is None:
        return [required(f"{path}.rollingUpdate")]
    at = f"{path}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable", 0), rolling.get("maxSurge", 0)
    causes = _int_or_percent(unavailable, f"{at}.maxUnavailable")
    causes += _int_or_percent(surge, f"{at}.maxSurge")
    causes += _at_most_100_percent(unavailable, f"{at}.maxUnavailable")
    causes += _at_most_100_percent(surge, f"{at}.maxSurge")
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        causes.append(
            invalid(
                f"{at}.maxSurge",
                go_int_or_string(surge),
                "may not be set when maxUnavailable is non-zero",
            )
        )
    elif not has_unavailable and not has_surge:
        causes.append(required(f"{at}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return causes


def _stateful_set_strategy(strategy: Object, path: str) -> Causes:
    kind = strategy.get("type") or ""
    rolling = strategy.get("rollingUpdate")
    if not kind:
        return [required(path)]
    if kind == "OnDelete":
        if rolling is not None:
            shown = GoValue(
                "apps.RollingUpdateStatefulSetStrategy{"
                f"Partition:{rolling.get('partition') or 0}, "
                "MaxUnavailable:(*intstr.IntOrString)(nil)}"
            )
            return [
                invalid(
                    f"{path}.rollingUpdate",
                    shown,
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            ]
        return []
    if kind == "RollingUpdate":
        if rolling is None:
            return []
        return nonnegative(f"{path}.rollingUpdate.partition", rolling.get("partition"))
    return [
        invalid(
            path,
            _go_strategy("StatefulSetUpdateStrategy", strategy),
            "must be 'RollingUpdate' or 'OnDelete'",
        )
    ]


def _int_or_percent(value: Any, path: str) -> Causes:
    """Upstream's ValidatePositiveIntOrPercent."""
    if isinstance(value, str):
        return [invalid(path, go_int_or_string(value), p) for p in percent_problems(value)]
    return nonnegative(path, value)


def _percent(value: Any) -> int | None:
    if isinstance(value, str) and not percent_problems(value):
        return int(value[:-1])
    return None


def _int_or_percent_value(value: Any) -> int:
    percent = _percent(value)
    if percent is not None:
        return percent
    if isinstance(value, str):
        return int(value) if value.lstrip("-").isdigit() else 0
    return value or 0


def _at_most_100_percent(value: Any, path: str) -> Causes:
    percent = _percent(value)
    if percent is not None and percent > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []
