"""Printers of batch/v1: Job and CronJob."""

from __future__ import annotations

from typing import Any

from kubik.api.printers.apps import CONTAINERS, IMAGES
from kubik.api.printers.cells import (
    condition_true,
    containers,
    deleting,
    format_label_selector,
    get,
    name,
    number,
)
from kubik.api.tables import (
    AGE,
    NAME,
    Object,
    age,
    column,
    doc,
    human_duration,
    human_duration_since,
    parse_timestamp,
    printer,
    seconds_between,
)

_BATCH = "io.k8s.api.batch.v1."
# The job conditions STATUS shows, in upstream's order; deletion ranks after the finished ones.
_FINISHED = ("Complete", "Failed")
_IN_FLIGHT = ("Suspended", "FailureTarget")


def _doc(definition: str, field: str) -> str:
    return doc(_BATCH + definition, field)


def _selector_column() -> dict[str, Any]:
    return column("Selector", description=_doc("JobSpec", "selector"), priority=1)


@printer(
    "batch",
    "Job",
    [
        NAME,
        column("Status", description="Status of the job."),
        column("Completions", description=_doc("JobStatus", "succeeded")),
        column("Duration", description="Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        _selector_column(),
    ],
)
def job_cells(job: Object) -> list[Any]:
    return [
        name(job),
        _job_status(job),
        _completions(job),
        _duration(job),
        age(job),
        *containers(get(job, "spec", "template", "spec")),
        format_label_selector(get(job, "spec", "selector")),
    ]


def _job_status(job: Object) -> str:
    for kind in _FINISHED:
        if condition_true(job, kind):
            return kind
    if deleting(job):
        return "Terminating"
    for kind in _IN_FLIGHT:
        if condition_true(job, kind):
            return kind
    return "Running"


def _completions(job: Object) -> str:
    """succeeded/completions; a job without completions needs one success (of N parallel)."""
    spec = job.get("spec") or {}
    succeeded = number(get(job, "status", "succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{number(spec['completions'])}"
    parallelism = number(spec.get("parallelism"))
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _duration(job: Object) -> str:
    """Start to completion, or start to now while running; empty before the job starts."""
    start = parse_timestamp(get(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_timestamp(get(job, "status", "completionTime"))
    if end is None:
        return human_duration_since(start)
    return human_duration(seconds_between(start, end))


@printer(
    "batch",
    "CronJob",
    [
        NAME,
        column("Schedule", description=_doc("CronJobSpec", "schedule")),
        column("Timezone", description=_doc("CronJobSpec", "timeZone")),
        column("Suspend", "boolean", _doc("CronJobSpec", "suspend")),
        column("Active", "integer", _doc("CronJobStatus", "active")),
        column("Last Schedule", description=_doc("CronJobStatus", "lastScheduleTime")),
        AGE,
        CONTAINERS,
        IMAGES,
        _selector_column(),
    ],
)
def cronjob_cells(cj: Object) -> list[Any]:
    spec = cj.get("spec") or {}
    job_spec = get(spec, "jobTemplate", "spec") or {}
    last = get(cj, "status", "lastScheduleTime")
    suspend, zone = spec.get("suspend"), spec.get("timeZone")
    return [
        name(cj),
        spec.get("schedule", ""),
        "<none>" if zone is None else zone,
        "<unset>" if suspend is None else str(bool(suspend)),
        len(get(cj, "status", "active") or []),
        human_duration_since(last) if last else "<none>",
        age(cj),
        *containers(get(job_spec, "template", "spec")),
        format_label_selector(job_spec.get("selector")),
    ]
