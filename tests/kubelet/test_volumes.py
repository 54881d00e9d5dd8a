"""Pod volumes as real files and mounts in a temporary folder (tmpfs needs root, as CI runs)."""

from __future__ import annotations

import base64
import os
import socket
import stat
import time

import pytest

from kubik.apiserver.admission.serviceaccount import token_volume_source
from kubik.client.api import ApiError
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.errors import ContainerConfigError, VolumeError
from kubik.kubelet.volumes import VolumeManager, atomicwriter, container_mounts, mounts
from kubik.kubelet.volumes.atomicwriter import FileProjection

UID = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"


class FakeObjects:
    def __init__(self):
        self.objects = {}

    def put(self, resource, name, obj):
        self.objects[(resource, name)] = obj

    async def get(self, resource, namespace, name):
        assert namespace == "shop"
        return self.objects.get((resource, name))


class FakeClient:
    """The API calls volumes make: claims and volumes by name, service account tokens."""

    def __init__(self, objects=None, token_seconds=3600):
        self.objects = objects or {}
        self.token_requests = []
        self.token_seconds = token_seconds

    async def get(self, resource, namespace, name):
        try:
            return self.objects[(resource.plural, name)]
        except KeyError:
            raise ApiError(404, {"reason": "NotFound", "message": "not found"}) from None

    async def post_subresource(self, resource, namespace, name, subresource, body):
        assert (resource.plural, subresource) == ("serviceaccounts", "token")
        self.token_requests.append((namespace, name, body))
        expires = time.gmtime(time.time() + self.token_seconds)
        return {
            "status": {
                "token": f"token-{len(self.token_requests)}",
                "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", expires),
            }
        }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_pod(volumes, containers=None):
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": UID,
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"build": "42"},
        },
        "spec": {
            "serviceAccountName": "builder",
            "volumes": volumes,
            "containers": containers
            or [{"name": "main", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}],
        },
    }


@pytest.fixture
def objects():
    return FakeObjects()


@pytest.fixture
def client():
    return FakeClient()


@pytest.fixture
async def manager(tmp_path, objects, client):
    volumes = VolumeManager(
        str(tmp_path / "pods"),
        objects=objects,
        client=client,
        allocatable={"cpu": "4", "memory": "8Gi", "ephemeral-storage": "100Gi"},
    )
    yield volumes
    await volumes.teardown(UID)
    assert not mounts.mounts_under(str(tmp_path))


def read(path):
    with open(path) as handle:
        return handle.read()


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def exists(path):
    return os.path.lexists(path)


def real(path):
    return os.path.realpath(path)


def is_file(path):
    return os.path.isfile(path)


def is_dir(path):
    return os.path.isdir(path)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def fs_type(path):
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == path:
                return fields[fields.index("-") + 1]
    return ""


# ------------------------------------------------------------------ atomic writer


def test_atomic_writer_layout_update_and_no_op(tmp_path):
    target = str(tmp_path / "vol")
    assert atomicwriter.write(target, {"a": FileProjection(b"1"), "dir/b": FileProjection(b"2")})
    first = os.readlink(os.path.join(target, "..data"))
    assert first.startswith("..") and os.path.isdir(os.path.join(target, first))
    assert os.readlink(os.path.join(target, "a")) == "..data/a"
    assert read(os.path.join(target, "dir/b")) == "2"

    assert not atomicwriter.write(
        target, {"a": FileProjection(b"1"), "dir/b": FileProjection(b"2")}
    )
    assert os.readlink(os.path.join(target, "..data")) == first

    handle = open(os.path.join(target, "a"))  # a reader of the old version keeps it
    assert atomicwriter.write(target, {"a": FileProjection(b"new", 0o600)})
    second = os.readlink(os.path.join(target, "..data"))
    assert second != first
    assert not os.path.exists(os.path.join(target, first))
    assert not os.path.lexists(os.path.join(target, "dir"))  # gone with its key
    assert read(os.path.join(target, "a")) == "new"
    assert mode_of(os.path.join(target, "a")) == 0o600
    assert handle.read() == "1"
    handle.close()
    assert sorted(os.listdir(target)) == sorted(["..data", second, "a"])


@pytest.mark.parametrize("path", ["/abs", "../up", "a/../../b", "..hidden", ""])
def test_atomic_writer_rejects_escaping_paths(tmp_path, path):
    with pytest.raises(atomicwriter.PayloadError):
        atomicwriter.write(str(tmp_path / "vol"), {path: FileProjection(b"x")})


# ------------------------------------------------------------------ configMap / secret


async def test_config_map_volume_and_refresh(manager, objects):
    objects.put("configmaps", "site", {"data": {"index.html": "hello", "extra": "e", "old": "o"}})
    objects.put("configmaps", "bin", {"binaryData": {"blob": b64(b"\x00\x01")}})
    pod = make_pod(
        [
            {"name": "site", "configMap": {"name": "site"}},
            {
                "name": "picked",
                "configMap": {
                    "name": "site",
                    "defaultMode": 0o600,
                    "items": [
                        {"key": "index.html", "path": "html/index.html", "mode": 0o640},
                        {"key": "extra", "path": "extra.txt"},
                    ],
                },
            },
            {"name": "bin", "configMap": {"name": "bin"}},
            {"name": "absent", "configMap": {"name": "nothing", "optional": True}},
        ]
    )
    paths = await manager.setup(pod)
    site = paths["site"]
    assert site.endswith(f"/pods/{UID}/volumes/kubernetes.io~configmap/site")
    assert read(os.path.join(site, "index.html")) == "hello"
    assert mode_of(os.path.join(site, "index.html")) == 0o644
    assert fs_type(site) == ""  # configMap volumes stay on disk, as upstream's
    assert read(os.path.join(paths["picked"], "html/index.html")) == "hello"
    assert mode_of(os.path.join(paths["picked"], "html/index.html")) == 0o640
    assert mode_of(os.path.join(paths["picked"], "extra.txt")) == 0o600
    assert read_bytes(os.path.join(paths["bin"], "blob")) == b"\x00\x01"
    assert [n for n in os.listdir(paths["absent"]) if not n.startswith("..")] == []

    before = os.readlink(os.path.join(site, "..data"))
    await manager.refresh(pod)  # nothing changed: nothing rewritten
    assert os.readlink(os.path.join(site, "..data")) == before

    objects.put("configmaps", "site", {"data": {"index.html": "bye", "extra": "e"}})
    await manager.refresh(pod)
    assert os.readlink(os.path.join(site, "..data")) != before
    assert read(os.path.join(site, "index.html")) == "bye"
    assert read(os.path.join(paths["picked"], "html/index.html")) == "bye"
    assert not exists(os.path.join(site, "old"))


async def test_missing_objects_and_keys_fail_with_upstream_messages(manager, objects):
    pod = make_pod([{"name": "cfg", "configMap": {"name": "gone"}}])
    with pytest.raises(VolumeError) as caught:
        await manager.setup(pod)
    assert caught.value.message == (
        'MountVolume.SetUp failed for volume "cfg" : configmap "gone" not found'
    )
    objects.put("configmaps", "gone", {"data": {}})
    pod = make_pod(
        [{"name": "cfg", "configMap": {"name": "gone", "items": [{"key": "k", "path": "k"}]}}]
    )
    with pytest.raises(VolumeError, match="configmap references non-existent config key: k"):
        await manager.setup(pod)
    pod = make_pod([{"name": "s", "secret": {"secretName": "nope"}}])
    with pytest.raises(VolumeError, match='secret "nope" not found'):
        await manager.setup(pod)


async def test_secret_volume_is_tmpfs_with_default_mode(manager, objects):
    objects.put("secrets", "creds", {"data": {"password": b64(b"s3cret"), "user": b64(b"me")}})
    pod = make_pod([{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}])
    paths = await manager.setup(pod)
    path = paths["creds"]
    assert fs_type(path) == "tmpfs"
    assert read(os.path.join(path, "password")) == "s3cret"
    assert mode_of(os.path.join(path, "password")) == 0o400

    objects.put("secrets", "creds", {"data": {"password": b64(b"rotated")}})
    await manager.refresh(pod)
    assert read(os.path.join(path, "password")) == "rotated"
    assert not exists(os.path.join(path, "user"))

    await manager.teardown(UID)
    assert not exists(path)
    assert fs_type(path) == ""


# ------------------------------------------------------------------ emptyDir


async def test_empty_dirs_on_disk_and_in_memory(manager):
    pod = make_pod(
        [
            {"name": "scratch", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ]
    )
    paths = await manager.setup(pod)
    assert mode_of(paths["scratch"]) == 0o777
    assert fs_type(paths["scratch"]) == ""
    assert fs_type(paths["ram"]) == "tmpfs"
    stats = os.statvfs(paths["ram"])
    assert stats.f_blocks * stats.f_frsize == 16 * 1024 * 1024
    write(os.path.join(paths["scratch"], "kept"), "data")
    assert await manager.setup(pod) == paths  # again: harmless, contents kept
    assert read(os.path.join(paths["scratch"], "kept")) == "data"

    await manager.teardown(UID)
    assert not exists(manager.volumes_dir(UID))


# ------------------------------------------------------------------ downwardAPI / projected


async def test_downward_api_volume_follows_labels(manager):
    items = [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "build", "fieldRef": {"fieldPath": "metadata.annotations['build']"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
        {
            "path": "cpu_limit",
            "resourceFieldRef": {
                "containerName": "main",
                "resource": "limits.cpu",
                "divisor": "1m",
            },
        },
        {
            "path": "mem_limit",
            "resourceFieldRef": {
                "containerName": "main",
                "resource": "limits.memory",
                "divisor": "1Mi",
            },
        },
    ]
    pod = make_pod([{"name": "info", "downwardAPI": {"items": items}}])
    path = (await manager.setup(pod))["info"]
    assert fs_type(path) == "tmpfs"
    assert read(os.path.join(path, "labels")) == 'app="web"\ntier="front"'
    assert read(os.path.join(path, "build")) == "42"
    assert read(os.path.join(path, "cpu_limit")) == "500"
    assert read(os.path.join(path, "mem_limit")) == "128"
    assert mode_of(os.path.join(path, "name")) == 0o600

    pod["metadata"]["labels"]["tier"] = "back"
    await manager.refresh(pod)
    assert read(os.path.join(path, "labels")) == 'app="web"\ntier="back"'


KUBE_API_ACCESS = {"name": "kube-api-access-x7k2p", "projected": token_volume_source()}


async def test_projected_service_account_volume(manager, objects, client):
    pod = make_pod([KUBE_API_ACCESS])
    with pytest.raises(VolumeError, match='configmap "kube-root-ca.crt" not found'):
        await manager.setup(pod)
    objects.put(
        "configmaps", "kube-root-ca.crt", {"data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}}
    )
    path = (await manager.setup(pod))["kube-api-access-x7k2p"]
    assert fs_type(path) == "tmpfs"
    assert read(os.path.join(path, "ca.crt")) == "-----BEGIN CERTIFICATE-----"
    assert read(os.path.join(path, "namespace")) == "shop"
    token = read(os.path.join(path, "token"))
    namespace, account, body = client.token_requests[-1]
    assert (namespace, account) == ("shop", "builder")
    assert body["spec"]["expirationSeconds"] == 3607
    assert body["spec"]["boundObjectRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web",
        "uid": UID,
    }
    assert "audiences" not in body["spec"]
    count = len(client.token_requests)
    await manager.refresh(pod)  # a fresh token is kept
    assert len(client.token_requests) == count
    assert read(os.path.join(path, "token")) == token


async def test_projected_token_is_renewed_before_it_expires(tmp_path, objects):
    client = FakeClient(token_seconds=5)  # already within the last 20% of its lifetime
    manager = VolumeManager(str(tmp_path / "pods"), objects=objects, client=client)
    source = {"serviceAccountToken": {"path": "t", "audience": "vault", "expirationSeconds": 3600}}
    pod = make_pod([{"name": "tok", "projected": {"sources": [source]}}])
    try:
        path = (await manager.setup(pod))["tok"]
        assert read(os.path.join(path, "t")) == "token-1"
        assert client.token_requests[0][2]["spec"]["audiences"] == ["vault"]
        await manager.refresh(pod)
        assert read(os.path.join(path, "t")) == "token-2"
    finally:
        await manager.teardown(UID)


# ------------------------------------------------------------------ hostPath and claims


async def test_host_path_types(manager, tmp_path):
    node = tmp_path / "node"
    node.mkdir()
    (node / "file").write_text("f")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(node / "sock"))

    def volume(name, path, kind):
        return {"name": name, "hostPath": {"path": str(path), "type": kind}}

    good = [
        volume("made-dir", node / "new/dir", "DirectoryOrCreate"),
        volume("dir", node, "Directory"),
        volume("made-file", node / "new-file", "FileOrCreate"),
        volume("file", node / "file", "File"),
        volume("sock", node / "sock", "Socket"),
        volume("null", "/dev/null", "CharDevice"),
        volume("any", node / "whatever", ""),
    ]
    try:
        paths = await manager.setup(make_pod(good))
    finally:
        sock.close()
    assert paths["made-dir"] == str(node / "new/dir") and (node / "new/dir").is_dir()
    assert (node / "new-file").is_file()
    assert paths["any"] == str(node / "whatever")

    failures = {
        "Directory": (node / "file", "is not a directory"),
        "File": (node, "is not a file"),
        "Socket": (node / "file", "is not a socket file"),
        "CharDevice": (node / "file", "is not a character device"),
        "BlockDevice": ("/dev/null", "is not a block device"),
    }
    for kind, (path, why) in failures.items():
        with pytest.raises(VolumeError) as caught:
            await manager.setup(make_pod([volume("v", path, kind)]))
        assert caught.value.message == (
            f'MountVolume.SetUp failed for volume "v" : hostPath type check failed: {path} {why}'
        )


async def test_persistent_volume_claims(tmp_path, objects):
    local = tmp_path / "disk"
    local.mkdir()
    client = FakeClient(
        {
            ("persistentvolumeclaims", "data"): {
                "spec": {"volumeName": "pv-1"},
                "status": {"phase": "Bound"},
            },
            ("persistentvolumeclaims", "local"): {
                "spec": {"volumeName": "pv-2"},
                "status": {"phase": "Bound"},
            },
            ("persistentvolumeclaims", "waiting"): {"spec": {}, "status": {"phase": "Pending"}},
            ("persistentvolumes", "pv-1"): {
                "spec": {"hostPath": {"path": str(tmp_path / "pv1"), "type": "DirectoryOrCreate"}}
            },
            ("persistentvolumes", "pv-2"): {"spec": {"local": {"path": str(local)}}},
        }
    )
    manager = VolumeManager(str(tmp_path / "pods"), objects=objects, client=client)
    paths = await manager.setup(
        make_pod(
            [
                {"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "b", "persistentVolumeClaim": {"claimName": "local", "readOnly": True}},
            ]
        )
    )
    assert paths == {"a": str(tmp_path / "pv1"), "b": str(local)}
    with pytest.raises(VolumeError, match="persistentvolumeclaim waiting not bound"):
        await manager.setup(
            make_pod([{"name": "c", "persistentVolumeClaim": {"claimName": "waiting"}}])
        )
    with pytest.raises(VolumeError, match='persistentvolumeclaim "absent" not found'):
        await manager.setup(
            make_pod([{"name": "c", "persistentVolumeClaim": {"claimName": "absent"}}])
        )


# ------------------------------------------------------------------ container mounts


async def test_container_mounts(manager, objects, tmp_path):
    objects.put("configmaps", "cfg", {"data": {"app.conf": "x=1"}})
    outside = tmp_path / "outside"
    outside.mkdir()
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "claim", "persistentVolumeClaim": {"claimName": "c", "readOnly": True}},
    ]
    pod = make_pod(volumes)
    paths = await manager.setup(make_pod(volumes[:2]))
    paths["claim"] = str(outside)
    os.symlink(str(outside), os.path.join(paths["scratch"], "escape"))
    container = {
        "name": "main",
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "scratch", "mountPath": "/data", "mountPropagation": "HostToContainer"},
            {"name": "scratch", "mountPath": "/logs", "subPathExpr": "logs/$(POD_NAME)"},
            {"name": "claim", "mountPath": "/claim"},
        ],
    }
    found = container_mounts(pod, container, paths, env=[("POD_NAME", "web")])
    by_path = {m.container_path: m for m in found}
    assert by_path["/etc/app"].host_path == paths["cfg"]
    assert by_path["/etc/app"].readonly  # object-backed volumes are read-only
    assert by_path["/etc/app"].propagation == api_pb2.PROPAGATION_PRIVATE
    conf = by_path["/etc/app.conf"].host_path
    assert is_file(conf) and read(conf) == "x=1"
    assert conf.startswith(real(paths["cfg"]) + "/..")  # the file itself
    assert not by_path["/data"].readonly
    assert by_path["/data"].propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER
    logs = by_path["/logs"].host_path
    assert logs == os.path.join(real(paths["scratch"]), "logs/web")
    assert is_dir(logs)
    assert by_path["/claim"].readonly

    def mounts_of(*volume_mounts, env=()):
        return container_mounts(
            pod, {"name": "main", "volumeMounts": list(volume_mounts)}, paths, env=env
        )

    with pytest.raises(ContainerConfigError, match="must not contain '..'"):
        mounts_of({"name": "scratch", "mountPath": "/x", "subPath": "../../etc"})
    with pytest.raises(ContainerConfigError, match="must not be an absolute path"):
        mounts_of({"name": "scratch", "mountPath": "/x", "subPath": "/etc"})
    with pytest.raises(ContainerConfigError, match="failed to prepare subPath"):
        mounts_of({"name": "scratch", "mountPath": "/x", "subPath": "escape/inner"})
    assert not (outside / "inner").exists()  # nothing made through the planted link
    with pytest.raises(ContainerConfigError, match="missing value for POD_NAME"):
        mounts_of({"name": "scratch", "mountPath": "/x", "subPathExpr": "$(POD_NAME)"})
    with pytest.raises(ContainerConfigError, match="cannot find volume 'nope'"):
        mounts_of({"name": "nope", "mountPath": "/x"})
