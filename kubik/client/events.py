"""Events recorded against objects, as client-go's event recorder writes them.

`record(obj, type, reason, message)` returns at once; a background task
writes core/v1 Events (`<name>.<hex time>`, involvedObject, source, counts).
Repeats of the same (object, type, reason, message) within a while bump
`count` and `lastTimestamp` of the first event instead of creating new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client

log = logging.getLogger(__name__)

EVENTS = builtin.lookup("", "v1", "events")
_REMEMBERED = 4096
_QUEUE = 10_000

Object = dict[str, Any]


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "") -> None:
        self._client = client
        self._source = {"component": component, **({"host": host} if host else {})}
        self._pending: asyncio.Queue = asyncio.Queue(_QUEUE)
        self._seen: OrderedDict[tuple, tuple[str, str, int]] = OrderedDict()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop(), name="event-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def record(self, obj: Object, type_: str, reason: str, message: str) -> None:
        try:
            self._pending.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            log.warning("dropping event %s for %s: too many pending", reason, meta.name_of(obj))

    async def _write_loop(self) -> None:
        while True:
            obj, type_, reason, message = await self._pending.get()
            try:
                await self._write(obj, type_, reason, message)
            except ApiError as exc:
                log.debug("event %s for %s not written: %s", reason, meta.name_of(obj), exc)

    async def _write(self, obj: Object, type_: str, reason: str, message: str) -> None:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        key = (metadata.get("uid"), type_, reason, message)
        now = meta.now()
        seen = self._seen.get(key)
        if seen is not None:
            name, event_namespace, count = seen
            try:
                await self._client.patch(
                    EVENTS, event_namespace, name, {"count": count + 1, "lastTimestamp": now}
                )
                self._seen[key] = (name, event_namespace, count + 1)
                self._seen.move_to_end(key)
                return
            except ApiError as exc:
                if not exc.not_found:
                    raise
        name = f"{metadata.get('name', 'unknown')}.{time.time_ns():x}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "kind": obj.get("kind", ""),
                "apiVersion": obj.get("apiVersion", ""),
                "name": metadata.get("name", ""),
                "namespace": metadata.get("namespace", ""),
                "uid": metadata.get("uid", ""),
                "resourceVersion": metadata.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": self._source,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "reportingComponent": self._source["component"],
            "reportingInstance": "",
        }
        await self._client.create(EVENTS, event)
        self._seen[key] = (name, namespace, 1)
        if len(self._seen) > _REMEMBERED:
            self._seen.popitem(last=False)
