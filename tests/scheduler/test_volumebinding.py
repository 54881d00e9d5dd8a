"""VolumeBinding and the PV controller in a real `kubik server` (the controller in-process).

A claim bound to a local volume takes its pod to the volume's node; a
claim waiting for its first consumer is bound, by the scheduler, to a
fitting free volume on the node chosen; an unbound claim of an Immediate
class, or a missing claim, keeps the pod pending with upstream's message.
A volume whose claim is deleted is Released. StorageClasses are served
with upstream's defaults and `kubectl get` columns.
"""

from __future__ import annotations

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.controllers.persistentvolume import PersistentVolumeController
from kubik.scheduler.plugins.volumebinding import claim_names
from kubik.volumes import volume_matches_claim
from tests.scheduler.live import create, node_of, unschedulable
from tests.scheduler.objects import node, pod
from tests.support.controller import running
from tests.support.polling import eventually

PVS = builtin.lookup("", "v1", "persistentvolumes")
PVCS = builtin.lookup("", "v1", "persistentvolumeclaims")
STORAGE_CLASSES = builtin.lookup("storage.k8s.io", "v1", "storageclasses")


def local_volume(name: str, node_name: str, size: str, storage_class: str = "") -> dict:
    spec = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "local": {"path": f"/mnt/{name}"},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": [node_name],
                            }
                        ]
                    }
                ]
            }
        },
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": spec,
    }


def claim(name: str, size: str, storage_class: str = "") -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": spec,
    }


def using(name: str, *claims: str) -> dict:
    volumes = [
        {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)
    ]
    return pod(name, volumes=volumes)


@pytest.fixture
async def storage(client):
    """make(resource, obj): cluster-scoped storage objects deleted when the test ends."""
    made: list[tuple] = []

    async def make(resource, obj: dict) -> None:
        await client.create(resource, obj)
        made.append((resource, obj["metadata"]["name"]))

    yield make
    for resource, name in reversed(made):
        try:
            await client.delete(resource, "", name)
        except ApiError as exc:
            if not exc.not_found:
                raise


@pytest.fixture
async def controller(client):
    async with running(client, PersistentVolumeController) as pv_controller:
        yield pv_controller


async def phase_of(client, resource, namespace: str, name: str) -> str:
    return ((await client.get(resource, namespace, name)).get("status") or {}).get("phase", "")


async def test_a_claim_bound_to_a_local_volume_takes_the_pod_to_its_node(
    client, namespace, nodes, storage, controller
):
    first, second = f"{namespace}-a", f"{namespace}-b"
    await nodes(node(first), node(second))
    volume = f"{namespace}-local"
    await storage(PVS, local_volume(volume, second, "5Gi"))
    await client.create(PVCS, claim("data", "1Gi"), namespace=namespace)

    async def bound() -> bool:
        return await phase_of(client, PVCS, namespace, "data") == "Bound"

    await eventually(bound, "the controller to bind the claim")
    found = await client.get(PVCS, namespace, "data")
    assert found["spec"]["volumeName"] == volume
    assert found["status"]["capacity"] == {"storage": "5Gi"}
    assert await phase_of(client, PVS, "", volume) == "Bound"
    await create(client, namespace, using("web", "data"))
    assert await node_of(client, namespace, "web") == second
    await client.delete(PVCS, namespace, "data")

    async def released() -> bool:
        return await phase_of(client, PVS, "", volume) == "Released"

    await eventually(released, "the volume to be released (its reclaim policy is Retain)")


async def test_a_claim_waiting_for_its_first_consumer_is_bound_where_the_pod_goes(
    client, namespace, nodes, storage, controller
):
    first, second = f"{namespace}-a", f"{namespace}-b"
    await nodes(node(first), node(second))
    local = f"{namespace}-local"
    await storage(
        STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": local},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        },
    )
    await storage(PVS, local_volume(f"{namespace}-small", first, "1Gi", local))
    await storage(PVS, local_volume(f"{namespace}-big", second, "5Gi", local))
    await client.create(PVCS, claim("data", "2Gi", local), namespace=namespace)
    await client.create(PVCS, claim("huge", "10Gi", local), namespace=namespace)
    assert await phase_of(client, PVCS, namespace, "data") == "Pending"

    await create(client, namespace, using("web", "data"))
    assert await node_of(client, namespace, "web") == second
    volume = await client.get(PVS, "", f"{namespace}-big")
    assert volume["spec"]["claimRef"]["name"] == "data"
    assert volume["spec"]["claimRef"]["namespace"] == namespace
    found = await client.get(PVCS, namespace, "data")
    assert found["spec"]["volumeName"] == f"{namespace}-big"
    assert found["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"

    async def bound() -> bool:
        return await phase_of(client, PVCS, namespace, "data") == "Bound"

    await eventually(bound, "the controller to mark the claim Bound")

    await create(client, namespace, using("greedy", "huge"))
    message = await unschedulable(client, namespace, "greedy")
    assert message == (
        "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
    )
    await storage(PVS, local_volume(f"{namespace}-huge", first, "20Gi", local))
    assert await node_of(client, namespace, "greedy") == first


async def test_unbound_immediate_and_missing_claims_keep_the_pod_pending(client, namespace, nodes):
    await nodes(node(f"{namespace}-a"))
    await client.create(PVCS, claim("nowhere", "1Gi"), namespace=namespace)
    await create(client, namespace, using("stuck", "nowhere"))
    assert await unschedulable(client, namespace, "stuck") == (
        "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    )
    await create(client, namespace, using("lost", "missing"))
    assert await unschedulable(client, namespace, "lost") == (
        '0/1 nodes are available: persistentvolumeclaim "missing" not found. '
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
    )


def test_what_a_volume_must_have_for_a_claim():
    volume = local_volume("v", "n", "5Gi", "fast")
    volume["metadata"]["labels"] = {"tier": "gold"}
    assert volume_matches_claim(volume, claim("c", "5Gi", "fast"))
    assert not volume_matches_claim(volume, claim("c", "6Gi", "fast"))
    assert not volume_matches_claim(volume, claim("c", "1Gi", "slow"))
    many = claim("c", "1Gi", "fast")
    many["spec"]["accessModes"] = ["ReadWriteMany"]
    assert not volume_matches_claim(volume, many)
    picky = claim("c", "1Gi", "fast")
    picky["spec"]["selector"] = {"matchLabels": {"tier": "silver"}}
    assert not volume_matches_claim(volume, picky)
    block = claim("c", "1Gi", "fast")
    block["spec"]["volumeMode"] = "Block"
    assert not volume_matches_claim(volume, block)


def test_the_claims_a_pod_uses():
    p = using("p", "one", "two")
    p["spec"]["volumes"].append({"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}})
    p["spec"]["volumes"].append({"name": "config", "configMap": {"name": "x"}})
    assert claim_names(p) == ["one", "two", "p-scratch"]


async def test_storage_classes_are_served_with_upstreams_defaults_and_columns(
    server, client, storage
):
    await storage(
        STORAGE_CLASSES,
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "example.com/nfs",
        },
    )
    stored = await client.get(STORAGE_CLASSES, "", "standard")
    assert (stored["reclaimPolicy"], stored["volumeBindingMode"]) == ("Delete", "Immediate")
    header, row = server.ok("get", "sc", "standard").splitlines()
    assert header.split() == [
        "NAME",
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "ALLOWVOLUMEEXPANSION",
        "AGE",
    ]
    assert row.split()[:6] == [
        "standard",
        "(default)",
        "example.com/nfs",
        "Delete",
        "Immediate",
        "false",
    ]
