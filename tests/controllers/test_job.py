"""The Job and TTL-after-finished controllers against a real `kubik server`.

There is no kubelet: the test plays it, finishing pods through `pods/status`
(phase, a terminated container with its exit code). The server runs with a
short first pod-failure backoff (KUBIK_JOB_POD_FAILURE_BACKOFF) so failed
pods are replaced within the test's patience.
"""

from __future__ import annotations

import pytest

from kubik.api import builtin, meta
from kubik.client.api import Client
from kubik.controllers import job as jobs
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
PODS = builtin.lookup("", "v1", "pods")
JOBS = builtin.lookup("batch", "v1", "jobs")
EVENTS = builtin.lookup("", "v1", "events")
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("job"), env={"KUBIK_JOB_POD_FAILURE_BACKOFF": "0.2"}
    ).start()
    yield kubik
    kubik.stop()


# ------------------------------------------------------------------ helpers


def job_manifest(name: str, **spec) -> dict:
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}],
        }
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": template, **spec},
    }


async def create_job(client: Client, namespace: str, name: str, **spec) -> dict:
    return await client.create(JOBS, job_manifest(name, **spec), namespace=namespace)


async def get_job(client: Client, namespace: str, name: str) -> dict:
    return await client.get(JOBS, namespace, name)


async def job_pods(client: Client, namespace: str, name: str) -> list[dict]:
    listing = await client.list(
        PODS, namespace, label_selector=f"batch.kubernetes.io/job-name={name}"
    )
    return listing["items"]


async def running_pods(client: Client, namespace: str, name: str, count: int) -> list[dict]:
    """Wait for exactly `count` pods of the Job that have not finished nor are being deleted."""

    async def check():
        pods = [
            pod
            for pod in await job_pods(client, namespace, name)
            if pod["status"].get("phase") not in ("Succeeded", "Failed")
            and not pod["metadata"].get("deletionTimestamp")
        ]
        return pods if len(pods) == count else None

    return await eventually(check, f"{count} running pods of job {name}")


async def finish(client: Client, pod: dict, *, exit_code: int = 0) -> None:
    """What the kubelet reports when the pod's only container exits."""
    now = meta.now()
    terminated = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": now,
        "finishedAt": now,
    }
    status = {
        "phase": "Succeeded" if exit_code == 0 else "Failed",
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
        "containerStatuses": [
            {
                "name": "main",
                "image": "busybox",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    await client.patch(
        PODS,
        pod["metadata"]["namespace"],
        pod["metadata"]["name"],
        {"status": status},
        subresource="status",
    )


def condition(job: dict, type_: str) -> dict | None:
    for item in (job.get("status") or {}).get("conditions") or []:
        if item["type"] == type_ and item["status"] == "True":
            return item
    return None


async def finished_job(client: Client, namespace: str, name: str, type_: str) -> dict:
    async def check():
        job = await get_job(client, namespace, name)
        return job if condition(job, type_) else None

    return await eventually(check, f"job {name} to be {type_}")


async def events_with(client: Client, namespace: str, name: str, reason: str) -> list[str]:
    """Wait for an event of `reason` about `name`; the reasons of all its events."""

    async def check():
        listing = await client.list(EVENTS, namespace)
        reasons = [e["reason"] for e in listing["items"] if e["involvedObject"]["name"] == name]
        return reasons if reason in reasons else None

    return await eventually(check, f"a {reason} event about {name}")


# --------------------------------------------------------------- end to end


async def test_pods_come_from_the_template_and_the_job_completes(client, namespace):
    job = await create_job(client, namespace, "pi", completions=2, parallelism=2)
    uid = job["metadata"]["uid"]
    pods = await running_pods(client, namespace, "pi", 2)
    for pod in pods:
        metadata = pod["metadata"]
        assert metadata["generateName"] == "pi-"
        assert metadata["labels"]["batch.kubernetes.io/controller-uid"] == uid
        assert metadata["labels"]["batch.kubernetes.io/job-name"] == "pi"
        assert metadata["finalizers"] == [jobs.TRACKING_FINALIZER]
        [owner] = metadata["ownerReferences"]
        assert owner == {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "pi",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    async def active():
        status = (await get_job(client, namespace, "pi")).get("status") or {}
        return status if status.get("active") == 2 else None

    status = await eventually(active, "status.active to be 2")
    assert status["ready"] == 0 and status["startTime"]

    for pod in pods:
        await finish(client, pod)
    done = await finished_job(client, namespace, "pi", "Complete")
    status = done["status"]
    assert status["succeeded"] == 2
    assert not status.get("active") and not status.get("failed")
    assert status["completionTime"]
    assert status["uncountedTerminatedPods"] == {}
    met = condition(done, "SuccessCriteriaMet")
    assert met and met["reason"] == "CompletionsReached"
    for pod in await job_pods(client, namespace, "pi"):
        assert jobs.TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or [])
    reasons = await events_with(client, namespace, "pi", "Completed")
    assert reasons.count("SuccessfulCreate") == 2


async def test_failing_pods_stop_at_the_backoff_limit(client, namespace):
    await create_job(client, namespace, "flaky", backoffLimit=1)
    for _ in range(2):  # the first failure is retried, the second is one too many
        [pod] = await running_pods(client, namespace, "flaky", 1)
        await finish(client, pod, exit_code=1)
    failed = await finished_job(client, namespace, "flaky", "Failed")
    reason = condition(failed, "Failed")
    assert reason["reason"] == "BackoffLimitExceeded"
    assert reason["message"] == "Job has reached the specified backoff limit"
    assert condition(failed, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 2
    assert not failed["status"].get("active")
    assert len(await job_pods(client, namespace, "flaky")) == 2  # no third attempt
    await events_with(client, namespace, "flaky", "BackoffLimitExceeded")


async def test_an_indexed_job_completes_every_index(client, namespace):
    await create_job(
        client, namespace, "idx", completions=3, parallelism=2, completionMode="Indexed"
    )
    first = await running_pods(client, namespace, "idx", 2)
    indexes = sorted(int(p["metadata"]["annotations"][jobs.COMPLETION_INDEX]) for p in first)
    assert indexes == [0, 1]
    for pod in first:
        index = pod["metadata"]["annotations"][jobs.COMPLETION_INDEX]
        assert pod["metadata"]["labels"][jobs.COMPLETION_INDEX] == index
        assert pod["metadata"]["generateName"] == f"idx-{index}-"
        assert pod["spec"]["hostname"] == f"idx-{index}"
        [env] = pod["spec"]["containers"][0]["env"]
        assert env == {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']",
                }
            },
        }
        await finish(client, pod)
    [last] = await running_pods(client, namespace, "idx", 1)
    assert last["metadata"]["annotations"][jobs.COMPLETION_INDEX] == "2"

    async def two_done():
        status = (await get_job(client, namespace, "idx")).get("status") or {}
        return status.get("completedIndexes") == "0,1"

    await eventually(two_done, 'completedIndexes "0,1"')
    await finish(client, last)
    done = await finished_job(client, namespace, "idx", "Complete")
    assert done["status"]["completedIndexes"] == "0-2"
    assert done["status"]["succeeded"] == 3


async def test_active_deadline_fails_the_job_and_removes_its_pods(client, namespace):
    await create_job(client, namespace, "slow", activeDeadlineSeconds=2)
    await running_pods(client, namespace, "slow", 1)
    failed = await finished_job(client, namespace, "slow", "Failed")
    assert condition(failed, "Failed")["reason"] == "DeadlineExceeded"
    assert condition(failed, "Failed")["message"] == (
        "Job was active longer than specified deadline"
    )
    assert failed["status"]["failed"] == 1
    assert not failed["status"].get("active")
    assert failed["status"]["terminating"] == 0
    assert await job_pods(client, namespace, "slow") == []  # deleted, finalizer released


async def test_pod_failure_policy_fails_the_job_on_an_exit_code(client, namespace):
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        ]
    }
    await create_job(client, namespace, "strict", backoffLimit=6, podFailurePolicy=policy)
    [pod] = await running_pods(client, namespace, "strict", 1)
    await finish(client, pod, exit_code=42)
    failed = await finished_job(client, namespace, "strict", "Failed")
    reason = condition(failed, "Failed")
    assert reason["reason"] == "PodFailurePolicy"
    assert reason["message"] == (
        f"Container main for pod {namespace}/{pod['metadata']['name']} failed with exit code 42"
        " matching FailJob rule at index 0"
    )
    assert failed["status"]["failed"] == 1
    assert len(await job_pods(client, namespace, "strict")) == 1  # not replaced


async def test_ignored_failures_do_not_count(client, namespace):
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]}
    await create_job(client, namespace, "lenient", backoffLimit=0, podFailurePolicy=policy)
    [pod] = await running_pods(client, namespace, "lenient", 1)
    await finish(client, pod, exit_code=3)
    [second] = await running_pods(client, namespace, "lenient", 1)  # replaced, not failed
    assert second["metadata"]["uid"] != pod["metadata"]["uid"]
    await finish(client, second)
    done = await finished_job(client, namespace, "lenient", "Complete")
    assert not done["status"].get("failed")


async def test_suspending_deletes_active_pods(client, namespace):
    await create_job(client, namespace, "pause", parallelism=2, completions=4)
    await running_pods(client, namespace, "pause", 2)
    await client.patch(JOBS, namespace, "pause", {"spec": {"suspend": True}})

    async def suspended():
        job = await get_job(client, namespace, "pause")
        pods = await job_pods(client, namespace, "pause")
        return job if condition(job, "Suspended") and not pods else None

    job = await eventually(suspended, "the job to be suspended without pods")
    assert condition(job, "Suspended")["reason"] == "JobSuspended"
    assert not job["status"].get("active") and not job["status"].get("failed")
    await client.patch(JOBS, namespace, "pause", {"spec": {"suspend": False}})
    await running_pods(client, namespace, "pause", 2)

    async def resumed():
        job = await get_job(client, namespace, "pause")
        kept = [c for c in job["status"]["conditions"] if c["type"] == "Suspended"]
        return kept if kept and kept[0]["status"] == "False" else None

    [suspension] = await eventually(resumed, "the Suspended condition to turn False")
    assert suspension["reason"] == "JobResumed"


async def test_ttl_after_finished_deletes_the_job(client, namespace):
    await create_job(client, namespace, "brief", ttlSecondsAfterFinished=0)
    [pod] = await running_pods(client, namespace, "brief", 1)
    await finish(client, pod)

    async def deleted():
        listing = await client.list(JOBS, namespace)
        found = [j for j in listing["items"] if j["metadata"]["name"] == "brief"]
        # gone, or (foreground deletion) waiting for the garbage collector
        return not found or bool(found[0]["metadata"].get("deletionTimestamp"))

    await eventually(deleted, "the finished job to be deleted")


async def test_orphan_pods_the_selector_matches_are_adopted(client, namespace):
    labels = {"app": "adopter"}
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]},
    }
    await client.create(PODS, orphan, namespace=namespace)
    manifest = job_manifest("adopter", completions=2, parallelism=2, manualSelector=True)
    manifest["spec"]["selector"] = {"matchLabels": labels}
    manifest["spec"]["template"]["metadata"] = {"labels": labels}
    job = await client.create(JOBS, manifest, namespace=namespace)

    async def two_pods():
        listing = await client.list(PODS, namespace, label_selector="app=adopter")
        pods = listing["items"]
        adopted = [p for p in pods if p["metadata"].get("ownerReferences")]
        return pods if len(pods) == 2 and len(adopted) == 2 else None

    pods = await eventually(two_pods, "the orphan adopted beside one new pod")
    adopted = next(p for p in pods if p["metadata"]["name"] == "orphan")
    [owner] = adopted["metadata"]["ownerReferences"]
    assert owner["uid"] == job["metadata"]["uid"] and owner["controller"] is True
    assert jobs.TRACKING_FINALIZER in adopted["metadata"]["finalizers"]
    for pod in pods:
        await finish(client, pod)
    done = await finished_job(client, namespace, "adopter", "Complete")
    assert done["status"]["succeeded"] == 2


def index_of(pod: dict) -> int:
    return int(pod["metadata"]["annotations"][jobs.COMPLETION_INDEX])


async def test_an_index_fails_alone_when_its_own_backoff_limit_is_used_up(client, namespace):
    await create_job(
        client,
        namespace,
        "per-index",
        completions=2,
        parallelism=2,
        completionMode="Indexed",
        backoffLimitPerIndex=1,
    )
    first = await running_pods(client, namespace, "per-index", 2)
    zero = next(p for p in first if index_of(p) == 0)
    assert zero["metadata"]["annotations"][jobs.INDEX_FAILURES] == "0"
    await finish(client, zero, exit_code=1)

    async def retried():
        pods = await running_pods(client, namespace, "per-index", 2)
        again = [p for p in pods if index_of(p) == 0]
        return (
            again[0] if again and again[0]["metadata"]["uid"] != zero["metadata"]["uid"] else None
        )

    retry = await eventually(retried, "index 0 to run again")
    assert retry["metadata"]["annotations"][jobs.INDEX_FAILURES] == "1"
    await finish(client, retry, exit_code=1)  # index 0 has no failures left

    async def index_failed():
        status = (await get_job(client, namespace, "per-index")).get("status") or {}
        return status if status.get("failedIndexes") == "0" else None

    await eventually(index_failed, 'failedIndexes "0"')
    [one] = await running_pods(client, namespace, "per-index", 1)  # index 0 is not retried
    assert index_of(one) == 1
    await finish(client, one)
    failed = await finished_job(client, namespace, "per-index", "Failed")
    assert condition(failed, "Failed")["reason"] == "FailedIndexes"
    assert condition(failed, "Failed")["message"] == "Job has failed indexes"
    assert failed["status"]["completedIndexes"] == "1"
    assert failed["status"]["failedIndexes"] == "0"
    assert failed["status"]["failed"] == 2


async def test_too_many_failed_indexes_fail_the_job(client, namespace):
    await create_job(
        client,
        namespace,
        "max-failed",
        completions=3,
        parallelism=3,
        completionMode="Indexed",
        backoffLimitPerIndex=0,
        maxFailedIndexes=0,
    )
    pods = await running_pods(client, namespace, "max-failed", 3)
    await finish(client, next(p for p in pods if index_of(p) == 1), exit_code=1)
    failed = await finished_job(client, namespace, "max-failed", "Failed")
    reason = condition(failed, "Failed")
    assert reason["reason"] == "MaxFailedIndexesExceeded"
    assert reason["message"] == "Job has exceeded the specified maximal number of failed indexes"
    assert failed["status"]["failedIndexes"] == "1"
    # the indexes still running were stopped: only the failed pod is left
    left = await job_pods(client, namespace, "max-failed")
    assert [(index_of(p), p["status"]["phase"]) for p in left] == [(1, "Failed")]


async def test_a_success_policy_completes_the_job_early(client, namespace):
    policy = {"rules": [{"succeededIndexes": "0"}]}
    await create_job(
        client,
        namespace,
        "leader",
        completions=3,
        parallelism=3,
        completionMode="Indexed",
        successPolicy=policy,
    )
    pods = await running_pods(client, namespace, "leader", 3)
    await finish(client, next(p for p in pods if index_of(p) == 0))
    done = await finished_job(client, namespace, "leader", "Complete")
    met = condition(done, "SuccessCriteriaMet")
    assert (met["reason"], met["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert condition(done, "Complete")["reason"] == "SuccessPolicy"
    assert done["status"]["completedIndexes"] == "0"
    assert not done["status"].get("failed")
    # the other indexes were stopped: only the leader's pod is left
    left = await job_pods(client, namespace, "leader")
    assert [(index_of(p), p["status"]["phase"]) for p in left] == [(0, "Succeeded")]


# -------------------------------------------------------------------- units


def test_completed_indexes_are_written_and_read_as_upstream():
    assert jobs.format_indexes(set()) == ""
    assert jobs.format_indexes({0, 1, 2, 4, 6, 7, 9}) == "0-2,4,6,7,9"
    assert jobs.parse_indexes("0-2,4,6,7,9", 10) == {0, 1, 2, 4, 6, 7, 9}
    assert jobs.parse_indexes("1,3-8", 5) == {1, 3, 4}  # beyond completions: dropped
    assert jobs.parse_indexes("x,2", 5) == {2}


def _failed_pod(exit_code: int, conditions=()) -> dict:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": "Failed",
            "conditions": list(conditions),
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"exitCode": exit_code}}}
            ],
        },
    }


def test_pod_failure_policy_rules_match_in_order():
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "Count", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        ]
    }
    disrupted = _failed_pod(5, [{"type": "DisruptionTarget", "status": "True"}])
    assert jobs.match_failure_policy(policy, disrupted) == (None, False, "Ignore")
    assert jobs.match_failure_policy(policy, _failed_pod(1)) == (None, True, "Count")
    assert jobs.match_failure_policy(policy, _failed_pod(2)) == (None, True, None)
    message, counts, action = jobs.match_failure_policy(policy, _failed_pod(7))
    assert (counts, action) == (True, "FailJob")
    assert message == (
        "Container main for pod ns/p failed with exit code 7 matching FailJob rule at index 2"
    )
    assert jobs.match_failure_policy(None, _failed_pod(7)) == (None, True, None)


def test_pod_failure_backoff_doubles_up_to_a_cap():
    assert jobs.Backoff().remaining(100.0, 10.0) == 0
    assert jobs.Backoff(1, 100.0).remaining(104.0, 10.0) == 6.0
    assert jobs.Backoff(3, 100.0).remaining(100.0, 10.0) == 40.0
    assert jobs.Backoff(30, 100.0).remaining(100.0, 10.0) == jobs.MAX_POD_BACKOFF
    assert jobs.Backoff(2, 100.0).remaining(200.0, 10.0) == 0


def test_success_policy_rules_are_met_by_indexes_or_counts():
    def job(*rules):
        return {"spec": {"completions": 5, "successPolicy": {"rules": list(rules)}}}

    by_indexes = job({"succeededIndexes": "0-2"})
    assert jobs._success_policy_condition(by_indexes, {0, 1}) is None
    assert jobs._success_policy_condition(by_indexes, {0, 1, 2})["reason"] == "SuccessPolicy"
    some_of = job({"succeededIndexes": "7"}, {"succeededIndexes": "1-3", "succeededCount": 2})
    met = jobs._success_policy_condition(some_of, {1, 4, 3})
    assert met["message"] == "Matched rules at index 1"
    counted = job({"succeededCount": 3})
    assert jobs._success_policy_condition(counted, {0, 4}) is None
    assert jobs._success_policy_condition(counted, {0, 2, 4})["type"] == "SuccessCriteriaMet"
