"""A real `kubik server` per test module, and a namespace and nodes of each test's own.

The controller manager is left out: without kubelets its node lifecycle
controller would taint every node not-ready. Nodes a test makes are deleted
when it ends, so the node counts in "0/N nodes are available" are its own.
"""

from __future__ import annotations

import pytest

from kubik.client.api import ApiError
from kubik.hollow import HollowNodes
from tests.scheduler.live import NODES
from tests.support.cluster import KubikServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("scheduler"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


@pytest.fixture
async def nodes(client):
    """make(*node dicts): creates nodes that are deleted when the test ends."""
    created: list[str] = []

    async def make(*objs: dict) -> None:
        for obj in objs:
            await client.create(NODES, obj)
            created.append(obj["metadata"]["name"])

    yield make
    for name in created:
        try:
            await client.delete(NODES, "", name)
        except ApiError as exc:
            if not exc.not_found:
                raise


@pytest.fixture
async def hollow(client, namespace):
    """hollow(count): hollow nodes <namespace>-<i>, zones a, b, c in turn, labelled
    `group: <namespace>`; they are deleted when the test ends."""
    started: list[HollowNodes] = []

    async def start(count: int) -> list[str]:
        nodes = HollowNodes(
            client,
            count=count,
            name_prefix=f"{namespace}-",
            labels={"group": namespace},
            start_delay=0.1,
            ready_delay=0.1,
            delete_on_stop=True,
        )
        started.append(nodes)
        await nodes.start()
        return nodes.names

    yield start
    for nodes in started:
        await nodes.stop()
