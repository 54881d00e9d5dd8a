"""Stopping a process a test started, and reading the end of its log."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path


def terminate(proc: subprocess.Popen | None, grace: float = 15) -> None:
    """SIGTERM `proc` by its PID and wait; SIGKILL it should it outlive `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of the log at `path` ("" while there is none)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""
