"""Priority admission in a real `kubik server`: PriorityClass values become pod priorities.

System classes exist from the start; a class's value and preemption policy
are copied into new pods; a pod naming no class gets the global default
class (or 0); unknown classes and priorities that disagree with the class
are refused with upstream's Forbidden messages; only one class may be the
global default.
"""

from __future__ import annotations

import json

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError
from tests.scheduler.objects import pod, priority_class

PODS = builtin.lookup("", "v1", "pods")
PRIORITY_CLASSES = builtin.lookup("scheduling.k8s.io", "v1", "priorityclasses")
LIMIT_RANGES = builtin.lookup("", "v1", "limitranges")


@pytest.fixture
async def classes(client):
    """make(*classes): PriorityClasses deleted when the test ends."""
    made: list[str] = []

    async def make(*objs: dict) -> None:
        for obj in objs:
            await client.create(PRIORITY_CLASSES, obj)
            made.append(obj["metadata"]["name"])

    yield make
    for name in made:
        await client.delete(PRIORITY_CLASSES, "", name)


async def created(client, namespace: str, obj: dict) -> dict:
    obj = {**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}}
    obj.pop("status", None)
    return await client.create(PODS, obj)


def test_the_system_classes_exist_from_the_start(server):
    listing = json.loads(server.ok("get", "priorityclasses", "-o", "json"))
    values = {item["metadata"]["name"]: item["value"] for item in listing["items"]}
    assert values["system-node-critical"] == 2000001000
    assert values["system-cluster-critical"] == 2000000000
    table = server.ok("get", "priorityclass", "system-node-critical")
    assert "PreemptLowerPriority" in table


async def test_the_class_value_and_policy_become_the_pods(client, namespace, classes):
    name = f"{namespace}-batch"
    await classes(priority_class(name, 1000, preemptionPolicy="Never"))
    spec = pod("batch", priorityClassName=name)["spec"]
    made = await created(client, namespace, {"metadata": {"name": "batch"}, "spec": spec})
    assert made["spec"]["priority"] == 1000
    assert made["spec"]["preemptionPolicy"] == "Never"
    critical = pod("critical", priorityClassName="system-cluster-critical")
    made = await created(client, namespace, critical)
    assert made["spec"]["priority"] == 2000000000
    assert made["spec"]["preemptionPolicy"] == "PreemptLowerPriority"


async def test_a_class_without_a_policy_preempts_lower_priority(client, classes):
    name = "plain-priority-class"
    await classes(priority_class(name, 5))
    stored = await client.get(PRIORITY_CLASSES, "", name)
    assert stored["preemptionPolicy"] == "PreemptLowerPriority"


async def test_no_class_means_the_global_default_or_zero(client, namespace, classes):
    made = await created(client, namespace, pod("before"))
    assert made["spec"]["priority"] == 0
    assert made["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in made["spec"]
    default = f"{namespace}-default"
    await classes(priority_class(default, 42, globalDefault=True, preemptionPolicy="Never"))
    made = await created(client, namespace, pod("after"))
    assert made["spec"]["priorityClassName"] == default
    assert (made["spec"]["priority"], made["spec"]["preemptionPolicy"]) == (42, "Never")
    with pytest.raises(ApiError) as refused:
        await client.create(PRIORITY_CLASSES, priority_class("another", 7, globalDefault=True))
    assert refused.value.code == 403
    assert refused.value.status["message"] == (
        f'priorityclasses.scheduling.k8s.io "another" is forbidden: PriorityClass {default} '
        "is already marked as default. Only one default can exist"
    )


async def test_the_global_default_holds_where_a_limit_range_defaults_the_pod(
    client, namespace, classes
):
    """LimitRanger applies the pod defaults, priority 0 among them: Priority runs before it."""
    limits = [{"type": "Container", "default": {"cpu": "100m"}}]
    limit_range = {"metadata": {"name": "limits"}, "spec": {"limits": limits}}
    await client.create(LIMIT_RANGES, limit_range, namespace=namespace)
    default = f"{namespace}-default"
    await classes(priority_class(default, 42, globalDefault=True))
    made = await created(client, namespace, pod("limited"))
    assert made["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "100m"}
    assert (made["spec"]["priorityClassName"], made["spec"]["priority"]) == (default, 42)


def test_an_unknown_class_is_forbidden(server, namespace):
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lost", "namespace": namespace},
        "spec": {
            "priorityClassName": "no-such-class",
            "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}],
        },
    }
    result = server.kubectl("create", "-f", "-", stdin=json.dumps(manifest))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "lost" is forbidden: '
        "no PriorityClass with name no-such-class was found"
    )


async def test_a_priority_the_class_does_not_give_is_forbidden(client, namespace):
    spec = pod("x", priorityClassName="system-node-critical", priority=5)["spec"]
    with pytest.raises(ApiError) as refused:
        await created(client, namespace, {"metadata": {"name": "x"}, "spec": spec})
    assert refused.value.code == 403
    assert refused.value.status["reason"] == "Forbidden"
    assert refused.value.status["message"] == (
        'pods "x" is forbidden: the integer value of priority (5) must not be provided in pod '
        "spec; priority admission controller computed 2000001000 from the given PriorityClass "
        "name"
    )
    spec = pod("y", preemptionPolicy="Never")["spec"]
    with pytest.raises(ApiError) as refused:
        await created(client, namespace, {"metadata": {"name": "y"}, "spec": spec})
    assert refused.value.status["message"] == (
        'pods "y" is forbidden: the string value of PreemptionPolicy (Never) must not be '
        "provided in pod spec; priority admission controller computed PreemptLowerPriority "
        "from the given PriorityClass name"
    )
