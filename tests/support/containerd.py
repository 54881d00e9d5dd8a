"""A private containerd inside a network namespace, for kubelet tests and benchmarks.

`running_containerd()` builds the offline images if needed, starts kubik's
Containerd component in a fresh netns (so pod networks exist only there),
imports the images, and on exit removes every pod sandbox through the CRI,
stops containerd by its PID, removes the cgroups the pods left under the
environment's own cgroup parent, the netns and the folder. Whatever could not
be undone fails the exit, so a leak shows up in the test that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from kubik.kubelet import images
from kubik.kubelet.containerd import Containerd
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient
from tests.support.netns import NetNS
from tests.support.polling import eventually

CGROUP_ROOT = Path("/sys/fs/cgroup")
POD_SUBNET = "10.88.0.0/24"  # exists only inside the fixture's netns


@dataclass
class ContainerdEnv:
    """A running containerd: socket, netns, CRI client (of the loop that made it), folders."""

    component: Containerd
    netns: NetNS
    client: RuntimeClient
    root: Path
    cgroup_parent: str  # put pods here (LinuxPodSandboxConfig.cgroup_parent)

    @property
    def socket(self) -> str:
        return self.component.socket

    @property
    def log_root(self) -> Path:
        """A folder for pod log directories."""
        return self.root / "pods"

    async def enable_network(self, subnet: str = POD_SUBNET) -> None:
        """Give pods a network: a bridge conflist, then wait for NetworkReady."""
        write_conflist(self.component.cni_conf_dir, self.root / "cni" / "ipam", subnet)
        client = RuntimeClient(self.socket)  # of the caller's loop, whichever it is
        try:
            await eventually(lambda: network_ready(client), "the CNI network to be ready")
        finally:
            await client.close()


def write_conflist(conf_dir: Path, ipam_dir: Path, subnet: str) -> None:
    """bridge (gateway on the netns side) + host-local IPAM, then portmap and loopback."""
    conflist = {
        "cniVersion": "0.4.0",
        "name": "kubik-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "kubik0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ],
    }
    partial = conf_dir / ".10-kubik.tmp"
    partial.write_text(json.dumps(conflist, indent=2))
    os.replace(partial, conf_dir / "10-kubik.conflist")


def sandbox_config(
    log_root: Path, cgroup_parent: str, name: str, *, pod_network: bool = False
) -> api_pb2.PodSandboxConfig:
    """A pod `name` in namespace default with a fresh uid and its own log directory under
    `log_root`; on the node's network unless `pod_network`."""
    uid = uuid.uuid4().hex
    log_directory = log_root / f"default_{name}_{uid}"
    log_directory.mkdir(parents=True)
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace="default"),
        hostname=name if pod_network else "",  # a host-network pod shares the node's
        log_directory=str(log_directory),
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(
                    network=api_pb2.POD if pod_network else api_pb2.NODE,
                    pid=api_pb2.CONTAINER,
                    ipc=api_pb2.POD,
                )
            ),
        ),
    )


async def network_ready(client: RuntimeClient) -> bool:
    status = await client.runtime.Status(api_pb2.StatusRequest())
    return any(c.type == "NetworkReady" and c.status for c in status.status.conditions)


@contextlib.asynccontextmanager
async def running_containerd(
    images_dir: str | os.PathLike[str] = images.DEFAULT_IMAGES_DIR,
) -> AsyncIterator[ContainerdEnv]:
    """containerd in its own netns with the offline images; everything undone on exit."""
    await asyncio.to_thread(images.build, images_dir)
    root = Path(tempfile.mkdtemp(prefix="kubik-ctd-"))
    netns = NetNS()
    component = Containerd(root / "containerd", netns=netns.path)
    cgroup_parent = f"/kubik-t-{uuid.uuid4().hex[:10]}"
    client: RuntimeClient | None = None
    try:
        netns.create()
        await component.start()
        await images.import_dir(component.socket, images_dir)
        client = RuntimeClient(component.socket)
        env = ContainerdEnv(
            component=component,
            netns=netns,
            client=client,
            root=root,
            cgroup_parent=cgroup_parent,
        )
        env.log_root.mkdir()
        yield env
    finally:
        await _teardown(root, netns, component, client, cgroup_parent)


async def _teardown(
    root: Path,
    netns: NetNS,
    component: Containerd,
    client: RuntimeClient | None,
    cgroup_parent: str,
) -> None:
    """Undo everything, in order; report what could not be undone at the end."""
    problems: list[str] = []
    if client is not None:
        try:
            await remove_all_pods(client)
        except grpc.aio.AioRpcError as exc:
            problems.append(f"removing pods: {exc.details()}")
        await client.close()
    await component.stop()
    problems += kill_shims(component.socket)
    problems += remove_cgroups(cgroup_parent)
    problems += unmount_below(root)
    netns.delete()
    shutil.rmtree(root, ignore_errors=True)
    assert not problems, "the containerd environment left things behind: " + "; ".join(problems)


async def remove_all_pods(client: RuntimeClient) -> None:
    """Stop and remove every pod sandbox (and so every container) the runtime has."""
    listed = await client.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=30)
    for sandbox in listed.items:
        await client.runtime.StopPodSandbox(
            api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60
        )
        await client.runtime.RemovePodSandbox(
            api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=60
        )


def kill_shims(socket: str) -> list[str]:
    """SIGKILL shims still serving our containerd's pods (there should be none)."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"containerd-shim" in argv[0] and socket.encode() in argv:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(f"shim {entry.name} still running")
    return killed


def remove_cgroups(parent: str) -> list[str]:
    """rmdir the (empty) cgroups under `parent` in every hierarchy, deepest first."""
    problems = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / parent.lstrip("/")
        if not top.is_dir():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True) + [top]:
            try:
                folder.rmdir()
            except OSError as exc:
                problems.append(f"cgroup {folder}: {exc.strerror}")
    return problems


def unmount_below(root: Path) -> list[str]:
    """Lazily unmount anything still mounted under `root`, so rmtree stays inside it."""
    prefix = str(root) + "/"
    mounts = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4]
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    return [f"mount {point}" for point in mounts]
