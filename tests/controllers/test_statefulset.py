"""The StatefulSet controller against a real `kubik server`, the test acting as the kubelet.

There is no kubelet: the test binds pods to a Node it made, marks them
Running and Ready through the API (`pods/status`), which is what lets an
OrderedReady set move on, and finishes the graceful deletion of bound pods.
"""

from __future__ import annotations

import uuid

import pytest

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.controllers import revisions
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

NAMESPACES = builtin.lookup("", "v1", "namespaces")
NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
CLAIMS = builtin.lookup("", "v1", "persistentvolumeclaims")
STATEFULSETS = builtin.lookup("apps", "v1", "statefulsets")
REVISIONS = builtin.lookup("apps", "v1", "controllerrevisions")
TIMEOUT = 30.0
# the test's node posts no heartbeats: it must not be found unreachable meanwhile
NO_HEARTBEAT_CHECKS = {
    "KUBIK_NODE_MONITOR_GRACE_PERIOD": "1h",
    "KUBIK_NODE_STARTUP_GRACE_PERIOD": "1h",
}
NODE = "sts-node"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("statefulset"), env=NO_HEARTBEAT_CHECKS).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def namespace(client):
    name = f"sts-{uuid.uuid4().hex[:8]}"
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    now = meta.now()
    ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    try:
        await client.create(NODES, {**node, "status": {"conditions": [ready]}})
    except ApiError as exc:
        if not exc.already_exists:
            raise
    return name


# ------------------------------------------------------------------ helpers


async def pods_of(client: Client, namespace: str) -> dict[str, dict]:
    listing = await client.list(PODS, namespace)
    return {pod["metadata"]["name"]: pod for pod in listing["items"]}


async def mark_ready(client: Client, pod: dict) -> None:
    """Bind the pod (unless the scheduler did), then report what its kubelet would once
    the containers run and pass their probes. A pod deleted meanwhile is left alone."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    now = meta.now()
    status = {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        ],
    }
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": NODE},
    }
    try:
        if not pod["spec"].get("nodeName"):
            try:
                await client.post_subresource(PODS, namespace, name, "binding", binding)
            except ApiError as exc:
                if exc.code != 409:  # 409: already bound
                    raise
        await client.patch(PODS, namespace, name, {"status": status}, subresource="status")
    except ApiError as exc:
        if not exc.not_found:
            raise


async def run_pending(client: Client, namespace: str) -> list[str]:
    """One kubelet pass: pods being deleted go (their names are returned), the others
    not yet running become Running and Ready."""
    finished = []
    for name, pod in (await pods_of(client, namespace)).items():
        if pod["metadata"].get("deletionTimestamp"):
            finished.append(name)
            try:
                await client.delete(PODS, namespace, name, grace_period=0)
            except ApiError as exc:
                if not exc.not_found:
                    raise
        elif pod["status"].get("phase") == "Pending":
            await mark_ready(client, pod)
    return finished


async def get_set(client: Client, namespace: str, name: str) -> dict:
    return await client.get(STATEFULSETS, namespace, name)


def stateful_set(name: str, replicas: int, **spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }


async def bring_up(client: Client, namespace: str, body: dict) -> list[str]:
    """Create the set and make its pods ready as they come; the order they were created in.

    Each new pod must be the only one not yet ready once the controller has
    counted it: an OrderedReady set creates the next pod only after the
    previous one is Running and Ready.
    """
    name = body["metadata"]["name"]
    replicas = body["spec"]["replicas"]
    await client.create(STATEFULSETS, body, namespace=namespace)
    order: list[str] = []
    while len(order) < replicas:

        async def new_pod_counted():
            sts = await get_set(client, namespace, name)
            pods = await pods_of(client, namespace)
            fresh = [p for p in pods if p not in order]
            counted = (sts.get("status") or {}).get("replicas", 0) == len(order) + 1
            return fresh if fresh and counted else None

        fresh = await eventually(new_pod_counted, f"pod {len(order)} of {name}")
        assert len(fresh) == 1, f"{fresh} created while {order} were the ready ones"
        order.append(fresh[0])
        await mark_ready(client, (await pods_of(client, namespace))[fresh[0]])

    async def all_ready():
        status = (await get_set(client, namespace, name)).get("status") or {}
        return status.get("readyReplicas") == replicas

    await eventually(all_ready, f"{name} ready")
    return order


# -------------------------------------------------------------------- tests


def test_revision_names_hash_the_stored_patch_as_upstream_does():
    """The data and name of a revision upstream 1.34 stored (its compatibility test data)."""
    data = {
        "spec": {
            "template": {
                "$patch": "replace",
                "metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
                "spec": {
                    "containers": [
                        {
                            "image": "test",
                            "imagePullPolicy": "Always",
                            "name": "test",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30,
                },
            }
        }
    }
    assert revisions.revision_name("test", revisions.hash_of(data, 0)) == "test-776999688b"
    # Go's encoder escapes HTML characters: the bytes hashed are upstream's
    assert revisions.encode({"a": "<&>"}) == b'{"a":"\\u003c\\u0026\\u003e"}'


async def test_ordered_ready_set_comes_up_in_order_with_identities(client, namespace):
    order = await bring_up(client, namespace, stateful_set("web", 3))
    assert order == ["web-0", "web-1", "web-2"]

    sts = await get_set(client, namespace, "web")
    status = sts["status"]
    assert status["replicas"] == 3
    assert status["readyReplicas"] == 3
    assert status["availableReplicas"] == 3
    assert status["currentReplicas"] == 3
    assert status["updatedReplicas"] == 3
    assert status["observedGeneration"] == sts["metadata"]["generation"]
    assert status["currentRevision"] == status["updateRevision"]
    assert status["collisionCount"] == 0

    pods = await pods_of(client, namespace)
    for ordinal in range(3):
        pod = pods[f"web-{ordinal}"]
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{ordinal}"
        assert labels["apps.kubernetes.io/pod-index"] == str(ordinal)
        assert labels["controller-revision-hash"] == status["updateRevision"]
        assert pod["spec"]["hostname"] == f"web-{ordinal}"
        assert pod["spec"]["subdomain"] == "web"
        [owner] = pod["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "web", True)

    [revision] = (await client.list(REVISIONS, namespace))["items"]
    assert revision["metadata"]["name"] == status["updateRevision"]
    assert revision["revision"] == 1
    hash_ = revision["metadata"]["labels"]["controller.kubernetes.io/hash"]
    assert revision["metadata"]["name"] == f"web-{hash_}"
    assert revision["data"]["spec"]["template"]["$patch"] == "replace"
    assert revision["data"]["spec"]["template"]["spec"] == sts["spec"]["template"]["spec"]
    assert hash_ == revisions.hash_of(revision["data"], 0)


async def test_scale_down_removes_the_highest_ordinal_first(client, namespace):
    await bring_up(client, namespace, stateful_set("db", 3))
    await client.patch(STATEFULSETS, namespace, "db", {"spec": {"replicas": 1}})
    removed: list[str] = []

    async def scaled():
        # each pass finishes the pods being deleted: one at a time, or the set went too fast
        finished = await run_pending(client, namespace)
        assert len(finished) <= 1, f"{finished} deleted at once"
        removed.extend(finished)
        status = (await get_set(client, namespace, "db")).get("status") or {}
        pods = await pods_of(client, namespace)
        return list(pods) == ["db-0"] and status.get("replicas") == 1

    await eventually(scaled, "db scaled down to db-0")
    assert removed == ["db-2", "db-1"]


async def test_rolling_update_with_partition_updates_only_ordinals_from_it(client, namespace):
    await bring_up(client, namespace, stateful_set("cache", 3))
    before = await pods_of(client, namespace)
    old_revision = (await get_set(client, namespace, "cache"))["status"]["currentRevision"]

    await client.patch(
        STATEFULSETS,
        namespace,
        "cache",
        {
            "spec": {
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.26"}]}},
            }
        },
    )

    async def partly_rolled():
        await run_pending(client, namespace)
        status = (await get_set(client, namespace, "cache")).get("status") or {}
        done = status.get("updatedReplicas") == 2 and status.get("readyReplicas") == 3
        return status if done else None

    status = await eventually(partly_rolled, "ordinals 1 and 2 updated")
    assert status["updateRevision"] != old_revision
    assert status["currentRevision"] == old_revision
    assert status["currentReplicas"] == 1

    pods = await pods_of(client, namespace)
    for name in ("cache-1", "cache-2"):
        assert pods[name]["metadata"]["uid"] != before[name]["metadata"]["uid"]
        assert (
            pods[name]["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
        )
        assert pods[name]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert pods["cache-0"]["metadata"]["uid"] == before["cache-0"]["metadata"]["uid"]
    assert pods["cache-0"]["metadata"]["labels"]["controller-revision-hash"] == old_revision
    assert pods["cache-0"]["spec"]["containers"][0]["image"] == "nginx:1.25"

    numbers = sorted(r["revision"] for r in (await client.list(REVISIONS, namespace))["items"])
    assert numbers == [1, 2]


async def test_claims_come_from_volume_claim_templates(client, namespace):
    claim_template = {
        "metadata": {"name": "data", "labels": {"tier": "storage"}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    body = stateful_set(
        "store",
        2,
        podManagementPolicy="Parallel",
        volumeClaimTemplates=[claim_template],
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"},
    )
    await client.create(STATEFULSETS, body, namespace=namespace)

    async def both_pods():
        pods = await pods_of(client, namespace)
        return pods if len(pods) == 2 else None

    # Parallel: both pods are created without waiting for either to be ready
    pods = await eventually(both_pods, "both pods of a Parallel set")
    sts = await get_set(client, namespace, "store")
    claims = {c["metadata"]["name"]: c for c in (await client.list(CLAIMS, namespace))["items"]}
    assert sorted(claims) == ["data-store-0", "data-store-1"]
    for ordinal in range(2):
        claim = claims[f"data-store-{ordinal}"]
        assert claim["metadata"]["labels"] == {"tier": "storage", "app": "store"}
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        [owner] = claim["metadata"]["ownerReferences"]  # whenDeleted: Delete
        assert (owner["kind"], owner["uid"]) == ("StatefulSet", sts["metadata"]["uid"])
        volumes = {v["name"]: v for v in pods[f"store-{ordinal}"]["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"data-store-{ordinal}"

    # the default policy (Retain) leaves the claims to no owner, and keeps them when scaled down
    await client.patch(
        STATEFULSETS,
        namespace,
        "store",
        {
            "spec": {
                "replicas": 0,
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"},
            }
        },
    )

    async def scaled_to_zero():
        await run_pending(client, namespace)
        pods = await pods_of(client, namespace)
        claims = (await client.list(CLAIMS, namespace))["items"]
        unowned = all(not c["metadata"].get("ownerReferences") for c in claims)
        return not pods and unowned and len(claims) == 2

    await eventually(scaled_to_zero, "pods gone, claims kept with no owner")


async def test_revision_history_is_trimmed_to_its_limit(client, namespace):
    await bring_up(client, namespace, stateful_set("hist", 1, revisionHistoryLimit=1))
    for image in ("nginx:1.26", "nginx:1.27"):
        await client.patch(
            STATEFULSETS,
            namespace,
            "hist",
            {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
        )

        async def rolled(image=image):
            await run_pending(client, namespace)
            sts = await get_set(client, namespace, "hist")
            status = sts.get("status") or {}
            pod = (await pods_of(client, namespace)).get("hist-0")
            return (
                status.get("observedGeneration") == sts["metadata"]["generation"]
                and status.get("currentRevision") == status.get("updateRevision")
                and status.get("readyReplicas") == 1
                and pod is not None
                and pod["spec"]["containers"][0]["image"] == image
            )

        await eventually(rolled, f"hist at {image}")

    async def trimmed():
        items = (await client.list(REVISIONS, namespace))["items"]
        return sorted(r["revision"] for r in items) == [2, 3]

    # the live revision and one more are kept; the oldest goes
    await eventually(trimmed, "history trimmed to one old revision")


async def test_failed_pod_is_replaced(client, namespace):
    await bring_up(client, namespace, stateful_set("job", 1))
    pod = (await pods_of(client, namespace))["job-0"]
    await client.patch(
        PODS, namespace, "job-0", {"status": {"phase": "Failed"}}, subresource="status"
    )

    async def replaced():
        try:
            fresh = await client.get(PODS, namespace, "job-0")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return fresh["metadata"]["uid"] != pod["metadata"]["uid"]

    await eventually(replaced, "a new job-0")
