"""The node IPAM controller against a real `kubik server` (with no controllers of its own).

The controller runs in the test with a small cluster CIDR (10.99.0.0/22: four /24
blocks), so running out and blocks coming free can be seen.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.controllers import nodeipam
from kubik.controllers.base import Context
from tests.support.cluster import KubikServer
from tests.support.polling import eventually

NODES = builtin.lookup("", "v1", "nodes")
EVENTS = builtin.lookup("", "v1", "events")
CLUSTER_CIDR = "10.99.0.0/22"
BLOCKS = {f"10.99.{i}.0/24" for i in range(4)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("nodeipam"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


class Running:
    """One controller instance with its informers; `stop` ends it (a restart is a new one)."""

    def __init__(self, client: Client) -> None:
        self.factory = InformerFactory(client)
        self.recorder = EventRecorder(client, "nodeipam-test")
        self.controller = nodeipam.NodeIpamController(Context(client, self.factory, self.recorder))

    async def start(self) -> Running:
        self.controller.setup()
        self.recorder.start()
        self.factory.start()
        await self.factory.wait_synced()
        self.task = asyncio.create_task(self.controller.run(1))
        return self

    async def stop(self) -> None:
        if self.task.done():
            return
        await self.controller.stop()
        await self.task
        await self.factory.stop()
        await self.recorder.stop()


@pytest.fixture
async def fresh(client, monkeypatch):
    """No nodes left from other tests; the small cluster CIDR; a controller factory."""
    for node in (await client.list(NODES))["items"]:
        await client.delete(NODES, "", node["metadata"]["name"])
    monkeypatch.setenv(nodeipam.CIDR_VARIABLE, CLUSTER_CIDR)
    running: list[Running] = []

    async def start() -> Running:
        instance = await Running(client).start()
        running.append(instance)
        return instance

    yield start
    for instance in running:
        await instance.stop()


async def make_node(client: Client, name: str = "", pod_cidr: str = "") -> str:
    name = name or f"n-{uuid.uuid4().hex[:8]}"
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    await client.create(NODES, {"metadata": {"name": name}, "spec": spec})
    return name


async def cidr_of(client: Client, name: str) -> str:
    try:
        node = await client.get(NODES, "", name)
    except ApiError as exc:
        assert exc.not_found
        return ""
    spec = node.get("spec") or {}
    assert spec.get("podCIDRs", [spec.get("podCIDR")])[0] == spec.get("podCIDR")
    return spec.get("podCIDR", "")


async def test_every_node_gets_its_own_block(client, fresh):
    await fresh()
    names = [await make_node(client) for _ in range(3)]
    for name in names:
        await eventually(lambda name=name: cidr_of(client, name), f"a pod CIDR for {name}")
    cidrs = [await cidr_of(client, name) for name in names]
    assert len(set(cidrs)) == 3
    assert set(cidrs) <= BLOCKS


async def test_a_node_keeps_its_cidr_and_nobody_else_gets_it(client, fresh):
    await make_node(client, "preset", "10.99.0.0/24")
    await fresh()
    names = [await make_node(client) for _ in range(3)]
    for name in names:
        await eventually(lambda name=name: cidr_of(client, name), f"a pod CIDR for {name}")
    assert await cidr_of(client, "preset") == "10.99.0.0/24"
    assert {await cidr_of(client, name) for name in names} == BLOCKS - {"10.99.0.0/24"}


async def test_a_restarted_controller_never_gives_a_block_twice(client, fresh):
    first = await fresh()
    before = [await make_node(client) for _ in range(2)]
    for name in before:
        await eventually(lambda name=name: cidr_of(client, name), f"a pod CIDR for {name}")
    await first.stop()
    await fresh()
    after = [await make_node(client) for _ in range(2)]
    for name in after:
        await eventually(lambda name=name: cidr_of(client, name), f"a pod CIDR for {name}")
    assert {await cidr_of(client, name) for name in before + after} == BLOCKS


async def test_when_all_blocks_are_taken_a_node_waits_for_one_to_come_free(client, fresh):
    await fresh()
    names = [await make_node(client) for _ in range(4)]
    for name in names:
        await eventually(lambda name=name: cidr_of(client, name), f"a pod CIDR for {name}")
    waiting = await make_node(client)

    async def told() -> bool:
        events = (await client.list(EVENTS, "default"))["items"]
        return any(
            e["reason"] == "CIDRNotAvailable" and e["involvedObject"]["name"] == waiting
            for e in events
        )

    await eventually(told, "a CIDRNotAvailable event")
    assert await cidr_of(client, waiting) == ""
    freed = await cidr_of(client, names[0])
    await client.delete(NODES, "", names[0])
    assert await eventually(lambda: cidr_of(client, waiting), "the freed block") == freed
