"""What the kubelet asks the runtime for, checked without one: sandbox and container configs,
DNS, /etc/hosts, pull credentials, hook messages, rotated log files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kubik.kubelet import hostsfile, lifecycle, sandbox
from kubik.kubelet.containerconfig import (
    ImageUser,
    container_config,
    oom_score_adj,
    resources,
    security_context,
)
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.errors import ContainerConfigError
from kubik.kubelet.logrotation import LogRotator
from kubik.kubelet.pull import credentials, go_duration, pull_policy, registry_of

GIB = 1024**3


def make_pod(**spec) -> dict:
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
        },
        "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec},
        "status": {},
    }


def settings(tmp_path: Path, resolv: str = "") -> sandbox.SandboxSettings:
    conf = tmp_path / "resolv.conf"
    conf.write_text(resolv or "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
    return sandbox.SandboxSettings(
        logs_dir=tmp_path / "logs",
        cluster_dns=["10.43.0.10"],
        cluster_domain="cluster.local",
        cgroup_parent="/kubik",
        resolv_conf=str(conf),
    )


# ------------------------------------------------------------------ DNS


def test_cluster_first_dns(tmp_path):
    result = sandbox.dns_config(make_pod(), settings(tmp_path))
    assert list(result.config.servers) == ["10.43.0.10"]
    assert list(result.config.searches) == [
        "shop.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "corp.example",
    ]
    assert list(result.config.options) == ["ndots:5"]
    assert not result.warnings


def test_default_and_host_network_dns_copy_the_node(tmp_path):
    for pod in (make_pod(dnsPolicy="Default"), make_pod(hostNetwork=True)):
        result = sandbox.dns_config(pod, settings(tmp_path))
        assert list(result.config.servers) == ["192.0.2.53"]
        assert list(result.config.searches) == ["corp.example"]
        assert list(result.config.options) == ["edns0"]
    with_host = make_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert list(sandbox.dns_config(with_host, settings(tmp_path)).config.servers) == ["10.43.0.10"]


def test_dns_none_takes_the_pods_config_and_limits_are_reported(tmp_path):
    pod = make_pod(
        dnsPolicy="None",
        dnsConfig={
            "nameservers": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"],
            "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}],
        },
    )
    result = sandbox.dns_config(pod, settings(tmp_path))
    assert list(result.config.servers) == ["1.1.1.1", "1.0.0.1", "8.8.8.8"]
    assert list(result.config.options) == ["ndots:2", "rotate"]
    assert result.warnings == [
        (
            "DNSConfigForming",
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            "the applied nameserver line is: 1.1.1.1 1.0.0.1 8.8.8.8",
        )
    ]
    merged = make_pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]})
    assert list(sandbox.dns_config(merged, settings(tmp_path)).config.options) == ["ndots:1"]


def test_cluster_first_without_cluster_dns_falls_back_with_a_warning(tmp_path):
    plain = settings(tmp_path)
    plain.cluster_dns = []
    result = sandbox.dns_config(make_pod(), plain)
    assert list(result.config.servers) == ["192.0.2.53"]
    assert result.warnings[0][0] == "MissingClusterDNS"


# ------------------------------------------------------------------ the sandbox


def test_sandbox_config(tmp_path):
    pod = make_pod(
        hostname="front",
        securityContext={
            "runAsUser": 1000,
            "fsGroup": 2000,
            "sysctls": [{"name": "net/ipv4/ip_forward", "value": "1"}],
        },
        containers=[
            {
                "name": "app",
                "image": "busybox",
                "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "protocol": "UDP"},
                ],
                "resources": {"requests": {"cpu": "100m"}},
            }
        ],
    )
    config = sandbox.sandbox_config(pod, 2, settings(tmp_path), None)
    assert (config.metadata.name, config.metadata.namespace, config.metadata.attempt) == (
        "web",
        "shop",
        2,
    )
    assert config.hostname == "front"
    assert config.log_directory == str(tmp_path / "logs" / "shop_web_u-1")
    assert config.labels["app"] == "web" and config.labels["io.kubernetes.pod.uid"] == "u-1"
    assert config.annotations["note"] == "x"
    (mapping,) = config.port_mappings
    assert (mapping.container_port, mapping.host_port, mapping.protocol) == (80, 8080, api_pb2.TCP)
    assert config.linux.cgroup_parent == "/kubik/burstable/podu-1"
    context = config.linux.security_context
    assert context.run_as_user.value == 1000 and list(context.supplemental_groups) == [2000]
    assert context.namespace_options.network == api_pb2.POD
    assert context.namespace_options.pid == api_pb2.CONTAINER
    assert dict(config.linux.sysctls) == {"net.ipv4.ip_forward": "1"}
    host = sandbox.sandbox_config(make_pod(hostNetwork=True), 0, settings(tmp_path), None)
    assert host.linux.security_context.namespace_options.network == api_pb2.NODE
    assert host.hostname == ""
    assert host.linux.cgroup_parent == "/kubik/besteffort/podu-1"


def test_hostnames_and_hosts_file():
    long_name = make_pod()
    long_name["metadata"]["name"] = "x" * 70
    assert sandbox.hostname_and_domain(long_name, "cluster.local") == ("x" * 63, "")
    pod = make_pod(
        hostname="db-0", subdomain="db", hostAliases=[{"ip": "192.0.2.9", "hostnames": ["a", "b"]}]
    )
    hostname, domain = sandbox.hostname_and_domain(pod, "cluster.local")
    assert (hostname, domain) == ("db-0", "db.shop.svc.cluster.local")
    text = hostsfile.content(pod, ["10.88.0.5"], hostname, domain)
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.88.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n192.0.2.9\ta\tb\n")
    container = {"name": "app", "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts"}]}
    assert not hostsfile.wanted(pod, container, ["10.88.0.5"])
    assert not hostsfile.wanted(pod, {"name": "app"}, [])
    assert hostsfile.wanted(pod, {"name": "app"}, ["10.88.0.5"])


# ------------------------------------------------------------------ containers


def test_resources_by_qos():
    guaranteed = make_pod()
    limits = {"cpu": "1500m", "memory": "256Mi"}
    guaranteed["spec"]["containers"][0]["resources"] = {"limits": limits, "requests": limits}
    found = resources(guaranteed, guaranteed["spec"]["containers"][0], 16 * GIB)
    assert found.cpu_shares == 1536 and found.cpu_quota == 150_000 and found.cpu_period == 100_000
    assert found.memory_limit_in_bytes == 256 * 1024**2
    assert found.oom_score_adj == -997
    best = make_pod()
    found = resources(best, best["spec"]["containers"][0], 16 * GIB)
    assert (found.cpu_shares, found.cpu_quota, found.memory_limit_in_bytes) == (2, 0, 0)
    assert found.oom_score_adj == 1000
    burst = make_pod()
    burst["spec"]["containers"][0]["resources"] = {"requests": {"memory": "4Gi", "cpu": "1m"}}
    found = resources(burst, burst["spec"]["containers"][0], 16 * GIB)
    assert found.cpu_shares == 2  # 1m is less than the minimum
    assert found.oom_score_adj == 750
    assert oom_score_adj(burst, None, 16 * GIB) == 999  # at most: just above best effort


def test_security_context_merges_the_pods_and_checks_non_root():
    pod = make_pod(securityContext={"runAsUser": 1000, "runAsNonRoot": True})
    app = {
        "name": "app",
        "securityContext": {
            "runAsGroup": 5,
            "privileged": False,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "allowPrivilegeEscalation": False,
        },
    }
    context = security_context(pod, app, ImageUser())
    assert (context.run_as_user.value, context.run_as_group.value) == (1000, 5)
    assert list(context.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert context.no_new_privs and "/proc/kcore" in context.masked_paths
    privileged = security_context(
        make_pod(), {"name": "p", "securityContext": {"privileged": True}}, ImageUser()
    )
    assert privileged.privileged and not privileged.masked_paths
    root = make_pod(securityContext={"runAsNonRoot": True})
    with pytest.raises(ContainerConfigError, match="image will run as root"):
        security_context(root, {"name": "app"}, ImageUser(uid=0))
    with pytest.raises(ContainerConfigError, match="non-numeric user"):
        security_context(root, {"name": "app"}, ImageUser(name="nginx"))
    security_context(root, {"name": "app"}, ImageUser(uid=101))


def test_container_config(tmp_path):
    pod = make_pod(terminationGracePeriodSeconds=7)
    app = {
        "name": "app",
        "image": "busybox",
        "workingDir": "/srv",
        "tty": True,
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
    }
    config = container_config(
        pod,
        app,
        restart_count=3,
        image_ref="sha256:feed",
        env=[("A", "1")],
        command=["sh"],
        args=["-c", "true"],
        mounts=[],
        image_user=ImageUser(),
        memory=GIB,
    )
    assert config.metadata.attempt == 3 and config.log_path == "app/3.log"
    assert config.image.image == "sha256:feed" and config.working_dir == "/srv" and config.tty
    assert [(e.key, e.value) for e in config.envs] == [("A", "1")]
    assert config.labels["io.kubernetes.container.name"] == "app"
    annotations = config.annotations
    assert annotations["io.kubernetes.container.restartCount"] == "3"
    assert annotations["io.kubernetes.pod.terminationGracePeriod"] == "7"
    assert annotations["io.kubernetes.container.terminationMessagePath"] == "/dev/termination-log"
    assert (
        json.loads(annotations["io.kubernetes.container.preStopHandler"])
        == app["lifecycle"]["preStop"]
    )


# ------------------------------------------------------------------ pulls


def test_pull_policy_and_registries():
    assert pull_policy({"image": "busybox"}) == "Always"
    assert pull_policy({"image": "busybox:latest"}) == "Always"
    assert pull_policy({"image": "busybox:1.36"}) == "IfNotPresent"
    assert pull_policy({"image": "127.0.0.1:5000/busybox"}) == "Always"
    assert pull_policy({"image": "busybox@sha256:abc"}) == "IfNotPresent"
    assert pull_policy({"image": "busybox", "imagePullPolicy": "Never"}) == "Never"
    # kubik's own images are never pulled, whatever the API defaulted
    assert (
        pull_policy({"image": "kubik.local/busybox:latest", "imagePullPolicy": "Always"}) == "Never"
    )
    assert registry_of("busybox") == "docker.io"
    assert registry_of("library/busybox:1") == "docker.io"
    assert registry_of("ghcr.io/org/app:1") == "ghcr.io"
    assert registry_of("localhost:5000/app") == "localhost:5000"


def test_pull_secret_credentials():
    auth = base64.b64encode(b"bob:secret").decode()
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": auth},
            "registry.example:5000": {"username": "amy", "password": "pw"},
            "*.corp.example": {"username": "c", "password": "d"},
        }
    }
    secret = {
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    (hub,) = credentials(secret, "docker.io")
    # no server address: containerd would want it as a URL, and the match is made here
    assert (hub.username, hub.password, hub.server_address) == ("bob", "secret", "")
    (own,) = credentials(secret, "registry.example:5000")
    assert (own.username, own.password) == ("amy", "pw")
    assert credentials(secret, "eu.corp.example")[0].username == "c"
    assert credentials(secret, "quay.io") == []
    legacy = {
        "data": {
            ".dockercfg": base64.b64encode(
                json.dumps({"quay.io": {"auth": auth}}).encode()
            ).decode()
        }
    }
    assert credentials(legacy, "quay.io")[0].username == "bob"
    assert credentials({"data": {".dockerconfigjson": "not base64 json"}}, "docker.io") == []


def test_go_durations():
    assert go_duration(0.5234) == "523ms"
    assert go_duration(1.2) == "1.2s"
    assert go_duration(12.0) == "12s"
    assert go_duration(62.5) == "1m2.5s"


# ------------------------------------------------------------------ hooks


class FakeRuntime:
    def __init__(self, exit_code: int, stdout: bytes = b"", stderr: bytes = b"") -> None:
        self.runtime = self
        self.answer = api_pb2.ExecSyncResponse(exit_code=exit_code, stdout=stdout, stderr=stderr)
        self.requests: list[api_pb2.ExecSyncRequest] = []

    async def ExecSync(self, request, timeout=None):  # noqa: ASYNC109 - a gRPC stub signature
        self.requests.append(request)
        return self.answer


async def test_exec_hooks_and_their_failures():
    pod = make_pod()
    app = pod["spec"]["containers"][0]
    handler = {"exec": {"command": ["sh", "-c", "exit 3"]}}
    ok = FakeRuntime(0)
    await lifecycle.run_handler(
        handler, runtime=ok, pod=pod, container=app, container_id="c1", pod_ip=""
    )
    assert list(ok.requests[0].cmd) == ["sh", "-c", "exit 3"]
    failing = FakeRuntime(3, stdout=b"out\n", stderr=b"bad\n")
    with pytest.raises(lifecycle.HookError) as caught:
        await lifecycle.run_handler(
            handler, runtime=failing, pod=pod, container=app, container_id="c1", pod_ip=""
        )
    assert caught.value.message == (
        'Exec lifecycle hook ([sh -c exit 3]) for Container "app" in Pod "web_shop(u-1)" '
        "failed - error: command 'sh -c exit 3' exited with 3: bad\n, message: \"out\\nbad\\n\""
    )


async def test_http_hooks_fail_only_without_an_answer():
    pod = make_pod()
    app = {"name": "app", "ports": [{"name": "web", "containerPort": 1}]}
    handler = {"httpGet": {"path": "/stop", "port": "web", "host": "127.0.0.1"}}
    with pytest.raises(lifecycle.HookError) as caught:
        await lifecycle.run_handler(
            handler, runtime=None, pod=pod, container=app, container_id="c", pod_ip="", timeout=5
        )
    assert caught.value.message.startswith(
        'HTTP lifecycle hook (/stop) for Container "app" in Pod "web_shop(u-1)" failed - error: '
    )


# ------------------------------------------------------------------ log files


def test_rotated_logs_are_compressed_and_bounded(tmp_path):
    current = tmp_path / "0.log"
    current.write_text("now\n")
    for stamp in ("20240101-000001", "20240101-000002", "20240101-000003", "20240101-000004"):
        (tmp_path / f"0.log.{stamp}").write_text(f"{stamp}\n")
    LogRotator(runtime=None, max_size=10, max_files=3)._tidy(current)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0.log",
        "0.log.20240101-000003.gz",
        "0.log.20240101-000004",
    ]
