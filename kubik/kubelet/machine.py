"""What the node agent learns about the machine it runs on: its identity, size and strain.

Everything here reads the kernel's files (/proc, /sys, /etc) or asks the
kernel through a socket; nothing is cached, so callers decide how often to
look. Sizes are the machine's, lowered to the agent's own cgroup limits when
those are tighter (a node agent inside a container gets the container's size,
as the kubelet does when its cgroup is capped).
"""

from __future__ import annotations

import fcntl
import ipaddress
import math
import os
import platform
import socket
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from kubik.api import quantity

_SIOCGIFADDR = 0x8915  # the ioctl that reads an interface's IPv4 address
# kubik's own pod bridge: its address is the pods' gateway, never the node's address
_POD_BRIDGE = "cni0"
_NO_LIMIT = 1 << 62  # cgroup v1 writes "no limit" as a number near 2**63

# Hard eviction thresholds (upstream's defaults on Linux) that also make the conditions:
MEMORY_EVICTION_BYTES = 100 * 1024 * 1024  # memory.available < 100Mi
DISK_AVAILABLE_MIN = 0.10  # nodefs.available < 10%
INODES_FREE_MIN = 0.05  # nodefs.inodesFree < 5%
PIDS_AVAILABLE_MIN = 0.10  # fewer than 10% of the kernel's PIDs left: kubik's own choice


def hostname() -> str:
    """The machine's name as a node name: lowercased, as the kubelet does."""
    return socket.gethostname().lower()


# ------------------------------------------------------------------ address


def node_ip() -> str:
    """The node's InternalIP: the IPv4 address of the interface holding the default
    route, else the first non-loopback IPv4 address, else 127.0.0.1."""
    addresses = interface_ipv4s()
    default = _default_route_interface()
    if default in addresses:
        return addresses[default]
    for name, address in addresses.items():
        if name != _POD_BRIDGE and not ipaddress.ip_address(address).is_loopback:
            return address
    return "127.0.0.1"


def interface_ipv4s() -> dict[str, str]:
    """Interface name → its (first) IPv4 address, for interfaces that have one."""
    found = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            found[name] = socket.inet_ntoa(answer[20:24])
    return found


def _default_route_interface() -> str:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return ""
    for line in lines:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return fields[0]
    return ""


# ----------------------------------------------------------------- capacity


def capacity(data_dir: str, *, max_pods: int) -> dict[str, str]:
    """The node's capacity: CPUs, memory, the data folder's file system, pods, huge pages."""
    sizes = {
        "cpu": str(cpu_count()),
        "memory": _bytes(memory_bytes()),
        "ephemeral-storage": _bytes(disk_bytes(data_dir)),
        "pods": str(max_pods),
    }
    sizes.update({f"hugepages-{size}": _bytes(total) for size, total in hugepages().items()})
    return sizes


def allocatable(capacity: dict[str, str], reserved: dict[str, str]) -> dict[str, str]:
    """Capacity less what is reserved for the system and kubik, less the hard eviction
    thresholds (memory and disk) and the memory held in huge pages, never below zero."""
    held = {name: quantity.parse(value).value for name, value in reserved.items()}
    held["memory"] = held.get("memory", Fraction(0)) + MEMORY_EVICTION_BYTES
    for name, value in capacity.items():  # memory held in huge pages is not for pods
        if name.startswith("hugepages-"):
            held["memory"] += quantity.parse(value).value
    if "ephemeral-storage" in capacity:
        disk = quantity.parse(capacity["ephemeral-storage"]).value
        held["ephemeral-storage"] = held.get("ephemeral-storage", Fraction(0)) + math.ceil(
            disk * Fraction(str(DISK_AVAILABLE_MIN))
        )
    result = {}
    for name, value in capacity.items():
        total = quantity.parse(value)
        left = max(Fraction(0), total.value - held.get(name, Fraction(0)))
        result[name] = str(quantity.Quantity(left, total.format))
    return result


def cpu_count() -> int:
    """CPUs this process may use, capped by its cgroup's CPU quota."""
    cpus = len(os.sched_getaffinity(0))
    quota = _cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def memory_bytes() -> int:
    """MemTotal, capped by this process's memory cgroup limit."""
    total = meminfo().get("MemTotal", 0)
    limit = _memory_limit()
    return min(total, limit) if limit else total


def disk_bytes(path: str) -> int:
    stat = os.statvfs(path)
    return stat.f_blocks * stat.f_frsize


def hugepages() -> dict[str, int]:
    """Huge page size ("2Mi") → bytes reserved in pages of that size."""
    pages = {}
    root = Path("/sys/kernel/mm/hugepages")
    for entry in sorted(root.glob("hugepages-*kB")) if root.is_dir() else ():
        size_kb = int(entry.name.removeprefix("hugepages-").removesuffix("kB"))
        try:
            count = int((entry / "nr_hugepages").read_text())
        except (OSError, ValueError):
            count = 0
        pages[str(quantity.Quantity(Fraction(size_kb * 1024), quantity.BINARY_SI))] = (
            count * size_kb * 1024
        )
    return pages or {"2Mi": 0}


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return values


def _bytes(count: int) -> str:
    return str(quantity.Quantity(Fraction(count), quantity.BINARY_SI))


def _own_cgroup(controller: str) -> Path | None:
    """This process's cgroup folder for `controller` (cgroup v1), or its v2 folder."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller) / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return None


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _cpu_quota() -> float:
    """CPUs allowed by the cgroup's quota; 0 when there is none."""
    folder = _own_cgroup("cpu")
    if folder is None:
        return 0.0
    v2 = _read(folder / "cpu.max").split()
    if len(v2) == 2 and v2[0] != "max":
        return int(v2[0]) / int(v2[1])
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota and period and int(quota) > 0:
        return int(quota) / int(period)
    return 0.0


def _memory_limit() -> int:
    """The memory cgroup's limit in bytes; 0 when there is none."""
    folder = _own_cgroup("memory")
    if folder is None:
        return 0
    for name in ("memory.max", "memory.limit_in_bytes"):
        text = _read(folder / name)
        if text.isdigit() and int(text) < _NO_LIMIT:
            return int(text)
    return 0


# ------------------------------------------------------------------ identity


def node_info() -> dict[str, str]:
    """The machine's part of status.nodeInfo (the agent adds the runtime and its version)."""
    return {
        "machineID": _read(Path("/etc/machine-id")),
        "systemUUID": _read(Path("/sys/class/dmi/id/product_uuid")),
        "bootID": _read(Path("/proc/sys/kernel/random/boot_id")),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "operatingSystem": "linux",
        "architecture": architecture(),
    }


def os_image() -> str:
    """PRETTY_NAME of /etc/os-release, as `kubectl get nodes -o wide` shows it."""
    for line in _read(Path("/etc/os-release")).splitlines():
        name, _, value = line.partition("=")
        if name == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def architecture() -> str:
    """The machine's architecture in Go's spelling (GOARCH), as node labels use it."""
    machine = platform.machine().lower()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
    }.get(machine, machine)


# -------------------------------------------------------------------- strain


@dataclass(frozen=True, slots=True)
class Strain:
    """How close the machine is to running out, against the eviction thresholds."""

    memory_available: int  # bytes
    disk_available: float  # fraction of the data folder's file system
    inodes_free: float  # fraction
    pids_available: float  # fraction of the kernel's PID limit

    @property
    def memory_pressure(self) -> bool:
        return self.memory_available < MEMORY_EVICTION_BYTES

    @property
    def disk_pressure(self) -> bool:
        return self.disk_available < DISK_AVAILABLE_MIN or self.inodes_free < INODES_FREE_MIN

    @property
    def pid_pressure(self) -> bool:
        return self.pids_available < PIDS_AVAILABLE_MIN


def strain(data_dir: str) -> Strain:
    info = meminfo()
    available = info.get("MemAvailable", info.get("MemFree", 0))
    limit = _memory_limit()
    if limit:
        used = _cgroup_memory_usage()
        available = min(available, max(0, limit - used))
    disk = os.statvfs(data_dir)
    return Strain(
        memory_available=available,
        disk_available=disk.f_bavail / disk.f_blocks if disk.f_blocks else 1.0,
        inodes_free=disk.f_favail / disk.f_files if disk.f_files else 1.0,
        pids_available=_pids_available(),
    )


def _cgroup_memory_usage() -> int:
    folder = _own_cgroup("memory")
    for name in ("memory.current", "memory.usage_in_bytes"):
        text = _read(folder / name) if folder else ""
        if text.isdigit():
            return int(text)
    return 0


def _pids_available() -> float:
    """The share of the kernel's task limit still free (/proc/loadavg counts every task)."""
    limits = [_read(Path("/proc/sys/kernel/pid_max")), _read(Path("/proc/sys/kernel/threads-max"))]
    limit = min((int(text) for text in limits if text.isdigit()), default=0)
    fields = _read(Path("/proc/loadavg")).split()
    if not limit or len(fields) < 4:
        return 1.0
    tasks = int(fields[3].partition("/")[2] or 0)
    return max(0.0, 1.0 - tasks / limit)
