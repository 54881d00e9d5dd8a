"""Real etcd clusters on 127.0.0.1 for tests and benchmarks.

`EtcdCluster(size, base_dir).start()` runs `size` members of /usr/bin/etcd as
child processes on free loopback ports, each with its own data directory and
log file under `base_dir`, and blocks until every member reports healthy.
Members can be SIGKILLed and restarted to test crash recovery. Only the
processes this object started are ever signalled (by PID).

Members stay in the caller's process group (Ctrl-C reaches them too) and
`stop()` also runs at interpreter exit. A caller killed outright (SIGKILL,
or SIGTERM from `timeout`) cannot stop them: its members are left running.

No pytest import here: benchmark scripts use this module too.
"""

from __future__ import annotations

import atexit
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

ETCD_BINARY = "/usr/bin/etcd"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_GRACE = 5.0
# etcd rejects a whole request above --max-request-bytes (1.5 MiB by
# default), so a value of exactly the store's 1.5 MiB limit plus its key and
# framing would not fit. The store promises values up to 1.5 MiB, so test
# clusters leave room for the envelope, as production clusters should too.
MAX_REQUEST_BYTES = 2 * 1024 * 1024


class EtcdClusterError(RuntimeError):
    """A member did not start or become healthy in time."""


class EtcdCluster:
    def __init__(self, size: int, base_dir: pathlib.Path) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.size = size
        self.base_dir = pathlib.Path(base_dir)
        self.token = f"kubik-test-{uuid.uuid4().hex[:12]}"
        self._client_ports: list[int] = []
        self._peer_ports: list[int] = []
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * size

    # --- addresses -----------------------------------------------------
    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """(host, port) of every member's client URL, in member order."""
        return [(HOST, port) for port in self._client_ports]

    def endpoint_url(self) -> str:
        """The `--datastore-endpoint` string naming every member."""
        return "etcd://" + ",".join(f"{h}:{p}" for h, p in self.endpoints)

    def name(self, i: int) -> str:
        return f"member{i}"

    def log_path(self, i: int) -> pathlib.Path:
        return self.base_dir / f"{self.name(i)}.log"

    # --- lifecycle -----------------------------------------------------
    def start(self) -> None:
        """Start every member and wait until all of them are healthy."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        atexit.register(self.stop)
        ports = _free_ports(2 * self.size)
        self._client_ports = ports[: self.size]
        self._peer_ports = ports[self.size :]
        try:
            for i in range(self.size):
                self._spawn(i, state="new")
            for i in range(self.size):
                self._wait_healthy(i)
        except BaseException:
            self.stop()
            raise

    def kill_member(self, i: int) -> None:
        """SIGKILL member `i` (a crash: no clean shutdown) and reap it."""
        proc = self._procs[i]
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self._procs[i] = None

    def restart_member(self, i: int) -> None:
        """Start member `i` again on its old data directory and ports."""
        if self._procs[i] is not None and self._procs[i].poll() is None:
            raise EtcdClusterError(f"{self.name(i)} is still running")
        self._spawn(i, state="existing")
        self._wait_healthy(i)

    def stop(self) -> None:
        """SIGTERM every member this object started, one at a time; SIGKILL stragglers.

        One at a time because a leader stopping together with its followers
        tries to hand leadership to a member that is itself stopping, and
        waits ~7 s for that to time out; stopped in turn, each exits at once.
        """
        for i, proc in enumerate(self._procs):
            if proc is None:
                continue
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            self._procs[i] = None
        atexit.unregister(self.stop)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- internals -----------------------------------------------------
    def _initial_cluster(self) -> str:
        return ",".join(
            f"{self.name(i)}=http://{HOST}:{self._peer_ports[i]}" for i in range(self.size)
        )

    def _command(self, i: int, state: str) -> list[str]:
        client_url = f"http://{HOST}:{self._client_ports[i]}"
        peer_url = f"http://{HOST}:{self._peer_ports[i]}"
        return [
            ETCD_BINARY,
            f"--name={self.name(i)}",
            f"--data-dir={self.base_dir / self.name(i)}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self._initial_cluster()}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            f"--max-request-bytes={MAX_REQUEST_BYTES}",
            "--logger=zap",
            "--log-outputs=stderr",
        ]

    def _spawn(self, i: int, state: str) -> None:
        # A stray ETCD_* variable in the caller's environment would override
        # our flags (etcd reads its config from the environment too).
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        with open(self.log_path(i), "ab") as log:
            self._procs[i] = subprocess.Popen(
                self._command(i, state),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def _wait_healthy(self, i: int) -> None:
        url = f"http://{HOST}:{self._client_ports[i]}/health"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            proc = self._procs[i]
            if proc is None or proc.poll() is not None:
                raise EtcdClusterError(
                    f"{self.name(i)} exited during start-up; log tail:\n{self._log_tail(i)}"
                )
            if _healthy(url):
                return
            time.sleep(0.1)
        raise EtcdClusterError(
            f"{self.name(i)} not healthy after {START_TIMEOUT:.0f}s; log tail:\n{self._log_tail(i)}"
        )

    def _log_tail(self, i: int, lines: int = 30) -> str:
        try:
            text = self.log_path(i).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# Loopback only: never route the health probe through an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _healthy(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=1.0) as response:
            return json.loads(response.read()).get("health") == "true"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _free_ports(count: int) -> list[int]:
    """Ports the kernel reports free now (all bound at once, so distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()
