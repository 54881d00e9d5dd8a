"""The pod lifecycle end to end: a PodManager in this process, a real containerd, a real API.

containerd runs in a network namespace of the module's own (the `containerd`
fixture) with a bridge network, so pods get IPs there; the API server is a
real `kubik server` on 127.0.0.1 of the host with neither scheduler nor node
agent (pods name their node), and only the controllers that make service
account tokens work. This process is in the host's network namespace, so it
cannot reach pod IPs: the probes and hooks here are exec ones, and what a
container sees is checked with ExecSync. HTTP probes and pod IPs are covered
by tests/e2e/test_pods.py, where everything runs inside the namespace.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import pytest_asyncio

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.kubelet import runtimestate
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.images import BUSYBOX_IMAGE
from kubik.kubelet.logrotation import LogRotator
from kubik.kubelet.objects import ApiObjects
from kubik.kubelet.podmanager import PodManager
from kubik.kubelet.volumes import VolumeManager
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

PODS = builtin.lookup("", "v1", "pods")
NODES = builtin.lookup("", "v1", "nodes")
NAMESPACES = builtin.lookup("", "v1", "namespaces")
EVENTS = builtin.lookup("", "v1", "events")
CONFIGMAPS = builtin.lookup("", "v1", "configmaps")
NODE = "worker-1"
NODE_IP = "10.88.0.1"  # the bridge's address inside the namespace
CLUSTER_DNS = "10.43.0.10"
WAIT = 90.0  # generous: two cores shared by many tests


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    api = KubikServer(
        tmp_path_factory.mktemp("podworker-server"),
        extra_args=[
            "--disable-scheduler",
            "--controllers",
            "serviceaccount,root-ca-cert-publisher",
        ],
    ).start()
    yield api
    api.stop()


class Kubelet:
    """The PodManager under test and what tests need around it."""

    def __init__(self, env, server, root: Path) -> None:
        self.env = env
        self.root = root
        self.client = Client.from_kubeconfig(server.kubeconfig)
        self.namespace = f"podworker-{uuid.uuid4().hex[:8]}"
        self.manager: PodManager | None = None

    def new_manager(self) -> PodManager:
        objects = ApiObjects(self.client)
        volumes = VolumeManager(str(self.root / "pods"), objects=objects, client=self.client)
        return PodManager(
            self.client,
            self.env.client,
            NODE,
            root_dir=self.root,
            volumes=volumes,
            cluster_dns=[CLUSTER_DNS],
            cluster_domain="cluster.local",
            cgroup_parent=self.env.cgroup_parent,
            objects=objects,
        )

    async def start(self) -> None:
        self.manager = self.new_manager()
        await self.manager.start()

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
            self.manager = None

    # ------------------------------------------------------------ helpers

    async def create(self, name: str, spec: dict, **metadata) -> dict:
        spec = {"nodeName": NODE, "terminationGracePeriodSeconds": 2, **spec}
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, **metadata},
            "spec": spec,
        }
        return await self.client.create(PODS, body)

    async def get(self, name: str) -> dict | None:
        try:
            return await self.client.get(PODS, self.namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    async def wait(self, name: str, check, what: str, seconds: float = WAIT) -> dict:
        last: list[dict | None] = [None]

        async def probe():
            last[0] = pod = await self.get(name)
            return pod if pod is not None and check(pod) else None

        try:
            return await eventually(probe, f"{name}: {what}", seconds=seconds, every=0.3)
        except AssertionError as exc:
            status = (last[0] or {}).get("status")
            raise AssertionError(f"{exc}; its status: {status}") from None

    async def wait_gone(self, name: str, seconds: float = WAIT) -> None:
        async def gone():
            return await self.get(name) is None

        await eventually(gone, f"{name} to be deleted", seconds=seconds, every=0.3)

    async def delete(self, name: str) -> None:
        """Delete the pod and wait until the node has nothing left of it."""
        pod = await self.get(name)
        await self.client.delete(PODS, self.namespace, name)
        await self.wait_gone(name)
        if pod is not None:
            await self.wait_removed(pod["metadata"]["uid"])

    async def remove_leftovers(self) -> None:
        """Pods a failed test left: deleted at once, so the node unmounts their volumes."""
        listing = await self.client.list(PODS, self.namespace)
        for pod in listing["items"]:
            meta = pod["metadata"]
            await self.client.delete(PODS, self.namespace, meta["name"], grace_period=0)
            await self.wait_removed(meta["uid"])

    async def wait_removed(self, uid: str) -> None:
        async def removed():
            return (await self.runtime_of(uid)).empty() and not pod_dirs(self.root, uid)

        await eventually(removed, f"pod {uid} removed from the node", seconds=WAIT, every=0.3)

    async def events(self, name: str) -> list[tuple[str, str, str]]:
        listing = await self.client.list(
            EVENTS, self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [(e["type"], e["reason"], e["message"]) for e in listing["items"]]

    async def wait_event(self, name: str, reason: str, seconds: float = WAIT) -> list:
        async def found():
            events = await self.events(name)
            return [e for e in events if e[1] == reason]

        return await eventually(found, f"{name}: a {reason} event", seconds=seconds, every=0.3)

    async def runtime_of(self, uid: str) -> runtimestate.PodRuntime:
        return await runtimestate.inspect(self.env.client, uid)

    async def exec(self, uid: str, container: str, *command: str) -> str:
        state = await self.runtime_of(uid)
        record = state.latest(container)
        assert record is not None and record.running, f"{container} is not running"
        answer = await self.env.client.runtime.ExecSync(
            api_pb2.ExecSyncRequest(container_id=record.id, cmd=list(command), timeout=20),
            timeout=40,
        )
        assert answer.exit_code == 0, answer.stderr.decode()
        return answer.stdout.decode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kubelet(containerd, server, tmp_path_factory):
    await containerd.enable_network()
    kubelet = Kubelet(containerd, server, containerd.root / "kubelet")
    client = kubelet.client
    await client.create(
        NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kubelet.namespace}},
    )
    await client.create(
        NODES,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": NODE},
            "status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}]},
        },
    )
    node = await client.get(NODES, "", NODE)
    node["status"] = {"addresses": [{"type": "InternalIP", "address": NODE_IP}]}
    await client.update_status(NODES, node)
    await kubelet.start()
    yield kubelet
    try:
        await kubelet.remove_leftovers()
    finally:
        await kubelet.stop()
        await client.close()


def running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def container_status(pod: dict, name: str = "app", key: str = "containerStatuses") -> dict:
    for status in (pod.get("status") or {}).get(key) or []:
        if status["name"] == name:
            return status
    return {}


def waiting_reason(pod: dict, name: str = "app", key: str = "containerStatuses") -> str:
    return ((container_status(pod, name, key).get("state") or {}).get("waiting") or {}).get(
        "reason", ""
    )


def pod_dirs(root: Path, uid: str) -> list[Path]:
    return [p for p in [root / "pods" / uid, *(root / "logs").glob(f"*_{uid}")] if p.exists()]


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def rotated_files(path: str) -> list[Path]:
    current = Path(path)
    return sorted(current.parent.glob(current.name + ".*"))


def busybox(name: str = "app", *command: str, **extra) -> dict:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": list(command) or ["sleep", "3600"],
        **extra,
    }


# ------------------------------------------------------------------ running


async def test_a_pod_runs_with_its_network_dns_hosts_and_environment(kubelet):
    created = await kubelet.create(
        "web",
        {
            "hostname": "front",
            "subdomain": "svc",
            "containers": [
                busybox(
                    "app",
                    "sh",
                    "-c",
                    "echo $(GREETING) from $(POD_NAME) > /tmp/said; exec sleep 3600",
                    env=[
                        {"name": "GREETING", "value": "hello"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    resources={"limits": {"cpu": "250m", "memory": "64Mi"}},
                )
            ],
        },
    )
    uid = created["metadata"]["uid"]
    pod = await kubelet.wait("web", lambda p: running(p) and ready(p), "Running and Ready")
    status = pod["status"]
    assert status["podIP"].startswith("10.88.0.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == NODE_IP
    assert status["qosClass"] == "Guaranteed"
    app = container_status(pod)
    assert app["ready"] and app["started"] and app["restartCount"] == 0
    assert app["containerID"].startswith("containerd://")
    assert app["image"] == BUSYBOX_IMAGE and app["imageID"]
    # the service account token is mounted (a projected volume), and shows in the status
    assert any(m["mountPath"].endswith("serviceaccount") for m in app.get("volumeMounts", []))

    state = await kubelet.runtime_of(uid)
    assert len(state.sandboxes) == 1 and state.sandboxes[0].ready
    assert await kubelet.exec(uid, "app", "cat", "/tmp/said") == "hello from web\n"
    resolv = await kubelet.exec(uid, "app", "cat", "/etc/resolv.conf")
    assert f"nameserver {CLUSTER_DNS}" in resolv
    assert f"search {kubelet.namespace}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "options ndots:5" in resolv
    hosts = await kubelet.exec(uid, "app", "cat", "/etc/hosts")
    fqdn = f"front.svc.{kubelet.namespace}.svc.cluster.local"
    assert f"{status['podIP']}\t{fqdn}\tfront" in hosts
    assert (await kubelet.exec(uid, "app", "hostname")).strip() == "front"
    token = await kubelet.exec(
        uid, "app", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    )
    assert token == kubelet.namespace
    # resources reached the cgroup: 250m is a quota of 25 ms per 100 ms
    quota = await kubelet.exec(uid, "app", "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert quota.strip() == "25000"
    memory = await kubelet.exec(uid, "app", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert memory.strip() == str(64 * 1024 * 1024)

    reasons = {e[1]: e[2] for e in await kubelet.events("web")}
    assert reasons["Pulled"] == f'Container image "{BUSYBOX_IMAGE}" already present on machine'
    assert reasons["Created"] == "Created container: app"
    assert reasons["Started"] == "Started container app"

    await kubelet.delete("web")


async def test_a_crashing_container_is_restarted_with_back_off(kubelet):
    created = await kubelet.create(
        "crash", {"containers": [busybox("app", "sh", "-c", "echo dying; exit 3")]}
    )
    uid = created["metadata"]["uid"]
    pod = await kubelet.wait(
        "crash",
        lambda p: (
            container_status(p).get("restartCount", 0) >= 2
            and waiting_reason(p) == "CrashLoopBackOff"
        ),
        "restarted twice, then in CrashLoopBackOff",
    )
    app = container_status(pod)
    assert app["lastState"]["terminated"]["exitCode"] == 3
    assert app["lastState"]["terminated"]["reason"] == "Error"
    message = app["state"]["waiting"]["message"]
    assert (
        message.startswith("back-off ") and "restarting failed container=app pod=crash_" in message
    )
    assert pod["status"]["phase"] == "Running"
    # the previous instance is kept for `logs --previous`, older ones are removed
    state = await kubelet.runtime_of(uid)
    assert 1 <= len(state.of("app")) <= 2
    backoffs = await kubelet.wait_event("crash", "BackOff")
    assert (
        backoffs[0][2]
        == f"Back-off restarting failed container app in pod crash_{kubelet.namespace}({uid})"
    )
    await kubelet.delete("crash")


async def test_a_completed_pod_succeeds_and_keeps_its_logs_until_deleted(kubelet):
    created = await kubelet.create(
        "job",
        {
            "restartPolicy": "Never",
            "containers": [
                busybox(
                    "app",
                    "sh",
                    "-c",
                    "echo all done > /dev/termination-log; echo output",
                )
            ],
        },
    )
    uid = created["metadata"]["uid"]
    pod = await kubelet.wait("job", lambda p: p["status"].get("phase") == "Succeeded", "Succeeded")
    terminated = container_status(pod)["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    assert terminated["message"] == "all done\n"
    state = await kubelet.runtime_of(uid)
    assert not state.sandbox.ready  # stopped: the IP is released
    log_file = state.latest("app").log_path
    assert "output" in read(log_file)
    await kubelet.delete("job")
    assert size(log_file) is None


async def test_init_containers_run_in_order_and_a_failed_one_blocks_the_pod(kubelet):
    await kubelet.create(
        "init-ok",
        {
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [
                busybox(
                    "first",
                    "sh",
                    "-c",
                    "echo one > /shared/log",
                    volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
                ),
                busybox(
                    "second",
                    "sh",
                    "-c",
                    "echo two >> /shared/log",
                    volumeMounts=[{"name": "shared", "mountPath": "/shared"}],
                ),
            ],
            "containers": [
                busybox("app", volumeMounts=[{"name": "shared", "mountPath": "/shared"}])
            ],
        },
    )
    pod = await kubelet.wait("init-ok", running, "Running")
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == [
        "Completed",
        "Completed",
    ]
    assert await kubelet.exec(pod["metadata"]["uid"], "app", "cat", "/shared/log") == "one\ntwo\n"

    await kubelet.create(
        "init-bad",
        {
            "restartPolicy": "Never",
            "initContainers": [busybox("setup", "sh", "-c", "exit 7")],
            "containers": [busybox("app")],
        },
    )
    pod = await kubelet.wait("init-bad", lambda p: p["status"].get("phase") == "Failed", "Failed")
    setup = container_status(pod, "setup", "initContainerStatuses")
    assert setup["state"]["terminated"]["exitCode"] == 7
    assert waiting_reason(pod) == "PodInitializing"
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["message"] == "containers with incomplete status: [setup]"

    await kubelet.create(
        "init-retry",
        {"initContainers": [busybox("setup", "sh", "-c", "exit 1")], "containers": [busybox()]},
    )
    pod = await kubelet.wait(
        "init-retry",
        lambda p: container_status(p, "setup", "initContainerStatuses").get("restartCount", 0) >= 1,
        "the init container retried",
    )
    assert pod["status"]["phase"] == "Pending"
    for name in ("init-ok", "init-bad", "init-retry"):
        await kubelet.delete(name)


async def test_security_context_and_host_network(kubelet):
    await kubelet.create(
        "locked",
        {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
            "containers": [
                busybox(
                    securityContext={
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                        "allowPrivilegeEscalation": False,
                    }
                )
            ],
        },
    )
    await kubelet.create("hostnet", {"hostNetwork": True, "containers": [busybox()]})
    locked = await kubelet.wait("locked", ready, "Ready")
    uid = locked["metadata"]["uid"]
    identity = await kubelet.exec(uid, "app", "id")
    assert "uid=1000" in identity and "gid=3000" in identity and "2000" in identity
    status = await kubelet.exec(uid, "app", "cat", "/proc/self/status")
    assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
    answer = await kubelet.env.client.runtime.ExecSync(
        api_pb2.ExecSyncRequest(
            container_id=(await kubelet.runtime_of(uid)).latest("app").id,
            cmd=["touch", "/written"],
            timeout=20,
        )
    )
    assert answer.exit_code != 0 and b"Read-only file system" in answer.stderr
    hostnet = await kubelet.wait("hostnet", ready, "Ready")
    assert hostnet["status"]["podIP"] == NODE_IP
    (sandbox,) = (await kubelet.runtime_of(hostnet["metadata"]["uid"])).sandboxes
    assert sandbox.host_network
    served = {p["metadata"]["name"]: p for p in kubelet.manager.pods()}
    assert served["hostnet"]["status"]["phase"] == "Running"
    await kubelet.delete("locked")
    await kubelet.delete("hostnet")


# ------------------------------------------------------------------ failures


async def test_a_missing_image_is_err_image_pull_then_image_pull_back_off(kubelet):
    image = "127.0.0.1:1/nothing/here:v1"  # refused inside the namespace: nothing leaves it
    await kubelet.create("noimage", {"containers": [{"name": "app", "image": image}]})
    pod = await kubelet.wait(
        "noimage", lambda p: waiting_reason(p) == "ErrImagePull", "ErrImagePull"
    )
    message = container_status(pod)["state"]["waiting"]["message"]
    assert message.startswith(f'Failed to pull image "{image}": rpc error: code = ')
    pod = await kubelet.wait(
        "noimage", lambda p: waiting_reason(p) == "ImagePullBackOff", "ImagePullBackOff"
    )
    message = container_status(pod)["state"]["waiting"]["message"]
    assert message.startswith(f'Back-off pulling image "{image}": ErrImagePull: Failed to pull')
    reasons = {(e[1], e[2]) for e in await kubelet.events("noimage")}
    assert ("Pulling", f'Pulling image "{image}"') in reasons
    assert ("Failed", "Error: ErrImagePull") in reasons
    assert ("BackOff", f'Back-off pulling image "{image}"') in reasons

    await kubelet.create(
        "never",
        {"containers": [{"name": "app", "image": image, "imagePullPolicy": "Never"}]},
    )
    pod = await kubelet.wait(
        "never", lambda p: waiting_reason(p) == "ErrImageNeverPull", "ErrImageNeverPull"
    )
    assert container_status(pod)["state"]["waiting"]["message"] == (
        f'Container image "{image}" is not present with pull policy of Never'
    )
    await kubelet.delete("noimage")
    await kubelet.delete("never")


async def test_a_missing_command_and_a_missing_config_map_say_why(kubelet):
    await kubelet.create(
        "nocmd", {"restartPolicy": "Never", "containers": [busybox("app", "/no/such/binary")]}
    )
    pod = await kubelet.wait("nocmd", lambda p: p["status"].get("phase") == "Failed", "Failed")
    terminated = container_status(pod)["state"]["terminated"]
    assert terminated["reason"] == "StartError" and terminated["exitCode"] == 128
    assert "/no/such/binary" in terminated["message"]
    failed = [e[2] for e in await kubelet.events("nocmd") if e[1] == "Failed"]
    assert any(m.startswith("Error: ") and "/no/such/binary" in m for m in failed)

    await kubelet.create(
        "nocm",
        {
            "containers": [
                busybox(
                    env=[
                        {
                            "name": "SETTING",
                            "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}},
                        }
                    ]
                )
            ]
        },
    )
    pod = await kubelet.wait(
        "nocm",
        lambda p: waiting_reason(p) == "CreateContainerConfigError",
        "CreateContainerConfigError",
    )
    assert container_status(pod)["state"]["waiting"]["message"] == 'configmap "absent" not found'
    # once the configMap exists, the container starts
    await kubelet.client.create(
        CONFIGMAPS,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "absent", "namespace": kubelet.namespace},
            "data": {"k": "v"},
        },
    )
    await kubelet.wait("nocm", running, "Running once the configMap exists")
    await kubelet.delete("nocmd")
    await kubelet.delete("nocm")


async def test_a_memory_limit_kills_with_oom(kubelet):
    await kubelet.create(
        "oom",
        {
            "restartPolicy": "Never",
            "containers": [
                busybox(
                    "app",
                    "sh",
                    "-c",
                    "head -c 200m /dev/zero | tail",
                    resources={"limits": {"memory": "32Mi"}},
                )
            ],
        },
    )
    pod = await kubelet.wait("oom", lambda p: p["status"].get("phase") == "Failed", "Failed")
    terminated = container_status(pod)["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
    assert terminated["exitCode"] == 137
    await kubelet.delete("oom")


# ------------------------------------------------------------------ hooks, probes, deadlines


async def test_graceful_deletion_runs_pre_stop_and_signals_term(kubelet, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    script = "trap 'echo term >> /trace/log; exit 0' TERM; while true; do sleep 0.2; done"
    created = await kubelet.create(
        "graceful",
        {
            "terminationGracePeriodSeconds": 20,
            "volumes": [{"name": "trace", "hostPath": {"path": str(trace)}}],
            "containers": [
                busybox(
                    "app",
                    "sh",
                    "-c",
                    script,
                    volumeMounts=[{"name": "trace", "mountPath": "/trace"}],
                    lifecycle={
                        "preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /trace/log"]}}
                    },
                ),
                busybox("stubborn", "sleep", "3600"),  # ignores TERM: killed after the grace
            ],
        },
    )
    uid = created["metadata"]["uid"]
    await kubelet.wait("graceful", ready, "Ready")
    began = time.monotonic()
    await kubelet.client.delete(PODS, kubelet.namespace, "graceful", grace_period=3)
    await kubelet.wait_gone("graceful")
    assert time.monotonic() - began >= 3  # `stubborn` had its whole grace period
    await kubelet.wait_removed(uid)
    assert (trace / "log").read_text() == "prestop\nterm\n"
    killing = [e[2] for e in await kubelet.events("graceful") if e[1] == "Killing"]
    assert sorted(killing) == ["Stopping container app", "Stopping container stubborn"]


async def test_a_failing_post_start_hook_kills_the_container(kubelet):
    await kubelet.create(
        "hooked",
        {
            "restartPolicy": "Never",
            "containers": [
                busybox(lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 5"]}}})
            ],
        },
    )
    await kubelet.wait_event("hooked", "FailedPostStartHook")
    pod = await kubelet.wait("hooked", lambda p: p["status"].get("phase") == "Failed", "Failed")
    assert "terminated" in container_status(pod)["state"]
    killing = [e[2] for e in await kubelet.events("hooked") if e[1] == "Killing"]
    assert killing == ["FailedPostStartHook"]
    await kubelet.delete("hooked")


async def test_probes_drive_readiness_and_liveness_restarts(kubelet):
    script = "touch /tmp/ready /tmp/alive; sleep 6; rm /tmp/alive; exec sleep 3600"
    await kubelet.create(
        "probed",
        {
            "containers": [
                busybox(
                    "app",
                    "sh",
                    "-c",
                    script,
                    readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
                    livenessProbe={
                        "exec": {"command": ["cat", "/tmp/alive"]},
                        "initialDelaySeconds": 1,
                        "periodSeconds": 1,
                        "failureThreshold": 2,
                    },
                )
            ]
        },
    )
    await kubelet.wait("probed", ready, "Ready by its readiness probe")
    pod = await kubelet.wait(
        "probed",
        lambda p: container_status(p).get("restartCount", 0) >= 1,
        "restarted after failing its liveness probe",
    )
    assert container_status(pod)["lastState"]["terminated"]
    events = await kubelet.events("probed")
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed:") for _, r, m in events)
    assert (
        "Normal",
        "Killing",
        "Container app failed liveness probe, will be restarted",
    ) in events
    await kubelet.delete("probed")


async def test_the_active_deadline_fails_the_pod(kubelet):
    created = await kubelet.create(
        "deadline", {"activeDeadlineSeconds": 3, "containers": [busybox()]}
    )
    pod = await kubelet.wait("deadline", lambda p: p["status"].get("phase") == "Failed", "Failed")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == (
        "Pod was active on the node longer than the specified deadline"
    )
    assert not (await kubelet.runtime_of(created["metadata"]["uid"])).running
    await kubelet.delete("deadline")


# ------------------------------------------------------------------ restarts and logs


async def test_a_restarted_kubelet_adopts_its_pods_and_removes_strays(kubelet):
    created = await kubelet.create("keeper", {"containers": [busybox(), busybox("side")]})
    uid = created["metadata"]["uid"]
    await kubelet.wait("keeper", ready, "Ready")
    before = await kubelet.runtime_of(uid)
    await kubelet.stop()  # as a kill: pods keep running, nothing is cleaned up
    try:
        # while it is away: one container dies, and a pod appears that no API object owns
        side = before.latest("side")
        await kubelet.env.client.runtime.StopContainer(
            api_pb2.StopContainerRequest(container_id=side.id, timeout=0)
        )
        stray_uid = str(uuid.uuid4())
        labels = {
            runtimestate.POD_UID: stray_uid,
            runtimestate.POD_NAME: "stray",
            runtimestate.POD_NAMESPACE: kubelet.namespace,
        }
        log_dir = kubelet.root / "logs" / f"{kubelet.namespace}_stray_{stray_uid}"
        log_dir.mkdir(parents=True)
        stray = await kubelet.env.client.runtime.RunPodSandbox(
            api_pb2.RunPodSandboxRequest(
                config=api_pb2.PodSandboxConfig(
                    metadata=api_pb2.PodSandboxMetadata(
                        name="stray", uid=stray_uid, namespace=kubelet.namespace
                    ),
                    log_directory=str(log_dir),
                    labels=labels,
                    linux=api_pb2.LinuxPodSandboxConfig(
                        cgroup_parent=f"{kubelet.env.cgroup_parent}/besteffort/pod{stray_uid}"
                    ),
                )
            )
        )
    finally:
        await kubelet.start()

    async def settled():
        state = await kubelet.runtime_of(uid)
        stray_state = await kubelet.runtime_of(stray_uid)
        side_now = state.latest("side")
        return stray_state.empty() and side_now is not None and side_now.running and state

    state = await eventually(settled, "the stray removed and the dead container restarted", WAIT)
    assert [s.id for s in state.sandboxes] == [before.sandbox.id]  # no second sandbox
    assert state.latest("app").id == before.latest("app").id  # adopted, not restarted
    assert state.latest("side").restart_count == 1
    del stray
    await kubelet.wait(
        "keeper",
        lambda p: ready(p) and container_status(p, "side").get("restartCount") == 1,
        "Ready again, with the side container's restart counted",
    )
    await kubelet.delete("keeper")


async def test_pods_survive_a_containerd_restart(kubelet):
    created = await kubelet.create("survivor", {"containers": [busybox()]})
    await kubelet.wait("survivor", ready, "Ready")
    before = (await kubelet.runtime_of(created["metadata"]["uid"])).latest("app").id
    component = kubelet.env.component
    old_pid = component.pid
    os.kill(old_pid, signal.SIGKILL)  # the component restarts it; the shims keep the pods

    async def back():
        return component.pid not in (None, old_pid) and component.ready.is_set()

    await eventually(back, "containerd restarted", WAIT)
    await kubelet.create("newcomer", {"containers": [busybox()]})
    await kubelet.wait("newcomer", ready, "a new pod Ready after the restart")
    pod = await kubelet.wait("survivor", ready, "still Ready")
    assert (await kubelet.runtime_of(pod["metadata"]["uid"])).latest("app").id == before
    assert container_status(pod)["restartCount"] == 0
    await kubelet.delete("survivor")
    await kubelet.delete("newcomer")


async def test_container_logs_rotate_by_size(kubelet):
    script = "while true; do echo 0123456789012345678901234567890123456789; sleep 0.01; done"
    created = await kubelet.create("chatty", {"containers": [busybox("app", "sh", "-c", script)]})
    await kubelet.wait("chatty", running, "Running")
    state = await kubelet.runtime_of(created["metadata"]["uid"])
    log_file = state.latest("app").log_path
    rotator = LogRotator(kubelet.env.client, max_size=4096, max_files=3)

    async def rotated_enough():
        if (size(log_file) or 0) > 4096:
            await rotator.rotate_all()
        return len(rotated_files(log_file)) >= 2 and size(log_file) is not None

    for _ in range(3):
        await eventually(rotated_enough, "rotations", WAIT)
        await asyncio.sleep(1.1)  # rotated names are per second
    rotated = rotated_files(log_file)
    assert len(rotated) == 2  # with the current file: max_files
    assert rotated[0].name.endswith(".gz") and not rotated[-1].name.endswith(".gz")

    async def writing_again():
        return (size(log_file) or 0) > 0

    await eventually(writing_again, "the container writing its fresh log", WAIT)
    await kubelet.delete("chatty")


async def test_nothing_is_left_in_the_runtime(kubelet):
    listing = await runtimestate.list_node(kubelet.env.client)
    assert not listing.uids(), listing.uids()
    assert not [p for p in (kubelet.root / "pods").iterdir()]
