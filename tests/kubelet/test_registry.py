"""Real pulls through the CRI from a registry on 127.0.0.1 inside the test's netns.

containerd's CRI plugin speaks plain HTTP to localhost / 127.0.0.1 registries
on its own (with no registry config it picks "http" for loopback hosts), so the
node config needs nothing for them. The registry's own answers must reach the
caller: they become the pod's ErrImagePull message.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from kubik.kubelet.cri import api_pb2
from kubik.kubelet.images import BUSYBOX_IMAGE
from tests.support.containerd import sandbox_config
from tests.support.polling import eventually
from tests.support.registry import running_registry

pytestmark = pytest.mark.asyncio(loop_scope="module")

USER, PASSWORD = "puller", "s3cret-pw"


@pytest.fixture(scope="module")
def open_registry(containerd):
    with running_registry(containerd.netns) as registry:
        registry.push(registry.image())
        yield registry


@pytest.fixture(scope="module")
def locked_registry(containerd):
    with running_registry(containerd.netns, users={USER: PASSWORD}) as registry:
        registry.push(registry.image(), creds=(USER, PASSWORD))
        yield registry


async def pull(containerd, image: str, auth: api_pb2.AuthConfig | None = None) -> str:
    request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    if auth is not None:
        request.auth.CopyFrom(auth)
    answer = await containerd.client.images.PullImage(request, timeout=120)
    return answer.image_ref


async def image_id(containerd, image: str) -> str:
    status = await containerd.client.images.ImageStatus(
        api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image)), timeout=30
    )
    return status.image.id


async def test_anonymous_pull_brings_the_pushed_image(containerd, open_registry):
    image = open_registry.image()
    assert await image_id(containerd, image) == ""
    ref = await pull(containerd, image)
    assert await image_id(containerd, image) == ref
    # the registry round trip kept the image: same config digest as the local archive's
    assert ref == await image_id(containerd, BUSYBOX_IMAGE)


async def test_pull_by_localhost_name_is_plain_http_too(containerd, open_registry):
    image = f"localhost:{open_registry.port}/kubik/busybox:v1"
    assert await pull(containerd, image) == await image_id(containerd, BUSYBOX_IMAGE)


async def test_missing_tag_is_not_found(containerd, open_registry):
    image = open_registry.image(tag="no-such-tag")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await pull(containerd, image)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"{image}: not found" in failed.value.details()


async def test_missing_repository_is_not_found(containerd, open_registry):
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await pull(containerd, open_registry.image(repository="kubik/nothing-here"))
    assert "not found" in failed.value.details()


async def test_pull_without_credentials_is_refused_by_the_registry(containerd, locked_registry):
    image = locked_registry.image()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await pull(containerd, image)
    assert "401 Unauthorized" in failed.value.details()
    assert await image_id(containerd, image) == ""


async def test_pull_with_wrong_password_is_refused(containerd, locked_registry):
    auth = api_pb2.AuthConfig(username=USER, password="not-it")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await pull(containerd, locked_registry.image(), auth)
    assert "401 Unauthorized" in failed.value.details()


async def test_missing_tag_behind_auth_is_not_found_with_credentials(containerd, locked_registry):
    auth = api_pb2.AuthConfig(username=USER, password=PASSWORD)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await pull(containerd, locked_registry.image(tag="no-such-tag"), auth)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pull_with_credentials_succeeds(containerd, locked_registry):
    image = locked_registry.image()
    ref = await pull(containerd, image, api_pb2.AuthConfig(username=USER, password=PASSWORD))
    assert await image_id(containerd, image) == ref


async def test_pulled_image_runs(containerd, open_registry):
    """A container of the pulled image starts and does its work."""
    image = open_registry.image()
    await pull(containerd, image)
    sandbox = sandbox_config(containerd.log_root, containerd.cgroup_parent, "pulled")
    logs = Path(sandbox.log_directory)
    runtime = containerd.client.runtime
    ran = await runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=sandbox), timeout=120)
    try:
        created = await runtime.CreateContainer(
            api_pb2.CreateContainerRequest(
                pod_sandbox_id=ran.pod_sandbox_id,
                sandbox_config=sandbox,
                config=api_pb2.ContainerConfig(
                    metadata=api_pb2.ContainerMetadata(name="hello"),
                    image=api_pb2.ImageSpec(image=image),
                    command=["sh", "-c", "echo from-the-registry"],
                    log_path="hello.log",
                ),
            ),
            timeout=120,
        )
        await runtime.StartContainer(
            api_pb2.StartContainerRequest(container_id=created.container_id), timeout=120
        )
        waited = await _exited(runtime, created.container_id)
        assert waited.exit_code == 0
        assert "from-the-registry" in (logs / "hello.log").read_text()
    finally:
        await runtime.StopPodSandbox(
            api_pb2.StopPodSandboxRequest(pod_sandbox_id=ran.pod_sandbox_id), timeout=60
        )
        await runtime.RemovePodSandbox(
            api_pb2.RemovePodSandboxRequest(pod_sandbox_id=ran.pod_sandbox_id), timeout=60
        )


async def _exited(runtime, container_id: str) -> api_pb2.ContainerStatus:
    async def status():
        answer = await runtime.ContainerStatus(
            api_pb2.ContainerStatusRequest(container_id=container_id), timeout=30
        )
        return answer.status if answer.status.state == api_pb2.CONTAINER_EXITED else None

    return await eventually(status, "the container to exit", seconds=60)
