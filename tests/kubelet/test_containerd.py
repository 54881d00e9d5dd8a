"""The Containerd component: its config, its supervision, an external endpoint."""

from __future__ import annotations

import os
import signal
import tomllib
from pathlib import Path

import pytest

from kubik.kubelet.containerd import Containerd, render_config
from kubik.kubelet.cri import api_pb2
from tests.support.containerd import sandbox_config
from tests.support.netns import NetNS
from tests.support.polling import eventually

module_loop = pytest.mark.asyncio(loop_scope="module")


def test_config_keeps_state_under_root_and_fits_this_machine(tmp_path):
    config = tomllib.loads(render_config(tmp_path))
    assert config["version"] == 2
    assert config["grpc"]["address"] == str(tmp_path / "containerd.sock")
    for path in (config["root"], config["state"], config["ttrpc"]["address"]):
        assert Path(path).is_relative_to(tmp_path)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "kubik.local/pause:3.9"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {
        "BinaryName": "runc",
        "Root": str(tmp_path / "runc"),
        "SystemdCgroup": False,
    }
    assert cri["cni"]["conf_dir"] == str(tmp_path / "cni" / "net.d")
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"


@module_loop
async def test_killed_containerd_is_restarted_with_its_pods(containerd):
    config = sandbox_config(containerd.log_root, containerd.cgroup_parent, "survivor")
    runtime = containerd.client.runtime
    ran = await runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=60)
    first = containerd.component.pid
    os.kill(first, signal.SIGKILL)

    async def restarted():
        pid = containerd.component.pid
        return containerd.component.ready.is_set() and pid not in (None, first)

    await eventually(restarted, "containerd to be restarted")
    status = await runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=ran.pod_sandbox_id), timeout=30
    )
    assert status.status.state == api_pb2.SANDBOX_READY


@module_loop
async def test_external_endpoint_starts_nothing(containerd, tmp_path):
    external = Containerd(tmp_path / "unused", endpoint=containerd.socket, start_timeout=10)
    await external.start()
    try:
        assert external.ready.is_set()
        assert external.socket == containerd.socket
        assert external.pid is None
        assert not (tmp_path / "unused").exists()
    finally:
        await external.stop()


@module_loop
async def test_start_fails_fast_when_containerd_exits(tmp_path):
    root = tmp_path / "broken"
    root.mkdir()
    (root / "state").write_text("")  # a file where containerd needs a folder
    with NetNS() as netns:
        broken = Containerd(root, netns=netns.path, start_timeout=60)
        try:
            with pytest.raises(RuntimeError, match="containerd exited"):
                await broken.start()
        finally:
            await broken.stop()
    assert "state" in (root / "containerd.log").read_text()
