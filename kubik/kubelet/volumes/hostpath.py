"""hostPath volumes: a path of the node, checked against the type the pod expects.

The `type` field is a promise the pod asks the kubelet to verify before the
container starts (upstream's checkType): `DirectoryOrCreate` and
`FileOrCreate` make what is missing, the others only check, and "" checks
nothing. A failed check is an error with upstream's message.
"""

from __future__ import annotations

import os
import stat


class HostPathError(Exception):
    pass


_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "DirectoryOrCreate": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "FileOrCreate": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


def check_type(path: str, kind: str) -> None:
    """Verify (or, for the *OrCreate kinds, make) `path` as the hostPath `type` says."""
    if not kind:
        return
    if kind not in _CHECKS:
        raise HostPathError(f"{kind} is an invalid volume type")
    if not os.path.lexists(path):
        if kind == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
            return
        if kind == "FileOrCreate":
            with open(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644), "wb"):
                return
    test, failure = _CHECKS[kind]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not test(mode):
        raise HostPathError(f"hostPath type check failed: {path} {failure}")
