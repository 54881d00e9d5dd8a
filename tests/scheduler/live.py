"""Reading what the scheduler did, through the API: bindings, conditions, events."""

from __future__ import annotations

from functools import partial

from kubik.api import builtin
from kubik.client.api import Client
from tests.scheduler.objects import labelled
from tests.support import polling

NAMESPACES = builtin.lookup("", "v1", "namespaces")
NODES = builtin.lookup("", "v1", "nodes")
PODS = builtin.lookup("", "v1", "pods")
EVENTS = builtin.lookup("", "v1", "events")
TIMEOUT = 20.0


eventually = partial(polling.eventually, seconds=TIMEOUT, every=0.05)


async def create(client: Client, namespace: str, obj: dict) -> None:
    obj = {**obj, "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}}
    obj["status"] = {}
    await client.create(PODS, obj)


async def submit(client: Client, namespace: str, name: str, labels: dict, **spec) -> None:
    """Create a labelled pod kept to the test's hollow nodes (`group: <namespace>`)."""
    obj = labelled(name, labels, namespace, **spec)
    obj["spec"]["nodeSelector"] = {"group": namespace, **obj["spec"].get("nodeSelector", {})}
    del obj["metadata"]["uid"], obj["status"]
    await client.create(PODS, obj)


async def node_of(client: Client, namespace: str, name: str) -> str:
    async def bound():
        found = await client.get(PODS, namespace, name)
        return found["spec"].get("nodeName")

    return await eventually(bound, f"pod {name} to be bound")


async def unschedulable(client: Client, namespace: str, name: str) -> str:
    """The message of the pod's PodScheduled=False condition, once it has one."""

    async def condition():
        found = await client.get(PODS, namespace, name)
        for c in (found.get("status") or {}).get("conditions") or []:
            if c["type"] == "PodScheduled" and c["status"] == "False":
                assert c["reason"] == "Unschedulable"
                return c["message"]
        return None

    return await eventually(condition, f"pod {name} to be found unschedulable")


async def event(client: Client, namespace: str, name: str, reason: str) -> dict:
    async def find():
        listing = await client.list(EVENTS, namespace)
        for item in listing["items"]:
            if item["involvedObject"]["name"] == name and item["reason"] == reason:
                return item
        return None

    return await eventually(find, f"a {reason} event for {name}")


def names(prefix: str, *suffixes: str) -> list[str]:
    return [f"{prefix}-{suffix}" for suffix in suffixes]
