"""LimitRanger admission against a real `kubik server`: defaults, bounds, upstream's messages."""

from __future__ import annotations

import pytest

from kubik.api import builtin
from kubik.apiserver.admission import limitranger
from kubik.client.api import ApiError
from tests.support.admission import refused
from tests.support.cluster import KubikServer

PODS = builtin.lookup("", "v1", "pods")
CLAIMS = builtin.lookup("", "v1", "persistentvolumeclaims")
LIMIT_RANGES = builtin.lookup("", "v1", "limitranges")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("limitrange")).start()
    yield kubik
    kubik.stop()


def pod(name: str, *resources: dict, init: dict | None = None) -> dict:
    containers = [
        {"name": f"c{i}", "image": "busybox", "resources": r} for i, r in enumerate(resources)
    ]
    spec: dict = {"containers": containers}
    if init is not None:
        spec["initContainers"] = [{"name": "setup", "image": "busybox", "resources": init}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def limit_range(client, namespace: str, *limits: dict) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "limits"},
        "spec": {"limits": list(limits)},
    }
    await client.create(LIMIT_RANGES, body, namespace=namespace)


async def test_container_defaults_fill_in_what_containers_leave_out(client, namespace):
    await limit_range(
        client,
        namespace,
        {
            "type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m"},
        },
    )
    created = await client.create(
        PODS, pod("web", {}, {"requests": {"memory": "64Mi"}}, init={}), namespace=namespace
    )
    first, second = created["spec"]["containers"]
    assert first["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        # defaultRequest's memory comes from default, as the LimitRange's own defaults say
        "requests": {"cpu": "100m", "memory": "256Mi"},
    }
    assert second["resources"]["requests"] == {"cpu": "100m", "memory": "64Mi"}
    assert created["spec"]["initContainers"][0]["resources"]["limits"]["cpu"] == "500m"
    assert created["metadata"]["annotations"][limitranger.ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container c0; "
        "cpu, memory limit for container c0; cpu request for container c1; "
        "cpu, memory limit for container c1; cpu, memory request for init container setup; "
        "cpu, memory limit for init container setup"
    )
    assert created["status"]["qosClass"] == "Burstable"


async def test_container_bounds_refuse_with_upstreams_messages(client, namespace):
    await limit_range(
        client,
        namespace,
        {
            "type": "Container",
            "max": {"cpu": "1"},
            "min": {"memory": "64Mi"},
            "maxLimitRequestRatio": {"cpu": "2"},
        },
    )
    too_big = pod("big", {"limits": {"cpu": "2", "memory": "128Mi"}})
    assert await refused(client, namespace, PODS, too_big) == (
        'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    )
    too_small = pod("small", {"requests": {"cpu": "500m", "memory": "32Mi"}})
    message = await refused(client, namespace, PODS, too_small)
    assert message == (
        'pods "small" is forbidden: minimum memory usage per Container is 64Mi, but request is 32Mi'
    )
    bursty = pod("bursty", {"requests": {"cpu": "100m", "memory": "64Mi"}})
    # the default limit (from max) is 10 times the request
    assert await refused(client, namespace, PODS, bursty) == (
        'pods "bursty" is forbidden: cpu max limit to request ratio per Container is 2, '
        "but provided ratio is 10.000000"
    )
    several = pod("several", {"requests": {"cpu": "100m", "memory": "1Mi"}})
    assert await refused(client, namespace, PODS, several) == (
        'pods "several" is forbidden: [minimum memory usage per Container is 64Mi, but '
        "request is 1Mi, cpu max limit to request ratio per Container is 2, but provided "
        "ratio is 10.000000]"
    )
    fine = pod("fine", {"requests": {"cpu": "600m", "memory": "64Mi"}})
    created = await client.create(PODS, fine, namespace=namespace)
    assert created["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1"}


async def test_pod_bounds_add_up_the_containers(client, namespace):
    await limit_range(client, namespace, {"type": "Pod", "max": {"cpu": "1"}})
    pair = pod("pair", {"limits": {"cpu": "600m"}}, {"limits": {"cpu": "600m"}})
    assert await refused(client, namespace, PODS, pair) == (
        'pods "pair" is forbidden: maximum cpu usage per Pod is 1, but limit is 1200m'
    )
    # an init container runs alone: the pod needs the larger of it and the containers
    single = pod("single", {"limits": {"cpu": "600m"}}, init={"limits": {"cpu": "900m"}})
    await client.create(PODS, single, namespace=namespace)
    unbounded = pod("unbounded", {})
    assert await refused(client, namespace, PODS, unbounded) == (
        'pods "unbounded" is forbidden: maximum cpu usage per Pod is 1.  No limit is specified'
    )


async def test_claims_are_bounded_by_their_storage_request(client, namespace):
    await limit_range(
        client,
        namespace,
        {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}},
    )

    def claim(name: str, size: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
            },
        }

    assert await refused(client, namespace, CLAIMS, claim("big", "5Gi")) == (
        'persistentvolumeclaims "big" is forbidden: maximum storage usage per '
        "PersistentVolumeClaim is 2Gi, but request is 5Gi"
    )
    assert await refused(client, namespace, CLAIMS, claim("small", "100Mi")) == (
        'persistentvolumeclaims "small" is forbidden: minimum storage usage per '
        "PersistentVolumeClaim is 1Gi, but request is 100Mi"
    )
    created = await client.create(CLAIMS, claim("right", "1Gi"), namespace=namespace)
    created["status"] = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
    bound = await client.update_status(CLAIMS, created)  # only a bound claim may grow
    bound["spec"]["resources"]["requests"]["storage"] = "3Gi"
    with pytest.raises(ApiError) as caught:  # growing it is an update, bounded alike
        await client.update(CLAIMS, bound)
    assert caught.value.code == 403
    assert "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 3Gi" in str(
        caught.value
    )


async def test_namespaces_without_limit_ranges_are_left_alone(client, namespace):
    created = await client.create(PODS, pod("plain", {}), namespace=namespace)
    assert created["spec"]["containers"][0].get("resources") in ({}, None)
    assert limitranger.ANNOTATION not in (created["metadata"].get("annotations") or {})
    assert created["status"]["qosClass"] == "BestEffort"
