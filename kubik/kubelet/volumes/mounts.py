"""tmpfs mounts for memory-backed volumes, and finding and removing them again.

Secrets, downward API and projected volumes live in memory (tmpfs), as
upstream keeps them, so their contents never reach the node's disk; so does
an emptyDir with `medium: Memory`. The mount and umount2 system calls are
made directly (libc through ctypes): no helper process per volume.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_MNT_DETACH = 2  # umount2: detach now, free when no longer busy
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def mount_tmpfs(path: str, *, size: int | None = None) -> None:
    """Mount a fresh tmpfs on the directory `path` (no-op if something is mounted there)."""
    if os.path.ismount(path):
        return
    options = "mode=0755" + (f",size={size}" if size else "")
    if _libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, options.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount tmpfs on {path}: {os.strerror(error)}")


def unmount(path: str) -> None:
    if _libc.umount2(path.encode(), _MNT_DETACH) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"unmount {path}: {os.strerror(error)}")


def mounts_under(directory: str) -> list[str]:
    """Mount points strictly below `directory`, deepest first (the order to unmount them)."""
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = _unescape(line.split()[4])
            if point.startswith(prefix):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
