"""The disruption controller against a real `kubik server` (with no controllers of its own).

The controller runs in the test; pods are made Ready by patching their
status, as no kubelet runs.
"""

from __future__ import annotations

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.controllers.disruption import DisruptionController, ScaleError, scaled
from tests.support.cluster import KubikServer
from tests.support.controller import running
from tests.support.polling import eventually

PODS = builtin.lookup("", "v1", "pods")
PDBS = builtin.lookup("policy", "v1", "poddisruptionbudgets")
REPLICA_SETS = builtin.lookup("apps", "v1", "replicasets")
EVENTS = builtin.lookup("", "v1", "events")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("disruption"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def controller(client):
    async with running(client, DisruptionController) as disruption:
        yield disruption


async def make_pod(client, namespace: str, name: str, *, ready: bool = True, owner=None) -> None:
    metadata = {"name": name, "namespace": namespace, "labels": {"app": "web"}}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    spec = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    await client.create(PODS, {"metadata": metadata, "spec": spec})
    await set_ready(client, namespace, name, ready)


async def set_ready(client, namespace: str, name: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    await client.patch(
        PODS, namespace, name, {"status": status}, patch_type="strategic", subresource="status"
    )


def budget(**spec) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


async def status_becomes(client, namespace: str, **expected) -> dict:
    async def check():
        status = (await client.get(PDBS, namespace, "web")).get("status") or {}
        if all(status.get(k) == v for k, v in expected.items()):
            return status
        return None

    return await eventually(check, f"the budget's status to have {expected}")


def test_percentages_round_up():
    assert scaled(2, 10) == 2
    assert scaled("50%", 3) == 2
    assert scaled("10%", 4) == 1
    with pytest.raises(ScaleError):
        scaled("half", 4)


async def test_min_available_counts_ready_pods(client, namespace, controller):
    for i in range(3):
        await make_pod(client, namespace, f"web-{i}")
    await client.create(PDBS, budget(minAvailable=2), namespace=namespace)
    status = await status_becomes(
        client,
        namespace,
        currentHealthy=3,
        desiredHealthy=2,
        expectedPods=3,
        disruptionsAllowed=1,
    )
    (condition,) = status["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "DisruptionAllowed",
        "True",
        "SufficientPods",
    )
    assert status["observedGeneration"] == 1
    await set_ready(client, namespace, "web-0", False)
    status = await status_becomes(client, namespace, currentHealthy=2, disruptionsAllowed=0)
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientPods")


async def test_an_eviction_takes_a_disruption_until_the_pod_is_gone(client, namespace, controller):
    for i in range(3):
        await make_pod(client, namespace, f"web-{i}")
    await client.create(PDBS, budget(minAvailable=2), namespace=namespace)
    await status_becomes(client, namespace, disruptionsAllowed=1)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-0"}}
    await client.post_subresource(PODS, namespace, "web-0", "eviction", eviction)
    await status_becomes(client, namespace, currentHealthy=2, expectedPods=2, disruptionsAllowed=0)
    eviction["metadata"]["name"] = "web-1"
    with pytest.raises(ApiError) as refused:
        await client.post_subresource(PODS, namespace, "web-1", "eviction", eviction)
    assert refused.value.code == 429


async def test_max_unavailable_uses_the_controllers_scale(client, namespace, controller):
    rs = await client.create(
        REPLICA_SETS,
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": 4,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
                },
            },
        },
    )
    for i in range(3):
        await make_pod(client, namespace, f"web-{i}", owner=rs)
    await client.create(PDBS, budget(maxUnavailable="50%"), namespace=namespace)
    await status_becomes(
        client,
        namespace,
        expectedPods=4,
        desiredHealthy=2,
        currentHealthy=3,
        disruptionsAllowed=1,
    )


async def test_pods_whose_controller_is_unknown_allow_no_disruption(client, namespace, controller):
    ghost = {"kind": "StatefulSet", "metadata": {"name": "ghost", "uid": "no-such-uid"}}
    await make_pod(client, namespace, "web-0", owner=ghost)
    await client.create(PDBS, budget(minAvailable="50%"), namespace=namespace)
    status = await status_becomes(client, namespace, disruptionsAllowed=0)
    (condition,) = status["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert condition["message"] == 'found no controllers for pod "web-0"'

    async def warned():
        for item in (await client.list(EVENTS, namespace))["items"]:
            if item["reason"] == "CalculateExpectedPodCountFailed":
                return item
        return None

    event = await eventually(warned, "a CalculateExpectedPodCountFailed event")
    assert event["source"]["component"] == "controllermanager"
