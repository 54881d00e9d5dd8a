"""One pod on this node, driven toward its spec: one asyncio task per pod, one sync at a time.

A sync reads what the runtime holds for the pod and acts (actions.py decides
what): volumes set up, a sandbox created (DNS, hostname, ports, cgroup), the
init containers run one at a time, then the containers started — each after
its image is ensured, its environment and mounts resolved, and its restart
back-off waited out (CrashLoopBackOff) — with postStart hooks run and failed
liveness probes answered by a restart. Then the status is written if it
changed.

A pod being deleted is stopped gracefully (preStop hooks within the grace
period, then StopContainer, which signals TERM and later KILL), its sandbox
stopped, volumes torn down, its final status written, and it is deleted for
good (grace period 0, uid precondition), as upstream's status manager does.
A pod gone from the API (or never known to it: left over from before a
restart) is removed from the runtime and the node entirely.

The worker wakes on pod updates, runtime changes (the manager polls the
CRI), probe results, and timers: a back-off expiring, an active deadline, a
periodic resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kubik import component
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.kubelet import actions, envvars, hostsfile, runtimestate, sandbox
from kubik.kubelet.backoff import Backoff
from kubik.kubelet.containerconfig import ImageUser, container_config, termination_message_mount
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.errors import ContainerConfigError, StartError, VolumeError
from kubik.kubelet.lifecycle import HookError, pod_ref, run_handler
from kubik.kubelet.podprobes import PodProbes
from kubik.kubelet.pull import ImagePuller
from kubik.kubelet.runtimestate import ContainerRecord, PodRuntime, error_details, error_text
from kubik.kubelet.status import PODS, TERMINAL, Inputs, StatusWriter, generate
from kubik.kubelet.volumes import container_mounts

log = logging.getLogger(__name__)

Object = dict[str, Any]

RESYNC = 60.0  # seconds between syncs when nothing happens
VOLUME_REFRESH = 60.0  # configMap/secret volume contents follow their objects this often
RETRY_FIRST = 0.5
PULL_RECHECK = 5.0  # after ErrImagePull: within the pull back-off, to show it
RETRY_MAX = 10.0
SANDBOX_RETRY = 5.0
MIN_GRACE = 2  # seconds a container always gets to stop (upstream's minimum)
GONE_GRACE = 2  # for containers of pods that are gone from the API
_STOP_SLACK = 30.0  # added to a StopContainer's own timeout for its gRPC deadline
_LOG_NAME = re.compile(r"^(\d+)\.log")


@dataclass
class NodeContext:
    """What every pod worker of the node shares."""

    client: Client
    runtime: Any  # RuntimeClient
    recorder: EventRecorder
    node_name: str
    root_dir: Path
    volumes: Any  # VolumeManager
    objects: Any  # ApiObjects
    puller: ImagePuller
    restarts: Backoff
    writer: StatusWriter
    sandbox: sandbox.SandboxSettings
    services: Callable[[str], list[Object]]
    host_ip: Callable[[], Awaitable[str]]
    runtime_name: str = "containerd"
    memory: int = 0

    @property
    def pods_dir(self) -> Path:
        return self.root_dir / "pods"

    def event(self, pod: Object, type_: str, reason: str, message: str) -> None:
        self.recorder.record(
            {"kind": "Pod", "apiVersion": "v1", "metadata": pod["metadata"]},
            type_,
            reason,
            message,
        )


def go_seconds(seconds: float) -> str:
    """A whole number of seconds as Go prints a duration ("10s", "1m20s", "5m0s")."""
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{whole}s"


def _newer(candidate: Object, current: Object) -> bool:
    """Whether `candidate` is not older than `current` (resourceVersions as numbers)."""
    new = candidate["metadata"].get("resourceVersion", "")
    old = current["metadata"].get("resourceVersion", "")
    if new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


def _same_work(a: Object, b: Object) -> bool:
    """Whether two versions of a pod differ in nothing but status and bookkeeping (a change
    of a readiness gate's condition counts: the Ready condition follows it)."""
    if a.get("spec") != b.get("spec") or _gates(a) != _gates(b):
        return False
    ignored = ("resourceVersion", "managedFields")
    meta_a = {k: v for k, v in a["metadata"].items() if k not in ignored}
    meta_b = {k: v for k, v in b["metadata"].items() if k not in ignored}
    return meta_a == meta_b


def _labels_or_annotations(pod: Object) -> tuple:
    meta = pod["metadata"]
    return meta.get("labels"), meta.get("annotations")


def _gates(pod: Object) -> list:
    kinds = {g.get("conditionType") for g in (pod.get("spec") or {}).get("readinessGates") or []}
    if not kinds:
        return []
    conditions = (pod.get("status") or {}).get("conditions") or []
    return sorted(
        (c.get("type", ""), c.get("status", "")) for c in conditions if c.get("type") in kinds
    )


def _specs(pod: Object) -> dict[str, Object]:
    spec = pod.get("spec") or {}
    return {
        c["name"]: c for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
    }


class PodWorker:
    def __init__(
        self,
        uid: str,
        node: NodeContext,
        pod: Object | None,
        *,
        on_exit: Callable[[PodWorker], None] = lambda worker: None,
    ) -> None:
        self.uid = uid
        self.node = node
        self.pod = pod
        self.status: Object | None = None  # the last status generated
        self.reasons: dict[str, tuple[str, str]] = {}  # container → why it is not running
        self.probes = PodProbes(node.runtime, on_change=self.wake, on_event=self._probe_event)
        self._on_exit = on_exit
        self._wake = asyncio.Event()
        self._wake_at: float | None = None
        self._volume_paths: dict[str, str] | None = None
        self._volumes_refreshed = 0.0
        self._torn_down = False  # volumes removed after the containers stopped for good
        self._deleted = False  # the final DELETE went out
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._wake.set()
        self._task = asyncio.create_task(self._run(), name=f"pod-worker {self.uid}")

    async def stop(self) -> None:
        """Stop working on the pod; its containers keep running."""
        await component.cancel_and_wait(self._task)
        self._task = None
        await self.probes.stop()

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def update(self, pod: Object | None) -> None:
        """A newer version of the pod from the API (None: it is gone). A change of status
        only (our own writes, mostly) is kept without waking the worker, as upstream."""
        previous = self.pod
        if pod is not None and previous is not None:
            if not _newer(pod, previous):
                return
            self.pod = pod
            if _same_work(pod, previous):
                return
            if _labels_or_annotations(pod) != _labels_or_annotations(previous):
                self._volumes_refreshed = 0.0  # downward API files follow them now
        self.pod = pod
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _schedule(self, seconds: float) -> None:
        at = asyncio.get_running_loop().time() + max(0.0, seconds)
        if self._wake_at is None or at < self._wake_at:
            self._wake_at = at

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        retry = RETRY_FIRST
        while True:
            timeout = RESYNC if self._wake_at is None else max(0.0, self._wake_at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self._wake_at = None
            try:
                if await self.sync():
                    self._on_exit(self)
                    return
                retry = RETRY_FIRST
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if runtimestate.is_unavailable(exc):
                    log.info("pod %s: the runtime is not answering; retrying", self.uid)
                elif isinstance(exc, ApiError):
                    log.warning("pod %s: %s; retrying", self.uid, exc)
                else:
                    log.exception("pod %s: sync failed; retrying", self.uid)
                self._schedule(retry)
                retry = min(retry * 2, RETRY_MAX)

    # ------------------------------------------------------------ one sync

    async def sync(self) -> bool:
        """Bring the pod one step closer to what it should be; True once it is gone for good."""
        pod = self.pod
        state = await runtimestate.inspect(self.node.runtime, self.uid)
        if pod is None:
            await self._remove(state)
            return True
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod, state, delete=True)
            return False
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            await self._terminate(pod, state, delete=False)
            return False
        left = self._deadline_left(pod)
        if left is not None and left <= 0:
            self.node.event(pod, "Normal", "DeadlineExceeded", _DEADLINE_EVENT)
            await self._terminate(pod, state, delete=False, deadline=True)
            return False
        if left is not None:
            self._schedule(left)
        await self._sync_running(pod, state)
        return False

    def _deadline_left(self, pod: Object) -> float | None:
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        started = (pod.get("status") or {}).get("startTime")
        if deadline is None or not started:
            return None
        begun = datetime.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC
        )
        return begun.timestamp() + int(deadline) - time.time()

    async def _sync_running(self, pod: Object, state: PodRuntime) -> None:
        if not await self._ensure_volumes(pod):
            await self._write_status(pod, state)
            return
        todo = actions.compute(
            pod,
            state,
            liveness_failed=self.probes.liveness_failed,
            startup_failed=self.probes.startup_failed,
        )
        if todo.create_sandbox and todo.sandbox_id:
            self.node.event(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
        if todo.kill_pod:
            await self._kill_pod(pod, state)
            if todo.create_sandbox:
                await self._purge_init_containers(pod, state)
        else:
            by_id = {c.id: c for c in state.containers}
            for container_id, kill in todo.kill.items():
                await self._kill_container(pod, by_id[container_id], kill.message, kill.reason)
        sandbox_id, pod_ips = todo.sandbox_id, state.sandbox.ips if state.sandbox else []
        if todo.create_sandbox:
            created = await self._create_sandbox(pod, todo.attempt)
            if created is None:
                state = await runtimestate.inspect(self.node.runtime, self.uid)
                await self._write_status(pod, state)
                return
            sandbox_id, pod_ips = created
        if todo.next_init is not None or todo.start:
            config = self._sandbox_config(pod, todo.attempt)
            start = _Start(pod, state, sandbox_id, config, await self._addresses(pod, pod_ips))
            if todo.next_init is not None:
                await self._start_container(start, todo.next_init)
            for container in todo.start:
                await self._start_container(start, container)
            state = await runtimestate.inspect(self.node.runtime, self.uid)
        if await self._prune(state):
            state = await runtimestate.inspect(self.node.runtime, self.uid)
        ready = state.sandbox is not None and state.sandbox.ready
        ips = await self._addresses(pod, state.sandbox.ips) if ready else []
        await self.probes.sync(pod, state, ips[0] if ips else "")
        await self._write_status(pod, state)

    async def _ensure_volumes(self, pod: Object) -> bool:
        now = time.monotonic()
        try:
            if self._volume_paths is None:
                self._volume_paths = await self.node.volumes.setup(pod)
                self._volumes_refreshed = now
            elif now - self._volumes_refreshed >= VOLUME_REFRESH:
                self._volumes_refreshed = now
                await self.node.volumes.refresh(pod)
        except VolumeError as exc:
            self.node.event(pod, "Warning", "FailedMount", exc.message)
            self._schedule(SANDBOX_RETRY)
            return self._volume_paths is not None  # a failed refresh does not stop a pod
        self._schedule(VOLUME_REFRESH)
        return True

    # ------------------------------------------------------------ sandbox

    def _sandbox_config(self, pod: Object, attempt: int) -> api_pb2.PodSandboxConfig:
        dns = sandbox.dns_config(pod, self.node.sandbox)
        return sandbox.sandbox_config(pod, attempt, self.node.sandbox, dns.config)

    async def _create_sandbox(self, pod: Object, attempt: int) -> tuple[str, list[str]] | None:
        dns = sandbox.dns_config(pod, self.node.sandbox)
        for reason, message in dns.warnings:
            self.node.event(pod, "Warning", reason, message)
        config = sandbox.sandbox_config(pod, attempt, self.node.sandbox, dns.config)
        os.makedirs(config.log_directory, exist_ok=True)
        try:
            answer = await self.node.runtime.runtime.RunPodSandbox(
                api_pb2.RunPodSandboxRequest(config=config)
            )
            status = await self.node.runtime.runtime.PodSandboxStatus(
                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=answer.pod_sandbox_id)
            )
        except grpc.aio.AioRpcError as exc:
            if runtimestate.is_unavailable(exc):
                raise
            self.node.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: {error_text(exc)}",
            )
            self._schedule(SANDBOX_RETRY)
            return None
        network = status.status.network
        ips = [network.ip] + [ip.ip for ip in network.additional_ips] if network.ip else []
        return answer.pod_sandbox_id, ips

    # ------------------------------------------------------------ starting containers

    async def _start_container(self, start: _Start, container: Object) -> bool:
        """Start one container; False (and its reason recorded) when it could not be."""
        name = container["name"]
        try:
            await self._start(start, container)
        except StartError as exc:
            self.reasons[name] = (exc.reason, exc.message)
            return False
        self.reasons.pop(name, None)
        return True

    def _in_backoff(self, start: _Start, container: Object) -> None:
        name = container["name"]
        dead = next((c for c in start.state.of(name) if c.exited), None)
        if dead is None:
            return
        key = f"{self.uid}_{name}"
        finished = dead.finished_at / 1e9
        left = self.node.restarts.remaining(key, finished)
        if left > 0:
            pod = start.pod
            self.node.event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {name} in pod {pod_ref(pod)}",
            )
            self._schedule(left)
            delay = go_seconds(self.node.restarts.delay(key))
            raise StartError(
                "CrashLoopBackOff",
                f"back-off {delay} restarting failed container={name} pod={pod_ref(pod)}",
            )
        self.node.restarts.next(key, finished)

    async def _start(self, start: _Start, container: Object) -> None:
        pod, name = start.pod, container["name"]
        self._in_backoff(start, container)
        try:
            image = await self.node.puller.ensure(pod, container, start.config)
        except StartError as exc:
            self.node.event(pod, "Warning", "Failed", f"Error: {exc.reason}")
            key = f"{self.uid}_{container.get('image', '')}"
            left = self.node.puller.backoff.remaining_since_update(key)
            # look again soon after a failed pull, so the back-off shows, then when it ends
            self._schedule(PULL_RECHECK if exc.reason == "ErrImagePull" else max(left, RETRY_FIRST))
            raise
        latest = start.state.latest(name)
        restarts = (
            latest.restart_count + 1 if latest is not None else self._logged_restarts(pod, name)
        )
        try:
            config = await self._container_config(start, container, image, restarts)
        except ContainerConfigError as exc:
            self.node.event(pod, "Warning", "Failed", f"Error: {exc.message}")
            self._schedule(SANDBOX_RETRY)
            raise StartError("CreateContainerConfigError", exc.message) from None
        runtime = self.node.runtime.runtime
        try:
            created = await runtime.CreateContainer(
                api_pb2.CreateContainerRequest(
                    pod_sandbox_id=start.sandbox_id, config=config, sandbox_config=start.config
                )
            )
        except grpc.aio.AioRpcError as exc:
            if runtimestate.is_unavailable(exc):
                raise
            self.node.event(pod, "Warning", "Failed", f"Error: {error_details(exc)}")
            self._schedule(RETRY_FIRST)
            raise StartError("CreateContainerError", error_details(exc)) from None
        container_id = created.container_id
        self.node.event(pod, "Normal", "Created", f"Created container: {name}")
        try:
            await runtime.StartContainer(api_pb2.StartContainerRequest(container_id=container_id))
        except grpc.aio.AioRpcError as exc:
            if runtimestate.is_unavailable(exc):
                raise
            details = error_details(exc).replace(container_id, name)
            self.node.event(pod, "Warning", "Failed", f"Error: {details}")
            raise StartError("RunContainerError", details) from None
        self.node.event(pod, "Normal", "Started", f"Started container {name}")
        hook = (container.get("lifecycle") or {}).get("postStart")
        if hook:
            await self._post_start(start, container, hook, container_id)

    async def _post_start(
        self, start: _Start, container: Object, hook: Object, container_id: str
    ) -> None:
        pod = start.pod
        try:
            await run_handler(
                hook,
                runtime=self.node.runtime,
                pod=pod,
                container=container,
                container_id=container_id,
                pod_ip=start.pod_ips[0] if start.pod_ips else "",
            )
        except HookError as exc:
            self.node.event(pod, "Warning", "FailedPostStartHook", "PostStartHook failed")
            record = ContainerRecord(
                id=container_id,
                name=container["name"],
                sandbox_id=start.sandbox_id,
                state=runtimestate.RUNNING,
                created_at=0,
            )
            await self._kill_container(pod, record, "FailedPostStartHook")
            raise StartError("PostStartHookError", exc.message) from None

    async def _container_config(
        self, start: _Start, container: Object, image: api_pb2.Image, restarts: int
    ) -> api_pb2.ContainerConfig:
        pod = start.pod
        node = self.node
        host_ip = await node.host_ip()
        env = await envvars.container_env(
            pod,
            container,
            objects=node.objects,
            services=node.services(pod["metadata"]["namespace"]),
            pod_ips=start.pod_ips,
            host_ips=[host_ip] if host_ip else [],
            warn=lambda reason, message: node.event(pod, "Warning", reason, message),
        )
        values = dict(env)
        command = [envvars.expand(part, values) for part in container.get("command") or []]
        args = [envvars.expand(part, values) for part in container.get("args") or []]
        mounts = container_mounts(pod, container, self._volume_paths or {}, env=env)
        pod_dir = node.pods_dir / self.uid
        termination = termination_message_mount(pod_dir, container)
        if termination is not None:
            mounts.append(termination)
        if hostsfile.wanted(pod, container, start.pod_ips):
            hostname, domain = sandbox.hostname_and_domain(pod, node.sandbox.cluster_domain)
            hosts = pod_dir / "etc-hosts"
            hostsfile.write(hosts, hostsfile.content(pod, start.pod_ips, hostname, domain))
            mounts.append(api_pb2.Mount(container_path=hostsfile.HOSTS_PATH, host_path=str(hosts)))
        user = ImageUser(
            uid=image.uid.value if image.HasField("uid") else None, name=image.username
        )
        log_dir = sandbox.pod_log_dir(node.sandbox.logs_dir, pod) / container["name"]
        log_dir.mkdir(parents=True, exist_ok=True)
        return container_config(
            pod,
            container,
            restart_count=restarts,
            image_ref=image.id,
            env=env,
            command=command,
            args=args,
            mounts=mounts,
            image_user=user,
            memory=node.memory,
        )

    def _logged_restarts(self, pod: Object, name: str) -> int:
        """With no container left to count from, the next number after the container's logs
        (so a new instance never writes into an old instance's log file)."""
        directory = sandbox.pod_log_dir(self.node.sandbox.logs_dir, pod) / name
        highest = -1
        with contextlib.suppress(OSError):
            for entry in directory.iterdir():
                match = _LOG_NAME.match(entry.name)
                if match:
                    highest = max(highest, int(match.group(1)))
        return highest + 1

    # ------------------------------------------------------------ stopping

    def _grace(self, pod: Object, spec: Object | None, reason: str) -> int:
        meta, pod_spec = pod["metadata"], pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        if spec is not None and reason in (actions.REASON_LIVENESS, actions.REASON_STARTUP):
            probe = spec.get(
                "livenessProbe" if reason == actions.REASON_LIVENESS else "startupProbe"
            )
            if probe and probe.get("terminationGracePeriodSeconds") is not None:
                grace = probe["terminationGracePeriodSeconds"]
        return int(grace)

    async def _kill_container(
        self, pod: Object, record: ContainerRecord, message: str = "", reason: str = ""
    ) -> None:
        spec = _specs(pod).get(record.name)
        grace = self._grace(pod, spec, reason)
        self.node.event(pod, "Normal", "Killing", message or f"Stopping container {record.name}")
        prestop = ((spec or {}).get("lifecycle") or {}).get("preStop") if spec else record.prestop()
        if prestop and grace > 0:
            began = time.monotonic()
            sandbox_ip = await self._pod_ip(pod)
            try:
                await asyncio.wait_for(
                    run_handler(
                        prestop,
                        runtime=self.node.runtime,
                        pod=pod,
                        container=spec or {"name": record.name},
                        container_id=record.id,
                        pod_ip=sandbox_ip,
                        timeout=grace,
                    ),
                    grace,
                )
            except HookError as exc:
                log.info("pod %s: preStop of %s failed: %s", self.uid, record.name, exc.message)
                self.node.event(pod, "Warning", "FailedPreStopHook", "PreStopHook failed")
            except TimeoutError:
                log.info("pod %s: preStop of %s outlasted the grace period", self.uid, record.name)
            grace -= int(time.monotonic() - began)
        await self._stop_container(record.id, max(grace, MIN_GRACE))

    async def _stop_container(self, container_id: str, grace: int) -> None:
        try:
            await self.node.runtime.runtime.StopContainer(
                api_pb2.StopContainerRequest(container_id=container_id, timeout=grace),
                timeout=grace + _STOP_SLACK,
            )
        except grpc.aio.AioRpcError as exc:
            if not runtimestate.is_not_found(exc):
                raise

    async def _pod_ip(self, pod: Object) -> str:
        state = await runtimestate.inspect(self.node.runtime, self.uid)
        ips = await self._addresses(pod, state.sandbox.ips if state.sandbox else [])
        return ips[0] if ips else ""

    async def _addresses(self, pod: Object, sandbox_ips: list[str]) -> list[str]:
        """The pod's IPs as its probes, hooks and environment see them: its sandbox's, or the
        node's for a pod on the host's network (as its status reports)."""
        if (pod.get("spec") or {}).get("hostNetwork"):
            host_ip = await self.node.host_ip()
            return [host_ip] if host_ip else []
        return list(sandbox_ips)

    async def _kill_pod(self, pod: Object, state: PodRuntime) -> None:
        """Stop every running container (in parallel, each with its hooks), then the sandboxes."""
        await asyncio.gather(*(self._kill_container(pod, c) for c in state.running))
        for box in state.sandboxes:
            if box.ready:
                await self._stop_sandbox(box.id)

    async def _stop_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.node.runtime.runtime.StopPodSandbox(
                api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
            )
        except grpc.aio.AioRpcError as exc:
            if not runtimestate.is_not_found(exc):
                raise

    async def _terminate(
        self, pod: Object, state: PodRuntime, *, delete: bool, deadline: bool = False
    ) -> None:
        """Stop the pod for good, report its final status and, when it is being deleted,
        finish the deletion."""
        if state.running or any(box.ready for box in state.sandboxes):
            await self.probes.stop()
            await self._kill_pod(pod, state)
            state = await runtimestate.inspect(self.node.runtime, self.uid)
        if not self._torn_down:
            await self.node.volumes.teardown(self.uid)
            self._torn_down = True
        await self._write_status(pod, state, terminal=True, deadline=deadline)
        if delete and not self._deleted and not state.running:
            meta = pod["metadata"]
            try:
                await self.node.client.delete(
                    PODS, meta["namespace"], meta["name"], grace_period=0, uid=meta["uid"]
                )
            except ApiError as exc:
                if not (exc.not_found or exc.conflict):  # gone, or another pod of that name
                    raise
            self._deleted = True

    async def _remove(self, state: PodRuntime) -> None:
        """The pod is gone from the API: nothing of it stays on the node."""
        await self.probes.stop()
        runtime = self.node.runtime.runtime
        await asyncio.gather(*(self._stop_container(c.id, GONE_GRACE) for c in state.running))
        for box in state.sandboxes:
            await self._stop_sandbox(box.id)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await runtime.RemovePodSandbox(
                    api_pb2.RemovePodSandboxRequest(pod_sandbox_id=box.id)
                )
        for record in state.containers:
            await self._remove_container(record)
        await self.node.volumes.teardown(self.uid)
        await asyncio.to_thread(self._remove_files)
        self.node.puller.forget(self.uid)
        self.node.restarts.forget(f"{self.uid}_")
        if state.sandboxes or state.containers:
            log.info("pod %s: removed from the node", self.uid)

    def _remove_files(self) -> None:
        """The pod's directory, its logs and its cgroups."""
        shutil.rmtree(self.node.pods_dir / self.uid, ignore_errors=True)
        for directory in self.node.sandbox.logs_dir.glob(f"*_{self.uid}"):
            shutil.rmtree(directory, ignore_errors=True)
        sandbox.remove_pod_cgroups(self.node.sandbox.cgroup_parent, self.uid)

    async def _remove_container(self, record: ContainerRecord) -> None:
        try:
            await self.node.runtime.runtime.RemoveContainer(
                api_pb2.RemoveContainerRequest(container_id=record.id)
            )
        except grpc.aio.AioRpcError as exc:
            if not runtimestate.is_not_found(exc):
                raise
        if record.log_path:
            log_file = Path(record.log_path)
            for path in log_file.parent.glob(log_file.name + "*"):
                with contextlib.suppress(OSError):
                    path.unlink()

    async def _prune(self, state: PodRuntime) -> bool:
        """Keep one dead instance per container (for `logs --previous`), remove older ones;
        whether any was removed."""
        removed = False
        for name in {c.name for c in state.containers}:
            dead = [c for c in state.of(name) if c.state == runtimestate.EXITED]
            for record in dead[1:]:
                await self._remove_container(record)
                removed = True
        return removed

    async def _purge_init_containers(self, pod: Object, state: PodRuntime) -> None:
        """A new sandbox starts initialization over: the old init containers go."""
        names = {c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []}
        for record in state.containers:
            if record.name in names and not record.running:
                await self._remove_container(record)

    # ------------------------------------------------------------ status

    async def _write_status(
        self, pod: Object, state: PodRuntime, *, terminal: bool = False, deadline: bool = False
    ) -> None:
        inputs = Inputs(
            reasons=self.reasons,
            readiness=self.probes.readiness,
            started=self.probes.started,
            host_ip=await self.node.host_ip(),
            terminal=terminal,
            deadline_exceeded=deadline,
            runtime_name=self.node.runtime_name,
        )
        status = generate(pod, state, inputs)
        self.status = status
        written = await self.node.writer.write(pod, status)
        if written is not None and self.pod is not None and _newer(written, self.pod):
            self.pod = written

    def _probe_event(self, type_: str, reason: str, message: str) -> None:
        if self.pod is not None:
            self.node.event(self.pod, type_, reason, message)


_DEADLINE_EVENT = "Pod was active on the node longer than the specified deadline"


@dataclass
class _Start:
    """What starting the containers of one sync shares."""

    pod: Object
    state: PodRuntime
    sandbox_id: str
    config: api_pb2.PodSandboxConfig
    pod_ips: list[str]
