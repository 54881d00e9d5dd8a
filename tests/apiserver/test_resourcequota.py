"""ResourceQuota admission against a real `kubik server`: charges, refusals, concurrency."""

from __future__ import annotations

import asyncio

import pytest

from kubik.api import builtin, quota
from kubik.client.api import ApiError
from tests.support.admission import refused
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

PODS = builtin.lookup("", "v1", "pods")
SERVICES = builtin.lookup("", "v1", "services")
SECRETS = builtin.lookup("", "v1", "secrets")
CLAIMS = builtin.lookup("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = builtin.lookup("apps", "v1", "deployments")
QUOTAS = builtin.lookup("", "v1", "resourcequotas")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("resourcequota")).start()
    yield kubik
    kubik.stop()


def pod(name: str = "", **resources) -> dict:
    metadata = {"name": name} if name else {"generateName": "p-"}
    container = {"name": "main", "image": "busybox", "resources": resources}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container]},
    }


def secret(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}


async def make_quota(client, namespace: str, name: str, hard: dict, **spec) -> dict:
    """Create a quota and wait until the controller has counted it (until then it limits
    nothing, as upstream)."""
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name},
        "spec": {"hard": hard, **spec},
    }
    await client.create(QUOTAS, body, namespace=namespace)

    async def counted():
        current = await client.get(QUOTAS, namespace, name)
        status = current.get("status") or {}
        return current if set(status.get("used") or {}) == set(hard) else None

    return await eventually(counted, f"quota {name} counted")


async def used(client, namespace: str, name: str) -> dict:
    return (await client.get(QUOTAS, namespace, name))["status"]["used"]


async def test_object_counts_are_charged_and_enforced(client, namespace):
    # (secrets: every namespace gets a config map, kube-root-ca.crt, from a controller)
    await make_quota(client, namespace, "counts", {"pods": "2", "count/secrets": "1"})
    await client.create(PODS, pod("a"), namespace=namespace)
    await client.create(PODS, pod("b"), namespace=namespace)
    assert (await used(client, namespace, "counts"))["pods"] == "2"
    assert await refused(client, namespace, PODS, pod("c")) == (
        'pods "c" is forbidden: exceeded quota: counts, requested: pods=1, used: pods=2, '
        "limited: pods=2"
    )
    await client.create(SECRETS, secret("one"), namespace=namespace)
    assert await refused(client, namespace, SECRETS, secret("two")) == (
        'secrets "two" is forbidden: exceeded quota: counts, requested: '
        "count/secrets=1, used: count/secrets=1, limited: count/secrets=1"
    )


async def test_compute_resources_must_be_declared_and_fit(client, namespace):
    await make_quota(client, namespace, "compute", {"requests.cpu": "1", "limits.memory": "1Gi"})
    message = await refused(client, namespace, PODS, pod("bare"))
    assert message == (
        'pods "bare" is forbidden: failed quota: compute: must specify '
        "limits.memory for: main; requests.cpu for: main"
    )
    sized = {"requests": {"cpu": "600m"}, "limits": {"memory": "512Mi"}}
    await client.create(PODS, pod("first", **sized), namespace=namespace)
    assert await used(client, namespace, "compute") == {
        "requests.cpu": "600m",
        "limits.memory": "512Mi",
    }
    assert await refused(client, namespace, PODS, pod("second", **sized)) == (
        'pods "second" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, '
        "used: requests.cpu=600m, limited: requests.cpu=1"
    )


async def test_parallel_creates_never_exceed_the_quota(client, namespace):
    await make_quota(client, namespace, "five", {"pods": "5"})
    results = await asyncio.gather(
        *(client.create(PODS, pod(), namespace=namespace) for _ in range(20)),
        return_exceptions=True,
    )
    created = [r for r in results if isinstance(r, dict)]
    refusals = [r for r in results if isinstance(r, ApiError) and r.code == 403]
    assert len(created) == 5, results
    assert len(refusals) == 15, results
    assert (await used(client, namespace, "five"))["pods"] == "5"
    assert len((await client.list(PODS, namespace))["items"]) == 5


async def test_a_dry_run_checks_but_does_not_charge(client, namespace):
    await make_quota(client, namespace, "one", {"pods": "1"})
    await client.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", body=pod("dry"), retry=False
    )
    assert (await used(client, namespace, "one"))["pods"] == "0"
    await client.create(PODS, pod("real"), namespace=namespace)
    with pytest.raises(ApiError) as caught:
        await client.request(
            "POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", body=pod("x"), retry=False
        )
    assert caught.value.code == 403


async def test_scopes_select_which_pods_a_quota_counts(client, namespace):
    await make_quota(client, namespace, "best-effort", {"pods": "1"}, scopes=["BestEffort"])
    await client.create(PODS, pod("free"), namespace=namespace)
    assert "exceeded quota: best-effort" in await refused(client, namespace, PODS, pod("more"))
    burstable = pod("paid", requests={"cpu": "100m"})
    await client.create(PODS, burstable, namespace=namespace)
    await client.create(SECRETS, secret("any"), namespace=namespace)
    assert (await used(client, namespace, "best-effort"))["pods"] == "1"


async def test_services_claims_and_other_resources(client, namespace):
    hard = {
        "services.nodeports": "1",
        "services.loadbalancers": "0",
        "requests.storage": "1Gi",
        "count/deployments.apps": "0",
    }
    await make_quota(client, namespace, "mixed", hard)

    def service(name: str, kind: str, ports: int = 1) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {
                "type": kind,
                "selector": {"app": name},
                "ports": [{"name": f"p{i}", "port": 80 + i} for i in range(ports)],
            },
        }

    assert "requested: services.nodeports=2" in await refused(
        client, namespace, SERVICES, service("two", "NodePort", ports=2)
    )
    assert "requested: services.loadbalancers=1" in await refused(
        client, namespace, SERVICES, service("lb", "LoadBalancer")
    )
    internal = await client.create(SERVICES, service("web", "ClusterIP"), namespace=namespace)
    internal["spec"]["type"] = "NodePort"
    await client.update(SERVICES, internal)  # one node port: within the quota
    assert (await used(client, namespace, "mixed"))["services.nodeports"] == "1"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }
    assert "requested: requests.storage=2Gi, used: requests.storage=0" in await refused(
        client, namespace, CLAIMS, claim
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
        },
    }
    assert await refused(client, namespace, DEPLOYMENTS, deployment) == (
        'deployments.apps "d" is forbidden: exceeded quota: mixed, requested: '
        "count/deployments.apps=1, used: count/deployments.apps=0, "
        "limited: count/deployments.apps=0"
    )


async def test_kubectl_shows_quotas(server, client, namespace):
    await make_quota(client, namespace, "shown", {"pods": "4", "limits.cpu": "2"})
    await client.create(PODS, pod("one", limits={"cpu": "500m"}), namespace=namespace)
    table = server.ok("get", "quota", "-n", namespace)
    header, row = table.splitlines()
    assert header.split() == ["NAME", "REQUEST", "LIMIT", "AGE"]
    assert row.startswith("shown ")
    assert "pods: 1/4" in row and "limits.cpu: 500m/2" in row
    described = server.ok("describe", "quota", "shown", "-n", namespace)
    lines = [line.split() for line in described.splitlines()]
    assert ["Resource", "Used", "Hard"] in lines
    assert ["limits.cpu", "500m", "2"] in lines
    assert ["pods", "1", "4"] in lines


def test_usage_sums_keep_upstreams_formats():
    zero = quota.parse_list({"memory": "0"})
    total = quota.add(zero, quota.parse_list({"memory": "1Gi"}))
    assert quota.text_list(total) == {"memory": "1Gi"}
    total = quota.add(total, quota.parse_list({"memory": "512Mi"}))
    assert quota.text_list(total) == {"memory": "1536Mi"}
    spec = {
        "initContainers": [
            {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "setup", "resources": {"requests": {"cpu": "3"}}},
        ],
        "containers": [{"name": "main", "resources": {"requests": {"cpu": "500m"}}}],
        "overhead": {"cpu": "100m"},
    }
    # the setup container runs beside the sidecar: 4 cpus at most, plus the overhead
    assert quota.text_list(quota.pod_amounts(spec, "requests", overhead=True)) == {"cpu": "4100m"}
