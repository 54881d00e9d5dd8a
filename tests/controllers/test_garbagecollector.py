"""The garbage collector in a real `kubik server`: background, foreground and orphan deletion.

Owners and dependents are built by hand with ownerReferences, from kinds no
other controller manages (ConfigMaps, Secrets, ClusterRoles, a custom
resource), so only the garbage collector acts on them.
"""

from __future__ import annotations

import json
import time
from functools import partial

import pytest

from tests.support import polling
from tests.support.cluster import KubikServer
from tests.support.crds import open_crd

WIDGETS_CRD = open_crd("gc.example.com", "Widget", "widgets")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(tmp_path_factory.mktemp("gc")).start()
    yield kubik
    kubik.stop()


# ----------------------------------------------------------------- helpers


# kubectl answers quickly here: look often, give up after 30 s
wait_for = partial(polling.wait_for, seconds=30, every=0.1)


def create(server: KubikServer, obj: dict) -> dict:
    return json.loads(server.ok("create", "-o", "json", "-f", "-", stdin=json.dumps(obj)))


def get(server: KubikServer, resource: str, name: str, namespace: str = "default") -> dict | None:
    result = server.kubectl("get", resource, name, "-n", namespace, "-o", "json")
    if result.returncode != 0:
        assert "NotFound" in result.stderr, result.stderr
        return None
    return json.loads(result.stdout)


def gone(server: KubikServer, resource: str, name: str, namespace: str = "default"):
    return lambda: get(server, resource, name, namespace) is None


def ref(owner: dict, *, block: bool = False) -> dict:
    meta = owner["metadata"]
    reference = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
    }
    if block:
        reference["blockOwnerDeletion"] = True
    return reference


def configmap(name: str, *owners: dict, finalizers: tuple[str, ...] = ()) -> dict:
    metadata: dict = {"name": name, "namespace": "default"}
    if owners:
        metadata["ownerReferences"] = list(owners)
    if finalizers:
        metadata["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}


def secret(name: str, *owners: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": list(owners)},
    }


def cluster_role(name: str) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": [],
    }


def release(server: KubikServer, resource: str, name: str) -> None:
    """Remove every finalizer, letting a held object go."""
    server.ok("patch", resource, name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


# ------------------------------------------------------------------- tests


def test_background_deletion_removes_the_whole_chain_across_kinds(server):
    owner = create(server, configmap("bg-owner"))
    middle = create(server, secret("bg-middle", ref(owner)))
    create(server, configmap("bg-leaf", ref(middle)))
    bystander_owner = create(server, configmap("bg-bystander-owner"))
    create(server, configmap("bg-bystander", ref(bystander_owner)))

    assert server.ok("delete", "configmap", "bg-owner").strip() == 'configmap "bg-owner" deleted'

    wait_for(gone(server, "secret", "bg-middle"), "the dependent secret to go")
    wait_for(gone(server, "configmap", "bg-leaf"), "the dependent of the dependent to go")
    assert get(server, "configmap", "bg-bystander") is not None


def test_foreground_deletion_waits_for_blocking_dependents(server):
    owner = create(server, configmap("fg-owner"))
    create(server, configmap("fg-blocking", ref(owner, block=True), finalizers=("x.io/hold",)))
    create(server, configmap("fg-free", ref(owner)))

    server.ok("delete", "configmap", "fg-owner", "--cascade=foreground", "--wait=false")

    wait_for(gone(server, "configmap", "fg-free"), "the non-blocking dependent to go")
    wait_for(
        lambda: (
            (get(server, "configmap", "fg-blocking") or {})
            .get("metadata", {})
            .get("deletionTimestamp")
        ),
        "the blocking dependent to be deleted",
    )
    held = get(server, "configmap", "fg-owner")
    assert held is not None
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert held["metadata"]["deletionTimestamp"]

    release(server, "configmap", "fg-blocking")
    wait_for(gone(server, "configmap", "fg-owner"), "the owner to go after its dependents")


def test_foreground_deletion_reaches_grandchildren_first(server):
    owner = create(server, configmap("fg2-owner"))
    child = create(server, secret("fg2-child", ref(owner, block=True)))
    create(server, configmap("fg2-grandchild", ref(child, block=True), finalizers=("x.io/hold",)))

    server.ok("delete", "configmap", "fg2-owner", "--cascade=foreground", "--wait=false")

    # the child has dependents of its own, so it is deleted in the foreground too
    wait_for(
        lambda: (
            "foregroundDeletion"
            in (
                (get(server, "secret", "fg2-child") or {}).get("metadata", {}).get("finalizers")
                or []
            )
        ),
        "the child to wait for its own dependents",
    )
    assert get(server, "configmap", "fg2-owner") is not None
    release(server, "configmap", "fg2-grandchild")
    wait_for(gone(server, "configmap", "fg2-owner"), "the whole chain to go")
    assert get(server, "secret", "fg2-child") is None


def test_orphan_deletion_keeps_dependents_and_their_other_owners(server):
    owner = create(server, configmap("or-owner"))
    other = create(server, cluster_role("or-other-owner"))
    for name in ("or-dep1", "or-dep2"):
        create(server, configmap(name, ref(owner, block=True), ref(other)))

    server.ok("delete", "configmap", "or-owner", "--cascade=orphan")

    assert get(server, "configmap", "or-owner") is None  # kubectl waited for it
    for name in ("or-dep1", "or-dep2"):
        dependent = get(server, "configmap", name)
        assert dependent is not None
        assert dependent["metadata"]["ownerReferences"] == [ref(other)]
    server.ok("delete", "clusterrole", "or-other-owner")
    wait_for(gone(server, "configmap", "or-dep1"), "the dependents to follow their other owner")


def test_namespaced_dependents_of_a_cluster_scoped_owner(server):
    owner = create(server, cluster_role("cs-owner"))
    create(server, configmap("cs-dep", ref(owner)))
    create(server, secret("cs-dep", ref(owner)))
    time.sleep(0.5)
    assert get(server, "configmap", "cs-dep") is not None  # a live owner keeps them

    server.ok("delete", "clusterrole", "cs-owner")

    wait_for(gone(server, "configmap", "cs-dep"), "the configmap to go")
    wait_for(gone(server, "secret", "cs-dep"), "the secret to go")


def test_an_owner_reference_with_a_stale_uid_counts_as_absent(server):
    first = create(server, configmap("re-owner"))
    server.ok("delete", "configmap", "re-owner")
    recreated = create(server, configmap("re-owner"))
    assert recreated["metadata"]["uid"] != first["metadata"]["uid"]
    solid = create(server, configmap("re-solid"))

    create(server, secret("re-stale", ref(first)))
    create(server, secret("re-mixed", ref(first), ref(solid)))

    wait_for(gone(server, "secret", "re-stale"), "the dependent of the old owner to go")
    mixed = wait_for(
        lambda: (
            (s := get(server, "secret", "re-mixed"))
            and len(s["metadata"].get("ownerReferences") or []) == 1
            and s
        ),
        "the stale reference to be dropped",
    )
    assert mixed["metadata"]["ownerReferences"] == [ref(solid)]
    assert get(server, "configmap", "re-owner") is not None


def test_custom_resources_own_and_are_owned(server):
    create(server, WIDGETS_CRD)
    server.ok("wait", "--for=condition=Established", "crd/widgets.gc.example.com")
    widget = create(server, _widget("cr-owner"))
    create(server, configmap("cr-dependent", ref(widget)))
    holder = create(server, configmap("cr-holder"))
    create(server, _widget("cr-owned", ref(holder)))

    server.ok("delete", "widget", "cr-owner")
    wait_for(gone(server, "configmap", "cr-dependent"), "the custom resource's dependent to go")

    server.ok("delete", "configmap", "cr-holder")
    wait_for(gone(server, "widget", "cr-owned"), "the owned custom resource to go")


def _widget(name: str, *owners: dict) -> dict:
    metadata: dict = {"name": name, "namespace": "default"}
    if owners:
        metadata["ownerReferences"] = list(owners)
    return {"apiVersion": "gc.example.com/v1", "kind": "Widget", "metadata": metadata}


def test_a_dependency_cycle_does_not_block_foreground_deletion(server):
    first = create(server, configmap("cy-a"))
    second = create(server, configmap("cy-b", ref(first, block=True)))
    patch = {"metadata": {"ownerReferences": [ref(second, block=True)]}}
    server.ok("patch", "configmap", "cy-a", "--type=merge", "-p", json.dumps(patch))

    server.ok("delete", "configmap", "cy-a", "--cascade=foreground", "--timeout=30s")

    wait_for(gone(server, "configmap", "cy-b"), "the other member of the cycle to go")
    assert get(server, "configmap", "cy-a") is None
