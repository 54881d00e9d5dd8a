"""The node agent's Node: registration, the heartbeat Lease and the node's status.

(upstream: pkg/kubelet/kubelet_node_status.go, pkg/kubelet/nodestatus/,
pkg/kubelet/nodelease/)

Registration creates the Node (labels, taints, addresses, capacity, node
info), or, when it exists already (a restart), brings its labels up to date;
taints are only given at creation, as upstream's --register-with-taints.

The Lease `kube-node-lease/<node>` is renewed every 10 s and lasts 40 s: it
is what the node lifecycle controller watches to know the agent is alive.

Status: every 2 s the agent looks at the machine and the runtime (CRI Status,
/proc/meminfo, the data folder's file system, the number of tasks; the image
list every 10 s) and compares the status it would post with the Node as
stored (a one-object informer keeps it). It posts when they differ — a
condition flipped, an address, the capacity or the images changed, or the
node lifecycle controller marked the conditions Unknown — and otherwise once
every 5 minutes (upstream's nodeStatusReportFrequency; the Lease carries the
heartbeat in between). `poke()` makes it look at once (the pod network was
just configured, say). A Node deleted while the agent runs is not registered
again until the agent restarts, as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

import kubik
from kubik import component
from kubik.api import builtin, meta, quantity, schemas
from kubik.client.api import ApiError, Client
from kubik.client.informer import Informer
from kubik.kubelet import machine
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient

log = logging.getLogger(__name__)

Object = dict[str, Any]

NODES = builtin.lookup("", "v1", "nodes")
LEASES = builtin.lookup("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40  # upstream's leaseDurationSeconds
LEASE_RENEW = 10.0  # a quarter of the duration, as upstream
STATUS_CHECK = 2.0  # how often the agent looks for a change to report
IMAGES_CHECK = 10.0  # how often the image list is read again
STATUS_REPORT = 300.0  # post at least this often even when nothing changed
MAX_IMAGES = 50  # upstream's nodeStatusMaxImages: the largest images only
RETRY = 1.0  # seconds between attempts after a failed API call
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

# The agent's version in the Kubernetes spelling, as `kubectl get nodes` shows it.
KUBELET_VERSION = f"{schemas.KUBERNETES_VERSION}+kubik-{kubik.__version__}"


@dataclass
class NodeConfig:
    """What the agent knows about the node before talking to anyone."""

    name: str
    address: str  # the InternalIP
    data_dir: str  # its file system is the node's ephemeral storage
    port: int = 10250  # the node API's port
    labels: dict[str, str] = field(default_factory=dict)  # added to the standard ones
    taints: list[Object] = field(default_factory=list)
    max_pods: int = 110
    reserved: dict[str, str] = field(default_factory=dict)  # kube- plus system-reserved
    control_plane: bool = False

    def all_labels(self) -> dict[str, str]:
        labels = {
            "beta.kubernetes.io/arch": machine.architecture(),
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": machine.architecture(),
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
        }
        if self.control_plane:
            labels[CONTROL_PLANE_LABEL] = "true"
        return {**labels, **self.labels}


class NodeRegistration(component.Component):
    """Registers the node, renews its Lease and posts its status while running."""

    name = "node"

    def __init__(
        self, client: Client, runtime: RuntimeClient, config: NodeConfig, nodes: Informer
    ) -> None:
        super().__init__()
        self.client = client
        self.runtime = runtime
        self.config = config
        self._nodes = nodes  # holds this node only (a metadata.name field selector)
        self._nodes.add_handlers(on_update=lambda old, new: self.poke())
        self._wake = asyncio.Event()
        self._uid = ""
        self._runtime_version = ""
        self._images: list[Object] = []
        self._images_at = float("-inf")
        self._reported_at = float("-inf")
        self._gone = False  # the Node was deleted under us (said once)
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        version = await self.runtime.version()
        self._runtime_version = f"{version.runtime_name}://{version.runtime_version}"
        node = await self._register()
        self._uid = node["metadata"]["uid"]
        self._reported_at = asyncio.get_running_loop().time()
        await self._renew()
        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="node-lease"),
            asyncio.create_task(self._status_loop(), name="node-status"),
        ]
        log.info("node %s registered (InternalIP %s)", self.config.name, self.config.address)
        self.ready.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def poke(self) -> None:
        """Look at the node's state now instead of at the next check."""
        self._wake.set()

    # ------------------------------------------------------ registration

    async def _register(self) -> Object:
        """Create the Node, or adopt the existing one; retried until the API answers."""
        while True:
            try:
                return await self._create_or_adopt()
            except (ApiError, OSError) as exc:
                log.warning("registering node %s failed: %s; retrying", self.config.name, exc)
                await asyncio.sleep(RETRY)

    async def _create_or_adopt(self) -> Object:
        observed = await self._observe()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.config.name, "labels": self.config.all_labels()},
            "spec": {"taints": self.config.taints} if self.config.taints else {},
            "status": self._status(observed, None),
        }
        try:
            return await self.client.create(NODES, node)
        except ApiError as exc:
            if not exc.already_exists:
                raise
        existing = await self.client.get(NODES, "", self.config.name)
        stale = {
            key: value
            for key, value in self.config.all_labels().items()
            if (existing["metadata"].get("labels") or {}).get(key) != value
        }
        if stale:
            existing = await self.client.patch(
                NODES, "", self.config.name, {"metadata": {"labels": stale}}
            )
        log.info("node %s exists already; adopted it", self.config.name)
        return await self._post(self._status(observed, existing))

    # ------------------------------------------------------------- lease

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW)
            while True:
                try:
                    await self._renew()
                    break
                except (ApiError, OSError) as exc:
                    log.warning("renewing the lease of node %s failed: %s", self.config.name, exc)
                    await asyncio.sleep(RETRY)

    async def _renew(self) -> None:
        now = meta.now_micro()
        name = self.config.name
        try:
            await self.client.patch(LEASES, LEASE_NAMESPACE, name, {"spec": {"renewTime": now}})
        except ApiError as exc:
            if not exc.not_found:
                raise
            await self.client.create(LEASES, self._lease(now))

    def _lease(self, now: str) -> Object:
        name = self.config.name
        owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self._uid}
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
            "spec": {
                "holderIdentity": name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            },
        }

    # ------------------------------------------------------------ status

    async def _status_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), STATUS_CHECK)
            self._wake.clear()
            try:
                await self._sync_status()
                self._gone = False
            except ApiError as exc:
                if not exc.not_found:
                    log.warning("posting the status of node %s failed: %s", self.config.name, exc)
                elif not self._gone:
                    self._gone = True
                    log.warning("node %s was deleted; not registering it again", self.config.name)
            except OSError as exc:
                log.warning("posting the status of node %s failed: %s", self.config.name, exc)

    async def _sync_status(self) -> None:
        stored = self._nodes.get(self.config.name)
        if stored is None:
            stored = await self.client.get(NODES, "", self.config.name)
        observed = await self._observe()
        wanted = self._status(observed, stored)
        due = asyncio.get_running_loop().time() - self._reported_at >= STATUS_REPORT
        if due or not _same_status(wanted, stored.get("status") or {}):
            await self._post(wanted)

    async def _post(self, status: Object) -> Object:
        node = await self.client.patch(
            NODES, "", self.config.name, {"status": status}, subresource="status"
        )
        self._reported_at = asyncio.get_running_loop().time()
        return node

    async def _observe(self) -> Object:
        """What the node looks like now, before times are put on its conditions."""
        strain = await asyncio.to_thread(machine.strain, self.config.data_dir)
        capacity = await asyncio.to_thread(
            machine.capacity, self.config.data_dir, max_pods=self.config.max_pods
        )
        return {
            "conditions": [
                _pressure(
                    "MemoryPressure",
                    strain.memory_pressure,
                    ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                    ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
                ),
                _pressure(
                    "DiskPressure",
                    strain.disk_pressure,
                    ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    ("KubeletHasDiskPressure", "kubelet has disk pressure"),
                ),
                _pressure(
                    "PIDPressure",
                    strain.pid_pressure,
                    ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
                ),
                await self._ready(),
            ],
            "capacity": capacity,
            "allocatable": machine.allocatable(capacity, self.config.reserved),
            "images": await self._image_list(),
        }

    async def _ready(self) -> Object:
        """Ready, from the runtime's own conditions (RuntimeReady and NetworkReady)."""
        problems = []
        try:
            answer = await self.runtime.runtime.Status(api_pb2.StatusRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            problems.append(f"container runtime is down: {exc.details()}")
        else:
            reported = {c.type: c for c in answer.status.conditions}
            for kind, what in (
                ("RuntimeReady", "container runtime not ready"),
                ("NetworkReady", "container runtime network not ready"),
            ):
                condition = reported.get(kind)
                if condition is None:
                    problems.append(f"{what}: {kind} is not reported")
                elif not condition.status:
                    problems.append(
                        f"{what}: {kind}=false reason:{condition.reason}"
                        f" message:{condition.message}"
                    )
        if problems:
            return _condition("Ready", "False", "KubeletNotReady", ", ".join(problems))
        return _condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")

    async def _image_list(self) -> list[Object]:
        now = asyncio.get_running_loop().time()
        if now - self._images_at < IMAGES_CHECK:
            return self._images
        try:
            answer = await self.runtime.images.ListImages(api_pb2.ListImagesRequest(), timeout=5)
        except grpc.aio.AioRpcError as exc:
            log.debug("listing images failed: %s", exc)
            return self._images
        images = sorted(answer.images, key=lambda image: image.size, reverse=True)
        self._images = [
            {"names": [*image.repo_digests, *image.repo_tags], "sizeBytes": image.size}
            for image in images[:MAX_IMAGES]
        ]
        self._images_at = now
        return self._images

    def _status(self, observed: Object, stored: Object | None) -> Object:
        """The status to post: `observed` with addresses, node info and condition times
        (a condition whose status stays keeps its lastTransitionTime)."""
        now = meta.now()
        previous = {
            c.get("type"): c for c in ((stored or {}).get("status") or {}).get("conditions") or []
        }
        conditions = []
        for condition in observed["conditions"]:
            before = previous.get(condition["type"]) or {}
            kept = before.get("status") == condition["status"] and before.get("lastTransitionTime")
            conditions.append(
                {
                    **condition,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": before["lastTransitionTime"] if kept else now,
                }
            )
        return {
            "capacity": observed["capacity"],
            "allocatable": observed["allocatable"],
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.config.address},
                {"type": "Hostname", "address": self.config.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.port}},
            "nodeInfo": {
                **machine.node_info(),
                "containerRuntimeVersion": self._runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
            },
            "images": observed["images"],
        }


def _condition(kind: str, status: str, reason: str, message: str) -> Object:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _pressure(kind: str, pressed: bool, fine: tuple[str, str], strained: tuple[str, str]) -> Object:
    reason, message = strained if pressed else fine
    return _condition(kind, "True" if pressed else "False", reason, message)


_CONDITION_FIELDS = ("type", "status", "reason", "message")


def _same_status(wanted: Object, stored: Object) -> bool:
    """Whether `stored` already says what `wanted` says, heartbeat times aside (conditions
    other agents add, and fields kubik does not post, are not compared)."""
    ours = {c["type"] for c in wanted["conditions"]}

    def conditions(status: Object) -> list[tuple]:
        return sorted(
            tuple(c.get(key, "") for key in _CONDITION_FIELDS)
            for c in status.get("conditions") or []
            if c.get("type") in ours
        )

    if conditions(wanted) != conditions(stored):
        return False
    return all(
        (stored.get(key) or None) == (value or None)
        for key, value in wanted.items()
        if key != "conditions"
    )


def parse_labels(items: list[str]) -> dict[str, str]:
    """--node-labels values ("a=b,c=d", repeatable) as a dict."""
    labels = {}
    for item in _split(items):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"node label {item!r} is not key=value")
        labels[key] = value
    return labels


def parse_taints(items: list[str]) -> list[Object]:
    """--register-with-taints values ("key=value:Effect" or "key:Effect", comma-separated)."""
    taints = []
    for item in _split(items):
        head, sep, effect = item.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"taint {item!r} is not key[=value]:Effect")
        key, _, value = head.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def parse_reserved(items: list[str]) -> dict[str, str]:
    """--kube-reserved / --system-reserved values ("cpu=200m,memory=500Mi"), summed."""
    totals: dict[str, Any] = {}
    for item in _split(items):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"reservation {item!r} is not resource=quantity")
        amount = quantity.parse(value)
        totals[name] = totals[name] + amount if name in totals else amount
    return {name: str(amount) for name, amount in totals.items()}


def _split(items: list[str]) -> list[str]:
    return [part.strip() for item in items for part in item.split(",") if part.strip()]
