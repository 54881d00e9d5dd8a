"""Probes: each handler against a real server on 127.0.0.1 (exec against real containerd),
and the worker's thresholds, gating and events with a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import grpc
import pytest

from kubik.apiserver.tls import ClusterCA
from kubik.kubelet import probes
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient
from kubik.kubelet.images import BUSYBOX_IMAGE
from kubik.kubelet.probes import ProbeResult, ProbeWorker, health_status, run_probe
from tests.support.containerd import sandbox_config
from tests.support.polling import eventually

POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u-1"}}


async def probe_once(probe, container=None, pod_ip="127.0.0.1", runtime=None, container_id=""):
    return await run_probe(
        probe,
        pod=POD,
        container=container or {"name": "main"},
        pod_ip=pod_ip,
        container_id=container_id,
        runtime=runtime,
    )


# ------------------------------------------------------------------ an HTTP server


class HTTPServer:
    """A tiny HTTP/1.1 server: each path answers as `routes` says; requests are recorded."""

    def __init__(self, routes):
        self.routes = routes
        self.requests = []

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()
            return
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        self.requests.append((method, target, headers))
        try:
            status, extra, body = await self.routes[target](headers)
        except asyncio.CancelledError:  # the test is over: no answer
            writer.close()
            return
        response = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        response += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
        writer.write(response.encode() + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def http_server(routes, ssl_context=None):
    server = HTTPServer(routes)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ssl_context)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


async def ok(headers):
    return 200, {}, b"all good"


async def broken(headers):
    return 500, {}, b"oops"


async def slow(headers):
    await asyncio.sleep(5)
    return 200, {}, b"late"


def redirect(location):
    async def answer(headers):
        return 302, {"Location": location}, b"moved"

    return answer


ROUTES = {
    "/healthz": ok,
    "/broken": broken,
    "/slow": slow,
    "/hop": redirect("/healthz"),
    "/hop-broken": redirect("/broken"),
    "/away": redirect("http://elsewhere.invalid/healthz"),  # never contacted
    "/loop": redirect("/loop"),
    "/q?x=1": ok,
}


async def test_http_get_statuses_headers_and_redirects():
    async with http_server(ROUTES) as server:

        def probe(path, **extra):
            return {"httpGet": {"path": path, "port": server.port, **extra}, "timeoutSeconds": 1}

        result = await probe_once(probe("/healthz"))
        assert result == ProbeResult(True, "all good")
        _, _, headers = server.requests[-1]
        assert headers["user-agent"] == "kube-probe/1.32"
        assert headers["accept"] == "*/*"
        assert headers["host"] == f"127.0.0.1:{server.port}"

        custom = [{"name": "X-Token", "value": "t"}, {"name": "Host", "value": "app.local"}]
        await probe_once(probe("/healthz", httpHeaders=custom))
        _, _, headers = server.requests[-1]
        assert (headers["x-token"], headers["host"]) == ("t", "app.local")

        result = await probe_once(probe("/broken"))
        assert result == ProbeResult(False, "HTTP probe failed with statuscode: 500")
        assert (await probe_once(probe("/q?x=1"))).ok
        assert await probe_once(probe("/hop")) == ProbeResult(True, "all good")
        assert not (await probe_once(probe("/hop-broken"))).ok
        away = await probe_once(probe("/away"))
        assert away.ok and away.warning
        assert away.message == "Probe terminated redirects, Response body: moved"
        loop = await probe_once(probe("/loop"))
        assert not loop.ok and "stopped after 10 redirects" in loop.message

        late = await probe_once(probe("/slow"))
        assert not late.ok
        assert late.message == (
            f'Get "http://127.0.0.1:{server.port}/slow": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)"
        )

        # the host defaults to the pod's IP; ports may be named
        named = {"name": "main", "ports": [{"name": "http", "containerPort": server.port}]}
        action = {"httpGet": {"path": "/healthz", "port": "http"}}
        assert (await probe_once(action, container=named)).ok
        missing = await probe_once({"httpGet": {"path": "/", "port": "nope"}}, container=named)
        assert (missing.ok, missing.error, missing.message) == (False, True, "port nope not found")

    closed = await probe_once({"httpGet": {"path": "/healthz", "port": server.port}})
    assert closed == ProbeResult(
        False,
        f'Get "http://127.0.0.1:{server.port}/healthz": dial tcp 127.0.0.1:{server.port}: '
        "connect: connection refused",
    )


async def test_https_is_not_verified(tmp_path):
    ca = ClusterCA(str(tmp_path))
    cert, key = ca.issue(common_name="pod", ips=("127.0.0.1",), server=True)
    (tmp_path / "pod.pem").write_bytes(cert + key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / "pod.pem"))
    async with http_server(ROUTES, ssl_context=context) as server:
        action = {"httpGet": {"path": "/healthz", "port": server.port, "scheme": "HTTPS"}}
        assert await probe_once(action) == ProbeResult(True, "all good")


async def test_tcp_socket():
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        assert (await probe_once({"tcpSocket": {"port": port}})).ok
        assert (await probe_once({"tcpSocket": {"port": port, "host": "127.0.0.1"}}, pod_ip="")).ok
    finally:
        listener.close()
        await listener.wait_closed()
    closed = await probe_once({"tcpSocket": {"port": port}})
    assert closed == ProbeResult(False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


# ------------------------------------------------------------------ gRPC health


def health_server(statuses):
    """A grpc.aio server with grpc.health.v1.Health/Check, answering from `statuses`."""

    async def check(request: bytes, context):
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([statuses[service]])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    return server


async def test_grpc_health():
    server = health_server({"": 1, "db": 2})
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await probe_once({"grpc": {"port": port}}) == ProbeResult(True, "service healthy")
        assert await probe_once({"grpc": {"port": port, "service": "db"}}) == ProbeResult(
            False, 'service unhealthy (responded with "NOT_SERVING")'
        )
        other = await probe_once({"grpc": {"port": port, "service": "x"}})
        assert not other.ok and other.message.startswith("error: health rpc probe failed")
    finally:
        await server.stop(None)

    bare = grpc.aio.server()  # no health service at all
    port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    try:
        result = await probe_once({"grpc": {"port": port}})
        assert not result.ok
        assert result.message.startswith(
            "error: this server does not implement the grpc health protocol"
        )
    finally:
        await bare.stop(None)
    refused = await probe_once({"grpc": {"port": port}})
    assert not refused.ok and refused.message.startswith("error: failed to connect service at")


def test_health_status_decoding():
    assert health_status(b"") == 0
    assert health_status(b"\x08\x01") == 1
    assert health_status(b"\x12\x02hi\x08\x02") == 2  # unknown fields are skipped


# ------------------------------------------------------------------ exec in containerd


@contextlib.asynccontextmanager
async def sleeping_container(env, cri):
    sandbox = sandbox_config(env.log_root, env.cgroup_parent, "probed")
    reply = await cri.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=sandbox), timeout=60
    )
    try:
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=BUSYBOX_IMAGE),
            command=["sleep", "3600"],
            log_path="main/0.log",
        )
        created = await cri.runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=reply.pod_sandbox_id, config=config, sandbox_config=sandbox
            ),
            timeout=60,
        )
        await cri.runtime.StartContainer(
            api_pb2.StartContainerRequest(container_id=created.container_id), timeout=60
        )
        yield created.container_id
    finally:
        request = api_pb2.StopPodSandboxRequest(pod_sandbox_id=reply.pod_sandbox_id)
        await cri.runtime.StopPodSandbox(request, timeout=60)
        await cri.runtime.RemovePodSandbox(
            api_pb2.RemovePodSandboxRequest(pod_sandbox_id=reply.pod_sandbox_id), timeout=60
        )


async def test_exec_probes_in_a_real_container(containerd, cri: RuntimeClient):
    async with sleeping_container(containerd, cri) as container_id:

        async def run(command, seconds=10):
            probe = {"exec": {"command": command}, "timeoutSeconds": seconds}
            return await probe_once(probe, runtime=cri, container_id=container_id)

        assert await run(["sh", "-c", "echo fine"]) == ProbeResult(True, "fine\n")
        assert await run(["sh", "-c", "echo bad; echo worse >&2; exit 1"]) == ProbeResult(
            False, "bad\nworse\n"
        )
        assert await run(["sleep", "30"], seconds=1) == ProbeResult(
            False, 'command "sleep 30" timed out'
        )
        missing = await run(["/no/such/binary"])
        assert not missing.ok


# ------------------------------------------------------------------ the worker


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class ScriptedProber:
    """Answers from a list of outcomes, recording each call."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self, probe, **_):
        self.calls += 1
        ok = self.outcomes.pop(0)
        return ProbeResult(ok, "" if ok else "HTTP probe failed with statuscode: 500")


def make_worker(kind, probe, prober, clock, changes, events=None, gate=None):
    return ProbeWorker(
        kind,
        probe,
        pod=POD,
        container={"name": "main"},
        container_id="c-1",
        pod_ip="127.0.0.1",
        runtime=None,
        on_result=lambda kind, ok: changes.append((kind, ok)),
        started_at=clock(),
        gate=gate,
        on_event=(lambda *event: events.append(event)) if events is not None else None,
        prober=prober,
        clock=clock,
    )


async def test_readiness_starts_failed_and_needs_its_thresholds():
    clock, changes, events = Clock(), [], []
    prober = ScriptedProber(True, True, False, False, True, False, False, False)
    probe = {"initialDelaySeconds": 5, "successThreshold": 2, "failureThreshold": 3}
    worker = make_worker(probes.READINESS, probe, prober, clock, changes, events)
    assert worker.result is False
    await worker.step()
    assert prober.calls == 0  # within initialDelaySeconds
    clock.now += 5
    await worker.step()
    assert (worker.result, changes) == (False, [])  # one success of two needed
    await worker.step()
    assert changes == [("readiness", True)]
    for _ in range(3):  # two failures, then a success: the run is broken
        await worker.step()
    assert worker.result is True
    for _ in range(3):
        await worker.step()
    assert changes == [("readiness", True), ("readiness", False)]
    assert events[-1] == (
        "Warning",
        "Unhealthy",
        "Readiness probe failed: HTTP probe failed with statuscode: 500",
    )


async def test_liveness_failure_holds_until_the_container_is_replaced():
    clock, changes = Clock(), []
    prober = ScriptedProber(False, False, False, False, True)
    worker = make_worker(probes.LIVENESS, {"failureThreshold": 3}, prober, clock, changes)
    assert worker.result is True
    for _ in range(3):
        await worker.step()
    assert changes == [("liveness", False)] and worker.on_hold
    await worker.step()
    assert prober.calls == 3  # held: the container is about to be restarted
    worker.container_restarted("c-2", clock())
    assert worker.result is True and not worker.on_hold
    await worker.step()
    assert prober.calls == 4 and worker.result is True  # one failure is below the threshold


async def test_startup_probe_gates_liveness():
    clock, changes = Clock(), []
    startup = make_worker(
        probes.STARTUP, {"failureThreshold": 30}, ScriptedProber(False, True), clock, changes
    )
    liveness_prober = ScriptedProber(True)
    liveness = make_worker(
        probes.LIVENESS, {}, liveness_prober, clock, changes, gate=lambda: startup.result is True
    )
    assert startup.result is None
    await liveness.step()
    await startup.step()
    await liveness.step()
    assert liveness_prober.calls == 0 and startup.result is None
    await startup.step()
    assert changes == [("startup", True)]
    await startup.step()  # started: the startup probe is done
    await liveness.step()
    assert liveness_prober.calls == 1


async def test_worker_loop_reports_a_real_http_failure():
    async with http_server(ROUTES) as server:
        changes, events = [], []
        probe = {
            "httpGet": {"path": "/broken", "port": server.port},
            "periodSeconds": 1,
            "failureThreshold": 1,
        }
        worker = make_worker(probes.LIVENESS, probe, run_probe, time.time, changes, events)

        async def reported():
            return changes

        worker.start()
        try:
            await eventually(reported, "the liveness failure to be reported")
        finally:
            await worker.stop()
        assert changes == [("liveness", False)]
        assert events[0] == (
            "Warning",
            "Unhealthy",
            "Liveness probe failed: HTTP probe failed with statuscode: 500",
        )


def test_ports_resolve_by_number_or_name():
    container = {"ports": [{"name": "web", "containerPort": 8080}]}
    assert probes.resolve_port(80, container) == 80
    assert probes.resolve_port("web", container) == 8080
    assert probes.resolve_port("9090", container) == 9090
    with pytest.raises(probes.PortError, match="invalid port number: 70000"):
        probes.resolve_port(70000, container)
