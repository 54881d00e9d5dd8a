"""The node IPAM controller: every node gets its own pod CIDR.

(upstream: pkg/controller/nodeipam, the range allocator)

The cluster CIDR (KUBIK_CLUSTER_CIDR, default 10.42.0.0/16 as k3s; `kubik
server --cluster-cidr` sets it) is cut into blocks of KUBIK_NODE_CIDR_MASK_SIZE
bits (default 24: 254 pods per node). A node without `spec.podCIDR` gets the
next free block, written to `spec.podCIDR` and `spec.podCIDRs`. The Node
objects are the only record: a block is taken when a node in the cache (or a
patch this controller just made and the cache has not shown yet) holds it,
so a restarted controller or a new leader never hands one out twice, and a
deleted node's block is free again. Blocks are handed out round-robin from
after the last one given, so a freed block is not reused at once while
packets of its old pods may still be about. When every block is taken, the
node gets a `CIDRNotAvailable` event and waits, without retries, until a
node goes away.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.controllers.base import Context, Controller, register

log = logging.getLogger(__name__)

Object = dict[str, Any]

NODES = builtin.lookup("", "v1", "nodes")
CIDR_VARIABLE = "KUBIK_CLUSTER_CIDR"
MASK_VARIABLE = "KUBIK_NODE_CIDR_MASK_SIZE"
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_MASK_SIZE = 24


def settings_from_environment() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int]:
    cidr = ipaddress.ip_network(os.environ.get(CIDR_VARIABLE, "").strip() or DEFAULT_CLUSTER_CIDR)
    mask = int(os.environ.get(MASK_VARIABLE, "").strip() or DEFAULT_MASK_SIZE)
    if not cidr.prefixlen <= mask <= cidr.max_prefixlen:
        raise ValueError(f"node CIDR mask size /{mask} does not fit in the cluster CIDR {cidr}")
    return cidr, mask


def pod_cidrs_of(node: Object) -> list[str]:
    spec = node.get("spec") or {}
    return spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])


@register
class NodeIpamController(Controller):
    name = "nodeipam"
    workers = 1  # one allocator: two workers could pick the same block

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.cluster_cidr, self.mask_size = settings_from_environment()
        self._blocks = 1 << (self.mask_size - self.cluster_cidr.prefixlen)
        self._next = 0  # where the round-robin search starts
        self._given: dict[str, str] = {}  # node → block patched, until the cache shows it
        self._waiting: set[str] = set()  # nodes told no block was left

    def setup(self) -> None:
        self.nodes = self.informers.informer(NODES)
        self.nodes.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self._deleted,
        )

    def _deleted(self, node: Object) -> None:
        """A block may be free now: the nodes that wait for one try again."""
        self._given.pop(node["metadata"]["name"], None)
        for name in self._waiting:
            self.queue.add(name)
        self._waiting.clear()

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            return
        if pod_cidrs_of(node):
            self._given.pop(key, None)
            return
        if key in self._given:
            return  # patched already; the cache has not shown it yet
        block = self._free_block()
        if block is None:
            if key not in self._waiting:
                if not self._waiting:  # once per shortage, not once per node
                    log.warning("no pod CIDR left in %s; nodes wait for one", self.cluster_cidr)
                self._waiting.add(key)
                message = f"Node {key} status is now: CIDRNotAvailable"
                subject = {"apiVersion": "v1", "kind": "Node", **node}
                self.recorder.record(subject, "Normal", "CIDRNotAvailable", message)
            return
        try:
            await self.client.patch(
                NODES, "", key, {"spec": {"podCIDR": block, "podCIDRs": [block]}}
            )
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self._given[key] = block
        self._waiting.discard(key)
        log.info("node %s: pod CIDR %s", key, block)

    def _taken(self) -> set[str]:
        taken = set(self._given.values())
        for node in self.nodes.list():
            taken.update(pod_cidrs_of(node))
        return taken

    def _free_block(self) -> str | None:
        taken = self._taken()
        base = int(self.cluster_cidr.network_address)
        step = 1 << (self.cluster_cidr.max_prefixlen - self.mask_size)
        for offset in range(self._blocks):
            index = (self._next + offset) % self._blocks
            block = ipaddress.ip_network((base + index * step, self.mask_size))
            if str(block) not in taken:
                self._next = (index + 1) % self._blocks
                return str(block)
        return None
