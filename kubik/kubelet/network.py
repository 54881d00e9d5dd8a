"""The pod network of one node: a CNI conflist from the node's pod CIDR.

The node IPAM controller gives each Node a /24 (`spec.podCIDR`). Once the
Node has one, the agent writes `10-kubik.conflist` into containerd's CNI
folder: a `bridge` (cni0, the pods' gateway, hairpin mode so a pod can reach
itself through a Service, no masquerading: pod traffic stays inside the
cluster's network), host-local IPAM handing out the pod CIDR (its state in
the agent's own folder, not the machine's /var/lib/cni/networks), then
`portmap` for hostPort and `loopback`. containerd watches the folder and
turns NetworkReady true; until then only host-network pods can run.

The pod CIDR never changes once set, so the file is written once per start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubik import component
from kubik.client.informer import Informer

log = logging.getLogger(__name__)

Object = dict[str, Any]

NETWORK_NAME = "kubik"
BRIDGE = "cni0"
CONFLIST = "10-kubik.conflist"
CNI_VERSION = "1.0.0"


def conflist(pod_cidr: str, ipam_dir: str) -> Object:
    """The CNI network configuration for pods in `pod_cidr`."""
    network = ipaddress.ip_network(pod_cidr)
    default = "0.0.0.0/0" if network.version == 4 else "::/0"
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{"subnet": str(network)}]],
                    "routes": [{"dst": default}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }


def write_conflist(conf_dir: str | os.PathLike[str], pod_cidr: str, ipam_dir: str) -> Path:
    """Write the conflist atomically (containerd may read the folder at any moment);
    returns its path. A file already saying the same is left alone."""
    folder = Path(conf_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CONFLIST
    text = json.dumps(conflist(pod_cidr, ipam_dir), indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return path
    # a dot file without a CNI extension: containerd ignores it until it is renamed
    scratch = folder / f".{CONFLIST}.tmp"
    scratch.write_text(text)
    os.replace(scratch, path)
    return path


def pod_cidr_of(node: Object | None) -> str:
    spec = (node or {}).get("spec") or {}
    cidrs = spec.get("podCIDRs") or []
    return spec.get("podCIDR") or (cidrs[0] if cidrs else "")


class PodNetwork(component.Component):
    """Writes the conflist as soon as the node (seen through `nodes`, an informer holding
    this node only) has a pod CIDR, then calls `on_configured` (to report readiness)."""

    name = "pod-network"

    def __init__(
        self,
        node_name: str,
        nodes: Informer,
        *,
        conf_dir: str | os.PathLike[str],
        ipam_dir: str,
        on_configured: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__()
        self.node_name = node_name
        self.conf_dir = conf_dir
        self.ipam_dir = ipam_dir
        self.pod_cidr = ""
        self._on_configured = on_configured
        self._seen = asyncio.Event()
        nodes.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new))
        self._task: asyncio.Task | None = None

    def _changed(self, node: Object) -> None:
        if node["metadata"]["name"] == self.node_name and pod_cidr_of(node):
            self.pod_cidr = self.pod_cidr or pod_cidr_of(node)
            self._seen.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._configure(), name="pod-network")
        self.ready.set()  # pods on the host network need no CNI: nothing waits for this

    async def _configure(self) -> None:
        await self._seen.wait()
        os.makedirs(self.ipam_dir, exist_ok=True)
        path = await asyncio.to_thread(write_conflist, self.conf_dir, self.pod_cidr, self.ipam_dir)
        log.info("pod network %s configured in %s", self.pod_cidr, path)
        self._on_configured()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
