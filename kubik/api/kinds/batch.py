"""batch/v1: Jobs and CronJobs.

A Job's pods run to completion, so its template must restart `Never` or
`OnFailure`. Unless the client picks its own (`manualSelector: true`), a Job
gets a selector on its own uid, and its template the matching labels (see
`_generate_selector`). Once created, a Job's selector, template and
completions are fixed, but for the scheduling fields of a Job that was
created suspended and never started.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubik.api import defaults, selectors
from kubik.api.kinds import podspec
from kubik.api.kinds.cron import schedule_problem, time_zone_problems
from kubik.api.kinds.pod_validation import validate_pod_template
from kubik.api.validation import (
    Causes,
    GoValue,
    dns1123_label_problems,
    each_invalid,
    go_label_selector,
    go_string_map,
    immutable,
    invalid,
    nonnegative,
    not_supported,
    required,
    selector_is_parsable,
    semantic_equal,
    template_labels_mismatch,
    validate_label_selector,
    validator,
)

Object = dict[str, Any]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
_MAX_INDEXED = 100000  # completions and parallelism of an Indexed Job
_CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
_MAX_CRONJOB_NAME = 52  # leaves room for the "-<timestamp>" of its Jobs' names


# ------------------------------------------------------------------ defaults


@defaults.defaulter("batch", "Job")
def default_job(job: Object) -> None:
    spec = job.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        per_index = spec.get("backoffLimitPerIndex") is not None
        spec["backoffLimit"] = 2**31 - 1 if per_index else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            if not pattern.get("status"):
                pattern["status"] = "True"
    if spec.get("podReplacementPolicy") is None:
        with_policy = spec.get("podFailurePolicy") is not None
        spec["podReplacementPolicy"] = "Failed" if with_policy else "TerminatingOrFailed"
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    podspec.default_pod_template(spec.setdefault("template", {}))
    if not spec["manualSelector"]:
        _generate_selector(job)
    _labels_from_template(job)


def _labels_from_template(job: Object) -> None:
    """A Job without labels of its own takes its template's (generated ones included).

    Upstream's Job shares the template's label map, and it defaults stored
    Jobs again when it reads them, so a Job ends up with the labels generated
    for its template.
    """
    labels = ((job["spec"].get("template") or {}).get("metadata") or {}).get("labels")
    metadata = job.setdefault("metadata", {})
    if labels is not None and not metadata.get("labels"):
        metadata["labels"] = dict(labels)


def _generate_selector(job: Object) -> None:
    """Select the Job's pods by its uid, and label its template so they carry it.

    Upstream's job strategy does this once, in PrepareForCreate; here it is
    part of the defaults, so an update that drops the generated selector or
    labels gets them back (the same values: the uid does not change) where
    upstream would refuse it. Labels the client set are kept (a conflicting
    one fails validation).
    """
    spec = job["spec"]
    metadata = job.get("metadata") or {}
    name, uid = metadata.get("name", ""), metadata.get("uid", "")
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = template_meta.get("labels")
    if labels is None:
        labels = template_meta["labels"] = {}
    for key, value in (
        (LEGACY_JOB_NAME_LABEL, name),
        (JOB_NAME_LABEL, name),
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (CONTROLLER_UID_LABEL, uid),
    ):
        labels.setdefault(key, value)
    selector = spec.get("selector")
    if selector is None:
        selector = spec["selector"] = {}
    match_labels = selector.get("matchLabels")
    if match_labels is None:
        match_labels = selector["matchLabels"] = {}
    match_labels.setdefault(CONTROLLER_UID_LABEL, uid)


@defaults.defaulter("batch", "CronJob")
def default_cron_job(cron_job: Object) -> None:
    spec = cron_job.setdefault("spec", {})
    if not spec.get("concurrencyPolicy"):
        spec["concurrencyPolicy"] = "Allow"
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.setdefault("jobTemplate", {})
    podspec.default_object_meta(job_template)
    podspec.default_pod_template(job_template.setdefault("spec", {}).setdefault("template", {}))


# ---------------------------------------------------------------- validation


@validator("batch", "Job")
def validate_job(job: Object, old: Object | None) -> Causes:
    spec = job.get("spec") or {}
    metadata = job.get("metadata") or {}
    # Jobs created before the batch.kubernetes.io labels existed need only the legacy ones.
    old_labels = _template_labels((old or {}).get("spec") or {})
    prefixed = old is None or (JOB_NAME_LABEL in old_labels and CONTROLLER_UID_LABEL in old_labels)
    causes = _generated_selector(job, prefixed)
    causes += _job_spec(spec, "spec")
    selector = spec.get("selector")
    if selector is None:
        causes.append(required("spec.selector"))
    else:
        causes += validate_label_selector(selector, "spec.selector")
    if selector_is_parsable(selector):
        causes += template_labels_mismatch(selector, spec.get("template") or {}, "spec.template")
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and isinstance(completions, int) and completions > 0:
        hostname = f"{metadata.get('name', '')}-{completions - 1}"
        if dns1123_label_problems(hostname):
            causes.append(
                invalid(
                    "metadata.name",
                    metadata.get("name", ""),
                    f"will not able to create pod with invalid DNS label: {hostname}",
                )
            )
    if old is not None:
        causes += _job_update(spec, old)
    return causes


def _template_labels(spec: Object) -> dict[str, str]:
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def _generated_selector(job: Object, prefixed: bool) -> Causes:
    spec = job.get("spec") or {}
    if spec.get("manualSelector") or spec.get("selector") is None:
        return []
    metadata = job.get("metadata") or {}
    name, uid = metadata.get("name", ""), metadata.get("uid", "")
    causes = [] if uid else [required("metadata.uid")]
    expected = {LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name}
    if prefixed:
        expected |= {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name}
    labels = _template_labels(spec)
    for key in (
        LEGACY_CONTROLLER_UID_LABEL,
        LEGACY_JOB_NAME_LABEL,
        *((CONTROLLER_UID_LABEL, JOB_NAME_LABEL) if prefixed else ()),
    ):
        path = f"spec.template.metadata.labels[{key}]"
        if key not in labels:
            causes.append(required(path, f"must be '{expected[key]}'"))
        elif labels[key] != expected[key]:
            causes.append(invalid(path, go_string_map(labels), f"must be '{expected[key]}'"))
    selector = spec["selector"]
    if selector_is_parsable(selector) and not selectors.label_selector_matches(selector, expected):
        causes.append(
            invalid("spec.selector", go_label_selector(selector), "`selector` not auto-generated")
        )
    return causes


def _job_spec(spec: Object, path: str) -> Causes:
    """The rules a Job's spec shares with a CronJob's job template (validateJobSpec)."""
    causes: Causes = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):  # fmt: skip
        causes += nonnegative(f"{path}.{key}", spec.get(key))
    mode = spec.get("completionMode")
    if mode is not None:
        if mode not in ("NonIndexed", "Indexed"):
            causes.append(not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
        if mode == "Indexed":
            causes += _indexed_rules(spec, path)
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        causes.append(
            required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified")
        )
    if mode in (None, "NonIndexed"):
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                causes.append(
                    invalid(f"{path}.{key}", spec[key], "requires indexed completion mode")
                )
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        if spec.get("podFailurePolicy") is not None:
            if replacement != "Failed":
                causes.append(
                    not_supported(f"{path}.podReplacementPolicy", replacement, ("Failed",))
                )
        elif replacement not in ("Failed", "TerminatingOrFailed"):
            causes.append(
                not_supported(
                    f"{path}.podReplacementPolicy", replacement, ("Failed", "TerminatingOrFailed")
                )
            )
    template = spec.get("template") or {}
    causes += validate_pod_template(template, f"{path}.template")
    restart = (template.get("spec") or {}).get("restartPolicy") or ""
    at = f"{path}.template.spec.restartPolicy"
    if restart in ("", "Always"):
        # restartPolicy is defaulted to Always, so Always usually means "not given".
        causes.append(required(at, 'valid values: "OnFailure", "Never"'))
    elif restart not in ("OnFailure", "Never"):
        causes.append(not_supported(at, restart, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and restart != "Never":
        causes.append(
            invalid(at, restart, 'only "Never" is supported when podFailurePolicy is specified')
        )
    return causes


def _indexed_rules(spec: Object, path: str) -> Causes:
    causes: Causes = []
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if completions is None:
        causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
    elif isinstance(completions, int) and completions > _MAX_INDEXED:
        causes.append(
            invalid(
                f"{path}.completions",
                completions,
                f"must be less than or equal to {_MAX_INDEXED} when completion mode is Indexed",
            )
        )
    if isinstance(parallelism, int) and parallelism > _MAX_INDEXED:
        causes.append(
            invalid(
                f"{path}.parallelism",
                parallelism,
                f"must be less than or equal to {_MAX_INDEXED} when completion mode is Indexed",
            )
        )
    return causes


def _job_update(spec: Object, old: Object) -> Causes:
    old_spec = old.get("spec") or {}
    causes: Causes = []
    completions = spec.get("completions")
    if not semantic_equal(completions, old_spec.get("completions")):
        if spec.get("completionMode") != "Indexed":
            causes.append(invalid("spec.completions", completions, "field is immutable"))
        elif completions is not None and completions != spec.get("parallelism"):
            causes.append(
                invalid(
                    "spec.completions",
                    completions,
                    "can only be modified in tandem with spec.parallelism",
                )
            )
    causes += immutable(
        "spec.selector",
        spec.get("selector"),
        old_spec.get("selector"),
        go_label_selector(spec.get("selector")),
    )
    template, old_template = spec.get("template") or {}, old_spec.get("template") or {}
    suspended = old_spec.get("suspend") is True
    never_started = not (old.get("status") or {}).get("startTime")
    if suspended and never_started:
        old_template = _with_scheduling_fields(old_template, template)
    causes += immutable("spec.template", template, old_template, _go_template(template))
    for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
                "successPolicy"):  # fmt: skip
        causes += immutable(f"spec.{key}", spec.get(key), old_spec.get(key))
    return causes


def _with_scheduling_fields(old_template: Object, template: Object) -> Object:
    """The old template with the new one's scheduling directives (mutable while suspended)."""
    merged = copy.deepcopy(old_template)
    new_spec, merged_spec = template.get("spec") or {}, merged.setdefault("spec", {})
    for key in ("nodeSelector", "tolerations", "schedulingGates"):
        merged_spec[key] = new_spec.get(key)
    affinity = dict(merged_spec.get("affinity") or {})
    affinity["nodeAffinity"] = (new_spec.get("affinity") or {}).get("nodeAffinity")
    merged_spec["affinity"] = affinity
    merged_meta = merged.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        merged_meta[key] = (template.get("metadata") or {}).get(key)
    return merged


def _go_template(template: Object) -> GoValue:
    """Upstream prints the whole core.PodTemplateSpec struct here; its content is given as JSON."""
    return GoValue("core.PodTemplateSpec" + json.dumps(template, sort_keys=True))


@validator("batch", "CronJob")
def validate_cron_job(cron_job: Object, old: Object | None) -> Causes:
    spec = cron_job.get("spec") or {}
    name = (cron_job.get("metadata") or {}).get("name") or ""
    old_spec = (old or {}).get("spec") or {}
    causes: Causes = []
    schedule = spec.get("schedule") or ""
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        causes += _schedule_rules(schedule, spec.get("timeZone"), old_spec.get("schedule") or "")
    causes += nonnegative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds"))
    zone = spec.get("timeZone")
    if zone is not None and (old is None or zone != old_spec.get("timeZone")):
        causes += each_invalid("spec.timeZone", zone, time_zone_problems(zone))
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        causes.append(required("spec.concurrencyPolicy"))
    elif policy not in _CONCURRENCY_POLICIES:
        causes.append(not_supported("spec.concurrencyPolicy", policy, _CONCURRENCY_POLICIES))
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    causes += _job_spec(job_spec, "spec.jobTemplate.spec")
    if job_spec.get("selector") is not None:
        causes.append(
            invalid(
                "spec.jobTemplate.spec.selector",
                go_label_selector(job_spec["selector"]),
                "`selector` will be auto-generated",
            )
        )
    if job_spec.get("manualSelector") is True:
        causes.append(not_supported("spec.jobTemplate.spec.manualSelector", True, ("nil", "false")))
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        causes += nonnegative(f"spec.{key}", spec.get(key))
    if old is None and len(name) > _MAX_CRONJOB_NAME:
        # Its Jobs are named "<name>-<11 digits>", within a DNS label's 63 characters.
        causes.append(
            invalid("metadata.name", name, f"must be no more than {_MAX_CRONJOB_NAME} characters")
        )
    return causes


def _schedule_rules(schedule: str, zone: str | None, old_schedule: str) -> Causes:
    """A parsable schedule; TZ= in it only when an older version already had one."""
    problem = schedule_problem(schedule)
    causes = [invalid("spec.schedule", schedule, problem)] if problem else []
    allow_tz = "TZ" in old_schedule
    if allow_tz and "TZ" in schedule and zone is not None:
        causes.append(
            invalid(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            )
        )
    elif not allow_tz and "TZ" in schedule:
        causes.append(
            invalid(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            )
        )
    return causes
