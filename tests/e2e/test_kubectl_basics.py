"""Everyday kubectl against a real kubik server: what a user types first."""

from __future__ import annotations

import json
import subprocess
import time

from tests.support.cluster import KUBECTL

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  containers:
  - name: web
    image: kubik.local/busybox:latest
"""


def test_version_and_discovery(server):
    out = server.ok("version")
    assert "Server Version: v1.32.0+kubik" in out
    resources = server.ok("api-resources")
    header, *rows = resources.splitlines()
    assert header.split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert any(r.split()[:2] == ["pods", "po"] for r in rows)
    assert any(r.split()[:3] == ["deployments", "deploy", "apps/v1"] for r in rows)


def test_bootstrap_objects(server):
    names = server.ok("get", "namespaces", "-o", "name").split()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{ns}" in names
    assert server.ok("get", "service", "kubernetes", "-o", "name").strip() == "service/kubernetes"


def test_create_get_label_patch_delete(server):
    server.ok("create", "--validate=false", "-f", "-", stdin=POD.format(name="p1"))
    obj = json.loads(server.ok("get", "pod", "p1", "-o", "json"))
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert obj["metadata"]["uid"] and obj["metadata"]["resourceVersion"]
    assert obj["status"]["phase"] == "Pending"

    server.ok("label", "pod", "p1", "tier=front")
    server.ok("annotate", "pod", "p1", "note=hello")
    server.ok("patch", "pod", "p1", "--type", "merge", "-p", '{"metadata":{"labels":{"x":"1"}}}')
    server.ok(
        "patch",
        "pod",
        "p1",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/metadata/labels/x"}]',
    )
    obj = json.loads(server.ok("get", "pod", "p1", "-o", "json"))
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert obj["metadata"]["annotations"]["note"] == "hello"

    assert server.ok("get", "pods", "-l", "tier=front", "-o", "name").split() == ["pod/p1"]
    assert server.ok("get", "pods", "-l", "tier!=front", "-o", "name").split() == []
    assert (
        server.ok(
            "get",
            "pods",
            "--field-selector",
            "metadata.name=p1",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        )
        == "p1"
    )
    columns = server.ok(
        "get", "pod", "p1", "-o", "custom-columns=N:.metadata.name,L:.metadata.labels.app"
    )
    assert columns.split() == ["N", "L", "p1", "web"]

    deleted = server.kubectl("delete", "pod", "p1")
    assert deleted.returncode == 0, deleted.stderr
    assert 'pod "p1" deleted' in deleted.stdout
    missing = server.kubectl("get", "pod", "p1")
    assert missing.returncode == 1
    assert 'Error from server (NotFound): pods "p1" not found' in missing.stderr


def test_errors_are_status_objects(server):
    dup = POD.format(name="dup")
    server.ok("create", "--validate=false", "-f", "-", stdin=dup)
    again = server.kubectl("create", "--validate=false", "-f", "-", stdin=dup)
    assert again.returncode == 1
    assert (
        'Error from server (AlreadyExists): error when creating "STDIN": pods "dup" already exists'
        in again.stderr
    )
    bad = server.kubectl("create", "--validate=false", "-f", "-", stdin=POD.format(name="Bad_Name"))
    assert bad.returncode == 1
    assert "Invalid" in bad.stderr and "metadata.name" in bad.stderr
    nons = server.kubectl("get", "pods", "-n", "nowhere", "-o", "name")
    assert nons.returncode == 0 and nons.stdout == ""
    missing_ns = server.kubectl(
        "create", "-n", "nowhere", "--validate=false", "-f", "-", stdin=POD.format(name="p")
    )
    assert 'namespaces "nowhere" not found' in missing_ns.stderr


def test_get_watch_sees_added_modified_deleted(server, tmp_path):
    """`get -w` lists, then watches with Table rows, one per event."""
    watch = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            server.kubeconfig,
            "--cache-dir",
            str(tmp_path),
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        server.ok("create", "configmap", "watched", "--from-literal=a=1")
        server.ok("patch", "configmap", "watched", "--type", "merge", "-p", '{"data":{"b":"2"}}')
        server.ok("delete", "configmap", "watched")
        time.sleep(1.5)
    finally:
        watch.terminate()
        out, err = watch.communicate(timeout=10)
    lines = [line.split()[:3] for line in out.splitlines()]
    assert lines[0] == ["EVENT", "NAME", "DATA"], (out, err)
    assert [line for line in lines if "watched" in line] == [
        ["ADDED", "watched", "1"],
        ["MODIFIED", "watched", "2"],
        ["DELETED", "watched", "2"],
    ], (out, err)


def test_official_python_client(server):
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(server.kubeconfig)
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="from-python", labels={"src": "py"}),
            data={"k": "v"},
        ),
    )
    listed = core.list_namespaced_config_map("default", label_selector="src=py")
    assert [cm.metadata.name for cm in listed.items] == ["from-python"]
    version = listed.metadata.resource_version
    core.patch_namespaced_config_map("from-python", "default", {"data": {"k": "v2"}})
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=version, timeout_seconds=3
    ):
        events.append((event["type"], event["object"].metadata.name, event["object"].data))
        if len(events) == 1:
            core.delete_namespaced_config_map("from-python", "default")
        if len(events) == 2:
            break
    assert events == [
        ("MODIFIED", "from-python", {"k": "v2"}),
        ("DELETED", "from-python", {"k": "v2"}),
    ]
    api_client.close()


def test_a_write_naming_another_uid_is_a_conflict(server):
    """A patch or update that carries a uid only applies to that incarnation."""
    server.ok("create", "configmap", "incarnation", "--from-literal=a=1")
    stale = server.kubectl(
        "patch",
        "configmap",
        "incarnation",
        "--type=merge",
        "-p",
        '{"metadata":{"uid":"00000000-0000-0000-0000-000000000000"},"data":{"a":"2"}}',
    )
    assert stale.returncode == 1
    assert "Precondition failed: UID in precondition" in stale.stderr
    uid = server.ok("get", "configmap", "incarnation", "-o", "jsonpath={.metadata.uid}")
    server.ok(
        "patch",
        "configmap",
        "incarnation",
        "--type=merge",
        "-p",
        json.dumps({"metadata": {"uid": uid}, "data": {"a": "3"}}),
    )
    assert server.ok("get", "configmap", "incarnation", "-o", "jsonpath={.data.a}") == "3"
