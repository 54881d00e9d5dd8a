"""The CRI stubs against a real containerd: pod lifecycle, logs, exec and pod networking."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from pathlib import Path

import pytest

from kubik.kubelet.cri import api_pb2
from kubik.kubelet.images import BUSYBOX_IMAGE
from tests.support.containerd import sandbox_config
from tests.support.netns import run_in
from tests.support.polling import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

# A CRI log line: RFC 3339 time with nanoseconds, stream, P(artial)/F(ull) tag, text.
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [PF] "
)


@contextlib.asynccontextmanager
async def running_pod(env, name: str, *, pod_network: bool = False):
    """A ready pod sandbox, stopped and removed afterwards: (its id, its config)."""
    config = sandbox_config(env.log_root, env.cgroup_parent, name, pod_network=pod_network)
    reply = await env.client.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=config), timeout=60
    )
    try:
        yield reply.pod_sandbox_id, config
    finally:
        sandbox = api_pb2.StopPodSandboxRequest(pod_sandbox_id=reply.pod_sandbox_id)
        await env.client.runtime.StopPodSandbox(sandbox, timeout=60)
        await env.client.runtime.RemovePodSandbox(
            api_pb2.RemovePodSandboxRequest(pod_sandbox_id=reply.pod_sandbox_id), timeout=60
        )


async def start_container(env, sandbox_id: str, sandbox: api_pb2.PodSandboxConfig, command):
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="main"),
        image=api_pb2.ImageSpec(image=BUSYBOX_IMAGE),
        command=command,
        log_path="main/0.log",
    )
    created = await env.client.runtime.CreateContainer(
        api_pb2.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox
        ),
        timeout=60,
    )
    await env.client.runtime.StartContainer(
        api_pb2.StartContainerRequest(container_id=created.container_id), timeout=60
    )
    return created.container_id


async def container_status(env, container_id: str) -> api_pb2.ContainerStatus:
    reply = await env.client.runtime.ContainerStatus(
        api_pb2.ContainerStatusRequest(container_id=container_id)
    )
    return reply.status


async def test_version_names_containerd(containerd):
    version = await containerd.client.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"


async def test_container_exits_with_its_status_and_log(containerd):
    async with running_pod(containerd, "exits") as (sandbox_id, sandbox):
        status = await containerd.client.runtime.PodSandboxStatus(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        )
        assert status.status.state == api_pb2.SANDBOX_READY
        pod_cgroups = Path("/sys/fs/cgroup/pids") / containerd.cgroup_parent.lstrip("/")
        assert any(pod_cgroups.iterdir())  # pods live under the parent teardown removes
        container_id = await start_container(
            containerd, sandbox_id, sandbox, ["sh", "-c", "echo hello; echo oops >&2; exit 3"]
        )

        async def exited():
            status = await container_status(containerd, container_id)
            return status if status.state == api_pb2.CONTAINER_EXITED else None

        status = await eventually(exited, "the container to exit")
        assert status.exit_code == 3
        assert status.reason == "Error"
        assert status.log_path.endswith("main/0.log")
        lines = open(status.log_path).read().splitlines()  # noqa: ASYNC230 - a small local file
        assert all(LOG_LINE.match(line) for line in lines), lines
        assert sorted(line.split(" ", 1)[1] for line in lines) == [
            "stderr F oops",
            "stdout F hello",
        ]


async def test_exec_sync(containerd):
    async with running_pod(containerd, "execs") as (sandbox_id, sandbox):
        container_id = await start_container(containerd, sandbox_id, sandbox, ["sleep", "3600"])
        reply = await containerd.client.runtime.ExecSync(
            api_pb2.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", "echo $((6 * 7))"], timeout=30
            ),
            timeout=60,
        )
        assert (reply.exit_code, reply.stdout, reply.stderr) == (0, b"42\n", b"")
        reply = await containerd.client.runtime.ExecSync(
            api_pb2.ExecSyncRequest(
                container_id=container_id, cmd=["sh", "-c", "echo no >&2; exit 7"], timeout=30
            ),
            timeout=60,
        )
        assert (reply.exit_code, reply.stderr) == (7, b"no\n")


FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read())"


async def test_pod_network_serves_http_on_the_pod_ip(containerd):
    await containerd.enable_network("10.88.0.0/24")
    async with running_pod(containerd, "web", pod_network=True) as (sandbox_id, sandbox):
        status = await containerd.client.runtime.PodSandboxStatus(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)
        )
        pod_ip = ipaddress.ip_address(status.status.network.ip)
        assert pod_ip in ipaddress.ip_network("10.88.0.0/24")
        serve = "mkdir /www && echo kubik > /www/index.html && exec httpd -f -p 8080 -h /www"
        await start_container(containerd, sandbox_id, sandbox, ["sh", "-c", serve])

        async def fetched():
            argv = ["python3", "-c", FETCH, f"http://{pod_ip}:8080/"]
            done = await asyncio.to_thread(run_in, containerd.netns, argv)
            return done.stdout.strip() if done.returncode == 0 else None

        assert await eventually(fetched, "the pod's HTTP server to answer") == "b'kubik\\n'"
