"""A real image registry on 127.0.0.1, for tests of image pulls.

`running_registry(netns)` starts Debian's `docker-registry` (the distribution
registry v2) inside the test's network namespace, so the containerd running
there reaches it at `127.0.0.1:<port>` and nothing outside can. It listens on
port 0 and the real port is read from its log ("listening on ..."), so no port
is guessed. Storage lives in a temporary folder removed afterwards; the
registry is stopped by its PID.

With `users` it asks for basic auth against an htpasswd file. The registry
accepts only bcrypt entries; they are made with the C library's crypt(3)
(Debian's libxcrypt knows bcrypt), so no Python package is needed for it.

`push()` copies an OCI archive (the offline busybox by default) into it with
skopeo, run inside the same namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from kubik.kubelet import images
from tests.support.netns import NetNS, nsenter_argv
from tests.support.process import log_tail, terminate

BUSYBOX_ARCHIVE = Path(images.DEFAULT_IMAGES_DIR) / images.BUSYBOX.filename
_LISTENING = re.compile(r'msg="listening on [^"]*:(\d+)"')
_BCRYPT_COST = 5  # the lowest libxcrypt allows: tests need no strong hashes
_STOP_GRACE = 10.0


class Registry:
    """A running registry: where it listens, how to push to it, and its process."""

    def __init__(
        self, root: Path, netns: NetNS | str | None, users: Mapping[str, str] | None
    ) -> None:
        self.root = root
        self.netns = netns
        self.users = dict(users or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """host:port as image references name it."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def image(self, repository: str = "kubik/busybox", tag: str = "v1") -> str:
        return f"{self.host}/{repository}:{tag}"

    def _argv(self, argv: list[str]) -> list[str]:
        return argv if self.netns is None else nsenter_argv(self.netns, argv)

    def start(self, timeout: float = 30.0) -> None:
        self.process = self._spawn()
        deadline = time.monotonic() + timeout
        while not self.port:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not listen:\n{self.log_tail()}")
            time.sleep(0.05)
            found = _LISTENING.search(self.log_path.read_text(errors="replace"))
            self.port = int(found.group(1)) if found else 0

    def _spawn(self) -> subprocess.Popen[bytes]:
        config = self.root / "config.json"  # YAML is a superset of JSON
        config.write_text(json.dumps(self._config()))
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                self._argv(["docker-registry", "serve", str(config)]),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _config(self) -> dict:
        config: dict = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "data")}},
            "http": {"addr": "127.0.0.1:0", "secret": os.urandom(16).hex()},
        }
        if self.users:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text(
                "".join(f"{user}:{bcrypt(password)}\n" for user, password in self.users.items())
            )
            config["auth"] = {"htpasswd": {"realm": "kubik-test", "path": str(htpasswd)}}
        return config

    def push(
        self,
        reference: str,
        archive: str | os.PathLike[str] = BUSYBOX_ARCHIVE,
        *,
        creds: tuple[str, str] | None = None,
    ) -> None:
        """Copy the image in `archive` to `reference` (e.g. `self.image()`) in this registry."""
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if creds is not None:
            argv += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
        argv += [f"oci-archive:{archive}", f"docker://{reference}"]
        done = subprocess.run(
            self._argv(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"skopeo push of {reference} failed: {done.stderr}")

    def stop(self) -> None:
        terminate(self.process, _STOP_GRACE)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)


@contextlib.contextmanager
def running_registry(
    netns: NetNS | str | None = None, *, users: Mapping[str, str] | None = None
) -> Iterator[Registry]:
    """A registry inside `netns` (a NetNS or its name; None: this namespace)."""
    registry = Registry(Path(tempfile.mkdtemp(prefix="kubik-registry-")), netns, users)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()
        shutil.rmtree(registry.root, ignore_errors=True)


def bcrypt(password: str) -> str:
    """A bcrypt hash of `password` ($2b$), as htpasswd -B writes, from libcrypt."""
    libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    libcrypt.crypt_gensalt.restype = ctypes.c_char_p
    libcrypt.crypt_gensalt.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    libcrypt.crypt.restype = ctypes.c_char_p
    libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = libcrypt.crypt_gensalt(b"$2b$", _BCRYPT_COST, None, 0)  # random bytes from the OS
    hashed = libcrypt.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2b$"):
        raise RuntimeError("the C library's crypt(3) cannot make bcrypt hashes")
    return hashed.decode()
