"""The resourcequota controller against a real `kubik server`: it counts what exists,
follows spec changes, and gives usage back when pods end or go.

The server recounts every quota each 2 s (KUBIK_RESOURCE_QUOTA_SYNC_PERIOD) so that
the periodic correction is seen within the test's patience.
"""

from __future__ import annotations

import pytest

from kubik.api import builtin
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

PODS = builtin.lookup("", "v1", "pods")
SECRETS = builtin.lookup("", "v1", "secrets")
QUOTAS = builtin.lookup("", "v1", "resourcequotas")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("resourcequota"), env={"KUBIK_RESOURCE_QUOTA_SYNC_PERIOD": "2"}
    ).start()
    yield kubik
    kubik.stop()


def pod(name: str, **resources) -> dict:
    container = {"name": "main", "image": "busybox", "resources": resources}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


async def create_quota(client, namespace: str, hard: dict) -> dict:
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "quota"},
        "spec": {"hard": hard},
    }
    return await client.create(QUOTAS, body, namespace=namespace)


async def status_becomes(client, namespace: str, expected: dict) -> dict:
    async def check():
        current = await client.get(QUOTAS, namespace, "quota")
        return current if current.get("status") == expected else None

    return await eventually(check, f"quota status {expected}")


async def test_a_new_quota_counts_what_exists(client, namespace):
    for name in ("a", "b"):
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
        await client.create(SECRETS, secret, namespace=namespace)
    await client.create(PODS, pod("web", requests={"memory": "1Gi"}), namespace=namespace)
    hard = {"secrets": "10", "count/secrets": "10", "pods": "5", "requests.memory": "4Gi"}
    await create_quota(client, namespace, hard)
    used = {"secrets": "2", "count/secrets": "2", "pods": "1", "requests.memory": "1Gi"}
    await status_becomes(client, namespace, {"hard": hard, "used": used})


async def test_spec_changes_reach_the_status(client, namespace):
    await create_quota(client, namespace, {"pods": "5"})
    quota = await status_becomes(client, namespace, {"hard": {"pods": "5"}, "used": {"pods": "0"}})
    quota["spec"]["hard"] = {"pods": "3", "secrets": "2"}
    await client.update(QUOTAS, quota)
    await status_becomes(
        client,
        namespace,
        {"hard": {"pods": "3", "secrets": "2"}, "used": {"pods": "0", "secrets": "0"}},
    )


async def test_usage_is_given_back_when_pods_end_or_go(client, namespace):
    await create_quota(client, namespace, {"pods": "2", "count/pods": "5"})
    await client.create(PODS, pod("ends"), namespace=namespace)
    goes = await client.create(PODS, pod("goes"), namespace=namespace)
    await status_becomes(
        client,
        namespace,
        {"hard": {"pods": "2", "count/pods": "5"}, "used": {"pods": "2", "count/pods": "2"}},
    )
    ended = await client.get(PODS, namespace, "ends")
    ended["status"]["phase"] = "Succeeded"
    await client.update_status(PODS, ended)
    # a pod that ended no longer counts as a pod, but still as an object
    await status_becomes(
        client,
        namespace,
        {"hard": {"pods": "2", "count/pods": "5"}, "used": {"pods": "1", "count/pods": "2"}},
    )
    await client.delete(PODS, namespace, goes["metadata"]["name"])
    await status_becomes(
        client,
        namespace,
        {"hard": {"pods": "2", "count/pods": "5"}, "used": {"pods": "0", "count/pods": "1"}},
    )


async def test_a_wrong_count_is_corrected_periodically(client, namespace):
    await create_quota(client, namespace, {"pods": "5"})
    quota = await status_becomes(client, namespace, {"hard": {"pods": "5"}, "used": {"pods": "0"}})
    quota["status"]["used"] = {"pods": "4"}  # as a write that failed after admission leaves it
    await client.update_status(QUOTAS, quota)
    await status_becomes(client, namespace, {"hard": {"pods": "5"}, "used": {"pods": "0"}})
