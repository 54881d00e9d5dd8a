"""The pods bound to this node: one worker per pod, fed by the API and by the runtime.

An informer watches the pods whose spec.nodeName is this node; each pod uid
gets a `PodWorker` (podworker.py) that syncs it one step at a time. The
runtime is polled every second (ListPodSandbox + ListContainers, cheap on a
node's few dozen containers): a pod whose sandboxes or containers changed
state wakes its worker, and a pod the runtime holds but the API does not
(left from before a restart, or deleted while the kubelet was away) gets a
worker that removes it. The first poll, right after the informer's first
listing, is the reconciliation at start: pods running before are adopted by
their workers as found, strays torn down, and containers that died meanwhile
restarted by their restart policy. `pods()` serves the node API.

A pod new to the node is admitted first (admission.py) against the Node
(`node()`, the agent's cached copy) and the pods already running here; a
rejected pod gets no worker: its Failed status is written once, and its
deletion finished when it is deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from kubik import component
from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import Informer
from kubik.kubelet import admission, runtimestate
from kubik.kubelet.backoff import Backoff
from kubik.kubelet.containerconfig import memory_capacity
from kubik.kubelet.logrotation import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LogRotator, parse_size
from kubik.kubelet.objects import ApiObjects
from kubik.kubelet.podworker import NodeContext, PodWorker
from kubik.kubelet.pull import ImagePuller
from kubik.kubelet.sandbox import SandboxSettings
from kubik.kubelet.status import TERMINAL, StatusWriter

log = logging.getLogger(__name__)

PODS = builtin.lookup("", "v1", "pods")
SERVICES = builtin.lookup("", "v1", "services")
NODES = builtin.lookup("", "v1", "nodes")
Object = dict[str, Any]

POLL_INTERVAL = 1.0
REJECT_RETRIES = 5
BACKOFF_GC = 60.0
NODE_IP_TTL = 60.0


class PodManager(component.Component):
    name = "pod-manager"

    def __init__(
        self,
        client: Client,
        runtime: Any,
        node_name: str,
        *,
        root_dir: str | Path,
        volumes: Any,
        cluster_dns: list[str] | str | None,
        cluster_domain: str,
        cgroup_parent: str,
        objects: Any = None,
        resolv_conf: str = "/etc/resolv.conf",
        container_log_max_size: str | int = DEFAULT_MAX_SIZE,
        container_log_max_files: int = DEFAULT_MAX_FILES,
        poll_interval: float = POLL_INTERVAL,
        node: Callable[[], Object | None] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.runtime = runtime
        self.node_name = node_name
        self.root_dir = Path(root_dir)
        self._volumes = volumes
        self._objects = objects or ApiObjects(client)
        dns = [cluster_dns] if isinstance(cluster_dns, str) else list(cluster_dns or [])
        self._sandbox = SandboxSettings(
            logs_dir=self.root_dir / "logs",
            cluster_dns=dns,
            cluster_domain=cluster_domain,
            cgroup_parent=cgroup_parent,
            resolv_conf=resolv_conf,
        )
        self._poll_interval = poll_interval
        self.rotator = LogRotator(
            runtime,
            max_size=parse_size(container_log_max_size),
            max_files=container_log_max_files,
        )
        self._recorder = EventRecorder(client, "kubelet", host=node_name)
        self._pods = Informer(client, PODS, field_selector=f"spec.nodeName={node_name}")
        self._services = Informer(client, SERVICES)
        self._workers: dict[str, PodWorker] = {}
        self._node_object = node  # None: every pod is admitted
        self._rejected: set[str] = set()  # uids of pods turned away
        self._background: set[asyncio.Task] = set()
        self._node: NodeContext | None = None
        self._poll_task: asyncio.Task | None = None
        self._node_ip = ("", 0.0)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        version = await self.runtime.wait_ready(timeout=60)
        puller_events = self._event
        self._node = NodeContext(
            client=self.client,
            runtime=self.runtime,
            recorder=self._recorder,
            node_name=self.node_name,
            root_dir=self.root_dir,
            volumes=self._volumes,
            objects=self._objects,
            puller=ImagePuller(self.runtime, puller_events, self._secret),
            restarts=Backoff(),
            writer=StatusWriter(self.client),
            sandbox=self._sandbox,
            services=self._services_for,
            host_ip=self.host_ip,
            runtime_name=version.runtime_name or "containerd",
            memory=memory_capacity(),
        )
        (self.root_dir / "pods").mkdir(parents=True, exist_ok=True)
        self._sandbox.logs_dir.mkdir(parents=True, exist_ok=True)
        self._recorder.start()
        self._pods.add_handlers(
            on_add=self._changed,
            on_update=lambda old, new: self._changed(new),
            on_delete=self._gone,
        )
        self._services.start()
        self._pods.start()
        await asyncio.gather(self._pods.synced.wait(), self._services.synced.wait())
        self._poll_task = asyncio.create_task(self._poll_loop(), name="pod-manager poll")
        self.rotator.start()
        self.ready.set()

    async def stop(self) -> None:
        """Stop working; the pods keep running (a restarted kubelet adopts them)."""
        await component.cancel_and_wait(self._poll_task)
        await self.rotator.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pods.stop()
        await self._services.stop()
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            await worker.stop()
        await self._recorder.stop()

    # ------------------------------------------------------------ workers

    def pods(self) -> list[Object]:
        """The pods this node runs, with the status the kubelet last generated."""
        found = []
        for worker in list(self._workers.values()):
            if worker.pod is None:
                continue
            found.append({**worker.pod, "status": worker.status or worker.pod.get("status") or {}})
        return found

    def _changed(self, pod: Object) -> None:
        uid = pod["metadata"].get("uid", "")
        worker = self._workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if uid not in self._rejected and not admission.was_rejected(pod):
            rejection = self._admit(pod)
            if rejection is None:
                self._spawn(uid, pod)
                return
            self._run_in_background(self._reject(pod, rejection))
        self._rejected.add(uid)
        if pod["metadata"].get("deletionTimestamp"):
            self._run_in_background(self._finish_deletion(pod))

    def _gone(self, pod: Object) -> None:
        uid = pod["metadata"].get("uid", "")
        self._rejected.discard(uid)
        worker = self._workers.get(uid)
        if worker is not None:
            worker.update(None)

    def _spawn(self, uid: str, pod: Object | None) -> None:
        assert self._node is not None
        self._rejected.discard(uid)  # found in the runtime after all: its worker removes it
        worker = PodWorker(uid, self._node, pod, on_exit=self._exited)
        self._workers[uid] = worker
        worker.start()

    def _exited(self, worker: PodWorker) -> None:
        if self._workers.get(worker.uid) is worker:
            del self._workers[worker.uid]

    def _known(self, uid: str) -> Object | None:
        for pod in self._pods.list():
            if pod["metadata"].get("uid") == uid:
                return pod
        return None

    # ------------------------------------------------------------ admission

    def _admit(self, pod: Object) -> admission.Rejection | None:
        """Why the node cannot take the pod, if it cannot. Pods being deleted or finished are
        not checked, nor those started before (by this kubelet, before a restart)."""
        status = pod.get("status") or {}
        if (
            self._node_object is None
            or pod["metadata"].get("deletionTimestamp")
            or status.get("phase") in TERMINAL
            or status.get("startTime")
        ):
            return None
        node = self._node_object()
        if node is None:
            return None
        uid = pod["metadata"].get("uid")
        others = [
            other
            for other in self._pods.list()
            if other["metadata"].get("uid") != uid and self._active(other)
        ]
        return admission.admit(pod, node, others)

    def _active(self, pod: Object) -> bool:
        """Whether the pod counts against the node's resources: admitted and not finished."""
        uid = pod["metadata"].get("uid", "")
        status = pod.get("status") or {}
        if uid in self._rejected or status.get("phase") in TERMINAL:
            return False
        return uid in self._workers or bool(status.get("startTime"))

    async def _reject(self, pod: Object, rejection: admission.Rejection) -> None:
        assert self._node is not None
        meta = pod["metadata"]
        log.info("pod %s/%s rejected: %s", meta.get("namespace"), meta.get("name"), rejection)
        self._event(pod, "Warning", rejection.reason, rejection.message)
        status = admission.rejected_status(pod, rejection)
        for attempt in range(REJECT_RETRIES):
            try:
                await self._node.writer.write(pod, status)
                return
            except ApiError as exc:
                log.warning("writing the status of rejected pod %s: %s", meta.get("uid"), exc)
                await asyncio.sleep(2**attempt)

    async def _finish_deletion(self, pod: Object) -> None:
        """A rejected pod never ran: its deletion is finished at once (its deletion arrives
        as an update, which may come before or after its status is written)."""
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS, meta["namespace"], meta["name"], grace_period=0, uid=meta["uid"]
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                log.warning("deleting rejected pod %s: %s", meta.get("uid"), exc)

    def _run_in_background(self, work) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ the runtime's side

    async def _poll_loop(self) -> None:
        seen: dict[str, tuple] = {}
        last_gc = time.monotonic()
        while True:
            try:
                listing = await runtimestate.list_node(self.runtime)
            except grpc.aio.AioRpcError as exc:
                log.debug("listing the runtime: %s", exc.details())
            else:
                current = {uid: listing.fingerprint(uid) for uid in listing.uids()}
                for uid in set(current) | set(seen):
                    if current.get(uid) != seen.get(uid):
                        self._poke(uid, present=uid in current)
                seen = current
            if time.monotonic() - last_gc > BACKOFF_GC:
                last_gc = time.monotonic()
                assert self._node is not None
                self._node.restarts.gc()
                self._node.puller.backoff.gc()
            await asyncio.sleep(self._poll_interval)

    def _poke(self, uid: str, *, present: bool) -> None:
        """Wake the pod's worker; a pod the runtime holds without one gets one."""
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wake()
            return
        if not present:
            return
        pod = self._known(uid)
        if pod is None:
            log.info("pod %s is in the runtime but not bound to this node: removing it", uid)
        self._spawn(uid, pod)

    # ------------------------------------------------------------ what workers ask

    def _event(self, pod: Object, type_: str, reason: str, message: str) -> None:
        assert self._node is not None
        self._node.event(pod, type_, reason, message)

    async def _secret(self, namespace: str, name: str) -> Object | None:
        return await self._objects.get("secrets", namespace, name)

    def _services_for(self, namespace: str) -> list[Object]:
        services = list(self._services.list(namespace))
        if namespace != "default":
            master = self._services.get("default/kubernetes")
            if master is not None:
                services.append(master)
        return services

    async def host_ip(self) -> str:
        """The node's InternalIP (cached a minute), for hostIP and host-network pods."""
        ip, fetched = self._node_ip
        if ip and time.monotonic() - fetched < NODE_IP_TTL:
            return ip
        try:
            node = await self.client.get(NODES, "", self.node_name)
        except ApiError as exc:
            log.debug("reading node %s: %s", self.node_name, exc)
            return ip
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP":
                ip = address.get("address", "")
                break
        self._node_ip = (ip, time.monotonic())
        return ip
