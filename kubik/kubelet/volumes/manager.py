"""The volume manager: each volume of a pod made ready on the node, kept current, removed.

`setup(pod)` gives every volume of the pod a host path, in upstream's
layout `<pods_dir>/<uid>/volumes/<plugin>/<name>` for the volumes the
kubelet makes (emptyDir, configMap, secret, downwardAPI, projected), or the
node's own path for hostPath and for claims bound to hostPath or local
persistent volumes. Secret, downwardAPI, projected and memory emptyDir
volumes are tmpfs mounts, as upstream's. `refresh(pod)` rewrites the files
of the object-backed volumes when their objects (or the pod's labels,
or a token about to expire) change, atomically, through the `..data`
link; `teardown(pod_uid)` unmounts and removes what setup made.

Failures are VolumeErrors whose message is upstream's FailedMount text.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

from kubik.api import builtin
from kubik.api.quantity import Quantity, QuantityError
from kubik.client.api import ApiError, Client
from kubik.kubelet.downwardapi import node_allocatable
from kubik.kubelet.errors import VolumeError
from kubik.kubelet.volumes import atomicwriter, hostpath, mounts
from kubik.kubelet.volumes.sources import Builder, Objects, Payload, SourceError

log = logging.getLogger(__name__)

Object = dict[str, Any]

CLAIMS = builtin.lookup("", "v1", "persistentvolumeclaims")
VOLUMES = builtin.lookup("", "v1", "persistentvolumes")

# volume source field → upstream's plugin directory name (kubernetes.io/<x>, "/" as "~")
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# kept in memory, never on the node's disk
_IN_MEMORY = {"secret", "downwardAPI", "projected"}
# their files follow the objects they come from
_PROJECTED = ("configMap", "secret", "downwardAPI", "projected")
_SUPPORTED = (*PLUGIN_DIRS, "hostPath", "persistentVolumeClaim")


def source_kind(volume: Object) -> str:
    """Which kind of volume this is: the one source field it sets."""
    for kind in _SUPPORTED:
        if volume.get(kind) is not None:
            return kind
    return next((key for key in volume if key != "name"), "")


def read_only(volume: Object) -> bool:
    """Whether the volume is mounted read-only whatever the container asks."""
    kind = source_kind(volume)
    if kind in _PROJECTED:
        return True
    if kind == "persistentVolumeClaim":
        return bool(volume[kind].get("readOnly"))
    return False


class VolumeManager:
    def __init__(
        self,
        pods_dir: str,
        *,
        objects: Objects,
        client: Client | None,
        allocatable: Mapping[str, Any] | None = None,
    ) -> None:
        self._pods_dir = pods_dir
        self._client = client
        self._builder = Builder(objects, client, allocatable or node_allocatable())

    def volumes_dir(self, pod_uid: str) -> str:
        return os.path.join(self._pods_dir, pod_uid, "volumes")

    def path_of(self, pod_uid: str, kind: str, name: str) -> str:
        return os.path.join(self.volumes_dir(pod_uid), PLUGIN_DIRS[kind], name)

    async def setup(self, pod: Object) -> dict[str, str]:
        """Every volume of the pod ready on the node: volume name → host path.

        Setting up again is harmless (and refreshes contents). All volumes are
        tried; the first failure is raised after the others had their chance.
        """
        paths: dict[str, str] = {}
        errors: list[str] = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            try:
                paths[volume["name"]] = await self._setup_one(pod, volume)
            except VolumeError as exc:
                errors.append(exc.message)
        if errors:
            raise VolumeError(errors[0])
        return paths

    async def refresh(self, pod: Object) -> None:
        """Bring the files of configMap, secret, downwardAPI and projected volumes up to date."""
        errors = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if source_kind(volume) in _PROJECTED:
                try:
                    await self._setup_one(pod, volume)
                except VolumeError as exc:
                    errors.append(exc.message)
        if errors:
            raise VolumeError(errors[0])

    async def teardown(self, pod_uid: str) -> None:
        """Unmount and remove every volume directory of the pod (node paths stay)."""
        self._builder.forget(pod_uid)
        _remove(self.volumes_dir(pod_uid))

    # ------------------------------------------------------------------ one volume

    async def _setup_one(self, pod: Object, volume: Object) -> str:
        name = volume["name"]
        kind = source_kind(volume)
        try:
            if kind == "hostPath":
                return _host_path(volume["hostPath"])
            if kind == "persistentVolumeClaim":
                return await self._claim(pod, volume["persistentVolumeClaim"])
            if kind == "emptyDir":
                return self._empty_dir(pod, name, volume["emptyDir"])
            if kind in _PROJECTED:
                payload = await self._payload(pod, kind, volume[kind])
                path = self._prepare(pod["metadata"]["uid"], kind, name)
                atomicwriter.write(path, payload)
                return path
            raise SourceError(f"volume type {kind or 'unknown'} is not supported by kubik")
        except (SourceError, hostpath.HostPathError, atomicwriter.PayloadError) as exc:
            message = str(exc)
        except OSError as exc:
            message = f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")
        raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {message}')

    async def _payload(self, pod: Object, kind: str, source: Object) -> Payload:
        if kind == "configMap":
            return await self._builder.configmap(pod, source)
        if kind == "secret":
            return await self._builder.secret(pod, source)
        if kind == "downwardAPI":
            return self._builder.downward(pod, source)
        return await self._builder.projected(pod, source)

    def _prepare(self, pod_uid: str, kind: str, name: str) -> str:
        """The volume's directory, made (and mounted in memory when its kind asks)."""
        path = self.path_of(pod_uid, kind, name)
        os.makedirs(path, mode=0o750, exist_ok=True)
        if kind in _IN_MEMORY:
            mounts.mount_tmpfs(path)
        return path

    def _empty_dir(self, pod: Object, name: str, source: Object) -> str:
        medium = source.get("medium") or ""
        if medium not in ("", "Memory"):
            raise SourceError(f"emptyDir medium {medium} is not supported by kubik")
        path = self.path_of(pod["metadata"]["uid"], "emptyDir", name)
        os.makedirs(path, exist_ok=True)
        if medium == "Memory":
            mounts.mount_tmpfs(path, size=_size(source.get("sizeLimit")))
        os.chmod(path, 0o777)  # writable by any user a container runs as, as upstream's
        return path

    async def _claim(self, pod: Object, source: Object) -> str:
        namespace = pod["metadata"]["namespace"]
        claim_name = source.get("claimName", "")
        if self._client is None:
            raise SourceError("persistentVolumeClaim volumes need an API client")
        try:
            claim = await self._client.get(CLAIMS, namespace, claim_name)
        except ApiError as exc:
            if exc.not_found:
                raise SourceError(f'persistentvolumeclaim "{claim_name}" not found') from None
            raise SourceError(f"failed to fetch PVC from API server: {exc}") from None
        volume_name = (claim.get("spec") or {}).get("volumeName") or ""
        if (claim.get("status") or {}).get("phase") != "Bound" or not volume_name:
            raise SourceError(f"persistentvolumeclaim {claim_name} not bound")
        try:
            volume = await self._client.get(VOLUMES, "", volume_name)
        except ApiError as exc:
            raise SourceError(f"failed to fetch PV {volume_name} from API server: {exc}") from None
        spec = volume.get("spec") or {}
        if spec.get("hostPath"):
            return _host_path(spec["hostPath"])
        if spec.get("local"):
            return _local_path(spec["local"])
        raise SourceError(
            f"persistentvolume {volume_name} is neither hostPath nor local: kubik cannot mount it"
        )


def _host_path(source: Object) -> str:
    path = source.get("path", "")
    hostpath.check_type(path, source.get("type") or "")
    return path


def _local_path(source: Object) -> str:
    path = source.get("path", "")
    if not os.path.exists(path):
        raise SourceError(f'path "{path}" does not exist')
    return path


def _remove(root: str) -> None:
    """Unmount whatever is mounted below `root`, then delete it; never delete through a mount."""
    if not os.path.lexists(root):
        return
    for point in mounts.mounts_under(root):
        mounts.unmount(point)
    left = mounts.mounts_under(root)
    if left:
        raise VolumeError(f"still mounted, not removed: {', '.join(left)}")
    shutil.rmtree(root)


def _size(limit: Any) -> int | None:
    if limit in (None, ""):
        return None
    try:
        return Quantity.parse(limit).int_value() or None
    except QuantityError as exc:
        raise SourceError(f"invalid sizeLimit {limit!r}: {exc}") from None
