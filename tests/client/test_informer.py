"""Informers and the client against a real server: list, watch, indexes, errors."""

from __future__ import annotations

import asyncio

import pytest

from kubik.api import builtin
from kubik.client.api import ApiError, Client
from kubik.client.informer import Informer, key_of
from tests.support.cluster import KubikServer

CONFIGMAPS = builtin.lookup("", "v1", "configmaps")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("informer"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


def configmap(name: str, namespace: str = "default", **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"v": "1"},
    }


async def eventually(predicate, seconds: float = 10):
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_informer_follows_creates_updates_and_deletes(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    seen: list[tuple[str, str]] = []
    informer = Informer(client, CONFIGMAPS)
    informer.add_handlers(
        on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
        on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])),
    )
    informer.add_index("app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
    await client.create(CONFIGMAPS, configmap("before", app="x"))
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert informer.get("default/before") is not None
        await client.create(CONFIGMAPS, configmap("later", app="x"))
        await client.patch(CONFIGMAPS, "default", "later", {"data": {"v": "2"}})
        await client.delete(CONFIGMAPS, "default", "before")
        await eventually(lambda: ("delete", "before") in seen)
        await eventually(lambda: ("update", "later") in seen)
        assert informer.get("default/before") is None
        assert informer.get("default/later")["data"] == {"v": "2"}
        assert [key_of(o) for o in informer.by_index("app", "x")] == ["default/later"]
        assert ("add", "before") in seen and ("add", "later") in seen
    finally:
        await informer.stop()
        await client.close()


async def test_list_all_pages_through_many_objects(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        await client.create(
            builtin.lookup("", "v1", "namespaces"),
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "many"}},
        )
        await asyncio.gather(
            *(client.create(CONFIGMAPS, configmap(f"c{i:04d}", "many")) for i in range(1200))
        )
        listing = await client.list_all(CONFIGMAPS, "many", page=500)
        names = [o["metadata"]["name"] for o in listing["items"]]
        assert names == [f"c{i:04d}" for i in range(1200)]
    finally:
        await client.close()


async def test_errors_carry_the_status(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    try:
        with pytest.raises(ApiError) as missing:
            await client.get(CONFIGMAPS, "default", "nope")
        assert missing.value.not_found and missing.value.reason == "NotFound"
        await client.create(CONFIGMAPS, configmap("dup"))
        with pytest.raises(ApiError) as exists:
            await client.create(CONFIGMAPS, configmap("dup"))
        assert exists.value.already_exists
        stale = await client.get(CONFIGMAPS, "default", "dup")
        await client.patch(CONFIGMAPS, "default", "dup", {"data": {"v": "3"}})
        with pytest.raises(ApiError) as conflict:
            await client.update(CONFIGMAPS, stale)
        assert conflict.value.conflict
    finally:
        await client.close()
