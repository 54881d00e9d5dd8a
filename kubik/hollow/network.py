"""Addresses of hollow nodes and their pods: data written into objects, never contacted.

A node's InternalIP comes from the documentation ranges (TEST-NET-1/2/3,
RFC 5737), so nothing can mistake it for a reachable host; past their 762
addresses the node IPs repeat. Each node hands its pods addresses from its
own /24 inside 10.244.0.0 and up (node 0 gets 10.244.0.0/24, node 1
10.244.1.0/24, …), as a CNI plugin would from the node's pod CIDR.
"""

from __future__ import annotations

_TEST_NETS = ("192.0.2.", "198.51.100.", "203.0.113.")
_HOSTS = 254  # .1 to .254 of each documentation /24
_FIRST_POD_BLOCK = 244 << 8  # 10.244.0.0/24, counted in /24 blocks inside 10.0.0.0/8
_POD_HOSTS = range(2, 255)  # .1 is the node's bridge on a real node


class NodeNetwork:
    """The `index`th node's InternalIP, and its pod IPs: each live pod holds one until it
    ends or goes away."""

    def __init__(self, index: int) -> None:
        self.index = index
        net = _TEST_NETS[(index // _HOSTS) % len(_TEST_NETS)]
        self.ip = f"{net}{index % _HOSTS + 1}"
        block = (_FIRST_POD_BLOCK + index) % (1 << 16)
        self.prefix = f"10.{block >> 8}.{block & 255}."
        self.cidr = f"{self.prefix}0/24"
        self._held: dict[str, str] = {}  # pod key → IP

    def assign(self, key: str) -> str:
        """The pod's IP: the one it holds, else the lowest free one."""
        if key in self._held:
            return self._held[key]
        used = set(self._held.values())
        for host in _POD_HOSTS:
            ip = f"{self.prefix}{host}"
            if ip not in used:
                self._held[key] = ip
                return ip
        raise RuntimeError(f"no free pod IP left in {self.cidr}")

    def hold(self, key: str, ip: str) -> None:
        """Record an IP a pod already has (a pod started before this process did)."""
        if ip.startswith(self.prefix):
            self._held.setdefault(key, ip)

    def release(self, key: str) -> None:
        self._held.pop(key, None)
