"""The kubelet's own admission of pods bound to its node: resources, selector, ports, taints."""

from __future__ import annotations

from kubik.kubelet.admission import Rejection, admit, rejected_status, was_rejected

NODE = {
    "metadata": {"name": "n1", "labels": {"disk": "ssd"}},
    "spec": {},
    "status": {
        "allocatable": {
            "cpu": "2",
            "memory": "4Gi",
            "ephemeral-storage": "10Gi",
            "pods": "3",
            "example.com/gpu": "1",
        }
    },
}


def pod(name: str, requests: dict | None = None, **spec) -> dict:
    container = {"name": "main", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests}
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": "n1", "containers": [container], **spec},
    }


def test_a_pod_that_fits_is_admitted():
    running = [pod("a", {"cpu": "1", "memory": "1Gi"})]
    assert admit(pod("b", {"cpu": "1", "memory": "3Gi"}), NODE, running) is None
    assert admit(pod("c"), NODE, running) is None  # no requests: only the pod count


def test_resources_beyond_allocatable_are_out_of_that_resource():
    running = [pod("a", {"cpu": "1500m", "memory": "1Gi"})]
    assert admit(pod("b", {"cpu": "1"}), NODE, running) == Rejection(
        "OutOfcpu",
        "Node didn't have enough resource: cpu, requested: 1000, used: 1500, capacity: 2000",
    )
    assert admit(pod("c", {"memory": "4Gi"}), NODE, running) == Rejection(
        "OutOfmemory",
        "Node didn't have enough resource: memory, requested: 4294967296, used: 1073741824, "
        "capacity: 4294967296",
    )
    assert admit(pod("d", {"ephemeral-storage": "11Gi"}), NODE, []).reason == (
        "OutOfephemeral-storage"
    )
    assert admit(pod("e", {"example.com/gpu": "2"}), NODE, []).reason == "OutOfexample.com/gpu"
    # an extended resource the node does not have is the cluster's business, not the node's
    assert admit(pod("f", {"example.com/fpga": "1"}), NODE, []) is None


def test_the_pod_count_comes_first():
    running = [pod(name) for name in ("a", "b", "c")]
    assert admit(pod("d", {"cpu": "100"}), NODE, running) == Rejection(
        "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
    )


def test_init_containers_count_by_their_peak():
    spec = {"initContainers": [{"name": "setup", "resources": {"requests": {"cpu": "3"}}}]}
    assert admit(pod("a", {"cpu": "1"}, **spec), NODE, []).reason == "OutOfcpu"


def test_selector_affinity_ports_and_no_execute_taints():
    assert admit(pod("a", nodeSelector={"disk": "hdd"}), NODE, []) == Rejection(
        "NodeAffinity",
        "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector",
    )
    assert admit(pod("b", nodeSelector={"disk": "ssd"}), NODE, []) is None
    web = pod("web")
    web["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    other = pod("other")
    other["spec"]["containers"][0]["ports"] = [{"containerPort": 81, "hostPort": 8080}]
    assert admit(other, NODE, [web]) == Rejection(
        "NodePorts",
        "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports",
    )
    tainted = {
        **NODE,
        "spec": {
            "taints": [
                {"key": "drain", "effect": "NoExecute"},
                {"key": "quiet", "effect": "NoSchedule"},  # the scheduler's concern only
            ]
        },
    }
    assert admit(pod("c"), tainted, []) == Rejection(
        "TaintToleration",
        "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate",
    )
    tolerant = pod("d", tolerations=[{"key": "drain", "operator": "Exists"}])
    assert admit(tolerant, tainted, []) is None


def test_a_node_without_allocatable_yet_takes_everything():
    bare = {"metadata": {"name": "n1"}, "status": {}}
    assert admit(pod("a", {"cpu": "100"}), bare, []) is None


def test_the_rejected_status_is_failed_with_the_reason():
    rejection = Rejection("OutOfcpu", "Node didn't have enough resource: cpu")
    original = pod("a")
    original["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]}
    status = rejected_status(original, rejection)
    assert status["phase"] == "Failed" and status["reason"] == "OutOfcpu"
    assert status["message"] == "Pod was rejected: Node didn't have enough resource: cpu"
    assert status["conditions"] == [{"type": "PodScheduled"}] and status["startTime"]
    assert was_rejected({**original, "status": status})
    assert not was_rejected(original)
