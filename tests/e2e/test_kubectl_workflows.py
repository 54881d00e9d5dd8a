"""kubectl workflows beyond the basics: apply, edit, scale, describe, wait, delete, CRDs.

Expected outputs are what kubectl prints against a real cluster for the same
commands (messages, columns, exit codes).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import textwrap
import time

import pytest

from tests.support.cluster import KUBECTL, kubectl_version

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
{extra}"""


def deployment(name="web", replicas=2, image="kubik.local/busybox:1", extra=""):
    return DEPLOYMENT.format(name=name, replicas=replicas, image=image, extra=extra)


def test_client_side_apply_creates_then_configures(server):
    out = server.ok("apply", "-f", "-", stdin=deployment("csa"))
    assert out.strip() == "deployment.apps/csa created"
    out = server.ok("apply", "-f", "-", stdin=deployment("csa", replicas=3))
    assert out.strip() == "deployment.apps/csa configured"
    out = server.ok("apply", "-f", "-", stdin=deployment("csa", replicas=3))
    assert out.strip() == "deployment.apps/csa unchanged"
    obj = json.loads(server.ok("get", "deploy", "csa", "-o", "json"))
    assert obj["spec"]["replicas"] == 3
    annotations = obj["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations


def test_server_side_apply_changes_and_removes_fields(server):
    first = deployment("ssa", extra="        env:\n        - {name: A, value: '1'}\n")
    assert server.ok("apply", "--server-side", "-f", "-", stdin=first).strip() == (
        "deployment.apps/ssa serverside-applied"
    )
    second = deployment("ssa", replicas=4)  # env removed, replicas changed
    server.ok("apply", "--server-side", "-f", "-", stdin=second)
    obj = json.loads(server.ok("get", "deploy", "ssa", "-o", "json", "--show-managed-fields"))
    assert obj["spec"]["replicas"] == 4
    assert "env" not in obj["spec"]["template"]["spec"]["containers"][0]
    managers = {e["manager"]: e["operation"] for e in obj["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"
    # another manager owning a field makes a plain apply conflict, force takes it
    server.ok("scale", "deploy", "ssa", "--replicas=6")
    conflict = server.kubectl("apply", "--server-side", "-f", "-", stdin=second)
    assert conflict.returncode == 1
    assert "conflict" in conflict.stderr.lower() and ".spec.replicas" in conflict.stderr
    server.ok("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=second)
    assert server.ok("get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}") == "4"


def test_scale_set_image_and_strategic_patch(server):
    server.ok("apply", "-f", "-", stdin=deployment("scaled"))
    assert server.ok("scale", "deploy", "scaled", "--replicas=5").strip() == (
        "deployment.apps/scaled scaled"
    )
    assert server.ok("get", "deploy", "scaled", "-o", "jsonpath={.spec.replicas}") == "5"
    server.ok("set", "image", "deploy/scaled", "web=kubik.local/busybox:2")
    server.ok(
        "patch",
        "deploy",
        "scaled",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"x:1"}]}}}}',
    )
    obj = json.loads(server.ok("get", "deploy", "scaled", "-o", "json"))
    images = {c["name"]: c["image"] for c in obj["spec"]["template"]["spec"]["containers"]}
    assert images == {"web": "kubik.local/busybox:2", "side": "x:1"}
    assert obj["metadata"]["generation"] >= 3


def test_edit_with_a_scripted_editor(server, tmp_path):
    server.ok("create", "configmap", "edited", "--from-literal=color=red")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/color: red/color: blue/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    out = server.ok("edit", "configmap", "edited", env={"KUBE_EDITOR": str(editor)})
    assert out.strip() == "configmap/edited edited"
    assert server.ok("get", "cm", "edited", "-o", "jsonpath={.data.color}") == "blue"


def test_output_forms(server):
    server.ok("create", "namespace", "forms")
    server.ok("create", "configmap", "one", "-n", "forms", "--from-literal=a=1")
    names = set(server.ok("get", "cm", "-n", "forms", "-o", "name").split())
    # every namespace also gets the cluster CA (the root CA publisher's), soon or already
    assert names - {"configmap/kube-root-ca.crt"} == {"configmap/one"}
    yaml_out = server.ok("get", "cm", "one", "-n", "forms", "-o", "yaml")
    assert "kind: ConfigMap" in yaml_out and 'a: "1"' in yaml_out
    wide = server.ok("get", "cm", "-A", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert any(line.split()[:3] == ["forms", "one", "1"] for line in wide[1:])
    jsonpath = server.ok("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").split()
    assert "forms" in jsonpath and "default" in jsonpath


def test_describe_shows_events(server):
    server.ok("create", "configmap", "described", "--from-literal=a=1")
    uid = server.ok("get", "cm", "described", "-o", "jsonpath={.metadata.uid}")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "described.1", "namespace": "default"},
        "involvedObject": {
            "kind": "ConfigMap",
            "name": "described",
            "namespace": "default",
            "uid": uid,
            "apiVersion": "v1",
        },
        "reason": "Checked",
        "message": "looked at it",
        "type": "Normal",
        "source": {"component": "tester"},
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    server.ok("create", "-f", "-", stdin=json.dumps(event))
    out = server.ok("describe", "configmap", "described")
    assert "Name:" in out and "described" in out
    assert "Checked" in out and "looked at it" in out


def test_wait_for_condition_and_delete(server):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "waited"},
        "spec": {"containers": [{"name": "c", "image": "kubik.local/busybox:1"}]},
    }
    server.ok("create", "-f", "-", stdin=json.dumps(pod))
    status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    server.ok(
        "patch", "pod", "waited", "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )
    out = server.ok("wait", "--for=condition=Ready", "pod/waited", "--timeout=10s")
    assert out.strip() == "pod/waited condition met"
    waiter = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            server.kubeconfig,
            "--cache-dir",
            "/tmp/kubik-wait-cache",
            "wait",
            "--for=delete",
            "pod/waited",
            "--timeout=20s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    server.ok("delete", "pod", "waited")
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert "pod/waited condition met" in out


def test_graceful_delete_of_a_bound_pod_waits_for_its_node(server):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bound"},
        "spec": {
            "nodeName": "node-1",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": "kubik.local/busybox:1"}],
        },
    }
    server.ok("create", "-f", "-", stdin=json.dumps(pod))
    out = server.ok("delete", "pod", "bound", "--wait=false")
    assert out.strip() == 'pod "bound" deleted'
    obj = json.loads(server.ok("get", "pod", "bound", "-o", "json"))
    assert obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30
    # what the kubelet does once the containers are gone: delete with grace 0
    server.ok("delete", "pod", "bound", "--grace-period=0", "--force")
    assert server.kubectl("get", "pod", "bound").returncode == 1


def test_cascade_orphan_and_foreground_record_finalizers(server):
    server.ok("create", "configmap", "orphaned", "--from-literal=a=1")
    server.ok(
        "patch",
        "cm",
        "orphaned",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":["example.com/hold"]}}',
    )
    server.ok("delete", "cm", "orphaned", "--cascade=orphan", "--wait=false")
    obj = json.loads(server.ok("get", "cm", "orphaned", "-o", "json"))
    assert obj["metadata"]["deletionTimestamp"]
    # the API server records the policy as the `orphan` finalizer; the garbage
    # collector then orphans the dependents (there are none) and removes it
    assert obj["metadata"]["finalizers"] in (["example.com/hold", "orphan"], ["example.com/hold"])
    deadline = time.monotonic() + 20
    while obj["metadata"]["finalizers"] != ["example.com/hold"] and time.monotonic() < deadline:
        time.sleep(0.2)
        obj = json.loads(server.ok("get", "cm", "orphaned", "-o", "json"))
    assert obj["metadata"]["finalizers"] == ["example.com/hold"]
    server.ok("patch", "cm", "orphaned", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert server.kubectl("get", "cm", "orphaned").returncode == 1


def test_create_subcommands(server):
    assert server.ok("create", "namespace", "made").strip() == "namespace/made created"
    assert server.ok("create", "secret", "generic", "s1", "--from-literal=k=v").strip() == (
        "secret/s1 created"
    )
    assert server.ok("create", "deployment", "d1", "--image=nginx").strip() == (
        "deployment.apps/d1 created"
    )
    assert server.ok("create", "job", "j1", "--image=busybox", "--", "true").strip() == (
        "job.batch/j1 created"
    )
    server.ok("create", "serviceaccount", "robot")
    token = server.ok("create", "token", "robot").strip()
    assert token.count(".") == 2
    assert server.ok("auth", "can-i", "create", "pods").strip() == "yes"


CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata: {name: crontabs.stable.example.com}
    spec:
      group: stable.example.com
      scope: Namespaced
      names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
      versions:
      - name: v1
        served: true
        storage: true
        subresources: {status: {}}
        additionalPrinterColumns:
        - {name: Spec, type: string, jsonPath: .spec.cronSpec}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                properties:
                  cronSpec: {type: string}
                  replicas: {type: integer}
""")


def test_custom_resources_through_a_crd(server):
    server.ok("apply", "-f", "-", stdin=CRD)
    server.ok(
        "wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=20s"
    )
    server.ok(
        "apply",
        "-f",
        "-",
        stdin=textwrap.dedent("""
        apiVersion: stable.example.com/v1
        kind: CronTab
        metadata: {name: every-minute}
        spec: {cronSpec: "* * * * *", replicas: 1}
    """),
    )
    table = server.ok("get", "ct").splitlines()
    assert table[0].split() == ["NAME", "SPEC"]  # declared columns only, as upstream
    assert table[1].split()[:6] == ["every-minute", "*", "*", "*", "*", "*"]
    server.ok("patch", "ct", "every-minute", "--type=merge", "-p", '{"spec":{"replicas":2}}')
    assert server.ok("get", "ct", "every-minute", "-o", "jsonpath={.spec.replicas}") == "2"
    server.ok("delete", "crd", "crontabs.stable.example.com")
    gone = server.kubectl("get", "crontabs")
    assert gone.returncode == 1


@pytest.mark.parametrize("minor", [29, 33])
def test_other_kubectl_versions(server, minor):
    binary = kubectl_version(minor)
    assert os.path.exists(binary)
    out = server.ok("get", "ns", "default", binary=binary)
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    server.ok("apply", "-f", "-", stdin=deployment(f"v{minor}"), binary=binary)
    assert server.ok("get", "deploy", f"v{minor}", "-o", "name", binary=binary).strip() == (
        f"deployment.apps/v{minor}"
    )
