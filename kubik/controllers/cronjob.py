"""The CronJob controller: a Job for each time a CronJob's schedule names.

(upstream: pkg/controller/cronjob, the "v2" controller)

A sync first keeps `status.active` true to the CronJob's Jobs and prunes
finished ones beyond the history limits, then looks for the most recent
schedule time not yet served (since `status.lastScheduleTime`, or the
CronJob's creation). If there is one, and it is not too late
(`startingDeadlineSeconds`) and the concurrency policy allows (Forbid skips
while a Job runs, Replace deletes the running ones), it creates the Job
`<cronjob>-<scheduled time in minutes since the epoch>` — a deterministic name,
so a time is never served twice. Either way the CronJob is queued again for
just after its next schedule time: nothing polls.

Schedules without a timeZone (or TZ= prefix) are read in UTC, the zone
kube-controller-manager usually runs in.
"""

from __future__ import annotations

import datetime
import enum
import logging
import zoneinfo
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers import cronschedule
from kubik.controllers.base import Controller, register
from kubik.controllers.job import JOBS, finished_condition
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    controller_ref,
    copy_of,
    error_message,
    index_by_controller,
    new_controller_ref,
)

log = logging.getLogger(__name__)

Object = dict[str, Any]

CRONJOBS = builtin.lookup("batch", "v1", "cronjobs")
SCHEDULED_AT = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1  # wake a little after the schedule time, not just before it
TOO_MANY_MISSED = 100


class Missed(enum.Enum):
    NONE = "none"
    FEW = "few"
    MANY = "many"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ------------------------------------------------------------- schedule times


def most_recent_schedule_time(
    cronjob: Object,
    at: datetime.datetime,
    schedule: cronschedule.Schedule,
    *,
    with_deadline: bool,
) -> tuple[datetime.datetime, datetime.datetime | None, Missed]:
    """(the time schedules are counted from, the latest schedule time in (that, `at`], how
    many were missed).

    Counting starts at the last schedule time (or the CronJob's creation), or
    `startingDeadlineSeconds` before `at` if that is later and `with_deadline`.
    Many missed times are not walked one by one: as upstream, the count is
    estimated from the first interval and the walk starts near the end.
    Raises ValueError for a schedule whose times are less than a second apart
    (one that names an impossible date).
    """
    status, spec = cronjob.get("status") or {}, cronjob["spec"]
    earliest = _time(status.get("lastScheduleTime")) or _time(
        cronjob["metadata"]["creationTimestamp"]
    )
    deadline = spec.get("startingDeadlineSeconds")
    if with_deadline and deadline is not None:
        earliest = max(earliest, at - datetime.timedelta(seconds=deadline))
    first = schedule.next(earliest)
    second = schedule.next(first) if first is not None else None
    if first is None or at < first:
        return earliest, None, Missed.NONE
    if second is None or at < second:
        return earliest, first, Missed.NONE
    interval = int((second - first).total_seconds() + 0.5)
    if interval < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed = int((at - first).total_seconds()) // interval + 1
    moment = schedule.next(first + datetime.timedelta(seconds=(missed - 2) * interval))
    latest = None
    while moment is not None and moment <= at:
        latest = moment
        moment = schedule.next(moment)
    return earliest, latest, Missed.MANY if missed > TOO_MANY_MISSED else Missed.FEW


def next_schedule_delay(
    cronjob: Object, at: datetime.datetime, schedule: cronschedule.Schedule
) -> float | None:
    """Seconds from `at` to just after the next schedule time (None: it never fires again)."""
    try:
        earliest, latest, missed = most_recent_schedule_time(
            cronjob, at, schedule, with_deadline=False
        )
    except ValueError:
        latest = at
    else:
        if latest is None:
            latest = earliest if missed is Missed.NONE else at
    following = schedule.next(latest)
    if following is None:
        return None
    return (following - at).total_seconds() + NEXT_SCHEDULE_DELTA


def job_name(cronjob: Object, scheduled: datetime.datetime) -> str:
    return f"{meta.name_of(cronjob)}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Object, scheduled: datetime.datetime) -> Object:
    """The Job to start for `scheduled`, owned by the CronJob."""
    template = cronjob["spec"].get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    zone = _zone(cronjob["spec"].get("timeZone") or "UTC") or datetime.UTC
    annotations = dict(template_meta.get("annotations") or {})
    annotations[SCHEDULED_AT] = _rfc3339(scheduled.astimezone(zone))
    metadata: Object = {
        "name": job_name(cronjob, scheduled),
        "namespace": meta.namespace_of(cronjob),
        "annotations": annotations,
        "ownerReferences": [new_controller_ref(cronjob)],
    }
    if template_meta.get("labels"):
        metadata["labels"] = dict(template_meta["labels"])
    spec = copy_of(template.get("spec") or {})
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _time(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text else None


def _rfc3339(moment: datetime.datetime) -> str:
    """Go's RFC 3339 form: seconds, and "Z" for a zero offset."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def _reference(job: Object) -> Object:
    """An ObjectReference to a Job, as status.active lists them."""
    metadata = job["metadata"]
    return {
        "kind": "Job",
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": metadata.get("resourceVersion", ""),
    }


def _active(cronjob: Object) -> list[Object]:
    return cronjob.setdefault("status", {}).setdefault("active", [])


def _in_active(cronjob: Object, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (cronjob.get("status") or {}).get("active") or [])


def _drop_active(cronjob: Object, uid: str) -> None:
    status = cronjob["status"]
    status["active"] = [ref for ref in status.get("active") or [] if ref.get("uid") != uid]


def _start_order(job: Object) -> tuple:
    """Oldest first: by start time (Jobs never started last), then by name."""
    started = (job.get("status") or {}).get("startTime")
    return (started is None, _time(started) or datetime.datetime.min, meta.name_of(job))


# ------------------------------------------------------------------ controller


@register
class CronJobController(Controller):
    name = "cronjob"
    component = "cronjob-controller"

    def setup(self) -> None:
        self.cronjobs = self.informers.informer(CRONJOBS)
        self.jobs = self.informers.informer(JOBS)
        self.jobs.add_index(BY_CONTROLLER, index_by_controller)
        self.cronjobs.add_handlers(
            on_add=self.enqueue, on_update=self._cronjob_updated, on_delete=self.enqueue
        )
        self.jobs.add_handlers(
            on_add=self._job_added, on_update=self._job_updated, on_delete=self._job_deleted
        )

    # ------------------------------------------------------------ handlers

    def _owner_of(self, job: Object, ref: Object | None) -> Object | None:
        if ref is None or ref.get("kind") != "CronJob":
            return None
        cronjob = self.cronjobs.get(f"{meta.namespace_of(job)}/{ref.get('name')}")
        if cronjob is None or cronjob["metadata"].get("uid") != ref.get("uid"):
            return None
        return cronjob

    def _job_added(self, job: Object) -> None:
        owner = self._owner_of(job, controller_ref(job))
        if owner is not None:
            self.enqueue(owner)

    def _job_updated(self, old: Object, new: Object) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        old_ref, ref = controller_ref(old), controller_ref(new)
        if old_ref != ref:
            self._job_added(old)
        self._job_added(new)

    def _job_deleted(self, job: Object) -> None:
        self._job_added(job)

    def _cronjob_updated(self, old: Object, new: Object) -> None:
        """A changed schedule takes effect at its next time; any other change at once."""
        old_spec, spec = old["spec"], new["spec"]
        if (old_spec.get("schedule"), old_spec.get("timeZone")) == (
            spec.get("schedule"),
            spec.get("timeZone"),
        ):
            self.enqueue(new)
            return
        try:
            schedule = cronschedule.parse(self._schedule_text(new, warn=False))
        except ValueError:
            self.recorder.record(
                new,
                "Warning",
                "UnParseableCronJobSchedule",
                f"unparseable schedule for cronjob: {spec.get('schedule')}",
            )
            return
        delay = next_schedule_delay(new, now(), schedule)
        if delay is not None:
            self.queue.add_after(key_of(new), delay)

    def _schedule_text(self, cronjob: Object, *, warn: bool) -> str:
        """The schedule with the CronJob's time zone as a TZ= prefix (upstream's formatSchedule)."""
        spec = cronjob["spec"]
        schedule = spec.get("schedule") or ""
        if "TZ" in schedule:
            if warn:
                self.recorder.record(
                    cronjob,
                    "Warning",
                    "UnsupportedSchedule",
                    f"CRON_TZ or TZ used in schedule {_quote(schedule)} is not officially "
                    "supported, see https://kubernetes.io/docs/concepts/workloads/controllers/"
                    "cron-jobs/ for more details",
                )
            return schedule
        zone = spec.get("timeZone")
        if zone is not None and _zone(zone) is not None:
            return f"TZ={zone} {schedule}"
        return schedule

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        cached = self.cronjobs.get(key)
        if cached is None:
            return
        jobs = self.jobs.by_index(BY_CONTROLLER, cached["metadata"]["uid"])
        cronjob = await self._fresh_if_stale(cached, jobs)
        before = copy_of(cronjob.setdefault("status", {}))
        await self._clean_up_finished(cronjob, jobs)
        delay: float | None = None
        problem: Exception | None = None
        try:
            delay = await self._sync_cronjob(cronjob, jobs)
        except Exception as exc:  # the status changes made so far are still written
            log.debug("cronjob %s: %s", key, exc)
            problem = exc
        if cronjob["status"] != before:
            status = {k: v for k, v in cronjob["status"].items() if v}  # Go leaves empty out
            await self.client.update_status(CRONJOBS, {**cronjob, "status": status})
        if delay is not None:
            self.queue.add_after(key, delay)
        elif problem is not None:
            raise problem

    async def _fresh_if_stale(self, cached: Object, jobs: list[Object]) -> Object:
        """A copy of the CronJob to work on: read from the server if a running Job is missing
        from the cached status.active (most likely the status write that listed it is not
        cached yet)."""
        cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", **copy_of(cached)}
        if all(
            _in_active(cronjob, job["metadata"]["uid"]) or finished_condition(job) for job in jobs
        ):
            return cronjob
        fresh = await self.client.get(CRONJOBS, meta.namespace_of(cached), meta.name_of(cached))
        if fresh["metadata"].get("uid") != cached["metadata"].get("uid"):
            return cronjob
        return {"apiVersion": "batch/v1", "kind": "CronJob", **fresh}

    async def _sync_cronjob(self, cronjob: Object, jobs: list[Object]) -> float | None:
        """Reconcile the Jobs and start one if it is time; seconds until the next look, if any."""
        at = now()
        status = cronjob["status"]
        children = set()
        for job in jobs:
            uid = job["metadata"]["uid"]
            children.add(uid)
            found = _in_active(cronjob, uid)
            finished = finished_condition(job)
            if not found and finished is None:
                self.recorder.record(
                    cronjob,
                    "Warning",
                    "UnexpectedJob",
                    "Saw a job that the controller did not create or forgot: " + meta.name_of(job),
                )
            elif found and finished is not None:
                _drop_active(cronjob, uid)
                self.recorder.record(
                    cronjob,
                    "Normal",
                    "SawCompletedJob",
                    f"Saw completed job: {meta.name_of(job)}, status: {finished['type']}",
                )
            elif finished is not None and finished["type"] == "Complete":
                completed = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if completed and (last is None or _time(completed) > _time(last)):
                    status["lastSuccessfulTime"] = completed
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            try:  # the cache may lag: ask the server before calling it gone
                await self.client.get(JOBS, ref.get("namespace", ""), ref.get("name", ""))
            except ApiError as exc:
                if not exc.not_found:
                    raise
                self.recorder.record(
                    cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"
                )
                _drop_active(cronjob, ref.get("uid", ""))

        if cronjob["metadata"].get("deletionTimestamp"):
            return None
        spec = cronjob["spec"]
        zone = spec.get("timeZone")
        if zone is not None and _zone(zone) is None:
            self.recorder.record(
                cronjob,
                "Warning",
                "UnknownTimeZone",
                f"invalid timeZone: {_quote(zone)}: unknown time zone {zone}",
            )
            return None
        if spec.get("suspend"):
            return None
        try:
            schedule = cronschedule.parse(self._schedule_text(cronjob, warn=True))
        except ValueError as exc:
            self.recorder.record(
                cronjob,
                "Warning",
                "UnparseableSchedule",
                f"unparseable schedule: {_quote(spec.get('schedule', ''))} : {exc}",
            )
            return None  # looked at again when the spec changes, not before
        scheduled = self._due_time(cronjob, at, schedule)
        if scheduled is None:
            return next_schedule_delay(cronjob, at, schedule)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + datetime.timedelta(seconds=deadline) < at:
            moment = scheduled.strftime("%a, %d %b %Y %H:%M:%S +0000")
            self.recorder.record(
                cronjob,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {moment}",
            )
            return next_schedule_delay(cronjob, at, schedule)
        name = job_name(cronjob, scheduled)
        served = any(ref.get("name") == name for ref in status.get("active") or [])
        if served or _time(status.get("lastScheduleTime")) == scheduled:
            return next_schedule_delay(cronjob, at, schedule)
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            self.recorder.record(
                cronjob,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return next_schedule_delay(cronjob, at, schedule)
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                await self._replace(cronjob, ref)
        job = await self._start(cronjob, scheduled)
        if job is not None:
            _active(cronjob).append(_reference(job))
            status["lastScheduleTime"] = _rfc3339(scheduled)
        return next_schedule_delay(cronjob, at, schedule)

    def _due_time(
        self, cronjob: Object, at: datetime.datetime, schedule: cronschedule.Schedule
    ) -> datetime.datetime | None:
        """The schedule time to serve now, if any (upstream's nextScheduleTime)."""
        try:
            _, latest, missed = most_recent_schedule_time(cronjob, at, schedule, with_deadline=True)
        except ValueError as exc:
            self.recorder.record(
                cronjob,
                "Warning",
                "InvalidSchedule",
                f"invalid schedule: {cronjob['spec'].get('schedule')} : {exc}",
            )
            return None
        if latest is None or latest > at:
            return None
        if missed is Missed.MANY:
            self.recorder.record(
                cronjob,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
                "check clock skew",
            )
        return latest

    async def _replace(self, cronjob: Object, ref: Object) -> None:
        """Delete a still running Job to make room for the next (concurrencyPolicy Replace)."""
        try:
            job = await self.client.get(JOBS, ref.get("namespace", ""), ref.get("name", ""))
        except ApiError as exc:
            self.recorder.record(cronjob, "Warning", "FailedGet", f"Get job: {error_message(exc)}")
            raise
        if not await self._delete_job(cronjob, job):
            raise RuntimeError(
                f"could not replace job {meta.namespace_of(job)}/{meta.name_of(job)}"
            )

    async def _start(self, cronjob: Object, scheduled: datetime.datetime) -> Object | None:
        """Create the Job for `scheduled`; the Job to list as active (None: not ours to list)."""
        wanted = job_from_template(cronjob, scheduled)
        try:
            job = await self.client.create(JOBS, wanted)
        except ApiError as exc:
            if not exc.already_exists:
                self.recorder.record(
                    cronjob, "Warning", "FailedCreate", f"Error creating job: {error_message(exc)}"
                )
                raise
            # made before, by us (the status write was lost) or by someone else
            job = await self.client.get(JOBS, meta.namespace_of(wanted), meta.name_of(wanted))
            ref = controller_ref(job)
            ours = ref is not None and ref.get("uid") == cronjob["metadata"]["uid"]
            if not ours or _in_active(cronjob, job["metadata"]["uid"]):
                return None
            log.info("cronjob %s: job %s already exists", key_of(cronjob), meta.name_of(job))
            return job
        self.recorder.record(
            cronjob, "Normal", "SuccessfulCreate", f"Created job {meta.name_of(job)}"
        )
        return job

    # ------------------------------------------------------------- history

    async def _clean_up_finished(self, cronjob: Object, jobs: list[Object]) -> None:
        """Delete the oldest finished Jobs beyond the successful and failed history limits."""
        spec = cronjob["spec"]
        for kind, limit in (
            ("Complete", spec.get("successfulJobsHistoryLimit")),
            ("Failed", spec.get("failedJobsHistoryLimit")),
        ):
            if limit is None:
                continue
            finished = [j for j in jobs if (finished_condition(j) or {}).get("type") == kind]
            finished.sort(key=_start_order)
            for job in finished[: max(0, len(finished) - limit)]:
                await self._delete_job(cronjob, job)

    async def _delete_job(self, cronjob: Object, job: Object) -> bool:
        """Delete a Job (its pods in the background) and forget it; whether that worked."""
        try:
            await self.client.delete(
                JOBS, meta.namespace_of(job), meta.name_of(job), propagation_policy="Background"
            )
        except ApiError as exc:
            self.recorder.record(
                cronjob, "Warning", "FailedDelete", f"Deleted job: {error_message(exc)}"
            )
            log.warning("cronjob %s: deleting job %s: %s", key_of(cronjob), meta.name_of(job), exc)
            return False
        _drop_active(cronjob, job["metadata"]["uid"])
        self.recorder.record(
            cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta.name_of(job)}"
        )
        return True


def _quote(text: str) -> str:
    """Go's %q for the plain strings these messages quote."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
