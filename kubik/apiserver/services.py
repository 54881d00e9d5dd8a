"""ClusterIPs and NodePorts for Services, allocated without collisions.

Each allocated address and port is a key in the store
(`/registry/ranges/serviceips/10.43.0.10`,
`/registry/ranges/servicenodeports/30080`) created with compare-and-swap:
two API servers (or two concurrent creates) can never hand out the same
one, and a restart loses nothing. Keys are released when the service is
deleted or stops needing them.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from kubik.api import errors
from kubik.store import errors as store_errors
from kubik.store.interface import Store

Object = dict[str, Any]

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"  # k3s's default
NODE_PORT_RANGE = (30000, 32767)
_IP_PREFIX = "/registry/ranges/serviceips/"
_PORT_PREFIX = "/registry/ranges/servicenodeports/"
_ATTEMPTS = 64


class NeedNodePorts(Exception):
    """An update needs node ports it was not given; allocate and retry."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} node ports needed")
        self.count = count


def _node_port_type(spec: Object) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


class ServiceAllocator:
    def __init__(self, store: Store, *, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self._store = store
        self._network = ipaddress.ip_network(cidr)

    @property
    def kubernetes_ip(self) -> str:
        """The first address of the range: the `default/kubernetes` service's."""
        return str(self._network.network_address + 1)

    async def _claim(self, key: str, owner: str) -> bool:
        try:
            await self._store.create(key, owner.encode())
            return True
        except store_errors.KeyExistsError:
            return False

    async def _release(self, key: str) -> None:
        try:
            await self._store.delete(key)
        except store_errors.KeyNotFoundError:
            pass

    # ---------------------------------------------------------------- create

    async def allocate(self, service: Object) -> None:
        """Give a new service its ClusterIP and NodePorts (in place); 422 on a taken one."""
        spec = service.setdefault("spec", {})
        owner = _owner(service)
        claimed: list[str] = []
        try:
            if spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None":
                ip = await self._allocate_ip(spec.get("clusterIP") or "", owner)
                claimed.append(_IP_PREFIX + ip)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            if _node_port_type(spec):
                for index, port in enumerate(spec.get("ports") or []):
                    node_port = await self._allocate_port(
                        port.get("nodePort") or 0, owner, field=f"spec.ports[{index}].nodePort"
                    )
                    claimed.append(_PORT_PREFIX + str(node_port))
                    port["nodePort"] = node_port
        except BaseException:
            for key in claimed:
                await self._release(key)
            raise

    async def _allocate_ip(self, wanted: str, owner: str) -> str:
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                raise _invalid("spec.clusterIPs", wanted, "must be a valid IP address") from None
            if address not in self._network or address == self._network.network_address:
                raise _invalid(
                    "spec.clusterIPs",
                    wanted,
                    f"provided IP is not in the valid range. The range of valid "
                    f"IPs is {self._network}",
                )
            if not await self._claim(_IP_PREFIX + wanted, owner):
                raise _invalid("spec.clusterIPs", wanted, "provided IP is already allocated")
            return wanted
        size = self._network.num_addresses
        for _ in range(_ATTEMPTS):
            candidate = str(self._network.network_address + random.randrange(2, size - 1))
            if await self._claim(_IP_PREFIX + candidate, owner):
                return candidate
        raise errors.APIError(500, "InternalError", "failed to allocate a serviceIP: range is full")

    async def _allocate_port(self, wanted: int, owner: str, *, field: str) -> int:
        low, high = NODE_PORT_RANGE
        if wanted:
            if not low <= wanted <= high:
                raise _invalid(
                    field,
                    wanted,
                    f"provided port is not in the valid range. The "
                    f"range of valid ports is {low}-{high}",
                )
            if not await self._claim(_PORT_PREFIX + str(wanted), owner):
                raise _invalid(field, wanted, "provided port is already allocated")
            return wanted
        for _ in range(_ATTEMPTS):
            candidate = random.randint(low, high)
            if await self._claim(_PORT_PREFIX + str(candidate), owner):
                return candidate
        raise errors.APIError(500, "InternalError", "failed to allocate a nodePort: range is full")

    async def allocate_ports(self, service: Object, count: int) -> list[int]:
        ports = []
        try:
            for _ in range(count):
                ports.append(await self._allocate_port(0, _owner(service), field="spec.ports"))
        except BaseException:
            await self.release_ports(ports)
            raise
        return ports

    async def release_ports(self, ports: list[int]) -> None:
        for port in ports:
            await self._release(_PORT_PREFIX + str(port))

    # --------------------------------------------------------- update/delete

    async def release(self, service: Object) -> None:
        """Give back everything a deleted service held."""
        spec = service.get("spec") or {}
        for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
            if ip != "None":
                await self._release(_IP_PREFIX + ip)
        await self.release_ports(
            [p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")]
        )


def carry_over(new: Object, old: Object, spare_ports: list[int]) -> list[int]:
    """On update: keep the allocated IP, and node ports where still needed.

    Returns the node ports `old` held that `new` no longer uses (to release).
    Raises NeedNodePorts when `new` needs more node ports than `spare_ports`.
    """
    new_spec, old_spec = new.setdefault("spec", {}), old.get("spec") or {}
    for key in ("clusterIP", "clusterIPs"):
        if key in old_spec and not new_spec.get(key):
            new_spec[key] = old_spec[key]
    old_ports = [p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")]
    if not _node_port_type(new_spec):
        for port in new_spec.get("ports") or []:
            port.pop("nodePort", None)
        return old_ports
    available = list(old_ports)
    used = {p.get("nodePort") for p in new_spec.get("ports") or [] if p.get("nodePort")}
    available = [p for p in available if p not in used]
    missing = [p for p in new_spec.get("ports") or [] if not p.get("nodePort")]
    pool = available + list(spare_ports)
    if len(missing) > len(pool):
        raise NeedNodePorts(len(missing) - len(pool))
    for port in missing:
        port["nodePort"] = pool.pop(0)
    return [p for p in old_ports if p in pool]


def _owner(service: Object) -> str:
    metadata = service.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _invalid(field: str, value: Any, message: str) -> errors.APIError:
    return errors.APIError(
        422,
        "Invalid",
        f'Service is invalid: {field}: Invalid value: "{value}": {message}',
        details={
            "kind": "Service",
            "causes": [errors.field_cause(field, f'Invalid value: "{value}": {message}')],
        },
    )
