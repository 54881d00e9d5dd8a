"""Hollow nodes: one process that registers many nodes and keeps them alive (kubemark, kwok).

Each node is a real Node object (capacity, labels, addresses that are data
only, node info, the kubelet's conditions) with its Lease in
kube-node-lease. One loop renews every lease each `heartbeat` seconds, at
most `concurrency` requests at a time, and reposts a node's status when a
condition is not what the kubelet reports (the node lifecycle controller
marked it Unknown) or `status_interval` has passed (upstream's node status
report frequency, 5 minutes). The pods bound to the nodes are run by one
`HollowKubelet`. Stopping leaves the nodes in place, to go NotReady as a
dead kubelet's would, unless `delete_on_stop`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from kubik import component
from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.controllers.base import Context
from kubik.hollow.kubelet import HollowKubelet
from kubik.hollow.network import NodeNetwork

log = logging.getLogger(__name__)

NODES = builtin.lookup("", "v1", "nodes")
LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # upstream's node lease duration
VERSION = "v1.32.0-hollow"
ZONES = ("zone-a", "zone-b", "zone-c")
EPHEMERAL_STORAGE = "100Gi"

# The kubelet's node conditions: type → (status, reason, message).
CONDITIONS = {
    "MemoryPressure": (
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
}

Object = dict[str, Any]


class HollowNodes(component.Component):
    """`count` nodes named <name_prefix><n>. `client`'s connection pool should hold
    `concurrency` connections and more, or heartbeats open and close connections."""

    name = "hollow-nodes"

    def __init__(
        self,
        client: Client,
        *,
        count: int,
        name_prefix: str = "hollow-",
        cpu: str = "4",
        memory: str = "16Gi",
        pods: int = 110,
        labels: dict[str, str] | None = None,
        start_delay: float = 0.5,
        ready_delay: float = 0.5,
        fail_ratio: float = 0.0,
        heartbeat: float = 10.0,
        status_interval: float = 300.0,
        delete_on_stop: bool = False,
        concurrency: int = 50,
    ) -> None:
        super().__init__()
        self.client = client
        self.names = [f"{name_prefix}{i}" for i in range(count)]
        self._networks = {name: NodeNetwork(i) for i, name in enumerate(self.names)}
        self._capacity = {
            "cpu": cpu,
            "memory": memory,
            "pods": str(pods),
            "ephemeral-storage": EPHEMERAL_STORAGE,
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        self._labels = dict(labels or {})
        self._heartbeat = heartbeat
        self._status_interval = status_interval
        self._delete_on_stop = delete_on_stop
        self._concurrency = max(1, concurrency)
        self._boot_id = str(uuid.uuid4())
        self._uids: dict[str, str] = {}  # node → uid, the owner of its lease
        self._reported: dict[str, float] = {}  # node → loop time its status was last posted
        self._informers = InformerFactory(client)
        self._nodes = self._informers.informer(NODES)
        # hollow pods record no events (thousands of them would be costly): the recorder the
        # controller machinery wants is never started
        self._kubelet = HollowKubelet(
            Context(client, self._informers, EventRecorder(client, "kubelet")),
            self._networks,
            start_delay=start_delay,
            ready_delay=ready_delay,
            fail_ratio=fail_ratio,
        )
        self._kubelet.setup()
        self._tasks: list[asyncio.Task] = []

    # --------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self._each(self._register)
        await self._each(self._renew)
        self._informers.start()
        await self._informers.wait_synced()
        self._tasks = [
            asyncio.create_task(self._kubelet.run(self._kubelet.workers), name="hollow-kubelet"),
            asyncio.create_task(self._heartbeats(), name="hollow-heartbeats"),
        ]
        log.info("%d hollow nodes registered", len(self.names))
        self.ready.set()

    async def stop(self) -> None:
        await self._kubelet.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._informers.stop()
        if self._delete_on_stop:
            await self._each(self._unregister)

    # ------------------------------------------------------ registration

    def _node_object(self, name: str) -> Object:
        """The Node a kubelet would register for `name`."""
        index = self._networks[name].index
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "hollow",
            "topology.kubernetes.io/zone": ZONES[index % len(ZONES)],
            **self._labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            # Its own pod CIDR, so the node IPAM controller's range is left to real nodes.
            "spec": {"podCIDR": self._networks[name].cidr, "podCIDRs": [self._networks[name].cidr]},
            "status": self._status(name, None),
        }

    async def _register(self, name: str) -> None:
        try:
            node = await self.client.create(NODES, self._node_object(name))
        except ApiError as exc:
            if not exc.already_exists:
                raise
            node = await self.client.get(NODES, "", name)
            await self._post_status(name, node)
        self._uids[name] = node["metadata"]["uid"]
        self._reported[name] = asyncio.get_running_loop().time()

    async def _unregister(self, name: str) -> None:
        for resource, namespace in ((LEASES, LEASE_NAMESPACE), (NODES, "")):
            try:
                await self.client.delete(resource, namespace, name)
            except ApiError as exc:
                if not exc.not_found:
                    log.warning("deleting hollow node %s: %s", name, exc)

    # -------------------------------------------------------- heartbeats

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._each(self._beat)
            except Exception:
                log.exception("hollow node heartbeats failed; trying again next beat")

    async def _beat(self, name: str) -> None:
        node = self._nodes.get(name)
        if node is None:
            return  # deleted: a kubelet does not register its node again
        try:
            await self._renew(name)
            if self._status_due(name, node):
                await self._post_status(name, node)
        except ApiError as exc:
            log.warning("hollow node %s: %s", name, exc)

    async def _renew(self, name: str) -> None:
        now = meta.now_micro()
        try:
            await self.client.patch(LEASES, LEASE_NAMESPACE, name, {"spec": {"renewTime": now}})
        except ApiError as exc:
            if not exc.not_found:
                raise
            await self.client.create(LEASES, self._lease(name, now))

    def _lease(self, name: str, now: str) -> Object:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": LEASE_NAMESPACE,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self._uids[name]}
                ],
            },
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            },
        }

    def _status_due(self, name: str, node: Object) -> bool:
        elapsed = asyncio.get_running_loop().time() - self._reported.get(name, 0.0)
        if elapsed >= self._status_interval:
            return True
        current = {c.get("type"): c.get("status") for c in _conditions_of(node)}
        return any(current.get(kind) != want[0] for kind, want in CONDITIONS.items())

    async def _post_status(self, name: str, node: Object) -> None:
        await self.client.patch(
            NODES,
            "",
            name,
            {"status": self._status(name, node)},
            patch_type="strategic",
            subresource="status",
        )
        self._reported[name] = asyncio.get_running_loop().time()

    # ------------------------------------------------------------ status

    def _status(self, name: str, node: Object | None) -> Object:
        """The node's status as its kubelet reports it, against the node as stored (None
        when registering): a condition that keeps its status keeps its transition time."""
        now = meta.now()
        current = {c.get("type"): c for c in _conditions_of(node)}
        conditions = []
        for kind, (value, reason, message) in CONDITIONS.items():
            previous = current.get(kind) or {}
            same = previous.get("status") == value and previous.get("lastTransitionTime")
            conditions.append(
                {
                    "type": kind,
                    "status": value,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": previous["lastTransitionTime"] if same else now,
                    "reason": reason,
                    "message": message,
                }
            )
        return {
            "capacity": dict(self._capacity),
            "allocatable": dict(self._capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self._networks[name].ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "bootID": self._boot_id,
                "kernelVersion": "6.1.0-hollow",
                "osImage": "Hollow Linux (kubik)",
                "containerRuntimeVersion": "hollow://1.0",
                "kubeletVersion": VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    # ----------------------------------------------------------- batching

    async def _each(self, work: Callable[[str], Awaitable[None]]) -> None:
        """`work(name)` for every node, `concurrency` at a time; the first failure cancels
        the rest and is raised."""
        pending = iter(self.names)

        async def worker() -> None:
            for name in pending:
                await work(name)

        workers = [
            asyncio.create_task(worker()) for _ in range(min(self._concurrency, len(self.names)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()


def _conditions_of(node: Object | None) -> list[Object]:
    return ((node or {}).get("status") or {}).get("conditions") or []
