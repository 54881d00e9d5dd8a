"""What every controller is: informers that enqueue keys, workers that reconcile them.

The pattern of client-go and `pkg/controller/*`: event handlers only add an
object's key ("namespace/name") to the controller's work queue; `sync(key)`
reads the current state back from the informer caches and makes one
idempotent step toward the desired state. A key is never synced by two
workers at once; a sync that raises is retried with exponential backoff.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubik.client.api import Client
from kubik.client.events import EventRecorder
from kubik.client.informer import InformerFactory, key_of
from kubik.client.workqueue import ShutDown, WorkQueue
from kubik.controllers import metrics

log = logging.getLogger(__name__)

Object = dict[str, Any]

# name → controller class, filled by @register in each controller module
CONTROLLERS: dict[str, type[Controller]] = {}


def register(cls: type[Controller]) -> type[Controller]:
    CONTROLLERS[cls.name] = cls
    return cls


@dataclass
class Context:
    """What the controller manager hands every controller."""

    client: Client
    informers: InformerFactory
    recorder: EventRecorder
    root_ca: bytes = b""  # the CA bundle pods are given to trust the API server (PEM)


class Controller(abc.ABC):
    name: str = "controller"
    workers: int = 5  # --concurrent-<name>-syncs overrides
    # The event source upstream's controller uses (e.g. "deployment-controller");
    # empty: the manager's shared recorder ("kube-controller-manager").
    component: str = ""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.client = context.client
        self.informers = context.informers
        self._own_recorder = bool(self.component)
        self.recorder = (
            EventRecorder(context.client, self.component) if self.component else context.recorder
        )
        self.queue = WorkQueue(self.name)
        metrics.track_queue(self.name, self.queue)

    @abc.abstractmethod
    def setup(self) -> None:
        """Get the informers this controller needs and add handlers that enqueue keys."""

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Reconcile one key; raise to be retried with backoff."""

    def enqueue(self, obj: Object) -> None:
        self.queue.add(key_of(obj))

    def enqueue_handlers(self, key: Callable[[Object], str | None] | None = None) -> dict:
        """Handlers that enqueue the object (or `key(obj)`, when not None) on every change."""

        def add(obj: Object) -> None:
            target = key(obj) if key else key_of(obj)
            if target:
                self.queue.add(target)

        return {"on_add": add, "on_update": lambda old, new: add(new), "on_delete": add}

    async def run(self, workers: int) -> None:
        if self._own_recorder:
            self.recorder.start()
        await asyncio.gather(*(self._worker() for _ in range(workers)))

    async def stop(self) -> None:
        await self.queue.shutdown()
        if self._own_recorder:
            await self.recorder.stop()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            started = time.perf_counter()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.SYNC_ERRORS.labels(self.name).inc()
                retries = self.queue.requeues(key)
                level = logging.WARNING if retries < 5 else logging.DEBUG
                log.log(
                    level,
                    "%s: syncing %s failed (retry %d): %s",
                    self.name,
                    key,
                    retries,
                    exc,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                self.queue.add_rate_limited(key)
            finally:
                metrics.SYNC_SECONDS.labels(self.name).observe(time.perf_counter() - started)
                self.queue.done(key)
