"""What the container runtime holds for a pod, read back through the CRI.

The kubelet keeps no state of its own about containers: every sync reads the
pod's sandboxes and containers from the runtime, found by the labels the
kubelet put on them (as upstream: io.kubernetes.pod.uid and friends), and the
annotations carry what a status needs later (restart count, spec hash,
termination message path). So a restarted kubelet finds its pods again, and
a container that died while it was away is seen as dead.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import grpc

from kubik.kubelet.cri import api_pb2

log = logging.getLogger(__name__)

# labels on sandboxes and containers (upstream's kubelet types)
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
# annotations on containers
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
PRESTOP_HANDLER = "io.kubernetes.container.preStopHandler"
CONTAINER_PORTS = "io.kubernetes.container.ports"

CREATED = api_pb2.CONTAINER_CREATED
RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED
UNKNOWN = api_pb2.CONTAINER_UNKNOWN

MAX_TERMINATION_MESSAGE = 4096  # bytes read from a termination-log file
MAX_FALLBACK_LINES = 80  # FallbackToLogsOnError: the log's last lines...
MAX_FALLBACK_BYTES = 2048  # ...and at most this much of them


@dataclass
class SandboxRecord:
    id: str
    state: int
    attempt: int
    created_at: int  # nanoseconds
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    host_network: bool = False

    @property
    def ready(self) -> bool:
        return self.state == api_pb2.SANDBOX_READY


@dataclass
class ContainerRecord:
    id: str
    name: str
    sandbox_id: str
    state: int
    created_at: int  # nanoseconds since the epoch, as the CRI reports them
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    restart_count: int = 0
    hash: str = ""
    log_path: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def exited(self) -> bool:
        return self.state == EXITED

    def grace_period(self, default: int = 30) -> int:
        try:
            return int(self.annotations.get(TERMINATION_GRACE, default))
        except ValueError:
            return default

    def prestop(self) -> dict | None:
        text = self.annotations.get(PRESTOP_HANDLER)
        if not text:
            return None
        try:
            handler = json.loads(text)
        except ValueError:
            return None
        return handler if isinstance(handler, dict) else None


@dataclass
class PodRuntime:
    """A pod's sandboxes and containers, newest first."""

    uid: str
    sandboxes: list[SandboxRecord] = field(default_factory=list)
    containers: list[ContainerRecord] = field(default_factory=list)

    def of(self, name: str) -> list[ContainerRecord]:
        return [c for c in self.containers if c.name == name]

    def latest(self, name: str) -> ContainerRecord | None:
        for container in self.containers:
            if container.name == name:
                return container
        return None

    @property
    def sandbox(self) -> SandboxRecord | None:
        return self.sandboxes[0] if self.sandboxes else None

    @property
    def running(self) -> list[ContainerRecord]:
        return [c for c in self.containers if c.state in (RUNNING, UNKNOWN)]

    def empty(self) -> bool:
        return not self.sandboxes and not self.containers


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.NOT_FOUND


def is_unavailable(exc: BaseException) -> bool:
    """The runtime is not answering, or still starting ("server is not initialized yet"
    while containerd's CRI plugin restores its state): worth retrying the whole operation."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return False
    code = exc.code()
    if code == grpc.StatusCode.UNKNOWN:
        return "not initialized" in (exc.details() or "")
    return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def error_text(exc: BaseException) -> str:
    """A CRI error worded as the Go kubelet prints one ("rpc error: code = NotFound desc = ...")."""
    if isinstance(exc, grpc.aio.AioRpcError):
        code = "".join(part.capitalize() for part in exc.code().name.split("_"))
        return f"rpc error: code = {code} desc = {exc.details()}"
    return str(exc)


def error_details(exc: BaseException) -> str:
    """Only the runtime's own message (what upstream puts in a container's waiting message)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.details() or ""
    return str(exc)


async def inspect(runtime, uid: str) -> PodRuntime:
    """Everything the runtime has for the pod `uid`."""
    selector = {POD_UID: uid}
    sandboxes = await runtime.runtime.ListPodSandbox(
        api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(label_selector=selector))
    )
    containers = await runtime.runtime.ListContainers(
        api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(label_selector=selector))
    )
    pod = PodRuntime(uid)
    for item in sandboxes.items:
        record = await _sandbox_record(runtime, item)
        if record is not None:
            pod.sandboxes.append(record)
    for item in containers.containers:
        record = await _container_record(runtime, item.id, item.pod_sandbox_id)
        if record is not None:
            pod.containers.append(record)
    pod.sandboxes.sort(key=lambda s: s.created_at, reverse=True)
    pod.containers.sort(key=lambda c: c.created_at, reverse=True)
    return pod


async def _sandbox_record(runtime, item: api_pb2.PodSandbox) -> SandboxRecord | None:
    record = SandboxRecord(
        id=item.id,
        state=item.state,
        attempt=item.metadata.attempt,
        created_at=item.created_at,
    )
    try:
        answer = await runtime.runtime.PodSandboxStatus(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=item.id)
        )
    except grpc.aio.AioRpcError as exc:
        if is_not_found(exc):
            return None  # removed between the listing and now
        raise
    status = answer.status
    record.state = status.state
    options = status.linux.namespaces.options
    record.host_network = options.network == api_pb2.NODE
    if status.network.ip:
        record.ip = status.network.ip
        record.ips = [status.network.ip] + [ip.ip for ip in status.network.additional_ips]
    return record


async def _container_record(runtime, container_id: str, sandbox_id: str) -> ContainerRecord | None:
    try:
        answer = await runtime.runtime.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=container_id)
        )
    except grpc.aio.AioRpcError as exc:
        if is_not_found(exc):
            return None
        raise
    status = answer.status
    annotations = dict(status.annotations)
    try:
        restarts = int(annotations.get(RESTART_COUNT, "0"))
    except ValueError:
        restarts = 0
    record = ContainerRecord(
        id=status.id,
        name=status.labels.get(CONTAINER_NAME, status.metadata.name),
        sandbox_id=sandbox_id,
        state=status.state,
        created_at=status.created_at,
        started_at=status.started_at,
        finished_at=status.finished_at,
        exit_code=status.exit_code,
        reason=status.reason,
        message=status.message,
        image=status.image.image,
        image_ref=status.image_ref,
        restart_count=restarts,
        hash=annotations.get(CONTAINER_HASH, ""),
        log_path=status.log_path,
        annotations=annotations,
    )
    if record.exited:
        extra = termination_message(status, annotations)
        if extra:
            record.message = f"{record.message}: {extra}" if record.message else extra
    return record


def termination_message(status: api_pb2.ContainerStatus, annotations: dict[str, str]) -> str:
    """What the container left in its termination-log file, or its last log lines when its
    policy is FallbackToLogsOnError and it failed with an empty file."""
    path = annotations.get(TERMINATION_MESSAGE_PATH, "")
    fallback = (
        annotations.get(TERMINATION_MESSAGE_POLICY) == "FallbackToLogsOnError"
        and status.exit_code != 0
        and status.reason != "ContainerCannotRun"
    )
    if path:
        for mount in status.mounts:
            if mount.container_path != path:
                continue
            try:
                with open(mount.host_path, "rb") as handle:
                    handle.seek(0, os.SEEK_END)
                    size = handle.tell()
                    handle.seek(max(0, size - MAX_TERMINATION_MESSAGE))
                    data = handle.read()
            except FileNotFoundError:
                break
            except OSError as exc:
                return f"Error on reading termination log {mount.host_path}: {exc}"
            if data:
                return data.decode(errors="replace")
            break
    if fallback and status.log_path:
        return last_log_lines(status.log_path)
    return ""


def last_log_lines(
    path: str, lines: int = MAX_FALLBACK_LINES, limit: int = MAX_FALLBACK_BYTES
) -> str:
    """The tail of a CRI log file as the container wrote it (timestamps and streams removed)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            raw = handle.read()
    except OSError:
        return ""
    text = "".join(_messages(raw.decode(errors="replace").splitlines()))
    tail = "".join(text.splitlines(keepends=True)[-lines:])
    return tail[-limit:]


def _messages(lines: Iterable[str]) -> Iterable[str]:
    """The payloads of CRI log lines: `<time> <stream> <P|F> <message>`."""
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        message = parts[3] if len(parts) == 4 else ""
        yield message if parts[2] == "P" else message + "\n"


@dataclass
class NodeListing:
    """One listing of every sandbox and container of the runtime, by pod uid."""

    sandboxes: dict[str, list[api_pb2.PodSandbox]] = field(default_factory=dict)
    containers: dict[str, list[api_pb2.Container]] = field(default_factory=dict)

    def uids(self) -> set[str]:
        return set(self.sandboxes) | set(self.containers)

    def fingerprint(self, uid: str) -> tuple:
        """What changes when anything of the pod changes state."""
        return (
            tuple(sorted((s.id, s.state) for s in self.sandboxes.get(uid, ()))),
            tuple(sorted((c.id, c.state) for c in self.containers.get(uid, ()))),
        )


async def list_node(runtime) -> NodeListing:
    """The sandboxes and containers kubelets made (those labelled with a pod uid)."""
    sandboxes = await runtime.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest())
    containers = await runtime.runtime.ListContainers(api_pb2.ListContainersRequest())
    listing = NodeListing()
    for sandbox in sandboxes.items:
        uid = sandbox.labels.get(POD_UID)
        if uid:
            listing.sandboxes.setdefault(uid, []).append(sandbox)
    for container in containers.containers:
        uid = container.labels.get(POD_UID)
        if uid:
            listing.containers.setdefault(uid, []).append(container)
    return listing
