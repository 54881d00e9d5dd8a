"""The kubelet's pod work, done on paper for every hollow node of a process at once.

One pod informer (all pods; a handler keeps those bound to one of our nodes)
feeds one work queue. A bound pod goes Pending → Running (after the start
delay: IPs, start time, containers running) → Ready (after the ready delay).
A pod ends instead when the annotation `hollow.kubik.dev/exit-code` says
so (at start, or as soon as it is added to a running pod), or at start when
the fail ratio picks it (exit code 1). A pod being deleted is stopped like
a kubelet stops it: its containers terminate, then it is deleted with a
zero grace period. Hollow pods record no events, to keep thousands cheap.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers.base import Context, Controller
from kubik.hollow import podstatus
from kubik.hollow.network import NodeNetwork

log = logging.getLogger(__name__)

PODS = builtin.lookup("", "v1", "pods")
EXIT_CODE = "hollow.kubik.dev/exit-code"
# a stopped hollow container acts like one killed after its grace period (128 + SIGKILL)
STOPPED_EXIT_CODE = 137

Object = dict[str, Any]


@dataclass
class _Tracked:
    """What this process remembers of one pod: its node, and when it entered its stage."""

    uid: str
    node: str
    since: float


class HollowKubelet(Controller):
    name = "hollow-kubelet"
    workers = 32

    def __init__(
        self,
        context: Context,
        networks: dict[str, NodeNetwork],
        *,
        start_delay: float,
        ready_delay: float,
        fail_ratio: float,
    ) -> None:
        super().__init__(context)
        self._networks = networks  # node name → its addresses; the nodes this kubelet plays
        self._start_delay = start_delay
        self._ready_delay = ready_delay
        self._fail_ratio = fail_ratio
        self._tracked: dict[str, _Tracked] = {}

    def setup(self) -> None:
        self.pods = self.informers.informer(PODS)
        self.pods.add_handlers(
            on_add=self._changed,
            on_update=lambda old, new: self._changed(new),
            on_delete=self._changed,
        )

    def _changed(self, pod: Object) -> None:
        if _node_of(pod) in self._networks:
            self.enqueue(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        node = _node_of(pod) if pod is not None else ""
        network = self._networks.get(node)
        if pod is None or network is None:
            self._drop(key)
            return
        tracked = self._track(key, pod, node, network)
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if pod["metadata"].get("deletionTimestamp"):
            await self._stop(pod, phase)
        elif phase in podstatus.TERMINAL:
            self._drop(key)
        elif phase == "Pending":
            await self._start(key, pod, network, tracked)
        else:
            await self._advance(key, pod, tracked)

    # ------------------------------------------------------------ stages

    async def _start(self, key: str, pod: Object, network: NodeNetwork, tracked: _Tracked) -> None:
        if self._wait(key, tracked, self._start_delay):
            return
        spec = pod.get("spec") or {}
        pod_ip = network.ip if spec.get("hostNetwork") else network.assign(key)
        now = meta.now()
        status = podstatus.running(pod, host_ip=network.ip, pod_ip=pod_ip, now=now)
        code = _exit_code(pod)
        if code is None and self._fails(pod):
            code = 1
        if code is not None:
            status = podstatus.terminated({**pod, "status": status}, code, now=now)
        await self._write(pod, status)
        tracked.since = asyncio.get_running_loop().time()

    async def _advance(self, key: str, pod: Object, tracked: _Tracked) -> None:
        """A running pod: it ends when told to, becomes ready after the ready delay, and
        follows its readiness gates once ready."""
        code = _exit_code(pod)
        if code is not None:
            await self._write(pod, podstatus.terminated(pod, code, now=meta.now()))
        elif podstatus.condition(pod, "ContainersReady") != "True":
            if not self._wait(key, tracked, self._ready_delay):
                await self._write(pod, podstatus.ready(pod, now=meta.now()))
        elif (podstatus.condition(pod, "Ready") == "True") == bool(podstatus.unmet_gates(pod)):
            await self._write(pod, podstatus.ready(pod, now=meta.now()))

    async def _stop(self, pod: Object, phase: str) -> None:
        """Terminate the containers of a pod being deleted, then finish its deletion."""
        metadata = pod["metadata"]
        if phase == "Running":
            stopped = podstatus.terminated(pod, STOPPED_EXIT_CODE, now=meta.now())
            if await self._write(pod, stopped) is None:
                return
        if metadata.get("deletionGracePeriodSeconds") == 0:
            return  # deleted already; only finalizers hold the pod
        try:
            await self.client.delete(
                PODS, metadata["namespace"], metadata["name"], grace_period=0, uid=metadata["uid"]
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):  # gone, or a new pod of that name
                raise

    # ----------------------------------------------------------- helpers

    def _track(self, key: str, pod: Object, node: str, network: NodeNetwork) -> _Tracked:
        uid = pod["metadata"].get("uid", "")
        tracked = self._tracked.get(key)
        if tracked is None or tracked.uid != uid:
            self._drop(key)
            tracked = _Tracked(uid, node, asyncio.get_running_loop().time())
            self._tracked[key] = tracked
            pod_ip = (pod.get("status") or {}).get("podIP")
            if pod_ip:
                network.hold(key, pod_ip)  # started before this process did
        return tracked

    def _drop(self, key: str) -> None:
        tracked = self._tracked.pop(key, None)
        if tracked is not None and tracked.node in self._networks:
            self._networks[tracked.node].release(key)

    def _wait(self, key: str, tracked: _Tracked, delay: float) -> bool:
        """True (and the key queued again for then) while the stage's delay has not passed."""
        left = tracked.since + delay - asyncio.get_running_loop().time()
        if left > 0:
            self.queue.add_after(key, left)
            return True
        return False

    def _fails(self, pod: Object) -> bool:
        """Whether the fail ratio picks this pod: decided by its uid, so the same every time."""
        uid = pod["metadata"].get("uid", "")
        return zlib.crc32(uid.encode()) / 2**32 < self._fail_ratio

    async def _write(self, pod: Object, status: Object) -> Object | None:
        """The pod with its new status (None when it is gone); a conflict raises, to retry."""
        try:
            return await self.client.update_status(PODS, {**pod, "status": status})
        except ApiError as exc:
            if exc.not_found:
                return None
            raise


def _node_of(pod: Object) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def _exit_code(pod: Object) -> int | None:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(EXIT_CODE)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        log.warning("pod %s: %s=%r is not an integer; ignored", key_of(pod), EXIT_CODE, value)
        return None
