"""Pods get upstream's QoS class on create."""

from __future__ import annotations

from kubik.api import builtin, strategy
from kubik.api.kinds.qos import qos_class

PODS = builtin.lookup("", "v1", "pods")


def container(requests=None, limits=None, name="c"):
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "x", "resources": resources}


def test_no_requests_or_limits_is_best_effort():
    assert qos_class({"containers": [container(), container(name="d")]}) == "BestEffort"
    assert qos_class({"containers": [container({"cpu": "0"})]}) == "BestEffort"


def test_limits_equal_to_requests_for_cpu_and_memory_is_guaranteed():
    both = {"cpu": "500m", "memory": "64Mi"}
    assert qos_class({"containers": [container(both, both)]}) == "Guaranteed"
    # an unset request counts as equal to the limit
    assert qos_class({"containers": [container(None, both)]}) == "Guaranteed"
    assert qos_class({"containers": [container({"cpu": "0.5"}, both)]}) == "Guaranteed"


def test_anything_else_is_burstable():
    assert qos_class({"containers": [container({"cpu": "100m"})]}) == "Burstable"
    assert (
        qos_class({"containers": [container({"cpu": "1"}, {"cpu": "2", "memory": "1Gi"})]})
        == "Burstable"
    )
    guaranteed = container({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})
    assert qos_class({"containers": [guaranteed, container(name="d")]}) == "Burstable"
    assert (
        qos_class(
            {
                "initContainers": [container({"memory": "1Gi"}, name="i")],
                "containers": [container()],
            }
        )
        == "Burstable"
    )


def test_created_pods_carry_it_in_their_status():
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "d"},
        "spec": {"containers": [container({"memory": "1Gi"})]},
    }
    strategy.prepare_create(PODS, pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "Burstable"}
