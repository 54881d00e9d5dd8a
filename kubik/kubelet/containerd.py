"""containerd as a child of the node agent, supervised like k3s supervises it.

The agent owns a private containerd: its config, state, images, runc state
and CNI configuration all live under one folder (`root`), so it never
touches a containerd the machine may already run. Only two things are shared
with other containerd instances by design of containerd and libcni: the shim
sockets in /run/containerd/s and libcni's cache in /var/lib/cni.

The config carries the settings this kind of machine needs (see
/work/shared/design/containerd-facts.md): runc with the cgroupfs driver,
`restrict_oom_score_adj` (pod sandboxes lack CAP_SYS_RESOURCE), and the
offline pause image as sandbox image, so RunPodSandbox never pulls.

With `endpoint` set the component starts nothing and only waits for that
runtime's CRI to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from kubik import component
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.cri.client import RuntimeClient

log = logging.getLogger(__name__)

PAUSE_IMAGE = "kubik.local/pause:3.9"
CNI_BIN_DIR = "/usr/lib/cni"

# Restart back-off after containerd dies: doubled per quick death, up to the cap;
# a run longer than _BACKOFF_RESET counts as healthy and resets it.
_BACKOFF_FIRST = 0.5
_BACKOFF_CAP = 30.0
_BACKOFF_RESET = 60.0
_STOP_GRACE = 10.0

# Plugins that only add start-up time and log noise here: snapshotters for
# filesystems kubik does not use, and tracing.
_DISABLED_PLUGINS = (
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
)


def render_config(
    root: Path, *, sandbox_image: str = PAUSE_IMAGE, cni_bin_dir: str = CNI_BIN_DIR
) -> str:
    """containerd 1.6's config (version 2) keeping everything under `root`."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    return f"""\
# Written by kubik; rewritten each time the agent starts containerd.
version = 2
root = {q(str(root / "root"))}
state = {q(str(root / "state"))}
disabled_plugins = {q(list(_DISABLED_PLUGINS))}

[grpc]
  address = {q(str(root / "containerd.sock"))}

[ttrpc]
  address = {q(str(root / "containerd.sock.ttrpc"))}

[plugins."io.containerd.internal.v1.opt"]
  path = {q(str(root / "opt"))}

{cri}]
  sandbox_image = {q(sandbox_image)}
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

{cri}.containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = {q(str(root / "runc"))}
  SystemdCgroup = false

{cri}.cni]
  bin_dir = {q(cni_bin_dir)}
  conf_dir = {q(str(root / "cni" / "net.d"))}
  max_conf_num = 1
"""


class Containerd(component.Component):
    """A containerd child process under `root` (or an existing CRI `endpoint`).

    `netns`, a network namespace file such as /run/netns/NAME, starts
    containerd inside that namespace with `nsenter --net` (its pods' networks
    and its streaming server then live there too); tests use it.
    """

    name = "containerd"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        endpoint: str | None = None,
        netns: str | None = None,
        sandbox_image: str = PAUSE_IMAGE,
        cni_bin_dir: str = CNI_BIN_DIR,
        start_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.endpoint = endpoint
        self.netns = netns
        self.sandbox_image = sandbox_image
        self.cni_bin_dir = cni_bin_dir
        self.start_timeout = start_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def socket(self) -> str:
        """The CRI (and containerd API) socket."""
        return self.endpoint or str(self.root / "containerd.sock")

    @property
    def config_path(self) -> Path:
        return self.root / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.root / "containerd.log"

    @property
    def cni_conf_dir(self) -> Path:
        """Where the node's CNI conflist goes; containerd watches this folder."""
        return self.root / "cni" / "net.d"

    @property
    def pid(self) -> int | None:
        """The running containerd's PID (None with an external endpoint or when down)."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._process.pid

    async def start(self) -> None:
        if self.endpoint is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text(
                render_config(
                    self.root, sandbox_image=self.sandbox_image, cni_bin_dir=self.cni_bin_dir
                )
            )
            await self._spawn()
        version = await self._wait_answering(self.start_timeout)
        log.info(
            "containerd %s answers CRI %s at %s",
            version.runtime_version,
            version.runtime_api_version,
            self.socket,
        )
        if self.endpoint is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="containerd-supervisor")
        self.ready.set()

    async def stop(self) -> None:
        self._stopping = True
        await component.cancel_and_wait(self._supervisor)
        self._supervisor = None
        if self._process is not None:
            await _terminate(self._process)

    async def _spawn(self) -> None:
        """Start containerd; stale sockets of a previous run are removed first."""
        for name in ("containerd.sock", "containerd.sock.ttrpc"):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()
        argv = ["containerd", "--config", str(self.config_path)]
        if self.netns is not None:
            argv = ["nsenter", f"--net={self.netns}", *argv]
        # It dies with the agent should the agent be killed outright (setpriv sets
        # the parent-death signal; a preexec_fn is unsafe beside gRPC's threads).
        argv = ["setpriv", "--pdeathsig", "TERM", "--", *argv]
        logfile = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                # Not in the agent's process group: a terminal's Ctrl-C reaches the
                # agent alone, which then stops containerd after its pods' users.
                start_new_session=True,
            )
        finally:
            os.close(logfile)
        log.info("started containerd (pid %d), log %s", self._process.pid, self.log_path)

    async def _wait_answering(
        self,
        timeout: float,  # noqa: ASYNC109 - a deadline spanning retries
    ) -> api_pb2.VersionResponse:
        """Wait for CRI Version to answer; fail early if our containerd exits meanwhile."""
        client = RuntimeClient(self.socket)
        try:
            answer = asyncio.ensure_future(client.wait_ready(timeout))
            waits: set[asyncio.Future] = {answer}
            if self._process is not None:
                waits.add(asyncio.ensure_future(self._process.wait()))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for future in pending:
                future.cancel()
            if answer in done:
                return answer.result()
            raise RuntimeError(
                f"containerd exited with status {self._process.returncode} while starting;"
                f" see {self.log_path}"
            )
        finally:
            await client.close()

    async def _supervise(self) -> None:
        """Restart containerd whenever it exits, with back-off for quick deaths."""
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_FIRST
        started = loop.time()
        while True:
            assert self._process is not None
            status = await self._process.wait()
            if self._stopping:
                return
            self.ready.clear()
            if loop.time() - started > _BACKOFF_RESET:
                delay = _BACKOFF_FIRST
            log.error("containerd exited with status %d; restarting in %.1fs", status, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_CAP)
            started = loop.time()
            try:
                await self._spawn()
                await self._wait_answering(self.start_timeout)
            except (OSError, RuntimeError, TimeoutError) as exc:
                log.error("containerd did not come back: %s", exc)
                await _terminate(self._process)
                continue
            log.info("containerd is back")
            self.ready.set()


async def _terminate(process: asyncio.subprocess.Process) -> None:
    """SIGTERM `process`, SIGKILL it if it is still there after a grace period."""
    if process.returncode is not None:
        return
    log.info("stopping containerd (pid %d)", process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), _STOP_GRACE)
    except TimeoutError:
        log.warning("containerd ignored SIGTERM for %gs; killing it", _STOP_GRACE)
        process.kill()
        await process.wait()
