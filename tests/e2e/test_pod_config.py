"""Pod configuration inside real containers: environment, volumes and probes.

One `KubikNode` (server + agent in a netns of the test's own). What a
container sees is read with `kubectl exec`; what probes do is read from the
pod's status (restarts, readiness), its events (upstream's Unhealthy
messages) and, for readiness, the Service endpoints the controllers derive
from it. A passing gRPC probe needs a gRPC health server: the test runs one
in the node's namespace, for a host-network pod whose IP is the node's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager

import pytest

from tests.support.cluster import free_port
from tests.support.netns import nsenter_argv
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


def test_missing_config_map_or_secret_keeps_the_container_waiting(node):
    no_map = container(
        env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
    )
    no_secret = container(
        name="other", envFrom=[{"secretRef": {"name": "hidden"}}], command=["sh", "-c", "exit 1"]
    )
    apply(node, NAMESPACE, pod("noconfig", {"containers": [no_map, no_secret]}))

    def waiting():
        statuses = (pod_json(node, "noconfig").get("status") or {}).get("containerStatuses") or []
        states = {s["name"]: (s.get("state") or {}).get("waiting") or {} for s in statuses}
        reasons = {state.get("reason") for state in states.values()}
        return states if reasons == {"CreateContainerConfigError"} else None

    states = wait_for(waiting, "CreateContainerConfigError for both containers")
    assert states["main"]["message"] == 'configmap "absent" not found'
    assert states["other"]["message"] == 'secret "hidden" not found'


# ------------------------------------------------------------------ volumes


def test_every_volume_type_inside_the_container(node, tmp_path):
    node.ok("create", "configmap", "site", "-n", NAMESPACE, "--from-literal=index.html=v1")
    node.ok("create", "secret", "generic", "keys", "-n", NAMESPACE, "--from-literal=key=k1")
    host_dir = tmp_path / "host"
    disk = tmp_path / "disk"
    apply(
        node,
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{NAMESPACE}-disk"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "hostPath": {"path": str(disk), "type": "DirectoryOrCreate"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "claim"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
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
        {"name": "claimed", "persistentVolumeClaim": {"claimName": "claim"}},
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
        {"name": "claimed", "mountPath": "/data"},
    ]
    main = container(
        volumeMounts=mounts,
        command=["sh", "-c", "echo from-pod > /host/out; echo kept > /data/file; sleep 100000"],
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
    assert wait_for(lambda: (disk / "file").exists(), "the pod's write to its claimed volume")
    assert cat("/data/file") == "kept\n"

    node.ok("patch", "configmap", "site", "-n", NAMESPACE, "-p", '{"data":{"index.html":"v2"}}')
    node.ok("patch", "secret", "keys", "-n", NAMESPACE, "-p", '{"stringData":{"key":"k2"}}')
    node.ok("label", "pod", "vols", "-n", NAMESPACE, "tier=web")
    wait_for(lambda: cat("/site/index.html") == "v2", "the new ConfigMap in the volume", 180)
    assert cat("/bundle/a") == "v2"
    wait_for(lambda: cat("/keys/key") == "k2", "the new Secret in the volume", 180)
    assert cat("/bundle/b") == "k2"
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


KILLED = "failed liveness probe, will be restarted"


def events_with(node: KubikNode, name: str, *wanted: str) -> list[str]:
    """The pod's events once they include all of `wanted` (an event is written a moment after
    what it tells of)."""

    def found():
        events = events_of(node, NAMESPACE, name)
        return events if set(wanted) <= set(events) else None

    return wait_for(found, f"the events {wanted}")


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
    events = events_with(node, "liveness", f"Killing: Container main {KILLED}")
    assert any(e.startswith("Unhealthy: Liveness probe failed") for e in events), events


def test_liveness_failure_restarts_with_every_network_handler(node):
    """httpGet: the page goes after 3 s; tcpSocket: the listener goes after 3 s; grpc: nothing
    ever answers. Each is restarted; a container whose probe passes is not. One pod each: the
    events of a pod are rate-limited, as upstream's (25 at once)."""
    liveness = {"periodSeconds": 1, "failureThreshold": 2}
    page_goes = "mkdir -p /www && touch /www/healthz && (sleep 3; rm /www/healthz) & " + HTTPD
    listener_goes = "httpd -f -p 8082 -h / & sleep 3; kill $!; exec sleep 100000"
    http = container(
        command=["sh", "-c", page_goes],
        livenessProbe={"httpGet": {"path": "/healthz", "port": 8080}, **liveness},
    )
    tcp = container(
        command=["sh", "-c", listener_goes],
        livenessProbe={"tcpSocket": {"port": 8082}, "initialDelaySeconds": 1, **liveness},
    )
    healthy = container(
        name="healthy",
        command=["httpd", "-f", "-p", "8084", "-h", "/"],
        livenessProbe={"tcpSocket": {"port": 8084}, "initialDelaySeconds": 1, **liveness},
    )
    grpc = container(livenessProbe={"grpc": {"port": 8083}, **liveness})
    apply(
        node,
        NAMESPACE,
        pod("live-http", {"containers": [http]}),
        pod("live-tcp", {"containers": [tcp, healthy]}),
        pod("live-grpc", {"containers": [grpc]}),
    )
    failures = {
        "live-http": "HTTP probe failed with statuscode: 404",
        "live-tcp": ":8082: connect: connection refused",
        "live-grpc": ':8083": failed to connect to all addresses',
    }
    for name, failure in failures.items():

        def restarted(name=name):
            statuses = (pod_json(node, name).get("status") or {}).get("containerStatuses")
            counts = {s["name"]: s.get("restartCount", 0) for s in statuses or []}
            return counts if counts.get("main", 0) >= 1 else None

        counts = wait_for(restarted, f"a liveness restart in {name}", 180)
        events = events_with(node, name, f"Killing: Container main {KILLED}")
        unhealthy = [e for e in events if e.startswith("Unhealthy: Liveness probe failed: ")]
        assert any(failure in e for e in unhealthy), unhealthy
        if name == "live-tcp":
            assert counts["healthy"] == 0
    assert f"Killing: Container healthy {KILLED}" not in events_of(node, NAMESPACE, "live-tcp")


def endpoints(node: KubikNode, name: str) -> tuple[list[str], list[str]]:
    """The ready and the not-ready addresses of the Service's Endpoints."""
    found = json.loads(node.ok("get", "endpoints", name, "-n", NAMESPACE, "-o", "json"))
    ready, not_ready = [], []
    for subset in found.get("subsets") or []:
        ready += [a["ip"] for a in subset.get("addresses") or []]
        not_ready += [a["ip"] for a in subset.get("notReadyAddresses") or []]
    return ready, not_ready


def test_readiness_follows_http_and_tcp_probes(node):
    apply(
        node,
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "ready-http"},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "ready"}},
        },
    )
    http = container(
        command=["sh", "-c", HTTPD],
        ports=[{"name": "web", "containerPort": 8080}],
        readinessProbe={
            "httpGet": {"path": "/ready", "port": "web"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    apply(node, NAMESPACE, pod("ready-http", {"containers": [http]}, labels={"app": "ready"}))
    ip = wait_running(node, "ready-http")["podIP"]
    message = "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"
    wait_for(
        lambda: message in events_of(node, NAMESPACE, "ready-http"), "the readiness failure event"
    )
    assert ready(node, "ready-http") == "False"
    wait_for(lambda: endpoints(node, "ready-http") == ([], [ip]), "a not-ready endpoint")
    exec_in(node, "ready-http", "sh", "-c", "echo ok > /www/ready")
    wait_for(lambda: ready(node, "ready-http") == "True", "readiness")
    wait_for(lambda: endpoints(node, "ready-http") == ([ip], []), "a ready endpoint")
    exec_in(node, "ready-http", "rm", "/www/ready")
    wait_for(lambda: ready(node, "ready-http") == "False", "un-readiness")
    wait_for(lambda: endpoints(node, "ready-http") == ([], [ip]), "the endpoint not ready again")

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


GRPC_HEALTH = """
import asyncio, sys, grpc

async def check(request, context):
    return b"\\x08\\x01"  # HealthCheckResponse{status: SERVING}

async def main():
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}),))
    server.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


@contextmanager
def grpc_health_server(node: KubikNode, port: int):
    """A gRPC health server answering SERVING on 127.0.0.1:`port` of the node's namespace."""
    argv = nsenter_argv(node.netns, [sys.executable, "-c", GRPC_HEALTH, str(port)])
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "serving\n"
        yield
    finally:
        server.kill()  # by its own PID (nsenter execs python)
        server.wait()


def test_grpc_readiness_follows_a_health_server(node):
    port = free_port()  # free on the host's loopback; the node's namespace has nothing yet
    probe = {"grpc": {"port": port}, "periodSeconds": 1, "failureThreshold": 1}
    pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    main = container(readinessProbe=probe, env=[pod_ip])
    spec = {"hostNetwork": True, "containers": [main]}  # its IP is the node's: 127.0.0.1
    with grpc_health_server(node, port):
        apply(node, NAMESPACE, pod("grpc-host", spec))
        wait_for(lambda: ready(node, "grpc-host") == "True", "readiness from the gRPC server")
        assert exec_in(node, "grpc-host", "sh", "-c", "echo $POD_IP") == "127.0.0.1\n"
    wait_for(lambda: ready(node, "grpc-host") == "False", "un-readiness once it has stopped")
    events = events_of(node, NAMESPACE, "grpc-host")
    assert any(e.startswith("Unhealthy: Readiness probe failed: ") for e in events), events
    node.ok("delete", "pod", "grpc-host", "-n", NAMESPACE, "--wait=false")


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
