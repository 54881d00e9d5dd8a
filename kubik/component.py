"""Components and the runner that starts and stops them (k3s's shape).

Every long-running part of kubik (the store, later the API server, the
scheduler, the controllers, the kubelet) is a `Component`: `start()` returns
once it is running and `ready` is set, `stop()` undoes it. The all-in-one
`kubik server` and the split roles compose the same components with `run`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

log = logging.getLogger(__name__)


class Component(abc.ABC):
    """A part of kubik with an explicit lifecycle."""

    name: str = "component"

    def __init__(self) -> None:
        self.ready = asyncio.Event()

    @abc.abstractmethod
    async def start(self) -> None:
        """Start running; set `ready` once the component can serve."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop and release everything `start` acquired."""


async def run(components: Sequence[Component], *, stop: asyncio.Event | None = None) -> None:
    """Start `components` in order, wait for SIGTERM/SIGINT (or `stop`), stop them in reverse."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    started: list[Component] = []
    try:
        for component in components:
            log.info("starting %s", component.name)
            # Stopped even if its start fails halfway, to release what it got.
            started.append(component)
            await component.start()
            await component.ready.wait()
            log.info("%s is ready", component.name)
        await stop.wait()
    finally:
        for component in reversed(started):
            log.info("stopping %s", component.name)
            try:
                await component.stop()
            except Exception:
                log.exception("%s did not stop cleanly", component.name)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopped")


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel a component's background `task` and wait until it has unwound, so that
    nothing of it runs after `stop()`; an error other than the cancellation propagates."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s, shutting down", sig.name)
    stop.set()
