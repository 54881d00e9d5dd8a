"""Pod configuration inside real containers: environment, volumes and probes.

One `KubikNode` (server + agent in a netns of the test's own). What a
container sees is read with `kubectl exec`; what probes do is read from the
pod's status (restarts, readiness) and its events (upstream's Unhealthy
messages).
"""

from __future__ import annotations

import pytest

from tests.support.node import KubikNode, apply, events_of
from tests.support.polling import wait_for

NAMESPACE = "config"
BUSYBOX = "kubik.local/busybox:latest"
SLEEP = ["sh", "-c", "sleep 100000"]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    kubik = KubikNode(tmp_path_factory.mktemp("podconfig")).start()
    kubik.ok("create", "namespace", NAMESPACE)
    yield kubik
    kubik.stop()


def pod(name: str, spec: dict, **metadata) -> dict:
    spec = {"terminationGracePeriodSeconds": 1, **spec}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": spec,
    }


def container(**fields) -> dict:
    # the offline image is already on the node (":latest" would otherwise be pulled)
    return {
        "name": "main",
        "image": BUSYBOX,
        "imagePullPolicy": "IfNotPresent",
        "command": SLEEP,
        **fields,
    }


def pod_json(node: KubikNode, name: str) -> dict:
    return node.get("pod", name, "-n", NAMESPACE)


def wait_running(node: KubikNode, name: str) -> dict:
    seen = {}

    def running():
        seen["status"] = pod_json(node, name).get("status") or {}
        return seen["status"] if seen["status"].get("phase") == "Running" else None

    try:
        return wait_for(running, f"pod {name} to run")
    except AssertionError:
        events = events_of(node, NAMESPACE, name)
        status = seen.get("status")
        raise AssertionError(f"pod {name} not running: {status}\nevents: {events}") from None


def exec_in(node: KubikNode, name: str, *argv: str) -> str:
    return node.ok("exec", "-n", NAMESPACE, name, "--", *argv)


def ready(node: KubikNode, name: str) -> str:
    conditions = (pod_json(node, name).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == "Ready"), "")


# ------------------------------------------------------------------ environment


def test_environment_inside_the_container(node):
    node.ok("create", "configmap", "settings", "-n", NAMESPACE, "--from-literal=mode=fast")
    node.ok(
        "create", "secret", "generic", "creds", "-n", NAMESPACE, "--from-literal=password=s3cret"
    )
    apply(
        node,
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "redis-master"},
            "spec": {"ports": [{"name": "redis", "port": 6379}], "selector": {"app": "redis"}},
        },
    )
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "MESSAGE", "value": "$(GREETING) world, $$(GREETING)"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {
            "name": "MEMORY_MI",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
        },
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
    ]
    main = container(
        env=env,
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        resources={"limits": {"memory": "64Mi"}},
        command=["sh", "-c", "echo $(GREETING) > /tmp/greeting; sleep 100000"],
    )
    apply(node, NAMESPACE, pod("env", {"containers": [main]}, labels={"app": "shop"}))
    status = wait_running(node, "env")
    lines = exec_in(node, "env", "env").splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    assert seen["MESSAGE"] == "hello world, $(GREETING)"
    assert seen["POD_NAME"] == "env"
    assert seen["POD_IP"] == status["podIP"]
    assert seen["NODE"] == node.node_name
    assert seen["APP"] == "shop"
    assert seen["MEMORY_MI"] == "64"
    assert seen["MODE"] == "fast" and seen["CFG_mode"] == "fast"
    assert seen["PASSWORD"] == "s3cret"
    cluster_ip = node.ok(
        "get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"
    )
    assert seen["KUBERNETES_SERVICE_HOST"] == cluster_ip
    assert seen["KUBERNETES_SERVICE_PORT"] == "443"
    redis_ip = node.ok(
        "get", "svc", "redis-master", "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}"
    )
    assert seen["REDIS_MASTER_SERVICE_HOST"] == redis_ip
    assert seen["REDIS_MASTER_PORT_6379_TCP"] == f"tcp://{redis_ip}:6379"
    assert exec_in(node, "env", "cat", "/tmp/greeting").strip() == "hello"  # $(VAR) in command


def test_missing_config_map_keeps_the_container_waiting(node):
    bad = container(
        env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    )
    apply(node, NAMESPACE, pod("noconfig", {"containers": [bad]}))

    def waiting():
        statuses = (pod_json(node, "noconfig").get("status") or {}).get("containerStatuses") or []
        state = (statuses[0].get("state") or {}).get("waiting") if statuses else None
        return state if state and state.get("reason") == "CreateContainerConfigError" else None

    state = wait_for(waiting, "CreateContainerConfigError")
    assert state["message"] == 'configmap "absent" not found'


# ------------------------------------------------------------------ volumes


def test_every_volume_type_inside_the_container(node, tmp_path):
    node.ok("create", "configmap", "site", "-n", NAMESPACE, "--from-literal=index.html=v1")
    node.ok("create", "secret", "generic", "keys", "-n", NAMESPACE, "--from-literal=key=k1")
    host_dir = tmp_path / "host"
    volumes = [
        {"name": "site", "configMap": {"name": "site"}},
        {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 0o400}},
        {
            "name": "info",
            "downwardAPI": {
                "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
            },
        },
        {
            "name": "bundle",
            "projected": {
                "sources": [
                    {"configMap": {"name": "site", "items": [{"key": "index.html", "path": "a"}]}},
                    {"secret": {"name": "keys", "items": [{"key": "key", "path": "b"}]}},
                ]
            },
        },
        {"name": "scratch", "emptyDir": {}},
        {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
        {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
    ]
    mounts = [
        {"name": "site", "mountPath": "/site"},
        {"name": "site", "mountPath": "/index.html", "subPath": "index.html"},
        {"name": "keys", "mountPath": "/keys"},
        {"name": "info", "mountPath": "/info"},
        {"name": "bundle", "mountPath": "/bundle"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "ram", "mountPath": "/ram"},
        {"name": "host", "mountPath": "/host"},
    ]
    main = container(
        volumeMounts=mounts,
        command=["sh", "-c", "echo from-pod > /host/out; sleep 100000"],
    )
    apply(
        node,
        NAMESPACE,
        pod("vols", {"volumes": volumes, "containers": [main]}, labels={"app": "vols"}),
    )
    wait_running(node, "vols")

    def cat(path: str) -> str:
        return exec_in(node, "vols", "cat", path)

    assert cat("/site/index.html") == "v1"
    assert cat("/index.html") == "v1"
    assert cat("/keys/key") == "k1"
    assert exec_in(node, "vols", "stat", "-L", "-c", "%a", "/keys/key").strip() == "400"
    assert cat("/info/labels") == 'app="vols"'
    assert (cat("/bundle/a"), cat("/bundle/b")) == ("v1", "k1")
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert cat(f"{token_dir}/namespace") == NAMESPACE
    assert cat(f"{token_dir}/ca.crt").startswith("-----BEGIN CERTIFICATE-----")
    assert cat(f"{token_dir}/token").count(".") == 2  # a JWT
    mounts_text = cat("/proc/mounts")
    assert any(" /ram tmpfs " in line for line in mounts_text.splitlines())
    assert any(" /keys tmpfs " in line for line in mounts_text.splitlines())
    exec_in(node, "vols", "sh", "-c", "echo hi > /scratch/x && cat /scratch/x")
    readonly = node.kubectl("exec", "-n", NAMESPACE, "vols", "--", "touch", "/site/new")
    assert readonly.returncode != 0
    assert wait_for(lambda: (host_dir / "out").exists(), "the pod's write to the host path")

    node.ok("patch", "configmap", "site", "-n", NAMESPACE, "-p", '{"data":{"index.html":"v2"}}')
    node.ok("label", "pod", "vols", "-n", NAMESPACE, "tier=web")
    wait_for(lambda: cat("/site/index.html") == "v2", "the new ConfigMap in the volume", 180)
    assert cat("/bundle/a") == "v2"
    assert cat("/index.html") == "v1"  # a subPath mount keeps what it was, as upstream's
    wait_for(lambda: "tier" in cat("/info/labels"), "the new labels in the volume", 180)


def test_missing_volume_source_is_a_failed_mount(node):
    volumes = [{"name": "cfg", "configMap": {"name": "nowhere"}}]
    main = container(volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])
    apply(node, NAMESPACE, pod("nomount", {"volumes": volumes, "containers": [main]}))
    message = 'MountVolume.SetUp failed for volume "cfg" : configmap "nowhere" not found'
    wait_for(
        lambda: f"FailedMount: {message}" in events_of(node, NAMESPACE, "nomount"),
        "the FailedMount event",
    )
    assert (pod_json(node, "nomount").get("status") or {}).get("phase") == "Pending"


# ------------------------------------------------------------------ probes


HTTPD = "mkdir -p /www && exec httpd -f -p 8080 -h /www"


def test_liveness_failure_restarts_the_container(node):
    probe = {"exec": {"command": ["test", "-f", "/tmp/healthy"]}, "periodSeconds": 1}
    main = container(
        command=["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 100000"],
        livenessProbe={**probe, "failureThreshold": 2},
    )
    apply(node, NAMESPACE, pod("liveness", {"containers": [main]}))

    def restarted():
        statuses = (pod_json(node, "liveness").get("status") or {}).get("containerStatuses") or []
        return statuses and statuses[0].get("restartCount", 0) >= 1

    wait_for(restarted, "the liveness restart")
    events = events_of(node, NAMESPACE, "liveness")
    assert any(e.startswith("Unhealthy: Liveness probe failed") for e in events), events


def test_readiness_follows_http_and_tcp_probes(node):
    http = container(
        command=["sh", "-c", HTTPD],
        ports=[{"name": "web", "containerPort": 8080}],
        readinessProbe={
            "httpGet": {"path": "/ready", "port": "web"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    apply(node, NAMESPACE, pod("ready-http", {"containers": [http]}))
    wait_running(node, "ready-http")
    message = "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"
    wait_for(
        lambda: message in events_of(node, NAMESPACE, "ready-http"), "the readiness failure event"
    )
    assert ready(node, "ready-http") == "False"
    exec_in(node, "ready-http", "sh", "-c", "echo ok > /www/ready")
    wait_for(lambda: ready(node, "ready-http") == "True", "readiness")
    exec_in(node, "ready-http", "rm", "/www/ready")
    wait_for(lambda: ready(node, "ready-http") == "False", "un-readiness")

    tcp = container(
        command=["sh", "-c", HTTPD],
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    )
    grpc = container(
        name="grpc",
        readinessProbe={"grpc": {"port": 9090}, "periodSeconds": 1, "failureThreshold": 1},
    )
    apply(
        node,
        NAMESPACE,
        pod("ready-tcp", {"containers": [tcp]}),
        pod("ready-grpc", {"containers": [grpc]}),
    )
    wait_for(lambda: ready(node, "ready-tcp") == "True", "tcp readiness")
    wait_running(node, "ready-grpc")
    wait_for(
        lambda: any(
            "Readiness probe failed: error" in e for e in events_of(node, NAMESPACE, "ready-grpc")
        ),
        "the gRPC probe failure",
    )
    assert ready(node, "ready-grpc") == "False"


def test_startup_probe_gates_liveness(node):
    main = container(
        command=["sh", "-c", "sleep 4; touch /tmp/started; sleep 100000"],
        startupProbe={
            "exec": {"command": ["test", "-f", "/tmp/started"]},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
        livenessProbe={"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1},
    )
    apply(node, NAMESPACE, pod("startup", {"containers": [main]}))

    def started():
        statuses = (pod_json(node, "startup").get("status") or {}).get("containerStatuses") or []
        return statuses and statuses[0].get("started") is True

    wait_for(started, "the startup probe to pass")
    statuses = pod_json(node, "startup")["status"]["containerStatuses"]
    assert statuses[0].get("restartCount", 0) == 0  # liveness waited for startup
    wait_for(lambda: ready(node, "startup") == "True", "readiness after startup")
