"""The namespace controller in a real `kubik server`: `kubectl delete namespace` empties it."""

from __future__ import annotations

import json

import pytest

from tests.controllers.test_garbagecollector import create, get, wait_for
from tests.support.cluster import KubikServer
from tests.support.crds import open_crd

GADGETS_CRD = open_crd("ns.example.com", "Gadget", "gadgets")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("namespace")).start()
    yield kubik
    kubik.stop()


def fill(server: KubikServer, namespace: str) -> None:
    """Objects of several kinds, built-in and custom, in the namespace."""
    server.ok("create", "namespace", namespace)
    server.ok("-n", namespace, "create", "configmap", "settings", "--from-literal=a=b")
    server.ok("-n", namespace, "create", "secret", "generic", "token", "--from-literal=a=b")
    # a pod no node suits stays unbound, so it is deleted at once (no kubelet to wait for)
    server.ok(
        "-n",
        namespace,
        "run",
        "idle",
        "--image=kubik.local/busybox:1",
        '--overrides={"spec": {"nodeSelector": {"kubik.test/none": "none"}}}',
    )
    create(
        server,
        {
            "apiVersion": "ns.example.com/v1",
            "kind": "Gadget",
            "metadata": {"name": "thing", "namespace": namespace},
        },
    )


@pytest.fixture(scope="module")
def gadgets(server):
    create(server, GADGETS_CRD)
    server.ok("wait", "--for=condition=Established", "crd/gadgets.ns.example.com")


def test_kubectl_delete_namespace_removes_everything_and_returns(server, gadgets):
    fill(server, "doomed")
    assert server.ok("-n", "doomed", "get", "gadgets", "-o", "name").strip() == (
        "gadget.ns.example.com/thing"
    )

    out = server.ok("delete", "namespace", "doomed", timeout=60)

    assert out.strip() == 'namespace "doomed" deleted'
    assert get(server, "namespace", "doomed") is None
    for resource in ("configmaps", "secrets", "pods", "gadgets"):
        listing = json.loads(server.ok("get", resource, "-A", "-o", "json"))
        assert [i for i in listing["items"] if i["metadata"]["namespace"] == "doomed"] == []


def test_conditions_say_what_holds_a_terminating_namespace(server):
    server.ok("create", "namespace", "held")
    create(
        server,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kept", "namespace": "held", "finalizers": ["x.io/hold"]},
        },
    )
    server.ok("create", "-n", "held", "configmap", "loose")

    server.ok("delete", "namespace", "held", "--wait=false")

    def waiting():
        namespace = get(server, "namespace", "held")
        conditions = (namespace or {}).get("status", {}).get("conditions") or []
        found = {c["type"]: c for c in conditions}
        remaining = found.get("NamespaceContentRemaining", {})
        return found if remaining.get("status") == "True" else None

    conditions = wait_for(waiting, "the conditions to report the held object")
    assert {kind: (c["status"], c["reason"], c["message"]) for kind, c in conditions.items()} == {
        "NamespaceDeletionDiscoveryFailure": (
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGVParsingFailure": (
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure": (
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining": (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances",
        ),
        "NamespaceFinalizersRemaining": (
            "True",
            "SomeFinalizersRemain",
            "Some content in the namespace has finalizers remaining: x.io/hold in 1 resource "
            "instances",
        ),
    }
    namespace = get(server, "namespace", "held")
    assert namespace["status"]["phase"] == "Terminating"
    assert namespace["spec"]["finalizers"] == ["kubernetes"]
    assert get(server, "configmap", "loose", "held") is None

    server.ok(
        "-n",
        "held",
        "patch",
        "configmap",
        "kept",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    server.ok("wait", "--for=delete", "namespace/held", "--timeout=40s", timeout=60)
    assert get(server, "namespace", "held") is None
