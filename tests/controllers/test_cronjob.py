"""The CronJob controller against a real `kubik server`, and its schedule arithmetic.

The server's clock cannot be moved, so the end-to-end tests make a schedule
time due instead: a CronJob is created suspended, its `status.lastScheduleTime`
set minutes into the past (as if the controller had been down), then resumed.
The controller then serves the most recent missed minute at once, as upstream
does. Jobs the test creates itself stand for earlier runs (Forbid, Replace,
history limits); with `suspend: true` they get no pods.
"""

from __future__ import annotations

import datetime

import pytest

from kubik.api import builtin
from kubik.api.kinds.cron import ScheduleError
from kubik.client.api import Client
from kubik.controllers import cronjob as cronjobs
from kubik.controllers import cronschedule
from kubik.controllers.base import Context
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
JOBS = builtin.lookup("batch", "v1", "jobs")
CRONJOBS = builtin.lookup("batch", "v1", "cronjobs")
EVENTS = builtin.lookup("", "v1", "events")
TIMEOUT = 30.0
UTC = datetime.UTC


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("cronjob")).start()
    yield kubik
    kubik.stop()


# ------------------------------------------------------------------ helpers


def stamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job_spec() -> dict:
    return {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
        }
    }


async def create_cronjob(client: Client, namespace: str, name: str, **spec) -> dict:
    body = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "* * * * *",
            "suspend": True,
            "jobTemplate": {"metadata": {"labels": {"app": name}}, "spec": job_spec()},
            **spec,
        },
    }
    return await client.create(CRONJOBS, body, namespace=namespace)


async def create_owned_job(client: Client, cronjob: dict, name: str) -> dict:
    """A Job of the CronJob, made by hand (suspended: no pods)."""
    owner = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": cronjob["metadata"]["name"],
        "uid": cronjob["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "ownerReferences": [owner]},
        "spec": {"suspend": True, **job_spec()},
    }
    return await client.create(JOBS, body, namespace=cronjob["metadata"]["namespace"])


async def end_job(client: Client, job: dict, type_: str, started: datetime.datetime) -> None:
    """Give a Job the status its controller writes when it finishes."""
    at = stamp(started)
    interim = "SuccessCriteriaMet" if type_ == "Complete" else "FailureTarget"
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": at, "lastTransitionTime": at}
        for kind in (interim, type_)
    ]
    status = {"startTime": at, "conditions": conditions}
    if type_ == "Complete":
        status["completionTime"] = at
    await client.patch(
        JOBS,
        job["metadata"]["namespace"],
        job["metadata"]["name"],
        {"status": status},
        subresource="status",
    )


async def missed_a_while_ago(client: Client, cronjob: dict, **status) -> None:
    """As if the controller had last served the CronJob minutes ago; then resume it."""
    namespace, name = cronjob["metadata"]["namespace"], cronjob["metadata"]["name"]
    past = datetime.datetime.now(UTC) - datetime.timedelta(minutes=3)
    await client.patch(
        CRONJOBS,
        namespace,
        name,
        {"status": {"lastScheduleTime": stamp(past), **status}},
        subresource="status",
    )
    await client.patch(CRONJOBS, namespace, name, {"spec": {"suspend": False}})


def reference(job: dict) -> dict:
    metadata = job["metadata"]
    return {
        "kind": "Job",
        "namespace": metadata["namespace"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "apiVersion": "batch/v1",
    }


async def job_names(client: Client, namespace: str) -> set[str]:
    listing = await client.list(JOBS, namespace)
    return {job["metadata"]["name"] for job in listing["items"]}


async def scheduled_jobs(client: Client, namespace: str, prefix: str) -> list[dict]:
    """The Jobs the controller made: named `<cronjob>-<minutes since the epoch>`."""
    listing = await client.list(JOBS, namespace)
    return [
        job
        for job in listing["items"]
        if job["metadata"]["name"].startswith(prefix + "-")
        and job["metadata"]["name"][len(prefix) + 1 :].isdigit()
    ]


async def events_with(client: Client, namespace: str, reason: str) -> list[dict]:
    """Wait for events of `reason` about CronJobs; all of them."""

    async def check():
        listing = await client.list(EVENTS, namespace)
        found = [
            e
            for e in listing["items"]
            if e["reason"] == reason and e["involvedObject"]["kind"] == "CronJob"
        ]
        return found or None

    return await eventually(check, f"a {reason} event")


# --------------------------------------------------------------- end to end


async def test_a_missed_schedule_time_starts_a_job(client, namespace):
    cronjob = await create_cronjob(client, namespace, "tick")
    before = datetime.datetime.now(UTC)
    await missed_a_while_ago(client, cronjob)
    # the most recent whole minute is served (and the next one too, if it begins meanwhile)
    jobs = await eventually(lambda: scheduled_jobs(client, namespace, "tick"), "a scheduled job")
    times = set()
    for job in jobs:
        minute = int(job["metadata"]["name"].rsplit("-", 1)[1])
        scheduled = datetime.datetime.fromtimestamp(minute * 60, UTC)
        assert before - datetime.timedelta(minutes=1) < scheduled <= datetime.datetime.now(UTC)
        times.add(stamp(scheduled))
        assert job["metadata"]["labels"]["app"] == "tick"
        assert job["metadata"]["annotations"][cronjobs.SCHEDULED_AT] == stamp(scheduled)
        [owner] = job["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "CronJob",
            cronjob["metadata"]["uid"],
            True,
        )

    async def listed():
        status = (await client.get(CRONJOBS, namespace, "tick")).get("status") or {}
        return status if status.get("active") else None

    status = await eventually(listed, "the job in status.active")
    made = {job["metadata"]["uid"]: job["metadata"]["name"] for job in jobs}
    assert {ref["uid"]: ref["name"] for ref in status["active"]}.items() <= made.items()
    assert status["lastScheduleTime"] in times
    created = await events_with(client, namespace, "SuccessfulCreate")
    assert f"Created job {jobs[0]['metadata']['name']}" in [e["message"] for e in created]
    assert {e["source"]["component"] for e in created} == {"cronjob-controller"}


async def test_forbid_skips_while_a_job_runs(client, namespace):
    cronjob = await create_cronjob(client, namespace, "once", concurrencyPolicy="Forbid")
    running = await create_owned_job(client, cronjob, "once-earlier")
    await missed_a_while_ago(client, cronjob, active=[reference(running)])
    await events_with(client, namespace, "JobAlreadyActive")
    assert await scheduled_jobs(client, namespace, "once") == []

    await end_job(client, running, "Complete", datetime.datetime.now(UTC))
    [job] = await eventually(
        lambda: scheduled_jobs(client, namespace, "once"), "a job once the earlier one ended"
    )
    await events_with(client, namespace, "SawCompletedJob")

    async def settled():
        status = (await client.get(CRONJOBS, namespace, "once")).get("status") or {}
        names = [ref["name"] for ref in status.get("active") or []]
        return status if names == [job["metadata"]["name"]] else None

    await eventually(settled, "only the new job active")
    finished = await client.get(JOBS, namespace, "once-earlier")

    async def successful():
        status = (await client.get(CRONJOBS, namespace, "once")).get("status") or {}
        return status.get("lastSuccessfulTime")

    assert (
        await eventually(successful, "lastSuccessfulTime") == (finished["status"]["completionTime"])
    )


async def test_replace_deletes_the_running_job(client, namespace):
    cronjob = await create_cronjob(client, namespace, "fresh", concurrencyPolicy="Replace")
    running = await create_owned_job(client, cronjob, "fresh-earlier")
    await missed_a_while_ago(client, cronjob, active=[reference(running)])
    await eventually(lambda: scheduled_jobs(client, namespace, "fresh"), "the replacing job")

    async def gone():
        return "fresh-earlier" not in await job_names(client, namespace)

    await eventually(gone, "the running job to be deleted")
    deleted = await events_with(client, namespace, "SuccessfulDelete")
    assert "Deleted job fresh-earlier" in [e["message"] for e in deleted]


async def test_history_limits_prune_the_oldest_finished_jobs(client, namespace):
    cronjob = await create_cronjob(
        client, namespace, "keep", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1
    )
    start = datetime.datetime.now(UTC) - datetime.timedelta(minutes=10)
    runs = [("ok-1", "Complete"), ("ok-2", "Complete"), ("ok-3", "Complete")]
    runs += [("bad-1", "Failed"), ("bad-2", "Failed")]
    for minutes, (name, outcome) in enumerate(runs):
        job = await create_owned_job(client, cronjob, name)
        await end_job(client, job, outcome, start + datetime.timedelta(minutes=minutes))

    async def pruned():
        names = await job_names(client, namespace)
        return names if names == {"ok-3", "bad-2"} else None

    await eventually(pruned, "only the newest successful and failed jobs to remain")


# ------------------------------------------------------------ schedule units


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("* * * * *", "2024-03-01T10:00:00", "2024-03-01T10:01:00"),
        ("* * * * *", "2024-03-01T10:00:30", "2024-03-01T10:01:00"),
        ("*/15 9-17 * * mon-fri", "2024-03-01T17:50:00", "2024-03-04T09:00:00"),
        ("0 0 1 1 *", "2024-03-01T00:00:00", "2025-01-01T00:00:00"),
        ("@yearly", "2024-03-01T00:00:00", "2025-01-01T00:00:00"),
        ("@monthly", "2024-12-15T00:00:00", "2025-01-01T00:00:00"),
        ("@weekly", "2024-03-01T00:00:00", "2024-03-03T00:00:00"),
        ("@daily", "2024-03-01T00:00:00", "2024-03-02T00:00:00"),
        ("@hourly", "2024-03-01T10:59:59", "2024-03-01T11:00:00"),
        ("30 2 29 feb *", "2024-03-01T00:00:00", "2028-02-29T02:30:00"),
        # both day fields restricted: either one matching will do (Friday 8th, then 13th)
        ("0 0 13 * fri", "2024-03-01T00:00:00", "2024-03-08T00:00:00"),
        # */2 restricts too (odd days): odd days or Fridays
        ("0 0 */2 * fri", "2024-03-01T00:00:00", "2024-03-03T00:00:00"),
        # day of month unrestricted: only the weekdays (Sunday, Wednesday, Saturday) count
        ("0 0 * * 0-6/3", "2024-03-01T00:00:00", "2024-03-02T00:00:00"),
        ("5/20 * * * *", "2024-03-01T10:46:00", "2024-03-01T11:05:00"),
        ("0 0 1,15 jan,JUL ?", "2024-01-20T00:00:00", "2024-07-01T00:00:00"),
        ("TZ=Europe/Paris 0 9 * * *", "2024-06-01T00:00:00", "2024-06-01T07:00:00"),
        ("CRON_TZ=Asia/Tokyo 0 0 * * *", "2024-06-01T00:00:00", "2024-06-01T15:00:00"),
        ("@every 90s", "2024-03-01T10:00:00.600000", "2024-03-01T10:01:30"),
        ("@every 1h30m", "2024-03-01T10:00:00", "2024-03-01T11:30:00"),
        ("@every 0.5s", "2024-03-01T10:00:00", "2024-03-01T10:00:01"),
    ],
)
def test_next_schedule_time(spec, after, expected):
    assert cronschedule.parse(spec).next(at(after)) == at(expected)


def test_a_schedule_that_never_fires():
    assert cronschedule.parse("0 0 30 feb *").next(at("2024-01-01T00:00:00")) is None


def test_daylight_saving_changes():
    new_york = cronschedule.parse("TZ=America/New_York 30 2 * * *")
    # 02:30 does not exist on 10 March 2024: the run happens when the clock says 03:30
    assert new_york.next(at("2024-03-10T05:00:00")) == at("2024-03-10T07:30:00")
    assert new_york.next(at("2024-03-10T07:30:00")) == at("2024-03-11T06:30:00")


@pytest.mark.parametrize("spec", ["", "* * * *", "61 * * * *", "@often", "TZ=Mars/Base * * * * *"])
def test_unparseable_schedules(spec):
    with pytest.raises(ScheduleError):
        cronschedule.parse(spec)


def cronjob_at(created: str, last: str | None = None, deadline: int | None = None) -> dict:
    spec = {"schedule": "* * * * *"}
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    status = {"lastScheduleTime": last} if last else {}
    return {
        "metadata": {"name": "cj", "namespace": "ns", "creationTimestamp": created},
        "spec": spec,
        "status": status,
    }


def test_most_recent_schedule_time():
    every_minute = cronschedule.parse("* * * * *")
    recent = cronjobs.most_recent_schedule_time
    fresh = cronjob_at("2024-03-01T10:00:10Z")
    assert recent(fresh, at("2024-03-01T10:00:50"), every_minute, with_deadline=True) == (
        at("2024-03-01T10:00:10"),
        None,
        cronjobs.Missed.NONE,
    )
    assert recent(fresh, at("2024-03-01T10:01:20"), every_minute, with_deadline=True) == (
        at("2024-03-01T10:00:10"),
        at("2024-03-01T10:01:00"),
        cronjobs.Missed.NONE,
    )
    behind = cronjob_at("2024-03-01T00:00:00Z", last="2024-03-01T10:00:00Z")
    _, latest, missed = recent(behind, at("2024-03-01T10:05:30"), every_minute, with_deadline=True)
    assert (latest, missed) == (at("2024-03-01T10:05:00"), cronjobs.Missed.FEW)
    _, latest, missed = recent(behind, at("2024-03-02T10:05:30"), every_minute, with_deadline=True)
    assert (latest, missed) == (at("2024-03-02T10:05:00"), cronjobs.Missed.MANY)
    # a deadline moves the start of the count: nothing was missed within the last 20 seconds
    strict = cronjob_at("2024-03-01T00:00:00Z", last="2024-03-01T10:00:00Z", deadline=20)
    assert recent(strict, at("2024-03-01T10:05:30"), every_minute, with_deadline=True)[1] is None
    assert recent(strict, at("2024-03-01T10:05:10"), every_minute, with_deadline=True)[1] == (
        at("2024-03-01T10:05:00")
    )


def test_next_schedule_delay_wakes_just_after_the_next_time():
    every_minute = cronschedule.parse("* * * * *")
    fresh = cronjob_at("2024-03-01T10:00:10Z")
    delay = cronjobs.next_schedule_delay(fresh, at("2024-03-01T10:00:50"), every_minute)
    assert delay == pytest.approx(10.1)
    never = cronschedule.parse("0 0 30 feb *")
    assert cronjobs.next_schedule_delay(fresh, at("2024-03-01T10:00:50"), never) is None


def test_jobs_are_named_by_their_minute_and_stamped_in_the_cronjob_zone():
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "schedule": "0 9 * * *",
            "timeZone": "Europe/Paris",
            "jobTemplate": {"metadata": {"annotations": {"x": "y"}}, "spec": job_spec()},
        },
    }
    scheduled = at("2024-06-01T07:00:00")
    job = cronjobs.job_from_template(cronjob, scheduled)
    assert job["metadata"]["name"] == f"report-{int(scheduled.timestamp()) // 60}"
    assert job["metadata"]["annotations"] == {
        "x": "y",
        cronjobs.SCHEDULED_AT: "2024-06-01T09:00:00+02:00",
    }
    assert job["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert job["spec"] == job_spec()


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def record(self, obj, type_, reason, message) -> None:
        self.events.append((type_, reason, message))


async def test_an_unparseable_schedule_is_reported_and_not_retried():
    controller = cronjobs.CronJobController(Context(client=None, informers=None, recorder=None))
    controller.recorder = _Recorder()
    cronjob = cronjob_at("2024-03-01T10:00:00Z")
    cronjob["spec"]["schedule"] = "TZ=Mars/Base * * * * *"
    assert await controller._sync_cronjob(cronjob, []) is None  # no requeue: wait for a change
    reasons = [reason for _, reason, _ in controller.recorder.events]
    assert reasons == ["UnsupportedSchedule", "UnparseableSchedule"]
    assert controller.recorder.events[-1][2] == (
        'unparseable schedule: "TZ=Mars/Base * * * * *" : '
        "provided bad location Mars/Base: unknown time zone Mars/Base"
    )
    assert len(controller.queue) == 0


async def test_a_suspended_cronjob_starts_nothing():
    controller = cronjobs.CronJobController(Context(client=None, informers=None, recorder=None))
    controller.recorder = _Recorder()
    cronjob = cronjob_at("2024-03-01T10:00:00Z", last="2024-03-01T10:00:00Z")
    cronjob["spec"]["suspend"] = True
    assert await controller._sync_cronjob(cronjob, []) is None  # and no Job: there is no client
    assert controller.recorder.events == []
    assert "lastScheduleTime" in cronjob["status"] and "active" not in cronjob["status"]
