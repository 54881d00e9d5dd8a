"""One controller run inside the test process, against a real server, for as long as needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from kubik.client.api import Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory
from kubik.controllers.base import Context, Controller


@contextlib.asynccontextmanager
async def running(client: Client, cls: type[Controller], workers: int = 1) -> AsyncIterator:
    """The controller, its informers synced and its workers running; stopped on exit."""
    factory = InformerFactory(client)
    controller = cls(Context(client, factory, EventRecorder(client, f"{cls.name}-test")))
    controller.setup()
    factory.start()
    await factory.wait_synced()
    task = asyncio.create_task(controller.run(workers))
    try:
        yield controller
    finally:
        await controller.stop()
        await asyncio.wait_for(task, 10)
        await factory.stop()
