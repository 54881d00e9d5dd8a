"""The node API (upstream's kubelet server on port 10250): logs, exec, attach, port-forward.

The API server reaches it with a client certificate signed by the cluster CA
in group system:masters (kube-apiserver-kubelet-client): requests without a
certificate get 401, other certificates (another node's) 403. Routes, as
upstream's:

  GET  /healthz, /pods, /stats/summary
  GET  /containerLogs/{namespace}/{pod}/{container}
  GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=…&input=1&output=1&error=1&tty=1
  GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}?…
  GET|POST /portForward/{namespace}/{pod}[/{uid}]?port=…

Errors are plain text, as upstream's kubelet writes them; the API server
turns them into Status objects (logs) or relays them (upgrades, where
kubectl prints "unable to upgrade connection: …").

Containers are found through the runtime by their CRI labels (pod
namespace, name and uid, container name); for logs the pod's status picks
the container instance first, as upstream does, so `previous` and
containers waiting to restart answer as upstream's kubelet.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import grpc
import orjson

from kubik import component
from kubik.apiserver.http import HTTPServer, Request, Response, StreamResponse, Upgrade
from kubik.kubelet import logs
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient
from kubik.kubelet.runtimestate import CONTAINER_NAME, POD_NAME, POD_NAMESPACE, POD_UID
from kubik.kubelet.stats import StatsProvider
from kubik.kubelet.streaming import portforward, relay, remotecommand, websocket

log = logging.getLogger(__name__)

Object = dict[str, Any]

_TEXT = "text/plain; charset=utf-8"

# Whose client certificates may use the node API: the API server's kubelet
# client (and admins). Other nodes' certificates (group system:nodes) may not.
ADMIN_GROUP = "system:masters"


class Failure(Exception):
    """An answer other than success: status code and plain-text message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _organizations(peer_cert: dict) -> list[str]:
    """The O= values of a verified certificate in ssl's decoded form."""
    return [
        value
        for rdn in peer_cert.get("subject", ())
        for name, value in rdn
        if name == "organizationName"
    ]


def _quote(text: str) -> str:
    """Go's %q for the simple names Kubernetes allows."""
    return orjson.dumps(text).decode()


class NodeServer(component.Component):
    name = "node-server"

    def __init__(
        self,
        runtime: RuntimeClient,
        pods: Callable[[], list[Object]],
        ssl_context: ssl.SSLContext,
        host: str,
        port: int,
        *,
        node_name: str = "",
        root_dir: str = "/",
    ) -> None:
        super().__init__()
        self._runtime = runtime
        self._pods = pods
        self._ssl = ssl_context
        self._host = host
        self._port = port
        self._stats = StatsProvider(runtime, node_name, root_dir)
        self._http: HTTPServer | None = None
        self.port = 0

    async def start(self) -> None:
        self._http = HTTPServer(self.handle, ssl_context=self._ssl)
        self.port = await self._http.listen(self._host, self._port)
        log.info("node API listening on %s:%d", self._host, self.port)
        self.ready.set()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------- routing

    async def handle(self, request: Request) -> Response | StreamResponse | Upgrade:
        if request.peer_cert is None:
            return Response(401, b"Unauthorized", content_type=_TEXT)
        if ADMIN_GROUP not in _organizations(request.peer_cert):
            return Response(403, b"Forbidden", content_type=_TEXT)
        try:
            return await self._route(request)
        except Failure as failure:
            return Response(failure.status, str(failure).encode(), content_type=_TEXT)
        except relay.DialError as exc:
            return Response(
                500,
                f"error dialing the runtime's stream server: {exc}".encode(),
                content_type=_TEXT,
            )
        except grpc.aio.AioRpcError as exc:
            status = 404 if exc.code() == grpc.StatusCode.NOT_FOUND else 500
            return Response(status, (exc.details() or str(exc.code())).encode(), content_type=_TEXT)

    async def _route(self, request: Request) -> Response | StreamResponse | Upgrade:
        parts = request.path.strip("/").split("/")
        head, args = parts[0], parts[1:]
        method = request.method
        if method == "GET" and request.path in ("/healthz", "/healthz/"):
            return Response(200, b"ok", content_type=_TEXT)
        if method == "GET" and head == "pods" and not args:
            items = self._pods()
            body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
            return Response(200, orjson.dumps(body))
        if method == "GET" and request.path.rstrip("/") == "/stats/summary":
            return Response(200, orjson.dumps(await self._stats.summary()))
        if method == "GET" and head == "containerLogs" and len(args) == 3:
            return await self._logs(request, *args)
        if head in ("exec", "attach", "portForward") and not _is_upgrade(request):
            raise Failure(400, "Upgrade request required")
        if method in ("GET", "POST") and head in ("exec", "attach") and len(args) in (3, 4):
            namespace, pod_name, container = args[0], args[1], args[-1]
            uid = args[2] if len(args) == 4 else ""
            return await self._remote_command(request, head, namespace, pod_name, uid, container)
        if method in ("GET", "POST") and head == "portForward" and len(args) in (2, 3):
            uid = args[2] if len(args) == 3 else ""
            return await self._port_forward(request, args[0], args[1], uid)
        return Response(404, b"404 page not found", content_type=_TEXT)

    # ---------------------------------------------------------------- pods

    def _pod(self, namespace: str, name: str, uid: str = "") -> Object | None:
        for pod in self._pods():
            metadata = pod.get("metadata") or {}
            if metadata.get("namespace") == namespace and metadata.get("name") == name:
                if not uid or metadata.get("uid") == uid:
                    return pod
        return None

    async def _containers(
        self, pod: Object, container: str, *, running: bool = False
    ) -> list[api_pb2.Container]:
        """The runtime's instances of a pod's container, newest attempt first."""
        metadata = pod["metadata"]
        labels = {
            POD_NAMESPACE: metadata["namespace"],
            POD_NAME: metadata["name"],
            CONTAINER_NAME: container,
        }
        if metadata.get("uid"):
            labels[POD_UID] = metadata["uid"]
        wanted = api_pb2.ContainerFilter(label_selector=labels)
        if running:
            wanted.state.state = api_pb2.CONTAINER_RUNNING
        found = (
            await self._runtime.runtime.ListContainers(api_pb2.ListContainersRequest(filter=wanted))
        ).containers
        return sorted(found, key=lambda c: (c.metadata.attempt, c.created_at), reverse=True)

    async def _sandbox(self, pod: Object) -> api_pb2.PodSandbox | None:
        metadata = pod["metadata"]
        labels = {POD_NAMESPACE: metadata["namespace"], POD_NAME: metadata["name"]}
        if metadata.get("uid"):
            labels[POD_UID] = metadata["uid"]
        wanted = api_pb2.PodSandboxFilter(
            label_selector=labels,
            state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY),
        )
        found = (
            await self._runtime.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(filter=wanted))
        ).items
        return max(found, key=lambda s: (s.metadata.attempt, s.created_at), default=None)

    # ---------------------------------------------------------------- logs

    async def _logs(
        self, request: Request, namespace: str, pod_name: str, container: str
    ) -> Response | StreamResponse:
        pod = self._pod(namespace, pod_name)
        if pod is None:
            raise Failure(404, f"pod {_quote(pod_name)} does not exist")
        if container not in _container_names(pod):
            raise Failure(404, f"container {_quote(container)} not found in pod {_quote(pod_name)}")
        try:
            options = logs.LogOptions.from_query(request.param)
        except logs.OptionError as exc:
            raise Failure(400, str(exc)) from None
        previous = request.param("previous") in ("true", "1")
        container_id = await self._log_container(pod, container, previous)
        status = (
            await self._runtime.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=container_id)
            )
        ).status
        try:
            handle = open(status.log_path, "rb")  # noqa: ASYNC230 - opening a local file
        except OSError as exc:
            raise Failure(
                400, f"failed to open log file {_quote(status.log_path)}: {exc}"
            ) from None

        async def running() -> bool:
            return await self._running(container_id)

        chunks = logs.read_logs(handle, status.log_path, options, running=running)
        return StreamResponse(200, chunks, content_type=_TEXT)

    async def _log_container(self, pod: Object, container: str, previous: bool) -> str:
        """The id of the container instance whose log is asked for (upstream's choice)."""
        pod_name = pod["metadata"]["name"]
        status = _container_status(pod, container)
        if status is not None:
            return _logged_instance(pod_name, container, status, previous)
        # No status reported yet: the runtime's newest instance (or the one before).
        instances = await self._containers(pod, container)
        index = 1 if previous else 0
        if len(instances) > index:
            return instances[index].id
        if previous:
            raise Failure(
                400,
                f"previous terminated container {_quote(container)} in pod {_quote(pod_name)} "
                "not found",
            )
        raise Failure(
            400,
            f"container {_quote(container)} in pod {_quote(pod_name)} is waiting to start: "
            "ContainerCreating",
        )

    async def _running(self, container_id: str) -> bool:
        try:
            status = await self._runtime.runtime.ContainerStatus(
                api_pb2.ContainerStatusRequest(container_id=container_id)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return status.status.state == api_pb2.CONTAINER_RUNNING

    # ------------------------------------------------------ exec / attach

    async def _remote_command(
        self, request: Request, kind: str, namespace: str, pod_name: str, uid: str, container: str
    ) -> Response | Upgrade:
        pod = self._pod(namespace, pod_name, uid)
        if pod is None:
            raise Failure(404, "pod does not exist")
        options = remotecommand.Options.from_query(request.param)
        if not (options.stdin or options.stdout or options.stderr):
            raise Failure(400, "you must specify at least 1 of stdin, stdout, stderr")
        command = request.query.get("command", [])
        if kind == "exec" and not command:
            raise Failure(400, "you must specify at least one command for the container")
        protocol = ""  # a WebSocket protocol bridged here, "" when relayed to containerd
        if websocket.is_websocket(request.headers):
            protocol = remotecommand.bridged_protocol(websocket.offered_protocols(request.headers))
        accept = _handshake(request, protocol) if protocol else []
        instances = await self._containers(pod, container, running=True)
        if not instances:
            raise Failure(500, f"container not found ({_quote(container)})")
        url = await self._stream_url(kind, instances[0].id, command, options)
        if not protocol:
            # SPDY, or an older WebSocket protocol containerd speaks itself: relayed unchanged.
            return await _relay(request, url)
        backend = await remotecommand.dial(url)
        if backend.status != 101:
            return await relay.pass_on(backend)

        async def bridge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ws = websocket.WebSocket(reader, writer)
            await remotecommand.bridge(ws, backend, options, protocol)

        return Upgrade(accept, bridge)

    async def _stream_url(
        self, kind: str, container_id: str, command: list[str], options: remotecommand.Options
    ) -> str:
        """The runtime's one-shot streaming URL for an exec or attach session."""
        streams = {
            "tty": options.tty,
            "stdin": options.stdin,
            "stdout": options.stdout,
            "stderr": options.stderr,
        }
        runtime = self._runtime.runtime
        if kind == "exec":
            request = api_pb2.ExecRequest(container_id=container_id, cmd=command, **streams)
            return (await runtime.Exec(request)).url
        return (
            await runtime.Attach(api_pb2.AttachRequest(container_id=container_id, **streams))
        ).url

    # -------------------------------------------------------- port-forward

    async def _port_forward(
        self, request: Request, namespace: str, pod_name: str, uid: str
    ) -> Response | Upgrade:
        pod = self._pod(namespace, pod_name, uid)
        if pod is None:
            raise Failure(404, "pod does not exist")
        ports = []
        for value in request.query.get("port", []):
            for text in value.split(","):
                if not text.strip().isdigit() or not 0 < int(text) < 65536:
                    raise Failure(400, f"invalid port {_quote(text)}")
                ports.append(int(text))
        offered = websocket.offered_protocols(request.headers)
        tunnelled = (
            websocket.is_websocket(request.headers) and portforward.TUNNEL_PROTOCOL in offered
        )
        accept = _handshake(request, portforward.TUNNEL_PROTOCOL) if tunnelled else []
        sandbox = await self._sandbox(pod)
        if sandbox is None:
            raise Failure(500, f"pod not found ({_quote(pod_name + '_' + namespace)})")
        url = (
            await self._runtime.runtime.PortForward(
                api_pb2.PortForwardRequest(pod_sandbox_id=sandbox.id, port=ports)
            )
        ).url
        if not tunnelled:
            return await _relay(request, url)
        backend = await portforward.dial(url)
        if backend.status != 101:
            return await relay.pass_on(backend)

        async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await portforward.tunnel(websocket.WebSocket(reader, writer), backend)

        return Upgrade(accept, tunnel)


def _is_upgrade(request: Request) -> bool:
    return "upgrade" in request.headers.get("connection", "").lower()


def _handshake(request: Request, protocol: str) -> list[tuple[str, str]]:
    try:
        return websocket.handshake_headers(request.headers, protocol)
    except websocket.HandshakeError as exc:
        raise Failure(400, str(exc)) from None


async def _relay(request: Request, url: str) -> Response | Upgrade:
    """Pass the client's upgrade request on to containerd's streaming URL."""
    headers = relay.forwarded_headers(request.headers)
    return await relay.pass_on(await relay.request_url(url, request.method, headers))


def _container_names(pod: Object) -> list[str]:
    """Every container of the pod, init and ephemeral ones too (upstream's order)."""
    spec = pod.get("spec") or {}
    return [
        c.get("name", "")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]


def _container_status(pod: Object, container: str) -> Object | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return entry
    return None


def _logged_instance(pod_name: str, container: str, status: Object, previous: bool) -> str:
    """Which instance's log to read, from the container's status (upstream's rules)."""
    what = f"container {_quote(container)} in pod {_quote(pod_name)}"
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    waiting, running, terminated = (
        state.get("waiting"),
        state.get("running"),
        state.get("terminated"),
    )
    if previous:
        if not last.get("containerID"):
            raise Failure(400, f"previous terminated {what} not found")
        found = last["containerID"]
    elif running is not None:
        found = status.get("containerID", "")
    elif terminated is not None or last:
        # A container that did not start again has no id of its own: its last run's log.
        found = (terminated or {}).get("containerID") or last.get("containerID", "")
        if not found:
            raise Failure(400, f"{what} is terminated")
    elif waiting is not None:
        reason = waiting.get("reason", "")
        if reason == "ErrImagePull":
            reason = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            reason = "trying and failing to pull image"
        raise Failure(400, f"{what} is waiting to start: {reason}")
    else:
        found = ""
    if not found:
        raise Failure(400, f"{what} is waiting to start - no logs yet")
    return found.split("://", 1)[-1]
