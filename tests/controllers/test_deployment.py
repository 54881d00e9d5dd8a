"""The Deployment controller against a real `kubik server`, driven with real kubectl.

The fake kubelet runs the pods, so rollouts progress as on a cluster:
`kubectl rollout status` must print and exit as it does there. The rollout
tests watch ReplicaSets and pods while they run and check the bounds at
every event. The arithmetic (rounding, hashes, proportions) is tested on
its own at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest

from kubik.api import builtin
from kubik.client.api import Client
from kubik.controllers import deployment_util as util
from tests.support.cluster import KubikServer
from tests.support.fake_kubelet import FakeKubelet, Readiness, run_pods
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
PODS = builtin.lookup("", "v1", "pods")
EVENTS = builtin.lookup("", "v1", "events")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")
DEPLOYMENTS = builtin.lookup("apps", "v1", "deployments")
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("deployment"),
        extra_args=["--controllers", "replicaset,deployment", "--disable-scheduler"],
    ).start()
    yield kubik
    kubik.stop()


@contextlib.asynccontextmanager
async def kubelet(client: Client, namespace: str, ready: Readiness = True):
    task = asyncio.create_task(run_pods(client, namespace=namespace, ready=ready))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def kubectl(server: KubikServer, namespace: str, *args: str, ok: bool = True):
    result = await asyncio.to_thread(server.kubectl, "-n", namespace, *args)
    if ok:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


async def rolled_out(server: KubikServer, namespace: str, name: str = "web") -> str:
    result = await kubectl(
        server, namespace, "rollout", "status", f"deploy/{name}", "--timeout=60s"
    )
    assert result.stdout.splitlines()[-1] == f'deployment "{name}" successfully rolled out'
    return result.stdout


def deployment(name: str, replicas: int, image: str = "nginx:1.25", **spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


def with_image(image: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}


async def sets_of(client: Client, namespace: str) -> dict[str, dict]:
    items = (await client.list(REPLICA_SETS, namespace))["items"]
    return {rs["metadata"]["name"]: rs for rs in items}


def condition(obj: dict, kind: str) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def image_of(obj: dict) -> str:
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def pod_image(pod: dict) -> str:
    return pod["spec"]["containers"][0]["image"]


class Observer:
    """Watches a namespace's ReplicaSets and pods, checking a rule after every event."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.sets: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.violations: list[str] = []
        self.tasks: list[asyncio.Task] = []

    async def start(self, rule) -> None:
        for resource, seen in ((REPLICA_SETS, self.sets), (PODS, self.pods)):
            listing = await self.client.list(resource, self.namespace)
            seen.update({obj["metadata"]["name"]: obj for obj in listing["items"]})
            revision = listing["metadata"]["resourceVersion"]
            self.tasks.append(asyncio.create_task(self._follow(resource, seen, revision, rule)))

    async def _follow(self, resource, seen: dict, revision: str, rule) -> None:
        async for kind, obj in self.client.watch(
            resource, self.namespace, resource_version=revision
        ):
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                seen.pop(obj["metadata"]["name"], None)
            else:
                seen[obj["metadata"]["name"]] = obj
            problem = rule(self)
            if problem:
                self.violations.append(problem)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def live_pods(self) -> list[dict]:
        return [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# ------------------------------------------------------------------- cluster


def test_ten_replicas_roll_out(server):
    # synchronous, as most kubectl tests are: the kubelet runs on its own thread
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    server.ok("create", "namespace", namespace)
    with FakeKubelet(server.kubeconfig, namespace=namespace):
        server.ok(
            "-n", namespace, "create", "deployment", "web", "--image=nginx:1.25", "--replicas=10"
        )
        out = server.ok("-n", namespace, "rollout", "status", "deploy/web", "--timeout=60s")
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert server.ok("-n", namespace, "get", "deploy", "web").splitlines()[1].split()[1:4] == [
        "10/10",
        "10",
        "10",
    ]
    stored = json.loads(server.ok("-n", namespace, "get", "deploy", "web", "-o", "json"))
    assert {k: v for k, v in stored["status"].items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 10,
        "updatedReplicas": 10,
        "readyReplicas": 10,
        "availableReplicas": 10,
    }
    assert stored["metadata"]["annotations"][util.REVISION] == "1"
    (rs,) = json.loads(server.ok("-n", namespace, "get", "rs", "-o", "json"))["items"]
    name, hash_ = rs["metadata"]["name"], rs["metadata"]["labels"]["pod-template-hash"]
    assert name == f"web-{hash_}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == hash_
    assert rs["metadata"]["annotations"] == {
        util.REVISION: "1",
        util.DESIRED_REPLICAS: "10",
        util.MAX_REPLICAS: "13",  # 25% surge of 10 rounds up to 3
    }
    available = condition(stored, "Available")
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    progressing = condition(stored, "Progressing")
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True",
        "NewReplicaSetAvailable",
        f'ReplicaSet "{name}" has successfully progressed.',
    )
    events = json.loads(server.ok("-n", namespace, "get", "events", "-o", "json"))["items"]
    scaling = [e for e in events if e["reason"] == "ScalingReplicaSet"]
    assert [(e["message"], e["source"]["component"]) for e in scaling] == [
        (f"Scaled up replica set {name} to 10", "deployment-controller")
    ]


async def test_set_image_stays_within_surge_and_unavailability(server, client, namespace):
    # 10 replicas with the default 25%: 3 more at most (rounded up), 2 fewer (rounded down)
    await client.create(DEPLOYMENTS, deployment("web", 10), namespace=namespace)
    peak = {"pods": 0, "unavailable": 0}

    def bounds(seen: Observer) -> str:
        total = sum(rs["spec"]["replicas"] for rs in seen.sets.values())
        available = sum(1 for pod in seen.live_pods() if _ready(pod))
        peak["pods"] = max(peak["pods"], total)
        peak["unavailable"] = max(peak["unavailable"], 10 - available)
        if total > 13:
            return f"{total} replicas wanted, more than 10 + 3"
        if available < 8:
            return f"only {available} pods available, fewer than 10 - 2"
        return ""

    observer = Observer(client, namespace)
    async with kubelet(client, namespace):
        await rolled_out(server, namespace)
        await observer.start(bounds)
        await kubectl(server, namespace, "set", "image", "deploy/web", "app=nginx:1.26")
        await rolled_out(server, namespace)
        await observer.stop()
    assert observer.violations == []
    assert peak["pods"] == 13  # the surge was used
    sets = await sets_of(client, namespace)
    assert sorted((image_of(rs), rs["spec"]["replicas"]) for rs in sets.values()) == [
        ("nginx:1.25", 0),
        ("nginx:1.26", 10),
    ]
    messages = [
        e["message"]
        for e in (await client.list(EVENTS, namespace))["items"]
        if e["reason"] == "ScalingReplicaSet"
    ]
    assert any(m.startswith("Scaled down replica set") and " from " in m for m in messages)


async def test_rollout_undo_returns_to_the_previous_template(server, client, namespace):
    await client.create(DEPLOYMENTS, deployment("web", 3), namespace=namespace)
    async with kubelet(client, namespace):
        await rolled_out(server, namespace)
        (first,) = await sets_of(client, namespace)
        await kubectl(server, namespace, "set", "image", "deploy/web", "app=nginx:1.26")
        await rolled_out(server, namespace)
        undo = await kubectl(server, namespace, "rollout", "undo", "deploy/web")
        assert undo.stdout.strip() == "deployment.apps/web rolled back"
        await rolled_out(server, namespace)
    stored = await client.get(DEPLOYMENTS, namespace, "web")
    assert image_of(stored) == "nginx:1.25"
    assert stored["metadata"]["annotations"][util.REVISION] == "3"
    sets = await sets_of(client, namespace)
    assert len(sets) == 2  # the first set came back rather than a new one
    annotations = sets[first]["metadata"]["annotations"]
    assert (annotations[util.REVISION], annotations[util.REVISION_HISTORY]) == ("3", "1")
    assert sets[first]["spec"]["replicas"] == 3
    history = await kubectl(server, namespace, "rollout", "history", "deploy/web")
    assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line] == ["2", "3"]


async def test_scaling_during_a_rollout_is_proportional(server, client, namespace):
    body = deployment(
        "web",
        10,
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}},
    )
    await client.create(DEPLOYMENTS, body, namespace=namespace)

    async def sizes(old: int, new: int):
        sets = await sets_of(client, namespace)
        got = {image_of(rs): rs["spec"]["replicas"] for rs in sets.values()}
        return got == {"nginx:1.25": old, "broken": new}

    async with kubelet(client, namespace, ready=lambda pod: pod_image(pod) != "broken"):
        await rolled_out(server, namespace)
        # the new pods never become ready: the rollout stops at 8 old + 5 new
        await client.patch(
            DEPLOYMENTS, namespace, "web", with_image("broken"), patch_type="strategic"
        )
        await eventually(lambda: sizes(8, 5), "the rollout stuck at 8 old and 5 new")
        await kubectl(server, namespace, "scale", "deploy/web", "--replicas=15")
        # 18 allowed (15 + 3): of the 5 more, 3 go to the old set and 2 to the new one
        await eventually(lambda: sizes(11, 7), "11 old and 7 new")
    for rs in (await sets_of(client, namespace)).values():
        annotations = rs["metadata"]["annotations"]
        assert (annotations[util.DESIRED_REPLICAS], annotations[util.MAX_REPLICAS]) == ("15", "18")


async def test_pause_holds_the_rollout_until_resumed(server, client, namespace):
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace=namespace)
    async with kubelet(client, namespace):
        await rolled_out(server, namespace)
        await kubectl(server, namespace, "rollout", "pause", "deploy/web")
        await kubectl(server, namespace, "set", "image", "deploy/web", "app=nginx:1.26")

        async def observed():
            stored = await client.get(DEPLOYMENTS, namespace, "web")
            status = stored["status"]
            return (
                stored if status["observedGeneration"] == stored["metadata"]["generation"] else None
            )

        stored = await eventually(observed, "the paused change observed")
        progressing = condition(stored, "Progressing")
        assert (progressing["status"], progressing["reason"], progressing["message"]) == (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        )
        assert len(await sets_of(client, namespace)) == 1
        await kubectl(server, namespace, "rollout", "resume", "deploy/web")
        await rolled_out(server, namespace)
    sets = await sets_of(client, namespace)
    assert sorted(image_of(rs) for rs in sets.values() if rs["spec"]["replicas"]) == ["nginx:1.26"]


async def test_recreate_never_runs_old_and_new_pods_together(server, client, namespace):
    body = deployment("web", 3, strategy={"type": "Recreate"})
    await client.create(DEPLOYMENTS, body, namespace=namespace)

    def apart(seen: Observer) -> str:
        images = {pod_image(pod) for pod in seen.pods.values()}
        return f"pods of {sorted(images)} at once" if len(images) > 1 else ""

    observer = Observer(client, namespace)
    async with kubelet(client, namespace):
        await rolled_out(server, namespace)
        await observer.start(apart)
        await kubectl(server, namespace, "set", "image", "deploy/web", "app=nginx:1.26")
        await rolled_out(server, namespace)
        await observer.stop()
    assert observer.violations == []
    assert {pod_image(pod) for pod in observer.pods.values()} == {"nginx:1.26"}


async def test_old_sets_beyond_the_history_limit_are_deleted(server, client, namespace):
    body = deployment("web", 1, revisionHistoryLimit=1)
    await client.create(DEPLOYMENTS, body, namespace=namespace)
    async with kubelet(client, namespace):
        for image in ("nginx:1.26", "nginx:1.27"):
            await rolled_out(server, namespace)
            await kubectl(server, namespace, "set", "image", "deploy/web", f"app={image}")
        await rolled_out(server, namespace)

        async def two_left():
            sets = await sets_of(client, namespace)
            return sets if len(sets) == 2 else None

        sets = await eventually(two_left, "the oldest set deleted")
    assert sorted(rs["metadata"]["annotations"][util.REVISION] for rs in sets.values()) == [
        "2",
        "3",
    ]


async def test_owner_references_let_the_collector_delete_in_background(server, client, namespace):
    await client.create(DEPLOYMENTS, deployment("web", 2), namespace=namespace)
    async with kubelet(client, namespace):
        await rolled_out(server, namespace)
    stored = await client.get(DEPLOYMENTS, namespace, "web")
    (rs,) = (await sets_of(client, namespace)).values()
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": stored["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    for pod in (await client.list(PODS, namespace))["items"]:
        (ref,) = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet",
            rs["metadata"]["uid"],
            True,
            True,
        )
    await kubectl(server, namespace, "delete", "deploy/web", "--cascade=background")
    # this server runs no garbage collector: what is left still points at the owner it lost
    await asyncio.sleep(0.5)
    (left,) = (await sets_of(client, namespace)).values()
    assert left["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]


async def test_a_refused_template_surfaces_as_replica_failure(server, client, namespace):
    await client.create(DEPLOYMENTS, deployment("web", 3, image=" nginx "), namespace=namespace)

    async def failure():
        stored = await client.get(DEPLOYMENTS, namespace, "web")
        kinds = {c["type"]: c for c in stored.get("status", {}).get("conditions") or []}
        return kinds.get("ReplicaFailure")

    found = await eventually(failure, "a ReplicaFailure condition")
    assert (found["status"], found["reason"]) == ("True", "FailedCreate")
    assert "must not have leading or trailing whitespace" in found["message"]
    events = (await client.list(EVENTS, namespace))["items"]
    assert any(e["reason"] == "FailedCreate" and e["type"] == "Warning" for e in events)


async def test_a_stalled_rollout_exceeds_its_progress_deadline(server, client, namespace):
    body = deployment("web", 2, progressDeadlineSeconds=1)
    await client.create(DEPLOYMENTS, body, namespace=namespace)
    async with kubelet(client, namespace, ready=False):
        result = await kubectl(
            server, namespace, "rollout", "status", "deploy/web", "--timeout=60s", ok=False
        )
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: deployment "web" exceeded its progress deadline'
    stored = await client.get(DEPLOYMENTS, namespace, "web")
    progressing = condition(stored, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")


# -------------------------------------------------------------- arithmetic


def _sized(replicas: int, surge, unavailable) -> dict:
    strategy = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy},
        },
    }


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (10, "25%", "25%", (3, 2)),  # surge rounds up, unavailability down
        (1, "25%", "25%", (1, 0)),
        (4, "0%", "10%", (0, 1)),  # both zero: one may be unavailable
        (10, 2, "50%", (2, 5)),
    ],
)
def test_fenceposts_round_as_upstream(replicas, surge, unavailable, expected):
    assert util.fenceposts(_sized(replicas, surge, unavailable)) == expected


def test_template_hash_is_stable_and_safe():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    first = util.template_hash(template)
    assert first == util.template_hash({**template, "metadata": {"labels": {"app": "web"}}})
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(first) <= 10
    assert util.template_hash(template, 1) != first
    assert util.template_hash({**template, "spec": {"containers": [{"name": "b"}]}}) != first


def test_templates_compare_without_the_hash_label_or_empty_fields():
    plain = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}}
    hashed = {
        "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": {}},
        "spec": {"containers": [{"name": "a", "args": []}]},
    }
    assert util.equal_ignore_hash(plain, hashed)
    assert not util.equal_ignore_hash(plain, {"spec": {"containers": [{"name": "a"}]}})


def test_proportions_follow_the_max_replicas_annotation():
    scaled = _sized(15, 3, 2)

    def replica_set(size: int) -> dict:
        return {"metadata": {"annotations": {util.MAX_REPLICAS: "13"}}, "spec": {"replicas": size}}

    assert util.proportion(replica_set(8), scaled, 5, 0) == 3
    assert util.proportion(replica_set(5), scaled, 5, 3) == 2


def test_a_rolled_back_set_keeps_its_revision_history():
    owner = {"metadata": {"annotations": {"kubernetes.io/change-cause": "undo"}}}
    rs = {"metadata": {"annotations": {util.REVISION: "1"}}}
    assert util.set_new_rs_annotations(owner, rs, 3, exists=True)
    assert rs["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "undo",
        util.REVISION: "3",
        util.REVISION_HISTORY: "1",
    }
    assert not util.set_new_rs_annotations(owner, rs, 3, exists=True)
