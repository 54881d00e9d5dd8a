"""The event recorder against a real server: repeats counted, similar ones combined, spam cut."""

from __future__ import annotations

import asyncio

import pytest

from kubik.api import builtin
from kubik.client.api import Client
from kubik.client.events import EventRecorder
from tests.support.cluster import KubikServer

EVENTS = builtin.lookup("", "v1", "events")
CONFIGMAPS = builtin.lookup("", "v1", "configmaps")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikServer(
        tmp_path_factory.mktemp("events"), extra_args=["--disable-controller-manager"]
    ).start()
    yield kubik
    kubik.stop()


async def events_for(client: Client, uid: str) -> list[dict]:
    listing = await client.list(EVENTS, "default", field_selector=f"involvedObject.uid={uid}")
    return listing["items"]


async def settle(recorder: EventRecorder) -> None:
    async with asyncio.timeout(20):
        while not recorder._pending.empty():
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def test_repeats_bump_the_count(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    recorder = EventRecorder(client, "tester")
    recorder.start()
    try:
        obj = await client.create(
            CONFIGMAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "repeated", "namespace": "default"},
            },
        )
        for _ in range(3):
            recorder.record(obj, "Normal", "Poked", "poked it")
        await settle(recorder)
        events = await events_for(client, obj["metadata"]["uid"])
        assert [(e["reason"], e["count"]) for e in events] == [("Poked", 3)]
        assert events[0]["source"] == {"component": "tester"}
        assert events[0]["involvedObject"]["name"] == "repeated"
    finally:
        await recorder.stop()
        await client.close()


async def test_similar_events_are_combined_and_spam_is_cut(server):
    client = Client.from_kubeconfig(server.kubeconfig)
    recorder = EventRecorder(client, "tester")
    recorder.start()
    try:
        obj = await client.create(
            CONFIGMAPS,
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "busy", "namespace": "default"},
            },
        )
        for i in range(100):
            recorder.record(obj, "Normal", "SuccessfulCreate", f"Created pod: p{i}")
        await settle(recorder)
        events = await events_for(client, obj["metadata"]["uid"])
        combined = [e for e in events if e["message"].startswith("(combined from similar")]
        single = [e for e in events if e not in combined]
        assert len(single) == 10
        assert len(combined) == 1
        # the spam filter let 25 through: 10 single ones, 15 folded into the combined one
        assert combined[0]["count"] == 15
    finally:
        await recorder.stop()
        await client.close()
