"""The ReplicaSet controller against a real `kubik server`, with the fake kubelet.

One test runs the controller in-process with its pod cache frozen, to show
the expectations at work; the pure parts (expectations, slow-start batches,
the order in which pods are chosen for deletion) are tested on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.controllers.base import Context
from kubik.controllers.expectations import Expectations
from kubik.controllers.replicaset import ReplicaSetController, pods_to_delete, slow_start
from tests.support.cluster import KubikServer
from tests.support.fake_kubelet import run_pods
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
PODS = builtin.lookup("", "v1", "pods")
EVENTS = builtin.lookup("", "v1", "events")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("replicaset"), extra_args=["--controllers", "replicaset"]
    ).start()
    yield kubik
    kubik.stop()


@contextlib.asynccontextmanager
async def kubelet(client: Client, namespace: str):
    task = asyncio.create_task(run_pods(client, namespace=namespace))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def replica_set(name: str, replicas: int, image: str = "nginx:1.25", **spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "tier": "web"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
            **spec,
        },
    }


async def live_pods(client: Client, namespace: str) -> list[dict]:
    items = (await client.list(PODS, namespace))["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


async def status_of(client: Client, namespace: str, name: str) -> dict:
    return (await client.get(REPLICA_SETS, namespace, name)).get("status") or {}


async def scale(client: Client, namespace: str, name: str, replicas: int) -> None:
    await client.patch(REPLICA_SETS, namespace, name, {"spec": {"replicas": replicas}})


async def events_of(client: Client, namespace: str, reason: str) -> list[dict]:
    items = (await client.list(EVENTS, namespace))["items"]
    return [event for event in items if event["reason"] == reason]


# ------------------------------------------------------------------- cluster


async def test_creates_owned_pods_from_the_template(client, namespace):
    created = await client.create(REPLICA_SETS, replica_set("web", 3), namespace=namespace)
    pods = await eventually(lambda: _exactly(live_pods(client, namespace), 3), "three pods")
    for pod in pods:
        assert pod["metadata"]["generateName"] == "web-"
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["labels"] == {"app": "web", "tier": "web"}
        assert pod["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert pod["spec"]["containers"][0]["image"] == "nginx:1.25"
    status = await eventually(
        lambda: _status_where(client, namespace, "web", replicas=3), "status replicas 3"
    )
    assert status["fullyLabeledReplicas"] == 3
    assert status["observedGeneration"] == 1
    assert "readyReplicas" not in status  # nothing runs them: Go leaves zero counts out
    events = await eventually(
        lambda: _exactly(events_of(client, namespace, "SuccessfulCreate"), 3), "three events"
    )
    assert {e["message"] for e in events} == {f"Created pod: {p['metadata']['name']}" for p in pods}
    assert {e["source"]["component"] for e in events} == {"replicaset-controller"}


async def test_ready_and_available_follow_the_pods(client, namespace):
    body = replica_set("web", 2, minReadySeconds=3600)
    await client.create(REPLICA_SETS, body, namespace=namespace)
    async with kubelet(client, namespace):
        status = await eventually(
            lambda: _status_where(client, namespace, "web", readyReplicas=2), "two ready"
        )
        assert "availableReplicas" not in status  # not ready for an hour yet
        await client.patch(REPLICA_SETS, namespace, "web", {"spec": {"minReadySeconds": 0}})
        status = await eventually(
            lambda: _status_where(client, namespace, "web", availableReplicas=2), "available"
        )
    assert status["observedGeneration"] == 2


async def test_scaling_down_deletes_the_unscheduled_pod_first(client, namespace):
    await client.create(REPLICA_SETS, replica_set("web", 2), namespace=namespace)
    async with kubelet(client, namespace):
        await eventually(
            lambda: _status_where(client, namespace, "web", readyReplicas=2), "two ready"
        )
    running = {pod["metadata"]["name"] for pod in await live_pods(client, namespace)}
    await scale(client, namespace, "web", 3)
    pods = await eventually(lambda: _exactly(live_pods(client, namespace), 3), "a third pod")
    (pending,) = [pod for pod in pods if pod["metadata"]["name"] not in running]
    assert not pending["spec"].get("nodeName")
    await scale(client, namespace, "web", 2)
    await eventually(lambda: _exactly(live_pods(client, namespace), 2), "two pods again")
    left = {pod["metadata"]["name"] for pod in await live_pods(client, namespace)}
    assert left == running
    deleted = await eventually(
        lambda: events_of(client, namespace, "SuccessfulDelete"), "SuccessfulDelete"
    )
    assert deleted[0]["message"] == f"Deleted pod: {pending['metadata']['name']}"


async def test_deleted_pods_are_replaced(client, namespace):
    await client.create(REPLICA_SETS, replica_set("web", 2), namespace=namespace)
    pods = await eventually(lambda: _exactly(live_pods(client, namespace), 2), "two pods")
    await client.delete(PODS, namespace, pods[0]["metadata"]["name"])
    replaced = await eventually(lambda: _exactly(live_pods(client, namespace), 2), "a new pod")
    assert pods[0]["metadata"]["name"] not in {pod["metadata"]["name"] for pod in replaced}


async def test_adopts_orphans_and_releases_relabelled_pods(client, namespace):
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }
    await client.create(PODS, orphan, namespace=namespace)
    created = await client.create(REPLICA_SETS, replica_set("web", 2), namespace=namespace)
    pods = await eventually(lambda: _exactly(live_pods(client, namespace), 2), "two pods")
    adopted = next(pod for pod in pods if pod["metadata"]["name"] == "orphan")
    (ref,) = adopted["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        created["metadata"]["uid"],
        True,
        True,
    )
    await client.patch(PODS, namespace, "orphan", {"metadata": {"labels": {"app": "other"}}})

    async def released():
        pod = await client.get(PODS, namespace, "orphan")
        return not pod["metadata"].get("ownerReferences")

    await eventually(released, "the relabelled pod released")
    await eventually(lambda: _exactly(live_pods(client, namespace), 3), "a replacement")
    owned = [p for p in await live_pods(client, namespace) if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2


async def test_a_refused_template_is_a_condition_not_a_hot_loop(client, namespace):
    # the API takes the set, but refuses its pods (a pod's image may not have spaces)
    await client.create(REPLICA_SETS, replica_set("web", 5, image=" nginx "), namespace=namespace)

    async def failure():
        status = await status_of(client, namespace, "web")
        return next((c for c in status.get("conditions") or []), None)

    condition = await eventually(failure, "a ReplicaFailure condition")
    assert condition["type"] == "ReplicaFailure"
    assert condition["status"] == "True"
    assert condition["reason"] == "FailedCreate"
    assert "must not have leading or trailing whitespace" in condition["message"]
    await asyncio.sleep(2)
    failed = await events_of(client, namespace, "FailedCreate")
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"].startswith("Error creating: Pod ")
    attempts = sum(event.get("count", 1) for event in failed)
    assert attempts < 40, f"{attempts} failed creations in two seconds: no backoff"
    assert await live_pods(client, namespace) == []

    fixed = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}}
    await client.patch(REPLICA_SETS, namespace, "web", fixed, patch_type="strategic")
    status = await eventually(
        lambda: _status_where(client, namespace, "web", replicas=5), "five pods once fixed"
    )
    assert "conditions" not in status


async def test_a_thousand_replicas(client, namespace):
    started = time.perf_counter()
    await client.create(REPLICA_SETS, replica_set("big", 1000), namespace=namespace)
    await eventually(
        lambda: _status_where(client, namespace, "big", replicas=1000), "1000 pods", seconds=120
    )
    elapsed = time.perf_counter() - started
    print(f"\n1000 pods in {elapsed:.2f}s: {1000 / elapsed:.0f} pod creations/s")
    assert len(await live_pods(client, namespace)) == 1000


async def test_a_stale_cache_never_creates_twice(tmp_path):
    """The controller in-process on a server without controllers, its pod cache frozen."""
    bare = KubikServer(
        tmp_path, extra_args=["--disable-controller-manager", "--disable-scheduler"]
    ).start()
    client = Client.from_kubeconfig(bare.kubeconfig)
    informers = InformerFactory(client)
    controller = ReplicaSetController(Context(client, informers, EventRecorder(client, "test")))
    try:
        controller.setup()
        informers.start()
        await informers.wait_synced()
        namespace = "stale"
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        await client.create(REPLICA_SETS, replica_set("web", 3), namespace=namespace)

        async def cached():
            return controller.replicasets.get(f"{namespace}/web")

        await eventually(cached, "the set cached")
        await controller.pods.stop()  # from here on the pod cache never sees a new pod
        await controller.sync(f"{namespace}/web")
        await controller.sync(f"{namespace}/web")
        assert len(await live_pods(client, namespace)) == 3
        controller.expectations = Expectations(timeout=0.0)  # as if the wait timed out
        await controller.sync(f"{namespace}/web")
        assert len(await live_pods(client, namespace)) == 6  # the stale cache, unguarded
    finally:
        await controller.stop()
        await informers.stop()
        await client.close()
        bare.stop()


async def _exactly(pods_coroutine, count: int) -> list[dict] | None:
    pods = await pods_coroutine
    return pods if len(pods) == count else None


async def _status_where(client: Client, namespace: str, name: str, **wanted) -> dict | None:
    try:
        status = await status_of(client, namespace, name)
    except ApiError:
        return None
    return status if all(status.get(k, 0) == v for k, v in wanted.items()) else None


# ---------------------------------------------------------------- pure parts


def test_expectations_wait_for_every_creation_and_deletion():
    expectations = Expectations()
    assert expectations.satisfied("ns/rs")  # nothing asked for yet
    expectations.expect_creations("ns/rs", 2)
    expectations.creation_observed("ns/rs")
    assert not expectations.satisfied("ns/rs")
    expectations.creation_observed("ns/rs")
    assert expectations.satisfied("ns/rs")

    expectations.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    expectations.deletion_observed("ns/rs", "ns/a")
    expectations.deletion_observed("ns/rs", "ns/a")  # seen twice (terminating, then gone)
    assert not expectations.satisfied("ns/rs")
    expectations.deletion_observed("ns/rs", "ns/b")
    assert expectations.satisfied("ns/rs")

    expectations.expect_creations("ns/rs", 1)
    expectations.forget("ns/rs")
    assert expectations.satisfied("ns/rs")


def test_expectations_expire():
    expectations = Expectations(timeout=0.0)
    expectations.expect_creations("ns/rs", 5)
    time.sleep(0.01)
    assert expectations.satisfied("ns/rs")


async def test_slow_start_doubles_and_stops_at_a_failing_batch():
    sizes: list[int] = []
    batch: list[int] = []

    async def call():
        batch.append(1)
        await asyncio.sleep(0)  # the whole batch has started before any call ends
        if batch:
            sizes.append(len(batch))
            batch.clear()
        if len(sizes) == 4:
            raise RuntimeError("refused")

    done, failure = await slow_start(100, call)
    assert sizes == [1, 2, 4, 8]
    assert done == 7 and isinstance(failure, RuntimeError)
    assert await slow_start(10, _succeed) == (10, None)


async def _succeed() -> None:
    return None


def _pod(name: str, *, node="", phase="Running", ready=True, created="2024-01-01T00:00:00Z"):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if ready:
        conditions[0]["lastTransitionTime"] = created
    return {
        "metadata": {"name": name, "uid": name, "creationTimestamp": created},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_deletion_order_prefers_pods_that_matter_least():
    pods = [
        _pod("old-ready", node="n1", created="2020-01-01T00:00:00Z"),
        _pod("new-ready", node="n1", created="2024-06-01T00:00:00Z"),
        _pod("not-ready", node="n1", ready=False),
        _pod("pending", node="n1", phase="Pending", ready=False),
        _pod("unscheduled", phase="Pending", ready=False),
    ]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, pods, len(pods) - 1)]
    assert order == ["unscheduled", "pending", "not-ready", "new-ready"]


def test_deletion_order_prefers_crowded_nodes():
    alone = _pod("alone", node="n1")
    crowded = _pod("crowded", node="n2")
    related = [alone, crowded, _pod("sibling", node="n2")]
    assert pods_to_delete([alone, crowded], related, 1) == [crowded]
