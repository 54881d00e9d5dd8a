"""Events recorded against objects, as client-go's event recorder writes them.

`record(obj, type, reason, message)` returns at once; a background task
writes core/v1 Events (`<name>.<hex time>`, involvedObject, source, counts).
Like client-go's EventCorrelator:
- repeats of the same (object, type, reason, message) bump `count` and
  `lastTimestamp` of the first event instead of creating new ones;
- after 10 events of one (object, type, reason) with different messages in
  10 minutes, further ones are folded into one "(combined from similar
  events)" event;
- a spam filter gives each object a burst of 25 events, then one per 5
  minutes, so a controller creating a thousand pods writes a few events, not
  a thousand API calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from kubik.api import builtin, meta
from kubik.client.api import ApiError, Client
from kubik.component import cancel_and_wait

log = logging.getLogger(__name__)

EVENTS = builtin.lookup("", "v1", "events")
_REMEMBERED = 4096
_QUEUE = 10_000
_SIMILAR_LIMIT = 10
_SIMILAR_WINDOW = 600.0
_SPAM_BURST = 25
_SPAM_REFILL_SECONDS = 300.0

Object = dict[str, Any]


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "") -> None:
        self._client = client
        self._source = {"component": component, **({"host": host} if host else {})}
        self._pending: asyncio.Queue = asyncio.Queue(_QUEUE)
        self._seen: OrderedDict[tuple, tuple[str, str, int]] = OrderedDict()
        self._similar: OrderedDict[tuple, tuple[float, set[str]]] = OrderedDict()
        self._tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop(), name="event-recorder")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def record(self, obj: Object, type_: str, reason: str, message: str) -> None:
        if not self._take_token((obj.get("metadata") or {}).get("uid") or meta.name_of(obj)):
            log.debug("event %s for %s filtered as spam", reason, meta.name_of(obj))
            return
        try:
            self._pending.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            log.warning("dropping event %s for %s: too many pending", reason, meta.name_of(obj))

    def _take_token(self, subject: str) -> bool:
        """The spam filter's token bucket for one object."""
        now = time.monotonic()
        tokens, updated = self._tokens.get(subject, (float(_SPAM_BURST), now))
        tokens = min(_SPAM_BURST, tokens + (now - updated) / _SPAM_REFILL_SECONDS)
        allowed = tokens >= 1
        self._tokens[subject] = (tokens - 1 if allowed else tokens, now)
        self._tokens.move_to_end(subject)
        if len(self._tokens) > _REMEMBERED:
            self._tokens.popitem(last=False)
        return allowed

    def _combined(self, uid: str, type_: str, reason: str, message: str) -> str:
        """The message to write: combined once an object has too many similar events."""
        now = time.monotonic()
        key = (uid, type_, reason)
        started, messages = self._similar.get(key, (now, set()))
        if now - started > _SIMILAR_WINDOW:
            started, messages = now, set()
        messages.add(message)
        self._similar[key] = (started, messages)
        self._similar.move_to_end(key)
        if len(self._similar) > _REMEMBERED:
            self._similar.popitem(last=False)
        if len(messages) > _SIMILAR_LIMIT:
            return f"(combined from similar events): {message}"
        return message

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
        message = self._combined(metadata.get("uid", ""), type_, reason, message)
        combined = message.startswith("(combined from similar events)")
        key = (metadata.get("uid"), type_, reason, "" if combined else message)
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
