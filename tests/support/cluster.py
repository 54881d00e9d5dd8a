"""A real `kubik server` process for end-to-end tests, and real kubectl against it.

The server runs on 127.0.0.1 with a free port and its own data directory; it
is stopped by its PID. `kubectl` runs with a fresh cache directory (kubectl
caches discovery for hours) and the server's admin kubeconfig.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.process import log_tail, terminate

KUBECTL = "/usr/bin/kubectl"
OTHER_KUBECTLS = Path("/usr/lib/google-cloud-sdk/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kubectl_version(minor: int) -> str:
    """The path of kubectl 1.<minor> on these machines."""
    path = OTHER_KUBECTLS / f"kubectl.1.{minor}"
    return str(path) if path.exists() else KUBECTL


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


class KubikServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        datastore_endpoint: str = "",
        extra_args=(),
        env: dict[str, str] | None = None,
        agent: bool = False,
        wrapper: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.datastore_endpoint = datastore_endpoint
        self.extra_args = list(extra_args)
        self.env = dict(env or {})  # added to this process's environment for the server
        self.agent = agent  # run the node agent (containerd, pods): only inside a test netns
        self.wrapper = list(wrapper)  # prefixes the server's and kubectl's argv (e.g. nsenter)
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir / "server.log"

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "admin.kubeconfig")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> KubikServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *self.wrapper,
            sys.executable,
            "-m",
            "kubik.cli.main",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--https-listen-port",
            str(self.port),
            "--bind-address",
            "127.0.0.1",
            "--controller-metrics-address",  # many servers may run at once in tests
            "127.0.0.1:0",
            "--scheduler-metrics-address",
            "127.0.0.1:0",
            *self.extra_args,
        ]
        if not self.agent:
            args.append("--disable-agent")
        if self.datastore_endpoint:
            args += ["--datastore-endpoint", self.datastore_endpoint]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kubik server exited:\n{self.log_tail()}")
            if "apiserver is ready" in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kubik server did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        terminate(self.proc)

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        binary: str = KUBECTL,
        timeout: float = 60,
        env: dict | None = None,
    ) -> Result:
        cache = tempfile.mkdtemp(prefix="kubectl-cache-")
        run_env = {**os.environ, "HOME": cache, **(env or {})}
        completed = subprocess.run(
            [*self.wrapper, binary, "--kubeconfig", self.kubeconfig, "--cache-dir", cache, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=run_env,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def ok(self, *args: str, **kwargs) -> str:
        """kubectl that must succeed; returns its stdout."""
        result = self.kubectl(*args, **kwargs)
        assert result.returncode == 0, (
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}\n"
            f"server log:\n{self.log_tail()}"
        )
        return result.stdout
