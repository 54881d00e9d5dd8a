"""Network namespaces of a test's own, so pod networks never reach the host's.

`NetNS()` creates `kubik-t-<hex>` with its loopback up and deletes it on exit
(with everything inside: bridges, veths, routes). Programs enter it with
`nsenter --net`, which changes only the network namespace; `ip netns exec`
would also remount /sys and hide the cgroup v1 hierarchies containerd and
runc need.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Sequence


class NetNS:
    """A uniquely named network namespace; a context manager."""

    def __init__(self, prefix: str = "kubik-t") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.created = False

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def create(self) -> NetNS:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.created = True
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        return self

    def delete(self) -> None:
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], check=True)
            self.created = False

    def argv(self, argv: Sequence[str]) -> list[str]:
        """`argv` prefixed to run inside this namespace."""
        return nsenter_argv(self, argv)

    def __enter__(self) -> NetNS:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


def nsenter_argv(ns: NetNS | str, argv: Sequence[str]) -> list[str]:
    name = ns.name if isinstance(ns, NetNS) else ns
    return ["nsenter", f"--net=/run/netns/{name}", *argv]


def run_in(
    ns: NetNS | str, argv: Sequence[str], *, timeout: float = 60.0, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `argv` inside network namespace `ns` (a NetNS or its name); output as text."""
    return subprocess.run(
        nsenter_argv(ns, argv), capture_output=True, text=True, timeout=timeout, check=check
    )
