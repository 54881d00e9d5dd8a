"""Validation of a pod's volumes (upstream's ValidateVolumes and validateVolumeSource).

Each volume has a unique DNS-label name and exactly one source. The sources
pods use every day (emptyDir, hostPath, configMap, secret, downwardAPI,
projected, persistentVolumeClaim, nfs, csi, ephemeral) get their own field
checks; the cloud and legacy in-tree ones only count towards "one source".
"""

from __future__ import annotations

import posixpath
from typing import Any

from kubik.api import quantity
from kubik.api.validation import (
    Causes,
    dns1123_label_problems,
    duplicate,
    each_invalid,
    forbidden,
    invalid,
    is_int,
    not_supported,
    qualified_name_problems,
    required,
)

Object = dict[str, Any]

# Upstream's order of volume sources; a second one is reported under its own
# name (two keep their historical misspellings in the error path).
_SOURCES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image",
)  # fmt: skip
_ERROR_NAMES = {"cephfs": "cephFS", "downwardAPI": "downwarAPI"}
_HOST_PATH_TYPES = (
    "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
    "Socket",
)  # fmt: skip
_FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
_VOLUME_FIELD_PATHS = (
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
    "metadata.uid",
)  # fmt: skip


def validate_volumes(volumes: list[Object], path: str) -> tuple[dict[str, Object], Causes]:
    """The causes, and the valid volumes by name (what volume mounts may refer to)."""
    causes: Causes = []
    valid: dict[str, Object] = {}
    for i, volume in enumerate(volumes):
        at = f"{path}[{i}]"
        name = volume.get("name") or ""
        errors = _validate_source(volume, at)
        if not name:
            errors.append(required(f"{at}.name"))
        else:
            errors += each_invalid(f"{at}.name", name, dns1123_label_problems(name))
        if name in valid:
            errors.append(duplicate(f"{at}.name", name))
        if errors:
            causes += errors
        else:
            valid[name] = volume
    return valid, causes


def _validate_source(volume: Object, path: str) -> Causes:
    causes: Causes = []
    found = 0
    for source in _SOURCES:
        if volume.get(source) is None:
            continue
        if found:
            causes.append(
                forbidden(
                    f"{path}.{_ERROR_NAMES.get(source, source)}",
                    "may not specify more than 1 volume type",
                )
            )
            continue
        found += 1
        check = _SOURCE_CHECKS.get(source)
        if check is not None and isinstance(volume[source], dict):
            causes += check(volume[source], f"{path}.{source}")
    if not found:
        causes.append(required(path, "must specify a volume type"))
    return causes


def _empty_dir(source: Object, path: str) -> Causes:
    limit = source.get("sizeLimit")
    try:
        negative = limit is not None and quantity.parse(limit).value < 0
    except quantity.QuantityError:
        negative = True
    if negative:
        return [forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")]
    return []


def _host_path(source: Object, path: str) -> Causes:
    if not source.get("path"):
        return [required(f"{path}.path")]
    causes = no_backsteps(source["path"], f"{path}.path")
    kind = source.get("type")
    if kind is not None and kind not in _HOST_PATH_TYPES:
        causes.append(not_supported(f"{path}.type", kind, _HOST_PATH_TYPES))
    return causes


def _git_repo(source: Object, path: str) -> Causes:
    causes = [] if source.get("repository") else [required(f"{path}.repository")]
    return causes + _local_descending(source.get("directory") or "", f"{path}.directory")


def _secret(source: Object, path: str) -> Causes:
    causes = [] if source.get("secretName") else [required(f"{path}.secretName")]
    return causes + _mode(source.get("defaultMode"), f"{path}.defaultMode") + _items(source, path)


def _config_map(source: Object, path: str) -> Causes:
    causes = [] if source.get("name") else [required(f"{path}.name")]
    return causes + _mode(source.get("defaultMode"), f"{path}.defaultMode") + _items(source, path)


def _claim(source: Object, path: str) -> Causes:
    return [] if source.get("claimName") else [required(f"{path}.claimName")]


def _nfs(source: Object, path: str) -> Causes:
    causes = [] if source.get("server") else [required(f"{path}.server")]
    nfs_path = source.get("path") or ""
    if not nfs_path:
        causes.append(required(f"{path}.path"))
    if not nfs_path.startswith("/"):
        causes.append(invalid(f"{path}.path", nfs_path, "must be an absolute path"))
    return causes


def _csi(source: Object, path: str) -> Causes:
    return [] if source.get("driver") else [required(f"{path}.driver")]


def _ephemeral(source: Object, path: str) -> Causes:
    if source.get("volumeClaimTemplate") is None:
        return [required(f"{path}.volumeClaimTemplate")]
    return []


def _downward_api(source: Object, path: str) -> Causes:
    # Upstream reports the items' fields under the source itself, not under items[i].
    causes = _mode(source.get("defaultMode"), f"{path}.defaultMode")
    for item in source.get("items") or []:
        causes += _downward_api_file(item, path)
    return causes


def _downward_api_file(item: Object, path: str) -> Causes:
    causes = [] if item.get("path") else [required(f"{path}.path")]
    causes += local_non_reserved(item.get("path") or "", f"{path}.path")
    field_ref, resource_ref = item.get("fieldRef"), item.get("resourceFieldRef")
    if field_ref is not None:
        causes += _volume_field_ref(field_ref, f"{path}.fieldRef")
        if resource_ref is not None:
            causes.append(
                invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )
            )
    elif resource_ref is not None:
        if not resource_ref.get("containerName"):
            causes.append(required(f"{path}.resourceFieldRef.containerName"))
    else:
        causes.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    return causes + _mode(item.get("mode"), f"{path}.mode")


def _volume_field_ref(selector: Object, path: str) -> Causes:
    if not selector.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    field_path = selector.get("fieldPath") or ""
    if not field_path:
        return [required(f"{path}.fieldPath")]
    base, _, subscript = field_path.partition("[")
    if subscript and base in ("metadata.labels", "metadata.annotations"):
        key = subscript.rstrip("]").strip("'")
        key = key.lower() if base == "metadata.annotations" else key
        return each_invalid(path, key, qualified_name_problems(key))
    if field_path not in _VOLUME_FIELD_PATHS:
        return [not_supported(f"{path}.fieldPath", field_path, _VOLUME_FIELD_PATHS)]
    return []


def _projected(source: Object, path: str) -> Causes:
    causes = _mode(source.get("defaultMode"), f"{path}.defaultMode")
    for i, projection in enumerate(source.get("sources") or []):
        at = f"{path}.sources[{i}]"
        kinds = [k for k, v in projection.items() if v is not None]
        for kind in ("secret", "configMap"):
            if isinstance(projection.get(kind), dict):
                if not projection[kind].get("name"):
                    causes.append(required(f"{at}.{kind}.name"))
                causes += _items(projection[kind], f"{at}.{kind}")
        for item in (projection.get("downwardAPI") or {}).get("items") or []:
            causes += _downward_api_file(item, f"{at}.downwardAPI")
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict):
            causes += _token_projection(token, f"{at}.serviceAccountToken", path)
        if len(kinds) > 1:
            causes.append(forbidden(at, "may not specify more than 1 volume type per source"))
    return causes


def _token_projection(token: Object, at: str, volume_path: str) -> Causes:
    causes: Causes = []
    seconds = token.get("expirationSeconds")
    if is_int(seconds) and seconds < 600:
        causes.append(
            invalid(
                f"{at}.expirationSeconds",
                seconds,
                "may not specify a duration less than 10 minutes",
            )
        )
    if is_int(seconds) and seconds > 1 << 32:
        causes.append(
            invalid(
                f"{at}.expirationSeconds",
                seconds,
                "may not specify a duration larger than 2^32 seconds",
            )
        )
    # Upstream reports the token's path under the volume source, not the projection.
    if not token.get("path"):
        causes.append(required(f"{volume_path}.path"))
    else:
        causes += local_non_reserved(token["path"], f"{volume_path}.path")
    return causes


def _items(source: Object, path: str) -> Causes:
    causes: Causes = []
    for i, item in enumerate(source.get("items") or []):
        at = f"{path}.items[{i}]"
        if not item.get("key"):
            causes.append(required(f"{at}.key"))
        if not item.get("path"):
            causes.append(required(f"{at}.path"))
        causes += local_non_reserved(item.get("path") or "", f"{at}.path")
        causes += _mode(item.get("mode"), f"{at}.mode")
    return causes


def _mode(mode: Any, path: str) -> Causes:
    if is_int(mode) and not 0 <= mode <= 0o777:
        return [invalid(path, mode, _FILE_MODE_ERROR)]
    return []


def no_backsteps(target: str, path: str) -> Causes:
    if ".." in target.replace("\\", "/").split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def _local_descending(target: str, path: str) -> Causes:
    causes = [invalid(path, target, "must be a relative path")] if posixpath.isabs(target) else []
    return causes + no_backsteps(target, path)


def local_non_reserved(target: str, path: str) -> Causes:
    """A path inside the volume: relative, without '..' elements, not starting with '..'."""
    causes = _local_descending(target, path)
    if target.startswith("..") and not target.startswith("../"):
        causes.append(invalid(path, target, "must not start with '..'"))
    return causes


_SOURCE_CHECKS = {
    "emptyDir": _empty_dir,
    "hostPath": _host_path,
    "gitRepo": _git_repo,
    "secret": _secret,
    "configMap": _config_map,
    "persistentVolumeClaim": _claim,
    "nfs": _nfs,
    "csi": _csi,
    "ephemeral": _ephemeral,
    "downwardAPI": _downward_api,
    "projected": _projected,
}
