"""The Job controller, and the TTL-after-finished controller that deletes finished Jobs.

(upstream: pkg/controller/job/ and pkg/controller/ttlafterfinished/)

A Job runs pods from its template until enough of them succeed, or it
fails: too many pod failures (backoffLimit), too long (activeDeadlineSeconds),
or a pod failure its podFailurePolicy calls fatal. As upstream (1.32):

- every pod is created with the `batch.kubernetes.io/job-tracking` finalizer.
  A finished pod's uid goes to `status.uncountedTerminatedPods` first, then its
  finalizer is removed, then it moves to the `succeeded`/`failed` counters: no
  pod is counted twice or lost, even when pods are deleted;
- a Job that meets its goal or fails gets the interim `SuccessCriteriaMet` or
  `FailureTarget` condition, and `Complete` or `Failed` only once none of its
  pods is still terminating;
- Indexed Jobs give each pod a completion index (annotation, label, hostname
  and the JOB_COMPLETION_INDEX variable read from the label) and report
  `completedIndexes`;
- failed pods are replaced after an exponential backoff (10 s doubling, at
  most 10 min; `KUBIK_JOB_POD_FAILURE_BACKOFF` sets the first delay, in seconds);
- a suspended Job has its active pods deleted and a `Suspended` condition;
- orphan pods its selector matches are adopted (and given the tracking
  finalizer), pods it owns that stopped matching are released;
- with `backoffLimitPerIndex`, each index of an Indexed Job has its own
  failure budget: a pod carries the failures of its index so far (annotation
  `batch.kubernetes.io/job-index-failure-count`, from the index's latest failed
  pod), its replacement waits for the index's own backoff, and an index whose
  pod fails with the budget spent (or by a FailIndex rule) is listed in
  `status.failedIndexes` and not run again. More failed indexes than
  `maxFailedIndexes` fail the Job (MaxFailedIndexesExceeded), as does every index
  finished with some failed (FailedIndexes);
- a `successPolicy` rule met by the succeeded indexes (all its
  `succeededIndexes`, or `succeededCount` of them) makes the Job
  `SuccessCriteriaMet` (reason SuccessPolicy), its other pods are deleted, and it
  completes once they are gone.

Not done: the index failure count survives only as long as the index's failed
pods do (upstream also delays their finalizer removal to keep it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError
from kubik.client.informer import key_of, split_key
from kubik.controllers.base import Controller, register
from kubik.controllers.expectations import Expectations
from kubik.controllers.podutil import (
    BY_CONTROLLER,
    ORPHANS,
    claim,
    controller_ref,
    copy_of,
    error_message,
    fresh_and_alive,
    index_by_controller,
    index_orphans,
    is_pod_active,
    is_pod_ready,
    namespace_terminating,
    owned_or_orphaned,
    parse_time,
    pod_from_template,
    selecting,
    slow_start,
)

Object = dict[str, Any]

JOBS = builtin.lookup("batch", "v1", "jobs")
PODS = builtin.lookup("", "v1", "pods")

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURES = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURES = "batch.kubernetes.io/job-index-ignored-failure-count"
INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_CONTROLLER = "kubernetes.io/job-controller"  # the spec.managedBy this controller serves

COMPLETE, FAILED = "Complete", "Failed"
SUCCESS_CRITERIA_MET, FAILURE_TARGET, SUSPENDED = "SuccessCriteriaMet", "FailureTarget", "Suspended"

SYNC_BATCH_PERIOD = 1.0  # pod events and status changes are folded into one sync per second
MAX_POD_BACKOFF = 600.0
MAX_UNCOUNTED = 500  # keeps uncountedTerminatedPods small
MAX_PODS_PER_SYNC = 500
MAX_GENERATED_NAME = 58  # a generated name adds five random characters to a 63-character limit

_ORPHAN = "pod:"  # queue keys of pods whose tracking finalizer no Job will remove


def pod_failure_backoff() -> float:
    """The first delay before replacing a failed pod (upstream: 10 s)."""
    return float(os.environ.get("KUBIK_JOB_POD_FAILURE_BACKOFF", "10"))


# ----------------------------------------------------------------- reading objects


def true_condition(job: Object, type_: str) -> Object | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition
    return None


def finished_condition(job: Object) -> Object | None:
    """The Job's (first) Complete or Failed condition, when it has finished."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in (COMPLETE, FAILED) and condition.get("status") == "True":
            return condition
    return None


def completion_index(pod: Object) -> int:
    """The pod's completion index, or -1 when it has none (or a malformed one)."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX, "")
    return int(text) if text.isascii() and text.isdigit() else -1


def format_indexes(indexes: set[int]) -> str:
    """Sorted indexes as upstream writes them: runs of three or more as "a-b" ("0,2-4,6,7")."""
    parts: list[str] = []
    run: list[int] = []
    for index in [*sorted(indexes), None]:
        if run and index == run[-1] + 1:
            run.append(index)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
        run = [] if index is None else [index]
    return ",".join(parts)


def parse_indexes(text: str, completions: int) -> set[int]:
    """The indexes `format_indexes` wrote, below `completions`; malformed parts are skipped."""
    indexes: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        indexes.update(range(int(first), min(int(last or first), completions - 1) + 1))
    return indexes


def match_failure_policy(policy: Object | None, pod: Object) -> tuple[str | None, bool, str | None]:
    """(message when the Job must fail, whether the failure counts, the matched action)."""
    if not policy:
        return None, True, None
    status = pod.get("status") or {}
    for number, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            container = _matching_exit_code(status, rule["onExitCodes"])
            if container is None:
                continue
            code = container["state"]["terminated"]["exitCode"]
            what = (
                f"Container {container.get('name')} for pod {_pod_path(pod)}"
                f" failed with exit code {code}"
            )
        elif rule.get("onPodConditions") is not None:
            condition = _matching_condition(status, rule["onPodConditions"])
            if condition is None:
                continue
            what = f"Pod {_pod_path(pod)} has condition {condition.get('type')}"
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action == "Count":
            return None, True, action
        if action == "FailJob":
            return f"{what} matching FailJob rule at index {number}", True, action
        if action == "FailIndex":
            return None, True, action
    return None, True, None


def _pod_path(pod: Object) -> str:
    return f"{meta.namespace_of(pod)}/{meta.name_of(pod)}"


def _matching_exit_code(status: Object, requirement: Object) -> Object | None:
    wanted = requirement.get("containerName")
    values = requirement.get("values") or []
    for container in (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []
    ):
        terminated = (container.get("state") or {}).get("terminated")
        if terminated is None or (wanted and container.get("name") != wanted):
            continue
        code = terminated.get("exitCode", 0)
        if code == 0:
            continue
        operator = requirement.get("operator")
        if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
            return container
    return None


def _matching_condition(status: Object, patterns: list[Object]) -> Object | None:
    for condition in status.get("conditions") or []:
        current = condition.get("type"), condition.get("status")
        if any(current == (p.get("type"), p.get("status", "True")) for p in patterns):
            return condition
    return None


def _phase(pod: Object) -> str:
    return (pod.get("status") or {}).get("phase", "")


def _deleting(obj: Object) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _is_terminating(pod: Object) -> bool:
    return _phase(pod) not in ("Succeeded", "Failed") and _deleting(pod)


def _has_finalizer(pod: Object) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def _uid(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("uid", "")


def _managed_here(job: Object) -> bool:
    return (job["spec"].get("managedBy") or JOB_CONTROLLER) == JOB_CONTROLLER


def _is_indexed(job: Object) -> bool:
    return job["spec"].get("completionMode") == "Indexed"


def _per_index(job: Object) -> bool:
    """Does each index have its own failure budget (backoffLimitPerIndex)?"""
    return _is_indexed(job) and job["spec"].get("backoffLimitPerIndex") is not None


def _suspended(job: Object) -> bool:
    return bool(job["spec"].get("suspend"))


def _only_replace_failed(job: Object) -> bool:
    """Replace a pod only once it failed, not while it terminates (podReplacementPolicy)."""
    spec = job["spec"]
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def _pod_failed(pod: Object, job: Object) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it succeeded."""
    if _phase(pod) == "Failed":
        return True
    if _only_replace_failed(job):
        return False
    return _deleting(pod) and _phase(pod) != "Succeeded"


def _counts_as_failure(job: Object, pod: Object) -> bool:
    return match_failure_policy(job["spec"].get("podFailurePolicy"), pod)[1]


def _finish_time(pod: Object) -> float:
    """When a pod ended: its last container, its Ready=False change, its deletion, or its birth."""
    status, metadata = pod.get("status") or {}, pod.get("metadata") or {}
    containers = status.get("containerStatuses") or []
    ends = [
        parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for c in containers
    ]
    if ends and None not in ends:
        return max(ends)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            changed = parse_time(condition.get("lastTransitionTime"))
            if changed is not None:
                return changed
    deleted = parse_time(metadata.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - (metadata.get("deletionGracePeriodSeconds") or 0)
    return parse_time(metadata.get("creationTimestamp")) or 0.0


def _removal_order(pod: Object) -> tuple:
    """Pods to delete first: unscheduled, pending, not ready, restarting, newest (ActivePods)."""
    status = pod.get("status") or {}
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp")) or 0.0
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(_phase(pod), 0)
    return (bool(pod["spec"].get("nodeName")), phase_rank, is_pod_ready(pod), -restarts, -created)


def new_condition(type_: str, status: str, reason: str = "", message: str = "") -> Object:
    now = meta.now()
    condition = {"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _ensure_condition(status: Object, type_: str, value: str, reason: str, message: str) -> bool:
    """Set a condition (a False one only if it already exists); whether anything changed."""
    conditions = status.setdefault("conditions", [])
    for i, condition in enumerate(conditions):
        if condition.get("type") == type_:
            current = (
                condition.get("status"),
                condition.get("reason", ""),
                condition.get("message", ""),
            )
            if current == (value, reason, message):
                return False
            conditions[i] = new_condition(type_, value, reason, message)
            return True
    if value == "False":
        return False
    conditions.append(new_condition(type_, value, reason, message))
    return True


def _wire_status(job: Object) -> Object:
    """The Job with its status as upstream writes it: zero counters and empty lists left out."""
    status = dict(job["status"])
    for key in ("active", "succeeded", "failed", "completedIndexes", "conditions"):
        if not status.get(key):
            status.pop(key, None)
    uncounted = status.get("uncountedTerminatedPods") or {}
    status["uncountedTerminatedPods"] = {k: v for k, v in uncounted.items() if v}
    return {**job, "status": status}


# ------------------------------------------------------------------- bookkeeping


@dataclass
class Backoff:
    """Pod failures since the last success, which delay the next pod's creation."""

    failures: int = 0
    last_failure: float | None = None

    def remaining(self, now: float, first: float, most: float = MAX_POD_BACKOFF) -> float:
        if not self.failures or self.last_failure is None:
            return 0.0
        delay = min(most, first * 2 ** min(self.failures - 1, 32))
        return max(0.0, delay - (now - self.last_failure))

    def after(self, succeeded: list[Object], failed: list[Object]) -> Backoff:
        """This record once the newly finished pods are taken into account."""
        failures = sorted(_finish_time(p) for p in failed)
        if not succeeded:
            if not failures:
                return Backoff(self.failures, self.last_failure)
            return Backoff(self.failures + len(failures), failures[-1])
        last_success = max(_finish_time(p) for p in succeeded)
        later = [t for t in failures if t > last_success]
        return Backoff(len(later), later[-1] if later else None)


@dataclass
class _Sync:
    """What one sync of one Job works out (upstream's syncJobCtx)."""

    job: Object
    pods: list[Object]
    active: list[Object]
    expected_removals: set[str]
    ready: int = 0
    terminating: int = 0
    succeeded: int = 0
    failed: int = 0
    uncounted_succeeded: set[str] = field(default_factory=set)
    uncounted_failed: set[str] = field(default_factory=set)
    finished: Object | None = None
    previous_indexes: set[int] = field(default_factory=set)
    indexes: set[int] = field(default_factory=set)
    failed_indexes: set[int] = field(default_factory=set)
    last_failures: dict[int, Object] = field(default_factory=dict)  # index → its last failed pod
    backoff: Backoff = field(default_factory=Backoff)


# -------------------------------------------------------------- the controller


@register
class JobController(Controller):
    name = "job"
    component = "job-controller"

    def setup(self) -> None:
        self.jobs = self.informers.informer(JOBS)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(BY_CONTROLLER, index_by_controller)
        self.pods.add_index(ORPHANS, index_orphans)
        self.expectations = Expectations()
        self._removals: dict[str, set[str]] = {}  # job key → pod uids losing their finalizer
        self._backoffs: dict[str, Backoff] = {}
        self._first_backoff = pod_failure_backoff()
        self.jobs.add_handlers(
            on_add=self.enqueue, on_update=self._job_updated, on_delete=self._job_deleted
        )
        self.pods.add_handlers(
            on_add=self._pod_added,
            on_update=self._pod_updated,
            on_delete=lambda pod: self._pod_deleted(pod, final=True),
        )

    # ------------------------------------------------------------ handlers

    def _enqueue_batched(self, key: str) -> None:
        self.queue.add_after(key, SYNC_BATCH_PERIOD)

    def _job_updated(self, old: Object, new: Object) -> None:
        key = key_of(new)
        if old["metadata"].get("generation") == new["metadata"].get("generation"):
            self._enqueue_batched(key)
        else:
            self.queue.add(key)
        if finished_condition(new):
            self._release_pods(new)
        deadline = new["spec"].get("activeDeadlineSeconds")
        started = parse_time((new.get("status") or {}).get("startTime"))
        if (
            deadline is not None
            and started
            and deadline != old["spec"].get("activeDeadlineSeconds")
        ):
            self.queue.add_after(key, deadline - (time.time() - started))

    def _job_deleted(self, job: Object) -> None:
        self._forget(key_of(job))
        self.enqueue(job)
        self._release_pods(job)

    def _forget(self, key: str) -> None:
        """Drop what was remembered of a Job (a new one of the same name starts clean)."""
        self.expectations.forget(key)
        self._removals.pop(key, None)
        self._backoffs.pop(key, None)

    def _release_pods(self, job: Object) -> None:
        """Queue the finalizer removal of the pods of a Job that no longer tracks them."""
        for pod in self.pods.by_index(BY_CONTROLLER, _uid(job)):
            if _has_finalizer(pod):
                self.queue.add(_ORPHAN + key_of(pod))

    def _job_of(self, namespace: str, ref: Object) -> Object | None:
        if ref.get("kind") != "Job":
            return None
        job = self.jobs.get(f"{namespace}/{ref.get('name')}")
        return job if job is not None and _uid(job) == ref.get("uid") else None

    def _pod_added(self, pod: Object) -> None:
        if _deleting(pod):
            self._pod_deleted(pod, final=False)
            return
        ref = controller_ref(pod)
        if ref is not None:
            job = self._job_of(meta.namespace_of(pod), ref)
            if job is not None:
                self.expectations.creation_observed(key_of(job))
                self._enqueue_batched(key_of(job))
        else:
            if _has_finalizer(pod):
                self.queue.add(_ORPHAN + key_of(pod))
            self._enqueue_adopters(pod)

    def _enqueue_adopters(self, pod: Object) -> None:
        """An orphan: the Jobs that select it may adopt it."""
        for job in selecting(self.jobs, pod):
            self._enqueue_batched(key_of(job))

    def _pod_updated(self, old: Object, new: Object) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if _deleting(new):
            self._pod_deleted(new, final=False)
            return
        released = not _has_finalizer(new)
        ref, old_ref = controller_ref(new), controller_ref(old)
        namespace = meta.namespace_of(new)
        if old_ref is not None and old_ref != ref:
            job = self._job_of(namespace, old_ref)
            if job is not None:
                if released:
                    self._removal_observed(key_of(job), _uid(new))
                self._enqueue_batched(key_of(job))
        if ref is not None:
            job = self._job_of(namespace, ref)
            if job is not None:
                if released:
                    self._removal_observed(key_of(job), _uid(new))
                self._enqueue_batched(key_of(job))
        else:
            if not released:
                self.queue.add(_ORPHAN + key_of(new))
            if old_ref is not None or old["metadata"].get("labels") != new["metadata"].get(
                "labels"
            ):
                self._enqueue_adopters(new)

    def _pod_deleted(self, pod: Object, *, final: bool) -> None:
        ref = controller_ref(pod)
        job = self._job_of(meta.namespace_of(pod), ref) if ref is not None else None
        if job is None or finished_condition(job):
            if _has_finalizer(pod):
                self.queue.add(_ORPHAN + key_of(pod))
            return
        key = key_of(job)
        self.expectations.deletion_observed(key, key_of(pod))
        if final or not _has_finalizer(pod):
            self._removal_observed(key, _uid(pod))
        self._enqueue_batched(key)

    def _removal_observed(self, key: str, uid: str) -> None:
        pending = self._removals.get(key)
        if pending is not None:
            pending.discard(uid)
            if not pending:
                del self._removals[key]

    # ---------------------------------------------------------------- sync

    async def sync(self, key: str) -> None:
        if key.startswith(_ORPHAN):
            await self._sync_orphan_pod(key[len(_ORPHAN) :])
            return
        cached = self.jobs.get(key)
        if cached is None:
            self._forget(key)
            return
        if not _managed_here(cached):
            return
        if finished_condition(cached):
            self._backoffs.pop(key, None)
            return
        job = {"apiVersion": "batch/v1", "kind": "Job", **copy_of(cached)}
        if job["spec"].get("completionMode") not in (None, "NonIndexed", "Indexed"):
            self.recorder.record(
                job,
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            )
            return
        status = job.setdefault("status", {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        satisfied = self.expectations.satisfied(key)
        pods = await self._claim_pods(job)
        state = _Sync(
            job,
            pods,
            [p for p in pods if is_pod_active(p)],
            set(self._removals.get(key, ())),
            uncounted_succeeded=set(uncounted.get("succeeded") or []),
            uncounted_failed=set(uncounted.get("failed") or []),
        )
        state.ready = sum(1 for p in state.active if is_pod_ready(p))
        state.terminating = sum(1 for p in pods if _is_terminating(p))
        new_succeeded = _newly_finished(state, state.uncounted_succeeded, _succeeded)
        new_failed = _newly_finished(state, state.uncounted_failed, _pod_failed)
        state.succeeded = (
            status.get("succeeded", 0) + len(new_succeeded) + len(state.uncounted_succeeded)
        )
        state.failed = (
            status.get("failed", 0)
            + sum(1 for p in new_failed if _counts_as_failure(job, p))
            + len(state.uncounted_failed)
        )
        if not status.get("startTime") and not _suspended(job):
            status["startTime"] = meta.now()
        state.backoff = self._backoffs.get(key, Backoff()).after(new_succeeded, new_failed)
        state.finished = self._finish_reason(key, state)
        if _is_indexed(job):
            completions = job["spec"]["completions"]
            state.previous_indexes = parse_indexes(status.get("completedIndexes", ""), completions)
            state.indexes = state.previous_indexes | {
                completion_index(p)
                for p in pods
                if _succeeded(p, job) and _has_finalizer(p) and _valid_index(p, completions)
            }
            state.succeeded = len(state.indexes)
            if _per_index(job):
                state.failed_indexes = _failed_indexes(job, pods, completions)
                state.last_failures = _last_failures(job, pods, completions)
                state.finished = state.finished or _failed_indexes_condition(job, state)
            state.finished = state.finished or _success_policy_condition(job, state.indexes)

        active = len(state.active)
        suspension_changed = False
        problem: Exception | None = None
        if state.finished is not None:
            ready_deleted, deleted, problem = await self._delete_active(job, state.active)
            if deleted != active or not satisfied:
                state.finished = None  # wait until the deletions show up
            active -= deleted
            state.terminating += deleted
            state.ready -= ready_deleted
        else:
            managed = satisfied and not _deleting(job)
            if managed:
                active, problem = await self._manage(key, state)
            completions = job["spec"].get("completions")
            done = state.succeeded > 0 if completions is None else state.succeeded >= completions
            if done and active == 0:
                state.finished = new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            elif managed:
                suspension_changed = self._note_suspension(job)
        changed = (
            suspension_changed
            or active != status.get("active", 0)
            or state.ready != status.get("ready")
            or state.terminating != status.get("terminating")
        )
        status.update(active=active, ready=state.ready, terminating=state.terminating)
        await self._track(key, state, changed)
        if problem is not None:
            raise problem

    async def _claim_pods(self, job: Object) -> list[Object]:
        """The Job's pods: the ones it owns and still selects, and the matching orphans it
        adopts, with the tracking finalizer (upstream's getPodsForJob)."""
        return await claim(
            self.client,
            PODS,
            job,
            owned_or_orphaned(self.pods, job),
            lambda: fresh_and_alive(self.client, JOBS, job),
            finalizer=TRACKING_FINALIZER,
        )

    def _finish_reason(self, key: str, state: _Sync) -> Object | None:
        """The condition the Job is to finish with, if any (FailureTarget, SuccessCriteriaMet…)."""
        job = state.job
        met = true_condition(job, SUCCESS_CRITERIA_MET)
        if met is not None:
            return met
        target = true_condition(job, FAILURE_TARGET)
        if target is not None:
            return new_condition(
                FAILED, "True", target.get("reason", ""), target.get("message", "")
            )
        message = _fail_job_message(job, state.pods)
        if message is not None:
            return new_condition(FAILURE_TARGET, "True", "PodFailurePolicy", message)
        if state.failed > job["spec"].get("backoffLimit", 6) or _restarts_exceed_limit(job, state):
            return new_condition(
                FAILURE_TARGET,
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        deadline = job["spec"].get("activeDeadlineSeconds")
        started = parse_time(job["status"].get("startTime"))
        if deadline is None or started is None or _suspended(job):
            return None
        left = deadline - (time.time() - started)
        if left <= 0:
            return new_condition(
                FAILURE_TARGET,
                "True",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        self.queue.add_after(key, left)
        return None

    def _note_suspension(self, job: Object) -> bool:
        """Set the Suspended condition (True, or False on resume); whether it changed."""
        status = job["status"]
        if _suspended(job):
            if not _ensure_condition(status, SUSPENDED, "True", "JobSuspended", "Job suspended"):
                return False
            self.recorder.record(job, "Normal", "Suspended", "Job suspended")
            return True
        if not _ensure_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed"):
            return False
        self.recorder.record(job, "Normal", "Resumed", "Job resumed")
        status["startTime"] = meta.now()  # the deadline counts from the resumption
        return True

    # ------------------------------------------------------ pods up and down

    async def _manage(self, key: str, state: _Sync) -> tuple[int, Exception | None]:
        """Create or delete pods toward the wanted number of active ones; (active, error)."""
        job = state.job
        spec = job["spec"]
        active = len(state.active)
        if _suspended(job):
            return await self._remove(key, state, _pods_for_removal(job, state.active, active))
        parallelism = spec.get("parallelism", 1)
        completions = spec.get("completions")
        if completions is None:
            wanted = active if state.succeeded > 0 else parallelism
        else:
            wanted = max(0, min(completions - state.succeeded, parallelism))
        doomed = _pods_for_removal(job, state.active, max(0, active - wanted), state.failed_indexes)
        if doomed:
            return await self._remove(key, state, doomed[:MAX_PODS_PER_SYNC])
        terminating = state.terminating if _only_replace_failed(job) else 0
        missing = min(wanted - terminating - active, MAX_PODS_PER_SYNC)
        if missing <= 0:
            return active, None
        if _per_index(job):  # each index waits for its own backoff instead
            wait = 0.0
        else:
            wait = state.backoff.remaining(time.time(), self._first_backoff)
        if wait > 0:
            self.queue.add_after(key, max(wait, SYNC_BATCH_PERIOD))
            return active, None
        indexes: list[int | None] = [None] * missing
        if _is_indexed(job):
            pending_indexes, wait = _pending_indexes(
                state, missing, completions, self._first_backoff
            )
            indexes = list(pending_indexes)
            if wait > 0:
                self.queue.add_after(key, max(wait, SYNC_BATCH_PERIOD))
        self.expectations.expect_creations(key, len(indexes))
        template = _pod_template(job)
        pending = iter(indexes)
        created, problem = await slow_start(
            len(indexes), lambda: self._create_pod(state, template, next(pending))
        )
        for _ in range(len(indexes) - created):  # never made: no event will count them off
            self.expectations.creation_observed(key)
        return active + created, problem

    async def _create_pod(self, state: _Sync, template: Object, index: int | None) -> None:
        job = state.job
        pod = pod_from_template(job, template)
        if index is not None:
            _give_index(pod, meta.name_of(job), index)
            if _per_index(job):
                _give_failure_counts(pod, job, state.last_failures.get(index))
        try:
            created = await self.client.create(PODS, pod)
        except ApiError as exc:
            if namespace_terminating(exc):
                return  # every create would fail; the namespace is going away
            self.recorder.record(
                job, "Warning", "FailedCreate", f"Error creating: {error_message(exc)}"
            )
            raise
        self.recorder.record(
            job, "Normal", "SuccessfulCreate", f"Created pod: {meta.name_of(created)}"
        )

    async def _remove(
        self, key: str, state: _Sync, pods: list[Object]
    ) -> tuple[int, Exception | None]:
        """Release and delete pods the Job no longer wants (they count as nothing); (active,
        error)."""
        self.expectations.expect_deletions(key, [key_of(p) for p in pods])

        async def remove(pod: Object) -> Exception | None:
            try:
                if _has_finalizer(pod):
                    await self._release(pod)
                await self._delete_pod(state.job, pod)
            except ApiError as exc:
                self.expectations.deletion_observed(key, key_of(pod))
                return None if exc.not_found else exc
            return None

        ready, removed, problem = _deletion_tally(
            pods, await asyncio.gather(*(remove(p) for p in pods))
        )
        state.terminating += removed
        state.ready -= ready
        return len(state.active) - removed, problem

    async def _delete_active(
        self, job: Object, pods: list[Object]
    ) -> tuple[int, int, Exception | None]:
        """Delete the active pods of a finishing Job, keeping their finalizers to count them."""

        async def delete(pod: Object) -> Exception | None:
            try:
                await self._delete_pod(job, pod)
            except ApiError as exc:
                return None if exc.not_found else exc
            return None

        return _deletion_tally(pods, await asyncio.gather(*(delete(p) for p in pods)))

    async def _delete_pod(self, job: Object, pod: Object) -> None:
        name = meta.name_of(pod)
        try:
            await self.client.delete(PODS, meta.namespace_of(pod), name)
        except ApiError as exc:
            if not exc.not_found:
                self.recorder.record(
                    job, "Warning", "FailedDelete", f"Error deleting: {error_message(exc)}"
                )
            raise
        self.recorder.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _release(self, pod: Object) -> None:
        """Remove the tracking finalizer (and no other) from a pod."""
        await self.client.patch(
            PODS,
            meta.namespace_of(pod),
            meta.name_of(pod),
            {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}},
            patch_type="strategic",
        )

    # ------------------------------------------------------- status tracking

    async def _track(self, key: str, state: _Sync, changed: bool) -> None:
        """Count finished pods (uncounted first, finalizers off, then counters) and finish the Job.

        (upstream's trackJobStatusAndRemoveFinalizers)
        """
        job = state.job
        status = job["status"]
        uncounted = status["uncountedTerminatedPods"]
        indexed = _is_indexed(job)
        completions = job["spec"].get("completions") or 0
        pods = sorted(state.pods, key=completion_index) if indexed else state.pods
        tracked = {
            _uid(p) for p in pods if _has_finalizer(p) and _uid(p) not in state.expected_removals
        }
        changed = _count_released(status, tracked) or changed
        releasing: list[Object] = []
        new_indexes: set[int] = set()
        full = False
        for pod in pods:
            uid = _uid(pod)
            if uid not in tracked:
                continue
            failed = _pod_failed(pod, job)
            if not (_deleting(job) or state.finished or _phase(pod) == "Succeeded" or failed):
                continue
            releasing.append(pod)
            if _phase(pod) == "Succeeded" and uid not in state.uncounted_failed:
                if indexed:
                    index = completion_index(pod)
                    if _valid_index(pod, completions) and index not in state.previous_indexes:
                        new_indexes.add(index)
                        changed = True
                elif uid not in state.uncounted_succeeded:
                    uncounted.setdefault("succeeded", []).append(uid)
                    changed = True
            elif failed or (state.finished and state.finished["type"] != SUCCESS_CRITERIA_MET):
                # a Job that is finishing counts every pod that did not succeed as failed
                if uid not in state.uncounted_failed and (
                    not indexed or _valid_index(pod, completions)
                ):
                    if _counts_as_failure(job, pod):
                        uncounted.setdefault("failed", []).append(uid)
                        changed = True
            waiting = len(new_indexes) + sum(len(v or []) for v in uncounted.values())
            if waiting >= MAX_UNCOUNTED:
                full = True
                break
        if indexed:
            state.indexes |= new_indexes
            text = format_indexes(state.indexes)
            changed = changed or text != status.get("completedIndexes", "")
            status["succeeded"] = len(state.indexes)
            status["completedIndexes"] = text
        if _per_index(job):
            text = format_indexes(state.failed_indexes)
            changed = changed or text != status.get("failedIndexes")
            status["failedIndexes"] = text
        finished = state.finished
        if finished is not None and finished["type"] == FAILURE_TARGET:
            status.setdefault("conditions", []).append(finished)
            changed = True
            state.finished = new_condition(
                FAILED, "True", finished.get("reason", ""), finished.get("message", "")
            )
        elif finished is not None and finished["type"] == SUCCESS_CRITERIA_MET:
            if true_condition(job, SUCCESS_CRITERIA_MET) is None:
                status.setdefault("conditions", []).append(finished)
                changed = True
            state.finished = new_condition(
                COMPLETE, "True", finished.get("reason", ""), finished.get("message", "")
            )
        changed = await self._flush_and_release(key, state, releasing, tracked, changed)
        done = not full and self._enact_finished(state)
        if changed or done:
            state.job = await self._write_status(state.job)
            if done:
                self._record_finished(state.job, state.finished)

    async def _flush_and_release(
        self, key: str, state: _Sync, releasing: list[Object], tracked: set[str], changed: bool
    ) -> bool:
        """Write the uncounted pods, remove their finalizers, count them; whether a change
        remains unwritten."""
        if changed:
            state.job = await self._write_status(state.job)
            self._backoffs[key] = state.backoff
            changed = False
        problem: Exception | None = None
        if releasing:
            removing = self._removals.setdefault(key, set())
            removing.update(_uid(p) for p in releasing)
            results = await asyncio.gather(
                *(self._release(p) for p in releasing), return_exceptions=True
            )
            for pod, result in zip(releasing, results, strict=True):
                if isinstance(result, BaseException):
                    self._removal_observed(key, _uid(pod))
                    if not (isinstance(result, ApiError) and result.not_found):
                        problem = problem or result
                        continue
                tracked.discard(_uid(pod))
        changed = _count_released(state.job["status"], tracked) or changed
        if problem is not None:
            if changed:
                state.job = await self._write_status(state.job)
            raise problem
        return changed

    def _enact_finished(self, state: _Sync) -> bool:
        """Put the Complete or Failed condition once every pod is counted and none terminates."""
        finished = state.finished
        if finished is None:
            return False
        status = state.job["status"]
        if any(status["uncountedTerminatedPods"].values()) or state.terminating > 0:
            return False
        _ensure_condition(
            status,
            finished["type"],
            "True",
            finished.get("reason", ""),
            finished.get("message", ""),
        )
        if finished["type"] == COMPLETE:
            status["completionTime"] = finished["lastTransitionTime"]
        return True

    def _record_finished(self, job: Object, finished: Object) -> None:
        if finished["type"] == COMPLETE:
            completions = job["spec"].get("completions")
            if completions is not None and job["status"].get("succeeded", 0) > completions:
                self.recorder.record(
                    job,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            self.recorder.record(job, "Normal", "Completed", "Job completed")
        else:
            self.recorder.record(
                job, "Warning", finished.get("reason", ""), finished.get("message", "")
            )

    async def _write_status(self, job: Object) -> Object:
        written = await self.client.update_status(JOBS, _wire_status(job))
        written.setdefault("status", {}).setdefault("uncountedTerminatedPods", {})
        return {"apiVersion": "batch/v1", "kind": "Job", **written}

    # --------------------------------------------------------------- orphans

    async def _sync_orphan_pod(self, key: str) -> None:
        """Remove the tracking finalizer of a pod whose Job is gone or finished."""
        pod = self.pods.get(key)
        if pod is None or not _has_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._job_of(meta.namespace_of(pod), ref)
            if job is not None:
                if not _managed_here(job) or not finished_condition(job):
                    return
        try:
            await self._release(pod)
        except ApiError as exc:
            if not exc.not_found:
                raise


# ----------------------------------------------------------- sync helpers


def _newly_finished(
    state: _Sync, uncounted: set[str], finished: Callable[[Object, Object], bool]
) -> list[Object]:
    """Pods that finished (`finished(pod, job)`) and are neither counted nor being counted."""
    indexed = _is_indexed(state.job)
    completions = state.job["spec"].get("completions") or 0
    return [
        pod
        for pod in state.pods
        if _has_finalizer(pod)
        and _uid(pod) not in uncounted
        and _uid(pod) not in state.expected_removals
        and (not indexed or _valid_index(pod, completions))
        and finished(pod, state.job)
    ]


def _succeeded(pod: Object, job: Object) -> bool:
    return _phase(pod) == "Succeeded"


def _valid_index(pod: Object, completions: int) -> bool:
    return 0 <= completion_index(pod) < completions


def _fail_job_message(job: Object, pods: list[Object]) -> str | None:
    """Why the Job must fail, when a failed pod matches a FailJob rule of its podFailurePolicy."""
    policy = job["spec"].get("podFailurePolicy")
    if not policy:
        return None
    for pod in pods:
        if _pod_failed(pod, job):
            message = match_failure_policy(policy, pod)[0]
            if message is not None:
                return message
    return None


def _restarts_exceed_limit(job: Object, state: _Sync) -> bool:
    """With restartPolicy OnFailure, container restarts count against backoffLimit."""
    template_spec = job["spec"].get("template", {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in state.pods:
        if _phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for container in (status.get("initContainerStatuses") or []) + (
                status.get("containerStatuses") or []
            ):
                restarts += container.get("restartCount", 0)
    limit = job["spec"].get("backoffLimit", 6)
    return restarts > 0 if limit == 0 else restarts >= limit


def _count_released(status: Object, tracked: set[str]) -> bool:
    """Move uncounted pods whose finalizer is gone to the counters; whether any moved."""
    uncounted = status["uncountedTerminatedPods"]
    moved = False
    for kind, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = uncounted.get(kind) or []
        still = [uid for uid in uids if uid in tracked]
        if len(still) != len(uids):
            status[counter] = status.get(counter, 0) + len(uids) - len(still)
            uncounted[kind] = still
            moved = True
    return moved


def _pods_for_removal(
    job: Object,
    active: list[Object],
    at_least: int,
    failed_indexes: set[int] | frozenset[int] = frozenset(),
) -> list[Object]:
    """Pods to delete: of an Indexed Job, extra pods per index, pods without a valid index
    and pods of failed indexes first; then, up to `at_least`, those least far along."""
    doomed: list[Object] = []
    left = list(active)
    if _is_indexed(job):
        doomed, left = _duplicate_index_pods(active, job["spec"]["completions"])
        doomed += [p for p in left if completion_index(p) in failed_indexes]
        left = [p for p in left if completion_index(p) not in failed_indexes]
    if len(doomed) < at_least:
        left.sort(key=_removal_order)
        doomed += left[: at_least - len(doomed)]
    return doomed


def _duplicate_index_pods(pods: list[Object], completions: int) -> tuple[list, list]:
    doomed: list[Object] = []
    by_index: dict[int, list[Object]] = {}
    for pod in pods:
        if _valid_index(pod, completions):
            by_index.setdefault(completion_index(pod), []).append(pod)
        else:
            doomed.append(pod)
    kept = []
    for index in sorted(by_index):
        group = sorted(by_index[index], key=_removal_order)
        doomed += group[:-1]
        kept.append(group[-1])
    return doomed, kept


def _pending_indexes(
    state: _Sync, count: int, completions: int, first_backoff: float
) -> tuple[list[int], float]:
    """The first `count` indexes neither done, failed nor running (nor terminating, if that
    waits), leaving out those still in their own backoff; and the soonest such a one is due."""
    taken = set(state.indexes) | state.failed_indexes | {completion_index(p) for p in state.active}
    if _only_replace_failed(state.job):
        taken |= {completion_index(p) for p in state.pods if _is_terminating(p)}
    pending: list[int] = []
    soonest = 0.0
    now = time.time()
    for index in range(completions):
        if len(pending) == count:
            break
        if index in taken:
            continue
        last = state.last_failures.get(index)
        wait = _index_backoff(last).remaining(now, first_backoff) if last else 0.0
        if wait > 0:
            soonest = min(soonest, wait) if soonest else wait
        else:
            pending.append(index)
    return pending, soonest


# ------------------------------------------------------- per-index failures


def _failure_counts(pod: Object) -> tuple[int, int]:
    """(failures, ignored failures) of the pod's index before this pod (its annotations)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    counts = []
    for name in (INDEX_FAILURES, INDEX_IGNORED_FAILURES):
        text = annotations.get(name, "0")
        counts.append(int(text) if text.isascii() and text.isdigit() else 0)
    return counts[0], counts[1]


def _index_failed(job: Object, pod: Object) -> bool:
    """Did this pod's failure use up its index's budget (or hit a FailIndex rule)?"""
    if not _pod_failed(pod, job):
        return False
    _, counts, action = match_failure_policy(job["spec"].get("podFailurePolicy"), pod)
    if action == "FailIndex":
        return True
    return counts and _failure_counts(pod)[0] >= job["spec"]["backoffLimitPerIndex"]


def _failed_indexes(job: Object, pods: list[Object], completions: int) -> set[int]:
    """The failed indexes recorded in the status, and those failed pods add."""
    failed = parse_indexes(job["status"].get("failedIndexes", ""), completions)
    for pod in pods:
        if _valid_index(pod, completions) and _index_failed(job, pod):
            failed.add(completion_index(pod))
    return failed


def _last_failures(job: Object, pods: list[Object], completions: int) -> dict[int, Object]:
    """Each index's latest failed pod: the one with the most failures before it, then the
    last to end."""
    latest: dict[int, tuple[tuple[int, float], Object]] = {}
    for pod in pods:
        if not (_valid_index(pod, completions) and _pod_failed(pod, job)):
            continue
        rank = (sum(_failure_counts(pod)), _finish_time(pod))
        index = completion_index(pod)
        if index not in latest or rank > latest[index][0]:
            latest[index] = (rank, pod)
    return {index: pod for index, (_, pod) in latest.items()}


def _index_backoff(last_failure: Object) -> Backoff:
    """The index's own backoff: one step per failure of the index (ignored ones too)."""
    return Backoff(sum(_failure_counts(last_failure)) + 1, _finish_time(last_failure))


def _give_failure_counts(pod: Object, job: Object, replaced: Object | None) -> None:
    """Carry the index's failures over to the pod replacing its latest failed one."""
    failures, ignored = _failure_counts(replaced) if replaced is not None else (0, 0)
    if replaced is not None:
        if match_failure_policy(job["spec"].get("podFailurePolicy"), replaced)[1]:
            failures += 1
        else:
            ignored += 1
    annotations = pod["metadata"]["annotations"]
    annotations[INDEX_FAILURES] = str(failures)
    if ignored:
        annotations[INDEX_IGNORED_FAILURES] = str(ignored)


def _failed_indexes_condition(job: Object, state: _Sync) -> Object | None:
    """FailureTarget when too many indexes failed, or when every index is done and some
    failed."""
    failed = len(state.failed_indexes)
    most = job["spec"].get("maxFailedIndexes")
    if most is not None and failed > most:
        return new_condition(
            FAILURE_TARGET,
            "True",
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
        )
    if failed and failed + len(state.indexes) >= job["spec"]["completions"]:
        return new_condition(FAILURE_TARGET, "True", "FailedIndexes", "Job has failed indexes")
    return None


def _success_policy_condition(job: Object, succeeded: set[int]) -> Object | None:
    """SuccessCriteriaMet when a successPolicy rule is met by the succeeded indexes: all of
    its succeededIndexes, or succeededCount of them (of all indexes, without a list)."""
    policy = job["spec"].get("successPolicy")
    if not policy or not succeeded:
        return None
    completions = job["spec"]["completions"]
    for number, rule in enumerate(policy.get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = parse_indexes(rule["succeededIndexes"], completions)
            done = len(required & succeeded)
            met = bool(required) and (
                done == len(required) or (count is not None and done >= count)
            )
        else:
            met = count is not None and len(succeeded) >= count
        if met:
            return new_condition(
                SUCCESS_CRITERIA_MET, "True", "SuccessPolicy", f"Matched rules at index {number}"
            )
    return None


def _pod_template(job: Object) -> Object:
    """What every pod of the Job is made from: its template, with the tracking finalizer (and,
    for an Indexed Job, the JOB_COMPLETION_INDEX variable in every container)."""
    template = copy_of(job["spec"].get("template") or {})
    metadata = template.setdefault("metadata", {})
    finalizers = metadata.setdefault("finalizers", [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    spec = template.setdefault("spec", {})
    if _is_indexed(job):
        for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            env = container.setdefault("env", [])
            if not any(var.get("name") == INDEX_ENV for var in env):
                path = f"metadata.labels['{COMPLETION_INDEX}']"
                env.append({"name": INDEX_ENV, "valueFrom": {"fieldRef": {"fieldPath": path}}})
    return template


def _give_index(pod: Object, job_name: str, index: int) -> None:
    """Make `pod` the one of completion index `index`: annotation, label, hostname, name."""
    metadata = pod["metadata"]
    for field_name in ("annotations", "labels"):  # fresh maps: the template's are shared
        metadata[field_name] = {**(metadata.get(field_name) or {}), COMPLETION_INDEX: str(index)}
    pod["spec"]["hostname"] = f"{job_name}-{index}"
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > MAX_GENERATED_NAME:
        prefix = prefix[: MAX_GENERATED_NAME - len(suffix)] + suffix
    metadata["generateName"] = prefix


def _deletion_tally(
    pods: list[Object], results: list[Exception | None]
) -> tuple[int, int, Exception | None]:
    """(ready pods deleted, pods deleted, first error) of a batch of deletions."""
    errors = [r for r in results if r is not None]
    deleted = [p for p, r in zip(pods, results, strict=True) if r is None]
    ready = sum(1 for p in deleted if is_pod_ready(p))
    return ready, len(deleted), errors[0] if errors else None


# ---------------------------------------------------------- TTL after finished


@register
class TTLAfterFinishedController(Controller):
    """Deletes a finished Job (and, in the foreground, its pods) ttlSecondsAfterFinished later.

    (upstream: pkg/controller/ttlafterfinished)
    """

    name = "ttlafterfinished"

    def setup(self) -> None:
        self.jobs = self.informers.informer(JOBS)
        self.jobs.add_handlers(
            on_add=self._job_changed, on_update=lambda old, new: self._job_changed(new)
        )

    def _job_changed(self, job: Object) -> None:
        if not _deleting(job) and _needs_cleanup(job):
            self.enqueue(job)

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None or not self._expired(key, job):
            return
        # the cached TTL may be stale: decide again on the stored Job before deleting it
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get(JOBS, namespace, name)
            if self._expired(key, fresh):
                await self.client.delete(
                    JOBS, namespace, name, propagation_policy="Foreground", uid=_uid(fresh)
                )
        except ApiError as exc:
            if not exc.not_found:
                raise

    def _expired(self, key: str, job: Object) -> bool:
        """Whether the Job's time is up; if it will be later, look again then."""
        if _deleting(job) or not _needs_cleanup(job):
            return False
        finished_at = parse_time(finished_condition(job).get("lastTransitionTime"))
        if finished_at is None:
            raise ValueError(f"unable to find the time when the Job {key} finished")
        left = finished_at + job["spec"]["ttlSecondsAfterFinished"] - time.time()
        if left <= 0:
            return True
        self.queue.add_after(key, left)
        return False


def _needs_cleanup(job: Object) -> bool:
    return (
        job["spec"].get("ttlSecondsAfterFinished") is not None
        and finished_condition(job) is not None
    )
