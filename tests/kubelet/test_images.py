"""The offline images: built from local inputs, imported into containerd, seen by the CRI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tarfile

import pytest

from kubik.kubelet import images
from kubik.kubelet.cri import api_pb2

# the tests that use the containerd fixture run in its (the module's) event loop
module_loop = pytest.mark.asyncio(loop_scope="module")

NAMES = {images.PAUSE_IMAGE, images.BUSYBOX_IMAGE}


def ref_names(archive) -> set[str]:
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    return {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}


def test_build_writes_both_archives_once(tmp_path):
    built = images.build(tmp_path)
    assert [p.name for p in built] == ["pause-3.9.oci.tar", "busybox-latest.oci.tar"]
    assert set().union(*(ref_names(p) for p in built)) == NAMES
    stamps = {p: p.stat().st_mtime_ns for p in built}
    assert images.build(tmp_path) == built
    assert {p: p.stat().st_mtime_ns for p in built} == stamps  # inputs unchanged: no rebuild
    (tmp_path / "pause-3.9.oci.tar.inputs").write_text("stale\n")
    images.build(tmp_path)
    assert built[0].stat().st_mtime_ns != stamps[built[0]]
    assert built[1].stat().st_mtime_ns == stamps[built[1]]


@module_loop
async def test_cli_imports_archives_the_cri_then_lists(containerd, tmp_path):
    runtime = containerd.client
    for name in NAMES:  # the fixture imported them already: start from none
        await runtime.images.RemoveImage(
            api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=name))
        )
    listed = await runtime.images.ListImages(api_pb2.ListImagesRequest())
    assert not NAMES & {tag for image in listed.images for tag in image.repo_tags}

    cli = [sys.executable, "-m", "kubik.cli.main", "images"]
    build = await asyncio.to_thread(
        subprocess.run, [*cli, "build", "--output", str(tmp_path)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    archives = build.stdout.split()
    assert sorted(archives) == [str(p) for p in images.archives(tmp_path)]
    imported = await asyncio.to_thread(
        subprocess.run,
        [*cli, "import", "--address", containerd.socket, *archives],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0, imported.stderr

    listed = await runtime.images.ListImages(api_pb2.ListImagesRequest())
    assert NAMES <= {tag for image in listed.images for tag in image.repo_tags}
    status = await runtime.images.ImageStatus(
        api_pb2.ImageStatusRequest(
            image=api_pb2.ImageSpec(image=images.BUSYBOX_IMAGE), verbose=True
        )
    )
    config = json.loads(status.info["info"])["imageSpec"]["config"]
    assert config["Cmd"] == ["sh"]
    assert "Entrypoint" not in config


@module_loop
async def test_import_of_a_missing_file_fails(containerd, tmp_path):
    with pytest.raises(images.BuildError, match="importing"):
        await images.import_archives(containerd.socket, [tmp_path / "absent.tar"])
