"""Serving the node API from a test: a pod run straight through the CRI, and the netns.

containerd's streaming URLs listen on 127.0.0.1 of the network namespace it
runs in; a NodeServer in the test process reaches them by running there:
`network_namespace(path)` moves the calling thread (the event loop's) into
that namespace and back. Sockets keep the namespace they were made in.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import ssl
from pathlib import Path

from kubik.apiserver import tls
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.images import BUSYBOX_IMAGE

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def network_namespace(path: str):
    """Move this thread into the network namespace at `path`, and back afterwards."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(path, os.O_RDONLY)
    try:
        _setns(target)
        yield
    finally:
        _setns(original)
        os.close(target)
        os.close(original)


def node_serving_context(ca: tls.ClusterCA, directory: Path) -> ssl.SSLContext:
    """A node API serving certificate for 127.0.0.1 from `ca`, as a server TLS context."""
    cert, key = ca.issue(common_name="node", ips=("127.0.0.1",), server=True)
    (directory / "serving.crt").write_bytes(cert)
    (directory / "serving.key").write_bytes(key)
    return tls.server_context(
        str(directory / "serving.crt"), str(directory / "serving.key"), ca.paths.ca_crt
    )


async def run_pod(
    env, namespace: str, name: str, uid: str, containers: dict[str, tuple[list[str], bool]]
) -> str:
    """A sandbox and busybox containers ({name: (command, stdin)}) with the kubelet's CRI
    labels, as the pod manager would make them; returns the sandbox id."""
    labels = {
        "io.kubernetes.pod.name": name,
        "io.kubernetes.pod.namespace": namespace,
        "io.kubernetes.pod.uid": uid,
    }
    log_directory = env.log_root / f"{namespace}_{name}_{uid}"
    log_directory.mkdir()
    sandbox = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid, namespace=namespace),
        hostname=name,
        log_directory=str(log_directory),
        labels=labels,
        linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent=env.cgroup_parent),
    )
    runtime = env.client.runtime
    sandbox_id = (
        await runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=sandbox), timeout=60)
    ).pod_sandbox_id
    for container, (command, stdin) in containers.items():
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=container),
            image=api_pb2.ImageSpec(image=BUSYBOX_IMAGE),
            command=command,
            log_path=f"{container}/0.log",
            stdin=stdin,
            labels={**labels, "io.kubernetes.container.name": container},
        )
        created = await runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox
            ),
            timeout=60,
        )
        await runtime.StartContainer(
            api_pb2.StartContainerRequest(container_id=created.container_id), timeout=60
        )
    return sandbox_id


async def remove_pod(env, sandbox_id: str) -> None:
    runtime = env.client.runtime
    await runtime.StopPodSandbox(
        api_pb2.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=60
    )
    await runtime.RemovePodSandbox(
        api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=60
    )
