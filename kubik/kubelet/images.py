"""The node's offline images: built from what the machine has, imported into containerd.

A kubik node needs no registry to run pods: the sandbox ("pause") image and a
busybox image are built here from local inputs and imported into the
containerd the agent runs.

- `kubik.local/pause:3.9`: a few lines of C, compiled static, that sleep in
  pause() as the pod's first process, reap orphans reparented to them, and
  exit on SIGINT/SIGTERM.
- `kubik.local/busybox:latest`: Debian's static busybox with a link per
  applet in /bin; no entrypoint, `sh` as command (like Docker Hub's busybox).

Both are written as OCI archives (umoci builds the layout, skopeo packs it)
into an images folder, once: a stamp beside each archive records a digest of
its inputs, and the build is skipped while it matches. The agent imports
every archive of that folder into containerd's `k8s.io` namespace, the one
the CRI plugin serves, with `ctr images import`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_IMAGES_DIR = "/var/lib/kubik/images"
PAUSE_IMAGE = "kubik.local/pause:3.9"
BUSYBOX_IMAGE = "kubik.local/busybox:latest"
CRI_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin serves
BUSYBOX_BINARY = "/bin/busybox"  # from Debian's busybox-static

# Bump when the way images are put together changes, to rebuild them.
_RECIPE = "kubik-images/1"
_TAG = "build"  # the tag inside the scratch OCI layout
_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PAUSE_SOURCE = r"""
/* kubik's pod sandbox process: hold the pod's namespaces open, reap orphans. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
    errno = saved;
}

int main(void) {
    struct sigaction action = {0};
    sigemptyset(&action.sa_mask);
    action.sa_handler = on_stop;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    action.sa_handler = on_child;
    action.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &action, NULL);
    for (;;) {
        pause();
    }
}
"""

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


class BuildError(RuntimeError):
    """A tool an image build needs failed or is missing."""


@dataclass(frozen=True)
class Recipe:
    """How one image is made: its name, file, inputs and root filesystem."""

    name: str
    filename: str
    fingerprint: Callable[[], str]
    populate: Callable[[Path, Path], None]  # (rootfs, scratch dir)
    config: Sequence[str]  # `umoci config` flags


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _pause_fingerprint() -> str:
    return _digest(_RECIPE.encode(), PAUSE_SOURCE.encode())


def _populate_pause(rootfs: Path, scratch: Path) -> None:
    source = scratch / "pause.c"
    source.write_text(PAUSE_SOURCE)
    _run(["gcc", "-static", "-Os", "-s", "-o", str(rootfs / "pause"), str(source)])


def _busybox_fingerprint() -> str:
    return _digest(_RECIPE.encode(), Path(BUSYBOX_BINARY).read_bytes(), (_PASSWD + _GROUP).encode())


def _populate_busybox(rootfs: Path, scratch: Path) -> None:
    del scratch
    bin_dir = rootfs / "bin"
    bin_dir.mkdir(exist_ok=True)
    shutil.copy2(BUSYBOX_BINARY, bin_dir / "busybox")
    applets = _run([BUSYBOX_BINARY, "--list"]).split()
    for applet in applets:
        if applet != "busybox":
            (bin_dir / applet).symlink_to("busybox")
    etc = rootfs / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(_PASSWD)
    (etc / "group").write_text(_GROUP)
    for folder, mode in (("tmp", 0o1777), ("root", 0o700)):
        (rootfs / folder).mkdir(exist_ok=True)
        os.chmod(rootfs / folder, mode)


PAUSE = Recipe(
    name=PAUSE_IMAGE,
    filename="pause-3.9.oci.tar",
    fingerprint=_pause_fingerprint,
    populate=_populate_pause,
    config=("--config.entrypoint", "/pause", "--clear", "config.cmd"),
)
BUSYBOX = Recipe(
    name=BUSYBOX_IMAGE,
    filename="busybox-latest.oci.tar",
    fingerprint=_busybox_fingerprint,
    populate=_populate_busybox,
    config=("--clear", "config.entrypoint", "--config.cmd", "sh", "--config.env", _PATH),
)
RECIPES = (PAUSE, BUSYBOX)


def build(output_dir: str | os.PathLike[str] = DEFAULT_IMAGES_DIR) -> list[Path]:
    """Build every image archive into `output_dir` unless it is up to date; return the paths."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [build_one(recipe, out) for recipe in RECIPES]


def build_one(recipe: Recipe, out: Path) -> Path:
    archive = out / recipe.filename
    stamp = out / (recipe.filename + ".inputs")
    fingerprint = recipe.fingerprint()
    if archive.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        log.info("%s is up to date in %s", recipe.name, archive)
        return archive
    log.info("building %s into %s", recipe.name, archive)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as scratch_name:
        scratch = Path(scratch_name)
        layout, bundle = scratch / "layout", scratch / "bundle"
        image = f"{layout}:{_TAG}"
        _run(["umoci", "init", "--layout", str(layout)])
        _run(["umoci", "new", "--image", image])
        _run(["umoci", "unpack", "--image", image, str(bundle)])
        recipe.populate(bundle / "rootfs", scratch)
        _run(["umoci", "repack", "--image", image, str(bundle)])
        _run(["umoci", "config", "--image", image, *recipe.config])
        partial = scratch / recipe.filename
        _run(["skopeo", "copy", "--quiet", f"oci:{image}", f"oci-archive:{partial}:{recipe.name}"])
        os.replace(partial, archive)
    stamp.write_text(fingerprint + "\n")
    return archive


def archives(images_dir: str | os.PathLike[str] = DEFAULT_IMAGES_DIR) -> list[Path]:
    """The image archives in `images_dir` (none if it does not exist), in name order."""
    folder = Path(images_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(".tar"))


async def import_archives(address: str, files: Iterable[str | os.PathLike[str]]) -> None:
    """Import OCI or Docker archives into containerd's CRI namespace (`ctr images import`)."""
    for file in files:
        argv = ["ctr", "-a", address, "-n", CRI_NAMESPACE, "images", "import", str(file)]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise BuildError(f"importing {file} failed: {output.decode(errors='replace').strip()}")
        log.info("imported %s into containerd at %s", file, address)


async def import_dir(
    address: str, images_dir: str | os.PathLike[str] = DEFAULT_IMAGES_DIR
) -> list[Path]:
    """Import every archive of `images_dir` (the agent does this at start); return them."""
    found = archives(images_dir)
    if not found:
        log.warning("no image archives in %s; run `kubik images build`", images_dir)
    await import_archives(address, found)
    return found


def _run(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]} is not installed (needed to build images)") from exc
    if done.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def add_parser(
    roles: argparse._SubParsersAction, parents: Sequence[argparse.ArgumentParser]
) -> None:
    """`kubik images build|import`; `parents` bring --data-dir and --log-level."""
    parser = roles.add_parser("images", parents=list(parents), help="the node's offline images")
    actions = parser.add_subparsers(dest="images_action", required=True, metavar="ACTION")
    build_parser = actions.add_parser("build", help="build the pause and busybox OCI archives")
    build_parser.add_argument("--output", help="where to write them (default <data-dir>/images)")
    import_parser = actions.add_parser("import", help="import archives into containerd")
    import_parser.add_argument("files", nargs="+", metavar="FILE", help="OCI or Docker archives")
    import_parser.add_argument(
        "--address",
        help="containerd's socket (default <data-dir>/agent/containerd/containerd.sock)",
    )


def run_cli(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    try:
        if args.images_action == "build":
            for archive in build(args.output or data_dir / "images"):
                print(archive)
        else:
            address = args.address or str(data_dir / "agent" / "containerd" / "containerd.sock")
            asyncio.run(import_archives(address, args.files))
    except (BuildError, OSError) as exc:
        log.error("%s", exc)
        return 1
    return 0
