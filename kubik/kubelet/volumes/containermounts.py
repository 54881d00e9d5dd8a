"""A container's volumeMounts as CRI mounts: which host path appears where, and how.

A `subPath` (or `subPathExpr`, expanded with the container's environment)
mounts one entry of a volume instead of all of it. It must stay inside the
volume, also after following symlinks the pod's containers may have planted
there; a missing one is made as a directory first, as upstream does. Volumes
built from API objects (configMap, secret, downwardAPI, projected) are
always read-only in the container.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from kubik.kubelet.cri import api_pb2
from kubik.kubelet.envvars import expand, references
from kubik.kubelet.errors import ContainerConfigError
from kubik.kubelet.volumes.manager import read_only

Object = dict[str, Any]

_PROPAGATION = {
    None: api_pb2.PROPAGATION_PRIVATE,
    "None": api_pb2.PROPAGATION_PRIVATE,
    "HostToContainer": api_pb2.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": api_pb2.PROPAGATION_BIDIRECTIONAL,
}


def container_mounts(
    pod: Object,
    container: Object,
    volume_paths: Mapping[str, str],
    *,
    env: Iterable[tuple[str, str]] = (),
) -> list[api_pb2.Mount]:
    """The CRI mounts of the container's volumeMounts (`env` expands `subPathExpr`)."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    env_map = dict(env)
    found = []
    for mount in container.get("volumeMounts") or []:
        name = mount.get("name", "")
        if name not in volume_paths or name not in volumes:
            raise ContainerConfigError(
                f"cannot find volume {name!r} to mount into container {container['name']!r}"
            )
        host_path = volume_paths[name]
        sub_path = mount.get("subPath") or ""
        if mount.get("subPathExpr"):
            sub_path = _expand_sub_path(mount["subPathExpr"], env_map)
        if sub_path:
            host_path = _sub_path(host_path, sub_path, name, container["name"])
        propagation = mount.get("mountPropagation")
        if propagation not in _PROPAGATION:
            raise ContainerConfigError(f'invalid MountPropagation mode: "{propagation}"')
        found.append(
            api_pb2.Mount(
                container_path=mount.get("mountPath", ""),
                host_path=host_path,
                readonly=bool(mount.get("readOnly")) or read_only(volumes[name]),
                propagation=_PROPAGATION[propagation],
            )
        )
    return found


def _expand_sub_path(expression: str, env: Mapping[str, str]) -> str:
    missing = sorted({name for name in references(expression) if not env.get(name)})
    if missing:
        raise ContainerConfigError(f"missing value for {', '.join(missing)}")
    return expand(expression, env)


def _sub_path(volume_path: str, sub_path: str, volume: str, container: str) -> str:
    if os.path.isabs(sub_path):
        raise ContainerConfigError(f"error SubPath `{sub_path}` must not be an absolute path")
    if ".." in sub_path.split("/"):
        raise ContainerConfigError(
            f"unable to provision SubPath `{sub_path}`: must not contain '..'"
        )
    joined = os.path.join(volume_path, sub_path)
    root = os.path.realpath(volume_path)
    failure = f'failed to prepare subPath for volumeMount "{volume}" of container "{container}"'
    if not os.path.lexists(joined):
        _make_inside(root, sub_path, os.stat(root).st_mode & 0o7777, failure)
    resolved = os.path.realpath(joined)
    if resolved != root and not resolved.startswith(root.rstrip("/") + "/"):
        raise ContainerConfigError(failure)
    return resolved


def _make_inside(root: str, sub_path: str, mode: int, failure: str) -> None:
    """Make each missing directory of `sub_path` below `root`, never leaving `root`."""
    current = root
    for part in [p for p in sub_path.split("/") if p and p != "."]:
        current = os.path.join(current, part)
        if os.path.lexists(current):
            current = os.path.realpath(current)
            if not current.startswith(root.rstrip("/") + "/"):
                raise ContainerConfigError(failure)
            continue
        os.mkdir(current)
        os.chmod(current, mode)
