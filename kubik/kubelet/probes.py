"""Container probes: running one (exec, httpGet, tcpSocket, grpc) and repeating it.

`run_probe` answers one question — is the container healthy now? — the way
upstream's probers do: a command's exit code, an HTTP status in 200–399, a
TCP connection that opens, a gRPC health check that says SERVING. Failures
carry upstream's messages, because they end up in events users read
("Readiness probe failed: HTTP probe failed with statuscode: 500").

`ProbeWorker` repeats one probe of one container and keeps its result as
upstream's worker does: nothing before `initialDelaySeconds`, then every
`periodSeconds`; a result only replaces the current one after
`successThreshold` / `failureThreshold` equal results in a row. Readiness
starts as failure, liveness as success; while a startup probe has not
succeeded the others wait; after a liveness or startup failure the worker
holds until the container is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import grpc
import httptools

from kubik import component
from kubik.apiserver.protobuf import wire
from kubik.kubelet.cri import api_pb2

log = logging.getLogger(__name__)

Object = dict[str, Any]

USER_AGENT = "kube-probe/1.32"
_MAX_BODY = 10 * 1024  # upstream reads at most 10 KiB of a probe's answer
_MAX_REDIRECTS = 10
_EXEC_GRACE = 10.0  # the gRPC deadline beyond the runtime's own exec timeout
_SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome. `error`: the probe could not be run at all (a bad port
    name, a runtime failure) rather than the container answering badly; `warning`:
    a success with something to say (a redirect elsewhere that was not followed)."""

    ok: bool
    message: str = ""
    error: bool = False
    warning: bool = False


async def run_probe(
    probe: Object,
    *,
    pod: Object,
    container: Object,
    pod_ip: str,
    container_id: str,
    runtime: Any,
) -> ProbeResult:
    """Run `probe` once against the container; `runtime` is a CRI RuntimeClient (for exec)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if (action := probe.get("exec")) is not None:
            return await _exec(action, container_id, runtime, timeout)
        if (action := probe.get("httpGet")) is not None:
            port = resolve_port(action.get("port"), container)
            return await _http_get(action, action.get("host") or pod_ip, port, timeout)
        if (action := probe.get("tcpSocket")) is not None:
            port = resolve_port(action.get("port"), container)
            return await _tcp(action.get("host") or pod_ip, port, timeout)
        if (action := probe.get("grpc")) is not None:
            port = resolve_port(action.get("port"), container)
            return await _grpc(pod_ip, port, action.get("service") or "", timeout)
    except PortError as exc:
        return ProbeResult(False, str(exc), error=True)
    return ProbeResult(False, "missing probe handler", error=True)


class PortError(ValueError):
    pass


def resolve_port(port: Any, container: Object) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    number = -1
    if isinstance(port, int):
        number = port
    elif isinstance(port, str):
        named = [p for p in container.get("ports") or [] if p.get("name") == port]
        if named:
            number = int(named[0].get("containerPort", -1))
        elif port.isdigit():
            number = int(port)
        else:
            raise PortError(f"port {port} not found")
    if 0 < number < 65536:
        return number
    raise PortError(f"invalid port number: {number}")


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _go_error(exc: BaseException) -> str:
    """An OSError as Go's net package words it ("connect: connection refused")."""
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        return f"connect: {text[0].lower()}{text[1:]}"
    return str(exc) or type(exc).__name__


# ------------------------------------------------------------------ exec


async def _exec(action: Object, container_id: str, runtime: Any, seconds: float) -> ProbeResult:
    command = list(action.get("command") or [])
    request = api_pb2.ExecSyncRequest(
        container_id=container_id, cmd=command, timeout=max(1, int(seconds))
    )
    try:
        answer = await runtime.runtime.ExecSync(request, timeout=seconds + _EXEC_GRACE)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ProbeResult(False, f'command "{" ".join(command)}" timed out')
        return ProbeResult(False, exc.details() or str(exc.code()), error=True)
    output = (answer.stdout + answer.stderr)[:_MAX_BODY].decode("utf-8", "replace")
    return ProbeResult(answer.exit_code == 0, output)


# ------------------------------------------------------------------ tcpSocket


async def _tcp(host: str, port: int, seconds: float) -> ProbeResult:
    address = _join_host_port(host, port)
    try:
        async with asyncio.timeout(seconds):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return ProbeResult(False, f"dial tcp {address}: {_go_error(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


# ------------------------------------------------------------------ httpGet


@dataclass(slots=True)
class _Answer:
    status: int = 0
    location: str = ""
    body: bytes = b""


class _Collector:
    def __init__(self) -> None:
        self.answer = _Answer()
        self.headers_done = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.decode("latin-1").lower() == "location":
            self.answer.location = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = _MAX_BODY - len(self.answer.body)
        if room > 0:
            self.answer.body += bytes(body[:room])

    def on_message_complete(self) -> None:
        self.complete = True


def _http_headers(action: Object, host_port: str) -> list[tuple[str, str]]:
    """The request's headers: the probe's own, then upstream's defaults for those it lacks."""
    headers = [(h.get("name", ""), h.get("value", "")) for h in action.get("httpHeaders") or []]
    names = {name.lower() for name, _ in headers}
    if "host" not in names:
        headers.insert(0, ("Host", host_port))
    if "user-agent" not in names:
        headers.append(("User-Agent", USER_AGENT))
    if "accept" not in names:
        headers.append(("Accept", "*/*"))
    # an Accept header set to nothing means: send none
    headers = [(n, v) for n, v in headers if not (n.lower() == "accept" and v == "")]
    headers.append(("Connection", "close"))
    return headers


async def _http_get(action: Object, host: str, port: int, seconds: float) -> ProbeResult:
    scheme = (action.get("scheme") or "HTTP").lower()
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{_join_host_port(host, port)}{path}"
    first_host = host
    try:
        async with asyncio.timeout(seconds):
            for _ in range(_MAX_REDIRECTS + 1):
                answer = await _http_request(url, action)
                target = urljoin(url, answer.location) if answer.location else ""
                redirect = answer.status in (301, 302, 303, 307, 308) and target
                if not redirect or urlsplit(target).hostname != first_host:
                    break
                url = target
            else:
                return ProbeResult(False, f'Get "{url}": stopped after {_MAX_REDIRECTS} redirects')
    except TimeoutError:
        return ProbeResult(
            False,
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)",
        )
    except (OSError, httptools.HttpParserError, ValueError) as exc:
        return ProbeResult(False, f'Get "{url}": {_describe(url, exc)}')
    body = answer.body.decode("utf-8", "replace")
    if 200 <= answer.status < 400:
        if answer.status >= 300:
            return ProbeResult(
                True, f"Probe terminated redirects, Response body: {body}", warning=True
            )
        return ProbeResult(True, body)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {answer.status}")


def _describe(url: str, exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        parts = urlsplit(url)
        return (
            f"dial tcp {_join_host_port(parts.hostname or '', parts.port or 80)}: {_go_error(exc)}"
        )
    return str(exc)


async def _http_request(url: str, action: Object) -> _Answer:
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    context = None
    if https:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # probes never verify, as upstream's
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname=host if https and not _is_ip(host) else None
    )
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        lines = [f"GET {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in _http_headers(action, parts.netloc)]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        collector = _Collector()
        parser = httptools.HttpResponseParser(collector)
        while not collector.complete and len(collector.answer.body) < _MAX_BODY:
            chunk = await reader.read(65536)
            if not chunk:
                if not collector.headers_done:
                    raise ConnectionError("EOF")
                break
            parser.feed_data(chunk)
        collector.answer.status = parser.get_status_code()
        return collector.answer
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
            return True
        except OSError:
            continue
    return False


# ------------------------------------------------------------------ grpc


def _health_request(service: str) -> bytes:
    """grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited."""
    return wire.length_delimited(1, service.encode()) if service else b""


def health_status(message: bytes) -> int:
    """The `status` (field 1, a varint) of a HealthCheckResponse; 0 when absent."""
    status = 0
    for number, wire_type, value in wire.fields(message):
        if number == 1 and wire_type == wire.VARINT:
            status = value
    return status


async def _grpc(host: str, port: int, service: str, seconds: float) -> ProbeResult:
    address = _join_host_port(host, port)
    options = [("grpc.primary_user_agent", USER_AGENT), ("grpc.enable_http_proxy", 0)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            answer = await check(_health_request(service), timeout=seconds)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                return ProbeResult(
                    False,
                    "error: this server does not implement the grpc health protocol "
                    f"(grpc.health.v1.Health): {exc.details()}",
                )
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeResult(
                    False, f"timeout: health rpc did not complete within {seconds:g}s"
                )
            if code == grpc.StatusCode.UNAVAILABLE:
                return ProbeResult(
                    False, f'error: failed to connect service at "{address}": {exc.details()}'
                )
            return ProbeResult(False, f"error: health rpc probe failed: {exc.details()}")
    status = health_status(answer)
    if status != 1:
        name = _SERVING_STATUS.get(status, str(status))
        return ProbeResult(False, f'service unhealthy (responded with "{name}")')
    return ProbeResult(True, "service healthy")


# ------------------------------------------------------------------ the worker


Prober = Callable[..., Awaitable[ProbeResult]]
ResultCallback = Callable[[str, bool], Awaitable[None] | None]
EventCallback = Callable[[str, str, str], None]


class ProbeWorker:
    """One probe of one container, repeated; `on_result(kind, ok)` hears each change.

    `started_at` is the container's start (Unix time), `gate` (for liveness and
    readiness) says whether the startup probe has succeeded yet, and
    `on_event(type, reason, message)` receives upstream's events (Unhealthy).
    """

    def __init__(
        self,
        kind: str,
        probe: Object,
        *,
        pod: Object,
        container: Object,
        container_id: str,
        pod_ip: str,
        runtime: Any,
        on_result: ResultCallback,
        started_at: float | None = None,
        gate: Callable[[], bool] | None = None,
        on_event: EventCallback | None = None,
        prober: Prober = run_probe,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if kind not in (LIVENESS, READINESS, STARTUP):
            raise ValueError(f"unknown probe kind {kind!r}")
        self.kind = kind
        self.probe = probe
        self.pod = pod
        self.container = container
        self.container_id = container_id
        self.pod_ip = pod_ip
        self.runtime = runtime
        self._on_result = on_result
        self._gate = gate
        self._on_event = on_event
        self._prober = prober
        self._clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0)
        self.period = float(probe.get("periodSeconds") or 10)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        # upstream's initial values: not ready, alive, startup unknown
        self.result: bool | None = {READINESS: False, LIVENESS: True, STARTUP: None}[kind]
        self.on_hold = False
        self._last: bool | None = None
        self._run = 0
        self._task: asyncio.Task | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"probe-{self.kind}")

    async def stop(self) -> None:
        await component.cancel_and_wait(self._task)
        self._task = None

    def container_restarted(self, container_id: str, started_at: float | None = None) -> None:
        """A new container replaced the probed one: start over from the initial result."""
        self.container_id = container_id
        self.started_at = self._clock() if started_at is None else started_at
        self.on_hold = False
        self._last, self._run = None, 0
        self.result = {READINESS: False, LIVENESS: True, STARTUP: None}[self.kind]

    async def _loop(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s probe of %s failed to run", self.kind, self.container["name"])
            await asyncio.sleep(self._next_wait())

    def _next_wait(self) -> float:
        until_ready = self.started_at + self.initial_delay - self._clock()
        return until_ready if until_ready > 0 else self.period

    # ---------------------------------------------------------------- one round

    async def step(self) -> None:
        """One probe, if it is due, and what follows from its result (upstream's doProbe)."""
        if self.on_hold:
            return
        if self._gate is not None and not self._gate():
            return
        if self.kind == STARTUP and self.result:
            return  # started: the startup probe has done its job
        if self._clock() - self.started_at < self.initial_delay:
            return
        outcome = await self._prober(
            self.probe,
            pod=self.pod,
            container=self.container,
            pod_ip=self.pod_ip,
            container_id=self.container_id,
            runtime=self.runtime,
        )
        self._report_event(outcome)
        if outcome.ok == self._last:
            self._run += 1
        else:
            self._last, self._run = outcome.ok, 1
        threshold = self.success_threshold if outcome.ok else self.failure_threshold
        if self._run < threshold:
            return  # the current result sticks until enough equal results in a row
        changed = self.result != outcome.ok
        self.result = outcome.ok
        if not outcome.ok and self.kind in (LIVENESS, STARTUP):
            # the container is to be restarted: probe nothing until it has been
            self.on_hold = True
            self._run = 0
        if changed:
            maybe = self._on_result(self.kind, outcome.ok)
            if asyncio.iscoroutine(maybe):
                await maybe

    def _report_event(self, outcome: ProbeResult) -> None:
        if self._on_event is None:
            return
        name = self.kind.capitalize()
        if outcome.error:
            message = f"{name} probe errored and resulted in unknown state: {outcome.message}"
            self._on_event("Warning", "Unhealthy", message)
        elif not outcome.ok:
            self._on_event("Warning", "Unhealthy", f"{name} probe failed: {outcome.message}")
        elif outcome.warning:
            self._on_event("Warning", "ProbeWarning", f"{name} probe warning: {outcome.message}")
