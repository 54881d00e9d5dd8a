"""The node agent: every part a node runs, started in order and stopped in reverse.

1. credentials (issued by the server's CA in-process, by joining with the
   node token, or given as files) and an API client with them: an agent
   that cannot join fails before it starts anything;
2. the container runtime: a containerd of its own under `<data-dir>/agent/containerd`
   (or an existing CRI endpoint), and the offline images imported into it;
3. the Node: registration, Lease, status (node.py), and the pod network
   once the node has a pod CIDR (network.py);
4. the pods bound to the node (podmanager.py);
5. the node API on --kubelet-port (server.py): logs, exec, attach, port-forward.

Stopping leaves the pods running (their shims outlive containerd), as a
stopped kubelet does: a restarted agent adopts them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kubik import component
from kubik.client.api import Client
from kubik.client.informer import Informer
from kubik.kubelet import defaults, images, logrotation
from kubik.kubelet.containerd import Containerd
from kubik.kubelet.credentials import NodeCredentials
from kubik.kubelet.cri.client import RuntimeClient
from kubik.kubelet.network import PodNetwork
from kubik.kubelet.node import KUBELET_VERSION, NODES, NodeConfig, NodeRegistration
from kubik.kubelet.objects import ApiObjects
from kubik.kubelet.podmanager import PodManager
from kubik.kubelet.server import NodeServer
from kubik.kubelet.volumes.manager import VolumeManager

log = logging.getLogger(__name__)

DEFAULT_CGROUP_ROOT = defaults.CGROUP_ROOT
DEFAULT_CLUSTER_DNS = defaults.CLUSTER_DNS
DEFAULT_CLUSTER_DOMAIN = defaults.CLUSTER_DOMAIN


@dataclass
class AgentConfig:
    data_dir: str
    node: NodeConfig
    runtime_endpoint: str | None = None  # None: run our own containerd
    images_dir: str = images.DEFAULT_IMAGES_DIR
    cgroup_root: str = DEFAULT_CGROUP_ROOT
    cluster_dns: list[str] = field(default_factory=lambda: [DEFAULT_CLUSTER_DNS])
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    container_log_max_size: str = logrotation.DEFAULT_MAX_SIZE
    container_log_max_files: int = logrotation.DEFAULT_MAX_FILES
    bind_address: str = "0.0.0.0"  # where the node API listens

    @property
    def agent_dir(self) -> str:
        return os.path.join(self.data_dir, "agent")


class Agent(component.Component):
    """`credentials()` is awaited when the agent starts (inside `kubik server`, after the
    API server has made its CA)."""

    name = "agent"

    def __init__(
        self, config: AgentConfig, credentials: Callable[[], Awaitable[NodeCredentials]]
    ) -> None:
        super().__init__()
        self.config = config
        self._credentials = credentials
        self.containerd = Containerd(
            os.path.join(config.agent_dir, "containerd"), endpoint=config.runtime_endpoint
        )
        self.runtime: RuntimeClient | None = None
        self.client: Client | None = None
        self._nodes: Informer | None = None
        self._parts: list[component.Component] = []  # started, in order

    async def start(self) -> None:
        config = self.config
        os.makedirs(config.agent_dir, exist_ok=True)
        credentials = await self._credentials()
        await self._start_part(self.containerd)
        self.runtime = RuntimeClient(self.containerd.socket)
        await images.import_dir(self.containerd.socket, config.images_dir)
        self.client = Client.from_kubeconfig(
            credentials.kubeconfig, user_agent=f"kubelet/{KUBELET_VERSION}"
        )
        self._nodes = Informer(
            self.client, NODES, field_selector=f"metadata.name={config.node.name}"
        )
        node = NodeRegistration(self.client, self.runtime, config.node, self._nodes)
        network = PodNetwork(
            config.node.name,
            self._nodes,
            conf_dir=self.containerd.cni_conf_dir,
            ipam_dir=os.path.join(config.agent_dir, "cni", "ipam"),
            on_configured=node.poke,
        )
        await self._start_part(node)
        self._nodes.start()
        await self._nodes.synced.wait()  # pods are admitted against the Node: have it first
        await self._start_part(network)
        objects = ApiObjects(self.client)
        pods = PodManager(
            self.client,
            self.runtime,
            config.node.name,
            root_dir=config.agent_dir,
            volumes=VolumeManager(
                os.path.join(config.agent_dir, "pods"), objects=objects, client=self.client
            ),
            objects=objects,
            cluster_dns=config.cluster_dns,
            cluster_domain=config.cluster_domain,
            cgroup_parent=config.cgroup_root,
            container_log_max_size=config.container_log_max_size,
            container_log_max_files=config.container_log_max_files,
            node=lambda: self._nodes.get(config.node.name) if self._nodes else None,
        )
        await self._start_part(pods)
        await self._start_part(
            NodeServer(
                self.runtime,
                pods.pods,
                credentials.server_context(),
                config.bind_address,
                config.node.port,
                node_name=config.node.name,
                root_dir=config.data_dir,
            )
        )
        log.info("node agent for %s is running", config.node.name)
        self.ready.set()

    async def _start_part(self, part: component.Component) -> None:
        self._parts.append(part)  # stopped even if its start fails halfway
        await part.start()
        await part.ready.wait()

    async def stop(self) -> None:
        for part in reversed(self._parts[1:]):
            await self._stop_part(part)
        if self._nodes is not None:
            await self._nodes.stop()
        if self.client is not None:
            await self.client.close()
        if self.runtime is not None:
            await self.runtime.close()
        if self._parts:
            await self._stop_part(self._parts[0])  # containerd, last
        self._parts = []

    @staticmethod
    async def _stop_part(part: component.Component) -> None:
        try:
            await part.stop()
        except Exception:
            log.exception("%s did not stop cleanly", part.name)
