"""Write a volume's files so a reader sees either all of the old set or all of the new.

The layout is upstream's, which programs inside pods have come to rely on
(they watch `..data`):

    <dir>/..2024_01_31_12_00_00.123456789/   the files of one version (a "timestamped" dir)
    <dir>/..data -> ..2024_01_31_12_00_00.123456789
    <dir>/<name> -> ..data/<name>             one link per top-level name

A new version is written into a fresh timestamped dir, then `..data` is
swapped to it with one rename (atomic), then the per-name links are added
or removed and the old dir is deleted. Writing the same content again
changes nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

DATA_LINK = "..data"
_DATA_LINK_TMP = "..data_tmp"
_MAX_PATH = 4096
_MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class FileProjection:
    """One file of a payload: its bytes and permission bits."""

    data: bytes
    mode: int = 0o644


class PayloadError(ValueError):
    """A payload path that could leave the volume or clash with the writer's own names."""


def validate_path(path: str) -> None:
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if len(path) > _MAX_PATH:
        raise PayloadError(f"invalid path: must be less than or equal to {_MAX_PATH} characters")
    if os.path.isabs(path):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    parts = path.split("/")
    if any(len(part) > _MAX_NAME for part in parts):
        raise PayloadError(f"invalid path: {path}: a path element is longer than {_MAX_NAME}")
    if ".." in parts:
        raise PayloadError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")


def write(target: str, payload: Mapping[str, FileProjection]) -> bool:
    """Make `target` hold exactly `payload` (relative path → file); True if anything changed."""
    for path in payload:
        validate_path(path)
    cleaned = {os.path.normpath(path): projection for path, projection in payload.items()}
    os.makedirs(target, exist_ok=True)
    data_link = os.path.join(target, DATA_LINK)
    old_version = os.readlink(data_link) if os.path.islink(data_link) else ""
    old_names = _top_level(os.path.join(target, old_version)) if old_version else set()
    new_names = {path.split("/")[0] for path in cleaned}
    if old_version and _holds(os.path.join(target, old_version), cleaned):
        _link_names(target, new_names)
        return False

    version = _new_version_dir(target)
    for path, projection in cleaned.items():
        full = os.path.join(version, path)
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        with open(full, "wb") as handle:
            handle.write(projection.data)
        os.chmod(full, projection.mode)

    tmp_link = os.path.join(target, _DATA_LINK_TMP)
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(version), tmp_link)
    os.rename(tmp_link, data_link)  # the swap: readers now see the new version

    _link_names(target, new_names)
    for name in old_names - new_names:
        link = os.path.join(target, name)
        if os.path.islink(link):
            os.unlink(link)
    if old_version and old_version != os.path.basename(version):
        shutil.rmtree(os.path.join(target, old_version), ignore_errors=True)
    return True


def read(target: str) -> dict[str, FileProjection]:
    """What `target` currently holds (relative path → file), as the writer wrote it."""
    data_link = os.path.join(target, DATA_LINK)
    if not os.path.islink(data_link):
        return {}
    return _files(os.path.join(target, os.readlink(data_link)))


def _new_version_dir(target: str) -> str:
    stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
    version = tempfile.mkdtemp(prefix=f"..{stamp}.", dir=target)
    os.chmod(version, 0o755)
    return version


def _link_names(target: str, names: set[str]) -> None:
    for name in names:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_LINK, name), link)


def _top_level(version: str) -> set[str]:
    try:
        return set(os.listdir(version))
    except FileNotFoundError:
        return set()


def _files(version: str) -> dict[str, FileProjection]:
    found = {}
    for root, _, files in os.walk(version):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as handle:
                data = handle.read()
            mode = os.stat(full).st_mode & 0o7777
            found[os.path.relpath(full, version)] = FileProjection(data, mode)
    return found


def _holds(version: str, payload: Mapping[str, FileProjection]) -> bool:
    return os.path.isdir(version) and _files(version) == dict(payload)
